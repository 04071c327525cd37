"""Login throttling against password guessing, with counters in the shared cache.

Failed sign-ins are counted per username and per client address, each in a window that
starts with the first failure. Once either count reaches its limit, further attempts are
refused with a 429, before any password is checked, until the window has passed. Signing in
clears the username's count; the address's count stays, so one valid account cannot be used
to keep guessing others' passwords from the same address.
"""

import hashlib
import math

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext


def client_address(request: HttpRequest) -> str:
    """The client's address: from the proxy's header when one is configured."""
    if settings.WEBCHAT_CLIENT_IP_HEADER:
        meta_key = "HTTP_" + settings.WEBCHAT_CLIENT_IP_HEADER.upper().replace("-", "_")
        if forwarded := request.META.get(meta_key, "").strip():
            return forwarded
    return request.META.get("REMOTE_ADDR", "")


def _counter_keys(username: str, address: str) -> list[tuple[str, int]]:
    # Hashed, so that any text typed as a username makes a valid, bounded cache key.
    username_digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
    address_digest = hashlib.sha256(address.encode()).hexdigest()
    return [
        (f"login-failures:user:{username_digest}", settings.WEBCHAT_LOGIN_MAX_FAILURES),
        (
            f"login-failures:address:{address_digest}",
            settings.WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS,
        ),
    ]


def is_locked_out(username: str, address: str) -> bool:
    counts = cache.get_many([key for key, _ in _counter_keys(username, address)])
    return any(counts.get(key, 0) >= limit for key, limit in _counter_keys(username, address))


def record_failure(username: str, address: str) -> None:
    for key, _ in _counter_keys(username, address):
        # add() starts the window only if no count exists yet; incr() is atomic in Redis.
        cache.add(key, 0, timeout=settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add() and incr()
            cache.add(key, 1, timeout=settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS)


def clear_failures(username: str, address: str) -> None:
    user_key, _ = _counter_keys(username, address)[0]
    cache.delete(user_key)


def lockout_message() -> str:
    minutes = math.ceil(settings.WEBCHAT_LOGIN_LOCKOUT_SECONDS / 60)
    return ngettext(
        "Too many failed sign-in attempts. Please wait %(minutes)s minute and try again.",
        "Too many failed sign-in attempts. Please wait %(minutes)s minutes and try again.",
        minutes,
    ) % {"minutes": minutes}


class ThrottledLoginView(LoginView):
    """Django's login view, refusing attempts while the username or address is locked out."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        address = client_address(request)
        if is_locked_out(username, address):
            context = self.get_context_data(locked_out=lockout_message())
            return self.render_to_response(context, status=429)
        form = self.get_form()
        if form.is_valid():
            clear_failures(username, address)
            return self.form_valid(form)
        record_failure(username, address)
        return self.form_invalid(form)
