"""Password guessing is throttled per username and per address, with counters in the cache."""

import itertools
import uuid
from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import PASSWORD

MAX_FAILURES = 3
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.WEBCHAT_LOGIN_MAX_FAILURES = MAX_FAILURES
    settings.WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS = 2 * MAX_FAILURES
    settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS = 60


@pytest.fixture
def username(db) -> str:
    """A fresh user per test: the cache outlives a test and may be shared between workers."""
    name = f"user-{uuid.uuid4().hex[:12]}"
    get_user_model().objects.create_user(name, password=PASSWORD)
    return name


def _sign_in(username: str, password: str, *, address: str):
    return Client(REMOTE_ADDR=address).post(
        "/accounts/login/", {"username": username, "password": password}
    )


def test_a_username_is_locked_out_after_repeated_failures_with_a_429_and_a_clear_message(
    username,
):
    address = next(_addresses)
    for _ in range(MAX_FAILURES):
        assert _sign_in(username, "wrong", address=address).status_code == 200
    # Even the right password is refused now, from any address.
    refused = _sign_in(username, PASSWORD, address=next(_addresses))
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts. Please wait 1 minute" in refused.text


def test_other_users_are_not_affected_by_a_locked_out_username(username, db):
    other = f"other-{uuid.uuid4().hex[:12]}"
    get_user_model().objects.create_user(other, password=PASSWORD)
    for _ in range(MAX_FAILURES):
        _sign_in(username, "wrong", address=next(_addresses))
    assert _sign_in(other, PASSWORD, address=next(_addresses)).status_code == 302


def test_an_address_is_locked_out_after_failures_across_usernames(username):
    address = next(_addresses)
    for attempt in range(2 * MAX_FAILURES):
        _sign_in(f"guess-{attempt}-{uuid.uuid4().hex}", "wrong", address=address)
    assert _sign_in(username, PASSWORD, address=address).status_code == 429
    assert _sign_in(username, PASSWORD, address=next(_addresses)).status_code == 302


def test_signing_in_clears_the_usernames_failures(username):
    address = next(_addresses)
    for _ in range(MAX_FAILURES - 1):
        _sign_in(username, "wrong", address=address)
    assert _sign_in(username, PASSWORD, address=address).status_code == 302
    for _ in range(MAX_FAILURES - 1):
        assert _sign_in(username, "wrong", address=address).status_code == 200
    assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_no_password_is_checked_while_locked_out(username):
    for _ in range(MAX_FAILURES):
        _sign_in(username, "wrong", address=next(_addresses))
    with mock.patch("django.contrib.auth.forms.authenticate") as authenticate:
        assert _sign_in(username, PASSWORD, address=next(_addresses)).status_code == 429
    authenticate.assert_not_called()


def test_the_lockout_ends_when_the_window_passes(username, settings):
    # The window is the counters' lifetime in the cache. The in-process cache reads the clock
    # that is moved here; Redis keeps time itself and expires keys the same way.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    address = next(_addresses)
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False) as clock:
        for _ in range(MAX_FAILURES):
            _sign_in(username, "wrong", address=address)
        clock.shift(59)
        assert _sign_in(username, PASSWORD, address=address).status_code == 429
        clock.shift(2)
        assert _sign_in(username, PASSWORD, address=address).status_code == 302


def test_behind_a_proxy_the_client_address_comes_from_the_configured_header(username, settings):
    settings.WEBCHAT_CLIENT_IP_HEADER = "X-Real-IP"
    guesser, bystander = next(_addresses), next(_addresses)
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    for attempt in range(2 * MAX_FAILURES):
        proxy.post(
            "/accounts/login/",
            {"username": f"guess-{attempt}-{uuid.uuid4().hex}", "password": "wrong"},
            headers={"X-Real-IP": guesser},
        )
    signed_in = proxy.post(
        "/accounts/login/",
        {"username": username, "password": PASSWORD},
        headers={"X-Real-IP": bystander},
    )
    assert signed_in.status_code == 302


def test_the_admin_signs_in_through_the_throttled_form(username):
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"
