"""The colour theme: the system's, or light or dark as chosen, remembered in a cookie.

The server reads the cookie to render `<html data-theme=...>`, so the first paint is already in
the right theme. The choice belongs to the browser, not the account, and is offered to everyone.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from webchat.return_url import return_url

COOKIE = "theme"
SYSTEM = "system"
CHOICES = {
    SYSTEM: gettext_lazy("System"),
    "light": gettext_lazy("Light"),
    "dark": gettext_lazy("Dark"),
}
COOKIE_MAX_AGE = 365 * 24 * 60 * 60


def theme_of(request: HttpRequest) -> str:
    theme = request.COOKIES.get(COOKIE, SYSTEM)
    return theme if theme in CHOICES else SYSTEM


def theme_context(request: HttpRequest) -> dict:
    # A page shown in answer to a POST (a refused form) cannot be fetched again: go home.
    page = request.get_full_path() if request.method == "GET" else ""
    return {"theme": theme_of(request), "theme_choices": CHOICES, "theme_next": page}


@login_not_required
@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    theme = request.POST.get("theme", "")
    if theme not in CHOICES:
        return HttpResponseBadRequest(gettext("Choose a theme: system, light or dark."))
    back = return_url(request)
    if request.htmx:
        context = {"theme": theme, "theme_next": back}
        response = render(request, "accounts/partials/_theme_form.html", context)
    else:
        response = redirect(back)
    if theme == SYSTEM:
        response.delete_cookie(COOKIE, samesite="Lax")
    else:
        response.set_cookie(
            COOKIE,
            theme,
            max_age=COOKIE_MAX_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    return response
