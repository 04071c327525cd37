"""The sidebar's notice that reviewers and administrators may read conversations
(WEBCHAT_STAFF_CAN_READ_CONVERSATIONS): stated in full until its reader dismisses it, then
kept behind a small button that shows it again.

Like the theme, the dismissal is remembered in a cookie, with no database row; it lists the
accounts that dismissed the notice on this browser, so that each person who signs in on a
shared one is told once.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from webchat.return_url import return_url

COOKIE = "privacy_notice_seen"
COOKIE_MAX_AGE = 365 * 24 * 60 * 60
# The accounts a cookie remembers, the most recent last.
MAX_ACCOUNTS = 20


def _accounts_seen(request: HttpRequest) -> list[str]:
    return [part for part in request.COOKIES.get(COOKIE, "").split(".") if part.isdecimal()]


def privacy_notice_context(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    seen = user is not None and str(user.pk) in _accounts_seen(request)
    return {"privacy_notice_seen": seen}


@require_POST
def privacy_notice_dismiss(request: HttpRequest) -> HttpResponse:
    """Fold the notice away for the signed-in account on this browser."""
    accounts = [pk for pk in _accounts_seen(request) if pk != str(request.user.pk)]
    accounts = [*accounts, str(request.user.pk)][-MAX_ACCOUNTS:]
    # htmx removes the notice in place; without it, back to the page.
    response = HttpResponse() if request.htmx else redirect(return_url(request))
    response.set_cookie(
        COOKIE,
        ".".join(accounts),
        max_age=COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response
