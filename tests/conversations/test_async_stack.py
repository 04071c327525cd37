"""Static files are served by ServeStatic without leaving the event loop."""

from django.test import AsyncClient


async def test_static_files_are_served_on_the_async_stack(settings):
    settings.SERVESTATIC_USE_FINDERS = True
    settings.SERVESTATIC_AUTOREFRESH = True
    response = await AsyncClient().get("/static/webchat/chat.js")
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert b"Webchat page behaviour" in body
