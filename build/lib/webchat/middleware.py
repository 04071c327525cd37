"""What Django's own middleware lacks: a Content-Security-Policy header, and compression
kept to whole text responses."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware
from django.utils.decorators import async_only_middleware

COMPRESSIBLE_TYPES = ("text/", "application/json")


@async_only_middleware
def content_security_policy(get_response):
    """Adds the Content-Security-Policy header: no inline script anywhere."""
    policy = settings.WEBCHAT_CONTENT_SECURITY_POLICY

    async def middleware(request: HttpRequest) -> HttpResponse:
        response = await get_response(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return middleware


@async_only_middleware
def compress_text(get_response):
    """Django's GZipMiddleware, applied to whole text responses only.

    A conversation's page is mostly repeated markup, a tenth of its size compressed; the
    GZipMiddleware pads each response against BREACH, and CSRF tokens are masked anew on
    every request. Images are compressed already. Streamed responses are left alone:
    compressed chunk by chunk, a browser may stop at the first chunk's gzip member.
    """
    gzip = GZipMiddleware(get_response)

    async def middleware(request: HttpRequest) -> HttpResponse:
        response = await get_response(request)
        if response.streaming or not response.get("Content-Type", "").startswith(
            COMPRESSIBLE_TYPES
        ):
            return response
        return gzip.process_response(request, response)

    return middleware
