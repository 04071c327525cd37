"""Throttling password guesses and sign-ups: counters in the shared cache, lockouts in the
database, where admins see and clear them (the admin's "Login lockouts").

A username is counted as the forms read it, NFKC-normalized (so "dave" typed in fullwidth
letters is "dave"), and case-folded, so no other spelling of a name gets a fresh count.
Failed password attempts (signing in, and the current password when changing it) are
counted in windows of WEBCHAT_LOGIN_LOCKOUT_SECONDS, each starting with its first failure:

- per username from one address: WEBCHAT_LOGIN_MAX_FAILURES lock that username at that
  address, so one person's typos never lock out an office sharing one address;
- per address, the usernames that failed from it: WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS
  lock the address (one address guessing many usernames);
- per username, from every address: WEBCHAT_LOGIN_MAX_FAILURES_PER_USERNAME lock the
  username everywhere (many addresses guessing one username).

Sign-ups are counted per address (WEBCHAT_SIGNUPS_PER_ADDRESS), whatever their outcome, and
wrong API keys per address (WEBCHAT_API_KEY_MAX_FAILURES).
A lockout lasts WEBCHAT_LOGIN_LOCKOUT_SECONDS, and while it lasts attempts are refused with
a 429 before any password is checked. The count that caused it starts again from zero, so a
lockout an admin deletes gives a full set of attempts at once. Signing in, or changing the
password, clears the count of that username at that address.

While Redis is unreachable, each process counts in its own memory (logged once per outage):
guessing stays throttled, at most as many times more often as there are processes, and
signing in keeps working. Refusing every sign-in instead would lock everyone out, admins
too, for as long as Redis is down; not counting at all would leave guessing unthrottled.
"""

import hashlib
import ipaddress
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from unicodedata import normalize

from django.conf import settings
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.core.cache import BaseCache, caches
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import ngettext

from accounts.forms import SignInForm
from accounts.models import LoginLockout
from accounts.sso import sso_enabled, sso_login_url
from webchat.outages import REDIS_UNREACHABLE, login_throttle_outage

T = TypeVar("T")
Scope = LoginLockout.Scope
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip_address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A server listening on IPv6 sees IPv4 clients as ::ffff:a.b.c.d.
    return getattr(address, "ipv4_mapped", None) or address


def _is_trusted_proxy(address: IPAddress) -> bool:
    return any(address in network for network in settings.WEBCHAT_TRUSTED_PROXIES)


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the request's connection comes from one of WEBCHAT_TRUSTED_PROXIES."""
    address = _ip_address(request.META.get("REMOTE_ADDR", ""))
    return address is not None and _is_trusted_proxy(address)


def client_address(request: HttpRequest) -> str:
    """The client's IP address (empty if unknown): the connection's, unless that is a
    trusted proxy's.

    Each proxy appends the address it was reached from to X-Forwarded-For, so the right-most
    address that is not a trusted proxy is the client; anything left of it may be forged.
    """
    address = _ip_address(request.META.get("REMOTE_ADDR", ""))
    if address is None:
        return ""
    if not _is_trusted_proxy(address):
        return str(address)
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop_address = _ip_address(hop)
        if hop_address is None:  # not written by a trusted proxy: stop at the last one
            break
        address = hop_address
        if not _is_trusted_proxy(address):
            break
    return str(address)


def username_key(username: str) -> str:
    """A username as counted: as the forms read it (NFKC), and without case."""
    return normalize("NFKC", normalize("NFKC", username).strip().casefold())[:150]


def _counter_key(scope: str, username: str, address: str) -> str:
    # Hashed, so that any text typed as a username makes a valid, bounded cache key.
    digest = hashlib.sha256(f"{username}\0{address}".encode()).hexdigest()
    return f"login-throttle:{scope}:{digest}"


def _counted(operation: Callable[[BaseCache], T]) -> T:
    """``operation`` on the shared counters or, while Redis is unreachable, this process's."""
    try:
        result = operation(caches["default"])
    except REDIS_UNREACHABLE as error:
        login_throttle_outage.failed(error)
        return operation(caches["local"])
    login_throttle_outage.recovered()
    return result


def _count(key: str) -> int:
    """Add one to a counter whose window starts with its first count; the new count."""

    def count(cache: BaseCache) -> int:
        # add() starts the window only if no count exists yet; incr() is atomic in Redis.
        cache.add(key, 0, timeout=settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS)
        try:
            return cache.incr(key)
        except ValueError:  # the window ended between add() and incr()
            cache.add(key, 1, timeout=settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS)
            return 1

    return _counted(count)


def _count_and_lock(scope: str, limit: int, *, username: str = "", address: str = "") -> int:
    """Count one more for the scope's key, and lock it out once the count reaches the limit."""
    key = _counter_key(scope, username, address)
    count = _count(key)
    if count >= limit:
        now = timezone.now()
        LoginLockout.objects.filter(locked_until__lte=now).delete()
        LoginLockout.objects.update_or_create(
            scope=scope,
            username=username,
            address=address,
            defaults={
                "locked_until": now + timedelta(seconds=settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS)
            },
        )
        _counted(lambda cache: cache.delete(key))
    return count


def lockout_until(*, username: str, address: str) -> datetime | None:
    """When the lockout of this username at this address ends, if it is locked out."""
    name = username_key(username)
    return _latest_end(
        Q(scope=Scope.USERNAME_AT_ADDRESS, username=name, address=address)
        | Q(scope=Scope.ADDRESS, address=address)
        | Q(scope=Scope.USERNAME, username=name)
    )


def signup_lockout_until(address: str) -> datetime | None:
    return _latest_end(Q(scope=Scope.SIGNUP, address=address))


def _latest_end(lockouts: Q) -> datetime | None:
    current = LoginLockout.objects.filter(lockouts, locked_until__gt=timezone.now())
    return current.aggregate(end=Max("locked_until"))["end"]


def failure_record(*, username: str, address: str) -> None:
    """Count a wrong password given for this username from this address."""
    name = username_key(username)
    count = _count_and_lock(
        Scope.USERNAME_AT_ADDRESS,
        settings.WEBCHAT_LOGIN_MAX_FAILURES,
        username=name,
        address=address,
    )
    if count == 1:  # a username that had not failed from this address in the window
        _count_and_lock(
            Scope.ADDRESS, settings.WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS, address=address
        )
    _count_and_lock(Scope.USERNAME, settings.WEBCHAT_LOGIN_MAX_FAILURES_PER_USERNAME, username=name)


def failures_clear(*, username: str, address: str) -> None:
    """The right password: forget this username's failures from this address."""
    key = _counter_key(Scope.USERNAME_AT_ADDRESS, username_key(username), address)
    _counted(lambda cache: cache.delete(key))


def signup_attempt_record(address: str) -> None:
    _count_and_lock(Scope.SIGNUP, settings.WEBCHAT_SIGNUPS_PER_ADDRESS, address=address)


def api_key_lockout_until(address: str) -> datetime | None:
    return _latest_end(Q(scope=Scope.API_KEY, address=address))


def api_key_failure_record(address: str) -> None:
    """Count a wrong, expired or revoked API key presented from this address."""
    _count_and_lock(Scope.API_KEY, settings.WEBCHAT_API_KEY_MAX_FAILURES, address=address)


def _minutes_left(until: datetime) -> int:
    return max(1, math.ceil((until - timezone.now()).total_seconds() / 60))


def sign_in_lockout_message(until: datetime) -> str:
    minutes = _minutes_left(until)
    return ngettext(
        "Too many failed sign-in attempts. Please wait %(minutes)s minute and try again.",
        "Too many failed sign-in attempts. Please wait %(minutes)s minutes and try again.",
        minutes,
    ) % {"minutes": minutes}


def password_change_lockout_message(until: datetime) -> str:
    minutes = _minutes_left(until)
    return ngettext(
        "Too many wrong passwords. Please wait %(minutes)s minute and try again.",
        "Too many wrong passwords. Please wait %(minutes)s minutes and try again.",
        minutes,
    ) % {"minutes": minutes}


def signup_lockout_message(until: datetime) -> str:
    minutes = _minutes_left(until)
    return ngettext(
        "Too many sign-ups from your network. Please wait %(minutes)s minute and try again.",
        "Too many sign-ups from your network. Please wait %(minutes)s minutes and try again.",
        minutes,
    ) % {"minutes": minutes}


class ThrottledLoginView(LoginView):
    """Django's login view, refusing attempts while the username or address is locked out,
    with the single sign-on button when it is configured (accounts/sso.py)."""

    authentication_form = SignInForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso_name"] = settings.WEBCHAT_OIDC_NAME if sso_enabled() else ""
        context["sso_login_url"] = sso_login_url() if sso_enabled() else ""
        context["password_login"] = settings.WEBCHAT_PASSWORD_LOGIN
        # With password sign-in off, its form is shown only at ?password=1 (break-glass).
        context["password_form_shown"] = (
            settings.WEBCHAT_PASSWORD_LOGIN or "password" in self.request.GET
        )
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        address = client_address(request)
        if until := lockout_until(username=username, address=address):
            context = self.get_context_data(locked_out=sign_in_lockout_message(until))
            return self.render_to_response(context, status=429)
        form = self.get_form()
        if form.is_valid():
            failures_clear(username=username, address=address)
            return self.form_valid(form)
        failure_record(username=username, address=address)
        return self.form_invalid(form)


class ThrottledPasswordChangeView(PasswordChangeView):
    """Django's password change, whose check of the current password counts like a sign-in:
    a stolen session cannot be used to guess the password."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = request.user.get_username()
        address = client_address(request)
        if until := lockout_until(username=username, address=address):
            context = self.get_context_data(locked_out=password_change_lockout_message(until))
            return self.render_to_response(context, status=429)
        form = self.get_form()
        if form.is_valid():
            failures_clear(username=username, address=address)
            return self.form_valid(form)
        if "old_password" in form.errors:
            failure_record(username=username, address=address)
        return self.form_invalid(form)
