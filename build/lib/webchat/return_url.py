"""Where to send the user back to after a form: the page they came from, if it is ours."""

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def return_url(request: HttpRequest, default: str = "") -> str:
    """``next`` (posted or in the query; with htmx, else the page the request came from)
    when it is a page of this site, else ``default`` (the chat's start page unless given).

    Never another site's: a crafted link must not turn our forms into an open redirect.
    """
    url = request.POST.get("next") or request.GET.get("next")
    if not url and request.htmx:
        url = request.htmx.current_url_abs_path
    safe = url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if safe else default or reverse("conversations:index")
