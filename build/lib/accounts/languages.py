"""The interface's language: the browser's (Accept-Language) unless the user picks another.

The choice is kept in Django's language cookie, which LocaleMiddleware reads on every request.
Like the theme, it belongs to the browser, not the account, and is offered to everyone.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.http import require_POST
from django.views.i18n import set_language


def language_of_scope(scope: dict) -> str:
    """The language of a websocket's page, chosen as LocaleMiddleware chooses a request's:
    the language cookie, then the browser's Accept-Language, then LANGUAGE_CODE."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    headers = dict(scope.get("headers", ()))
    request.META["HTTP_ACCEPT_LANGUAGE"] = headers.get(b"accept-language", b"").decode("latin-1")
    return translation.get_language_from_request(request)


@login_not_required
@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Django's set_language (the cookie, then back to ``next`` if it is a page of this site),
    refusing a language not offered: set_language would keep any Django has a catalog for."""
    names = dict(settings.LANGUAGES)
    if request.POST.get("language", "") not in names:
        return HttpResponseBadRequest(
            gettext("Choose a language: %(languages)s.") % {"languages": ", ".join(names.values())}
        )
    return set_language(request)
