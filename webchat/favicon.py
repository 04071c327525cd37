"""`/favicon.ico`, which browsers ask for whatever the page links: the SVG icon the pages
link, by a temporary redirect (its stored name changes with its content)."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe


@login_not_required
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    return redirect(static("webchat/favicon.svg"))
