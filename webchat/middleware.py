"""What Django's own middleware lacks: a Content-Security-Policy header, compression kept
to whole text responses, and the request's id and user in every line it logs."""

import re
import uuid

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware
from django.utils.decorators import async_only_middleware, sync_and_async_middleware

from accounts.login_throttle import client_address, from_trusted_proxy
from webchat.logs import log_context_start, log_context_update

COMPRESSIBLE_TYPES = ("text/", "application/json")
REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's request id may look like (nginx's $request_id is 32 hex digits); anything
# else is replaced, so that no header can put odd text in the logs.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")


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


def _request_id(request: HttpRequest) -> str:
    """The id a trusted proxy gave the request, if it looks like one; else a new one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if SANE_REQUEST_ID.fullmatch(incoming) and from_trusted_proxy(request):
        return incoming
    return uuid.uuid4().hex


def _start_request_log_context(request: HttpRequest) -> str:
    request_id = _request_id(request)
    log_context_start(request_id=request_id, client=client_address(request))
    return request_id


@sync_and_async_middleware
def request_log_context(get_response):
    """Names the request in every line logged while it is served, and in the response's
    X-Request-ID header, so that a user's report can be found in the logs."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            request_id = _start_request_log_context(request)
            response = await get_response(request)
            response.headers[REQUEST_ID_HEADER] = request_id
            return response

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            request_id = _start_request_log_context(request)
            response = get_response(request)
            response.headers[REQUEST_ID_HEADER] = request_id
            return response

    return middleware


@sync_and_async_middleware
def user_log_context(get_response):
    """Adds the signed-in user's id to the request's lines (after AuthenticationMiddleware;
    the first-run check before it has already loaded the user)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            if (user := await request.auser()).is_authenticated:
                log_context_update(user_id=user.pk)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if request.user.is_authenticated:
                log_context_update(user_id=request.user.pk)
            return get_response(request)

    return middleware
