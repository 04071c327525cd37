"""Password guessing and sign-ups are throttled: per username and address, per address across
usernames, per username across addresses; lockouts are shown to admins, who clear them."""

import ipaddress
import itertools
import uuid
from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import roles
from accounts.login_throttle import client_address
from accounts.models import LoginLockout
from tests.conftest import PASSWORD
from tests.factories import user_with_role

MAX_FAILURES = 3
MAX_USERNAMES_PER_ADDRESS = 4
MAX_FAILURES_PER_USERNAME = 7
SIGNUPS_PER_ADDRESS = 3
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))
LOCKED_OUT = "Too many failed sign-in attempts. Please wait 1 minute"


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.WEBCHAT_LOGIN_MAX_FAILURES = MAX_FAILURES
    settings.WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS = MAX_USERNAMES_PER_ADDRESS
    settings.WEBCHAT_LOGIN_MAX_FAILURES_PER_USERNAME = MAX_FAILURES_PER_USERNAME
    settings.WEBCHAT_SIGNUPS_PER_ADDRESS = SIGNUPS_PER_ADDRESS
    settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS = 60
    settings.WEBCHAT_TRUSTED_PROXIES = []


def _new_username() -> str:
    """A fresh name per test: the cache outlives a test and may be shared between workers."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def username(db) -> str:
    name = _new_username()
    get_user_model().objects.create_user(name, password=PASSWORD)
    return name


def _sign_in(username: str, password: str, *, address: str, client: Client | None = None):
    return (client or Client(REMOTE_ADDR=address)).post(
        "/accounts/login/", {"username": username, "password": password}
    )


def _fail(username: str, *, address: str, times: int = 1) -> None:
    for _ in range(times):
        assert _sign_in(username, "wrong", address=address).status_code == 200


def _fullwidth(text: str) -> str:
    """The same name typed in fullwidth letters (U+FF01 to U+FF5E), which NFKC reads as
    ASCII."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


# --- Per username and address ------------------------------------------------------------


def test_a_username_is_locked_out_at_its_address_with_a_429_and_a_clear_message(username):
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    refused = _sign_in(username, PASSWORD, address=address)
    assert refused.status_code == 429
    assert LOCKED_OUT in refused.text


def test_one_persons_typos_do_not_lock_out_others_behind_the_same_address(username, db):
    office = next(_addresses)
    colleague = _new_username()
    get_user_model().objects.create_user(colleague, password=PASSWORD)
    _fail(username, address=office, times=MAX_FAILURES)
    assert _sign_in(colleague, PASSWORD, address=office).status_code == 302
    # ... nor the same person elsewhere (their phone on another network).
    assert _sign_in(username, PASSWORD, address=next(_addresses)).status_code == 302


def test_every_spelling_of_a_username_shares_one_count(username):
    address = next(_addresses)
    for spelling in (username.upper(), _fullwidth(username), f"  {username}  "):
        assert _sign_in(spelling, "wrong", address=address).status_code == 200
    refused = _sign_in(username, PASSWORD, address=address)
    assert refused.status_code == 429


def test_a_fullwidth_spelling_does_not_get_past_a_lockout(username):
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    fullwidth = _fullwidth(username)
    assert fullwidth != username
    refused = _sign_in(fullwidth, PASSWORD, address=address)
    assert refused.status_code == 429
    assert LOCKED_OUT in refused.text


def test_the_fullwidth_spelling_signs_in_as_the_user_when_not_locked_out(username):
    # What made the bypass possible: the form normalizes the name before checking it.
    assert _sign_in(_fullwidth(username), PASSWORD, address=next(_addresses)).status_code == 302


def test_signing_in_clears_the_usernames_failures_at_its_address(username):
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES - 1)
    assert _sign_in(username, PASSWORD, address=address).status_code == 302
    _fail(username, address=address, times=MAX_FAILURES - 1)
    assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_no_password_is_checked_while_locked_out(username):
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    with mock.patch("django.contrib.auth.forms.authenticate") as authenticate:
        assert _sign_in(username, PASSWORD, address=address).status_code == 429
    authenticate.assert_not_called()


def test_the_lockout_ends_when_the_window_passes(username, settings):
    # The counters live in the cache; the in-process one reads the clock that is moved here
    # (Redis keeps time itself). The lockout's end is stored and compared with the same clock.
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    address = next(_addresses)
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False) as clock:
        _fail(username, address=address, times=MAX_FAILURES)
        clock.shift(59)
        assert _sign_in(username, PASSWORD, address=address).status_code == 429
        clock.shift(2)
        assert _sign_in(username, PASSWORD, address=address).status_code == 302


# --- Per address, across usernames; per username, across addresses ----------------------


def test_an_address_guessing_many_usernames_is_locked_out(username):
    address = next(_addresses)
    for _ in range(MAX_USERNAMES_PER_ADDRESS):
        _fail(_new_username(), address=address)
    assert _sign_in(username, PASSWORD, address=address).status_code == 429
    assert _sign_in(username, PASSWORD, address=next(_addresses)).status_code == 302


def test_repeated_failures_with_one_username_count_once_toward_the_address(username):
    address = next(_addresses)
    for _ in range(MAX_USERNAMES_PER_ADDRESS - 1):
        _fail(_new_username(), address=address, times=MAX_FAILURES - 1)
    assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_many_addresses_guessing_one_username_lock_it_out_everywhere(username):
    for _ in range(MAX_FAILURES_PER_USERNAME):
        _fail(username, address=next(_addresses))
    assert _sign_in(username, PASSWORD, address=next(_addresses)).status_code == 429


# --- Behind proxies ------------------------------------------------------------------------


def _address_of(remote: str, forwarded: str | None = None) -> str:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, headers=headers))


def _trust(settings, *networks: str) -> None:
    settings.WEBCHAT_TRUSTED_PROXIES = [ipaddress.ip_network(network) for network in networks]


def test_without_trusted_proxies_the_forwarded_header_is_ignored():
    assert _address_of("203.0.113.7", "192.0.2.1") == "203.0.113.7"


def test_a_forwarded_header_from_an_untrusted_address_is_ignored(settings):
    _trust(settings, "127.0.0.1")
    assert _address_of("203.0.113.7", "192.0.2.1") == "203.0.113.7"


def test_the_right_most_address_that_is_not_a_trusted_proxy_is_the_client(settings):
    _trust(settings, "127.0.0.1", "10.0.0.0/8")
    # The client forged the first entry; the load balancer (10.1.2.3) added what it saw,
    # and nginx, on this machine, what it saw: the load balancer.
    assert _address_of("127.0.0.1", "192.0.2.1, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert _address_of("127.0.0.1", "203.0.113.7") == "203.0.113.7"


def test_a_trusted_proxy_without_a_forwarded_header_is_the_client(settings):
    _trust(settings, "127.0.0.1")
    assert _address_of("127.0.0.1") == "127.0.0.1"
    assert _address_of("127.0.0.1", "10.0.0.1, 127.0.0.1") == "10.0.0.1"


def test_a_malformed_forwarded_entry_stops_the_walk_at_the_last_trusted_proxy(settings):
    _trust(settings, "127.0.0.1", "10.0.0.0/8")
    assert _address_of("127.0.0.1", "192.0.2.1, unknown, 10.1.2.3") == "10.1.2.3"
    assert _address_of("127.0.0.1", "not-an-address") == "127.0.0.1"


def test_ipv6_and_ipv4_mapped_addresses_are_read_alike(settings):
    _trust(settings, "::1", "127.0.0.1")
    assert _address_of("::ffff:127.0.0.1", "2001:db8::7") == "2001:db8::7"
    assert _address_of("::1", "::ffff:203.0.113.7") == "203.0.113.7"
    assert _address_of("not an address") == ""


def test_behind_a_trusted_proxy_each_client_is_throttled_by_its_own_address(username, settings):
    _trust(settings, "127.0.0.1")
    guesser, bystander = next(_addresses), next(_addresses)
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    for _ in range(MAX_USERNAMES_PER_ADDRESS):
        proxy.post(
            "/accounts/login/",
            {"username": _new_username(), "password": "wrong"},
            headers={"X-Forwarded-For": f"{bystander}, {guesser}"},  # the first one forged
        )
    signed_in = proxy.post(
        "/accounts/login/",
        {"username": username, "password": PASSWORD},
        headers={"X-Forwarded-For": bystander},
    )
    assert signed_in.status_code == 302
    assert LoginLockout.objects.get().address == guesser


def test_a_spoofed_forwarded_header_from_an_untrusted_client_does_not_escape_a_lockout(
    username, settings
):
    _trust(settings, "127.0.0.1")
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    refused = Client(REMOTE_ADDR=address).post(
        "/accounts/login/",
        {"username": username, "password": PASSWORD},
        headers={"X-Forwarded-For": next(_addresses)},
    )
    assert refused.status_code == 429


# --- Changing a password; signing up ------------------------------------------------------


def _change_password(client: Client, old: str):
    new = "another long pass phrase"
    return client.post(
        reverse("password_change"),
        {"old_password": old, "new_password1": new, "new_password2": new},
    )


def test_wrong_current_passwords_on_the_password_change_are_throttled(username):
    address = next(_addresses)
    client = Client(REMOTE_ADDR=address)
    client.force_login(get_user_model().objects.get(username=username))
    for _ in range(MAX_FAILURES):
        assert _change_password(client, "wrong").status_code == 200
    refused = _change_password(client, PASSWORD)
    assert refused.status_code == 429
    assert "Too many wrong passwords. Please wait 1 minute" in refused.text
    assert get_user_model().objects.get(username=username).check_password(PASSWORD)
    # It is one count: signing in from there is locked out too.
    assert _sign_in(username, PASSWORD, address=address).status_code == 429


def test_the_right_current_password_clears_the_count_and_changes_it(username):
    address = next(_addresses)
    client = Client(REMOTE_ADDR=address)
    client.force_login(get_user_model().objects.get(username=username))
    _fail(username, address=address, times=MAX_FAILURES - 1)
    assert _change_password(client, PASSWORD).status_code == 302
    _fail(username, address=address, times=MAX_FAILURES - 1)
    assert _sign_in(username, "another long pass phrase", address=address).status_code == 302


def test_the_admins_password_change_is_the_throttled_one(username):
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    response = client.get("/admin/password_change/")
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change")


def _sign_up(address: str, username: str):
    return Client(REMOTE_ADDR=address).post(
        reverse("signup"),
        {"username": username, "email": "", "password1": PASSWORD, "password2": PASSWORD},
    )


def test_sign_ups_from_one_address_are_throttled(username, settings):
    settings.WEBCHAT_SELF_SIGNUP = True
    address = next(_addresses)
    names = [_new_username() for _ in range(SIGNUPS_PER_ADDRESS + 1)]
    for name in names[:-1]:
        assert _sign_up(address, name).status_code == 200
    refused = _sign_up(address, names[-1])
    assert refused.status_code == 429
    assert "Too many sign-ups from your network. Please wait 1 minute" in refused.text
    assert not get_user_model().objects.filter(username=names[-1]).exists()
    assert _sign_up(next(_addresses), names[-1]).status_code == 200


def test_refused_sign_ups_count_too_so_usernames_cannot_be_probed_without_end(username, settings):
    settings.WEBCHAT_SELF_SIGNUP = True
    address = next(_addresses)
    for _ in range(SIGNUPS_PER_ADDRESS):
        taken = _sign_up(address, username)
        assert taken.status_code == 200
        assert "A user with that username already exists." in taken.text
    refused = _sign_up(address, username)
    assert refused.status_code == 429
    assert "already exists" not in refused.text


# --- Admins see and clear lockouts --------------------------------------------------------

LOCKOUTS_URL = reverse("admin:accounts_loginlockout_changelist")


def test_admins_see_the_current_lockouts_and_clear_one(username):
    address = next(_addresses)
    _fail(_fullwidth(username).upper(), address=address, times=MAX_FAILURES)
    admin = Client()
    admin.force_login(user_with_role(roles.ADMIN, username=f"admin-{uuid.uuid4().hex[:8]}"))
    listing = admin.get(LOCKOUTS_URL)
    assert listing.status_code == 200
    assert username.casefold() in listing.text
    assert address in listing.text
    assert "One username from one address" in listing.text

    lockout = LoginLockout.objects.get()
    cleared = admin.post(
        LOCKOUTS_URL,
        {"action": "delete_selected", "_selected_action": [lockout.pk], "post": "yes"},
    )
    assert cleared.status_code == 302
    assert not LoginLockout.objects.exists()
    assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_a_cleared_lockout_gives_a_full_set_of_attempts(username):
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    LoginLockout.objects.all().delete()
    _fail(username, address=address, times=MAX_FAILURES - 1)
    assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_ended_lockouts_are_not_listed(username, settings):
    address = next(_addresses)
    admin = Client()
    admin.force_login(user_with_role(roles.ADMIN, username=f"admin-{uuid.uuid4().hex[:8]}"))
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False) as clock:
        _fail(username, address=address, times=MAX_FAILURES)
        clock.shift(61)
        assert address not in admin.get(LOCKOUTS_URL).text


def test_reviewers_may_not_see_lockouts(username):
    reviewer = Client()
    reviewer.force_login(user_with_role(roles.REVIEWER, username=f"rev-{uuid.uuid4().hex[:8]}"))
    assert reviewer.get(LOCKOUTS_URL).status_code == 403


def test_the_admin_signs_in_through_the_throttled_form(username):
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"


def test_while_redis_is_down_failures_are_counted_in_this_process_with_a_warning(
    username, settings, redis_server, caplog
):
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    settings.SESSION_CACHE_ALIAS = "local"  # only the throttle's cache is down here
    redis_server.stop()
    address = next(_addresses)
    _fail(username, address=address, times=MAX_FAILURES)
    # Still throttled, rather than open to guessing or closed to everyone.
    assert _sign_in(username, PASSWORD, address=address).status_code == 429
    other = _new_username()
    get_user_model().objects.create_user(other, password=PASSWORD)
    assert _sign_in(other, PASSWORD, address=address).status_code == 302
    warnings = [r for r in caplog.records if "login throttle's cache" in r.getMessage()]
    assert len(warnings) == 1  # once per outage
