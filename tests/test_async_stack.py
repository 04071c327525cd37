"""The chat path stays on the event loop: no middleware hook runs in a worker thread."""

import pytest
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.test import AsyncClient
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string


@pytest.mark.parametrize("path", settings.MIDDLEWARE)
def test_each_middleware_runs_on_the_event_loop(path):
    middleware = import_string(path)
    assert getattr(middleware, "async_capable", True)
    if isinstance(middleware, type) and issubclass(middleware, MiddlewareMixin):
        # MiddlewareMixin's own __acall__ sends these hooks to a thread.
        if hasattr(middleware, "process_request") or hasattr(middleware, "process_response"):
            assert middleware.__acall__ is not MiddlewareMixin.__acall__
        if hasattr(middleware, "process_view"):
            assert iscoroutinefunction(middleware.process_view)


async def test_static_files_are_served_on_the_async_stack(settings):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = await AsyncClient().get("/static/webchat/chat.js")
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert b"Webchat page behaviour" in body
