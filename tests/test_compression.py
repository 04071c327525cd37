"""Pages are sent compressed to browsers that accept it; images and static files are not
compressed again."""

import gzip

import pytest
from django.http import HttpResponse, StreamingHttpResponse

from tests.factories import ConversationFactory
from webchat.middleware import AsyncGZipMiddleware

pytestmark = pytest.mark.django_db


def test_it_compresses_a_conversation_page_for_a_browser_that_accepts_gzip(owner, owner_client):
    conversation = ConversationFactory(owner=owner)

    response = owner_client.get(
        conversation.get_absolute_url(), headers={"accept-encoding": "gzip, deflate, br"}
    )

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert conversation.title.encode() in gzip.decompress(response.content)


def test_it_sends_a_page_uncompressed_to_a_browser_that_does_not_accept_gzip(owner, owner_client):
    conversation = ConversationFactory(owner=owner)

    response = owner_client.get(conversation.get_absolute_url())

    assert "Content-Encoding" not in response
    assert conversation.title.encode() in response.content


def test_it_leaves_images_as_they_are(rf):
    image = HttpResponse(b"\xff\xd8" + b"\0" * 5000, content_type="image/jpeg")
    middleware = AsyncGZipMiddleware(lambda request: image)
    request = rf.get("/attachments/1/", headers={"accept-encoding": "gzip"})

    response = middleware.process_response(request, image)

    assert "Content-Encoding" not in response


def test_it_leaves_streamed_files_as_they_are(rf):
    # A static file served without a compressed copy (in development) is streamed.
    stylesheet = StreamingHttpResponse(
        iter([b"a { color: red; }\n"] * 500), content_type="text/css"
    )
    middleware = AsyncGZipMiddleware(lambda request: stylesheet)
    request = rf.get("/static/webchat/app.css", headers={"accept-encoding": "gzip"})

    response = middleware.process_response(request, stylesheet)

    assert "Content-Encoding" not in response
    assert b"".join(response.streaming_content) == b"a { color: red; }\n" * 500
