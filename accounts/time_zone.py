"""Times and days in the reader's own time zone: the page's script (comfort.js) keeps the
browser's zone in a cookie, and this middleware makes it the request's time zone. Quotas
keep the server's WEBCHAT_TIME_ZONE, whatever a browser says."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import sync_and_async_middleware

COOKIE_NAME = "webchat_time_zone"


def _browser_zone(request: HttpRequest) -> ZoneInfo | None:
    name = request.COOKIES.get(COOKIE_NAME, "")
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _activate(request: HttpRequest) -> None:
    if zone := _browser_zone(request):
        timezone.activate(zone)
    else:
        timezone.deactivate()


@sync_and_async_middleware
def browser_time_zone_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            _activate(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            _activate(request)
            return get_response(request)

    return middleware
