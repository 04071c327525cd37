"""Django's stock middleware, kept on the event loop.

In an async stack, Django runs each hook of a ``MiddlewareMixin`` middleware in a worker
thread, and a sync-only middleware (such as WhiteNoise's) puts every request on a thread.
The hooks adapted here do no I/O (they read headers and cookies and set attributes), so
they run inline; the few that may touch the database are awaited properly.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import BinaryIO

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware, LoginRequiredMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.gzip import GZipMiddleware
from django.middleware.locale import LocaleMiddleware
from django.middleware.security import SecurityMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

COMPRESSIBLE_TYPES = ("text/", "application/json")


class InlineHooksMixin:
    """Run ``process_request`` and ``process_response`` on the event loop."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class AsyncSecurityMiddleware(InlineHooksMixin, SecurityMiddleware):
    pass


class AsyncGZipMiddleware(InlineHooksMixin, GZipMiddleware):
    """Compresses pages and fragments: a conversation's page is mostly repeated markup
    (a tenth of its size compressed). Static files come compressed from WhiteNoise, and
    images are compressed already, so only text is looked at. Django's GZipMiddleware pads
    each response with random bytes against BREACH, and CSRF tokens are masked anew on
    every request."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # Streamed responses (static files served without a compressed copy, in
        # development) are left alone: compressed chunk by chunk, browsers read only the
        # first chunk's gzip member and drop the rest of the file.
        if response.streaming or not response.get("Content-Type", "").startswith(
            COMPRESSIBLE_TYPES
        ):
            return response
        return super().process_response(request, response)


class AsyncCommonMiddleware(InlineHooksMixin, CommonMiddleware):
    pass


class AsyncLocaleMiddleware(InlineHooksMixin, LocaleMiddleware):
    # The language is activated in the request's context, which the view, and a reply's
    # generation task started by it, inherit. Without language-prefixed URLs, neither hook
    # resolves a path.
    pass


class AsyncAuthenticationMiddleware(AuthenticationMiddleware):
    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        # Every page needs the user: load it once here, awaited, so templates can read
        # request.user without querying the database from the event loop.
        request.user = await request.auser()
        return await self.get_response(request)


class AsyncMessageMiddleware(InlineHooksMixin, MessageMiddleware):
    pass


class AsyncXFrameOptionsMiddleware(InlineHooksMixin, XFrameOptionsMiddleware):
    pass


class AsyncCsrfViewMiddleware(InlineHooksMixin, CsrfViewMiddleware):
    # Tokens live in a cookie (CSRF_USE_SESSIONS is off), so checking one is pure CPU.
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        if request.method == "POST" and request.content_type == "multipart/form-data":
            # The check reads request.POST; parsing an upload (megabytes of images copied
            # to temporary files) is done once, here, in a thread.
            await asyncio.to_thread(lambda: request.POST)
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AsyncSessionMiddleware(SessionMiddleware):
    """Loads sessions lazily; saves one in a thread only when it has changed."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        response = await self.get_response(request)
        session = request.session
        if (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty():
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class AsyncLoginRequiredMiddleware(LoginRequiredMiddleware):
    async def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        if (await request.auser()).is_authenticated:
            return None
        return self.handle_no_permission(request, view_func)


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise on the event loop: finding a file is a dictionary lookup, and only
    the reading of a static file's bytes goes to a thread."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        response = await asyncio.to_thread(self.serve, static_file, request)
        if response.file_to_stream is not None:
            response.streaming_content = _read_in_thread(
                response.file_to_stream, response.block_size
            )
        return response


async def _read_in_thread(file: BinaryIO, block_size: int) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, block_size):
        yield chunk


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header: no inline script anywhere."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.policy = settings.WEBCHAT_CONTENT_SECURITY_POLICY
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
