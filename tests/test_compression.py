"""Pages are sent compressed to browsers that accept it; images and static files are not
compressed again."""

import gzip

import pytest
from django.http import HttpResponse, StreamingHttpResponse

from tests.factories import ConversationFactory
from webchat.middleware import compress_text

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


async def _through_compression(rf, response):
    async def view(request):
        return response

    request = rf.get("/", headers={"accept-encoding": "gzip"})
    return await compress_text(view)(request)


async def test_it_leaves_images_as_they_are(rf):
    image = HttpResponse(b"\xff\xd8" + b"\0" * 5000, content_type="image/jpeg")

    response = await _through_compression(rf, image)

    assert "Content-Encoding" not in response


async def test_it_leaves_streamed_responses_as_they_are(rf):
    stylesheet = StreamingHttpResponse(
        iter([b"a { color: red; }\n"] * 500), content_type="text/css"
    )

    response = await _through_compression(rf, stylesheet)

    assert "Content-Encoding" not in response
    assert b"".join(response.streaming_content) == b"a { color: red; }\n" * 500


async def test_it_compresses_whole_text_responses(rf):
    page = HttpResponse(b"<p>hello</p>" * 500, content_type="text/html")

    response = await _through_compression(rf, page)

    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == b"<p>hello</p>" * 500
