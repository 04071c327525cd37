"""Finding the key a request presents, throttled like signing in."""

from datetime import datetime, timedelta

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

from accounts import login_throttle
from api.errors import ApiError
from api.models import PREFIX_LENGTH, ApiKey

# How stale "last used" may get: it is written at most this often, not on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


def _locked_out(until: datetime) -> ApiError:
    minutes = max(1, round((until - timezone.now()).total_seconds() / 60 + 0.49))
    return ApiError(
        429,
        ngettext(
            "Too many wrong API keys from your address. Please wait %(minutes)s minute.",
            "Too many wrong API keys from your address. Please wait %(minutes)s minutes.",
            minutes,
        )
        % {"minutes": minutes},
        type="rate_limit_error",
        code="too_many_wrong_keys",
    )


def key_authenticate(request: HttpRequest) -> ApiKey:
    """The usable key of ``request``'s ``Authorization: Bearer`` header, or ``ApiError``.

    A wrong, expired or revoked key, or one whose owner is inactive, counts against the
    client's address; once it is locked out, no key is even looked at."""
    address = login_throttle.client_address(request)
    if until := login_throttle.api_key_lockout_until(address):
        raise _locked_out(until)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError.bad_key()
    api_key = ApiKey.objects.select_related("owner").filter(prefix=key[:PREFIX_LENGTH]).first()
    if (
        api_key is None
        or not api_key.matches(key)
        or not api_key.is_usable
        or not api_key.owner.is_active
    ):
        login_throttle.api_key_failure_record(address)
        raise ApiError.bad_key()
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
