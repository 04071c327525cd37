"""The interface's language: the browser's (Accept-Language) unless the user picks another.

The choice is kept in Django's language cookie, which LocaleMiddleware reads on every request.
Like the theme, it belongs to the browser, not the account, and is offered to everyone.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_POST


def language_of_scope(scope: dict) -> str:
    """The language of a websocket's page, chosen as LocaleMiddleware chooses a request's:
    the language cookie, then the browser's Accept-Language, then LANGUAGE_CODE."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    headers = dict(scope.get("headers", ()))
    request.META["HTTP_ACCEPT_LANGUAGE"] = headers.get(b"accept-language", b"").decode("latin-1")
    return translation.get_language_from_request(request)


def _return_url(request: HttpRequest, url: str) -> str:
    """Where to go back to once the language is set: only ever a page of this site."""
    safe = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if safe else reverse("conversations:index")


@login_not_required
@require_POST
async def language_set(request: HttpRequest) -> HttpResponse:
    """Keep the chosen language in the cookie and show the page again, in that language."""
    language = request.POST.get("language", "")
    names = dict(settings.LANGUAGES)
    if language not in names:
        return HttpResponseBadRequest(
            gettext("Choose a language: %(languages)s.") % {"languages": ", ".join(names.values())}
        )
    response = redirect(_return_url(request, request.POST.get("next", "")))
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response
