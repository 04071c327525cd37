"""Reading an OpenAI request as the chat's messages: what is refused before any image is
decoded, and with which parameter named."""

import base64
import json

import pytest

from api.chat_requests import request_parse
from api.completions import upstream_request
from api.errors import ApiError
from conversations.images import NormalizedImage
from conversations.services import Turn
from tests import image_files


def _body(**fields) -> bytes:
    data = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}], **fields}
    return json.dumps(data).encode()


def _refusal(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as refused:
        request_parse(body)
    assert refused.value.status == 400
    assert refused.value.type == "invalid_request_error"
    return refused.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[]", None),
        (_body(model=""), "model"),
        (_body(messages=[]), "messages"),
        (_body(tools=[{"type": "function"}]), "tools"),
        (_body(n=2), "n"),
        (_body(stream="yes"), "stream"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(top_p=1.5), "top_p"),
        (_body(reasoning_effort="extreme"), "reasoning_effort"),
        (_body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        (_body(messages=[{"role": "user", "content": "  "}]), "messages[0]"),
        # PostgreSQL stores no NUL in text.
        (_body(messages=[{"role": "user", "content": "a\x00b"}]), "messages[0]"),
        (
            _body(
                messages=[
                    {"role": "system", "content": "a\x00b"},
                    {"role": "user", "content": "Hi"},
                ]
            ),
            "system_prompt",
        ),
        (
            _body(
                messages=[
                    {"role": "user", "content": "Hi"},
                    {"role": "system", "content": "Late"},
                    {"role": "user", "content": "Again"},
                ]
            ),
            "messages[1]",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "audio", "data": "x"}]}]),
            "messages[0].content[0]",
        ),
    ],
)
def test_a_bad_request_is_refused_naming_what_is_wrong(body, param):
    assert _refusal(body).param == param


def test_a_message_over_the_chat_s_length_limit_is_refused_in_its_words(settings):
    settings.WEBCHAT_MAX_MESSAGE_CHARS = 10
    refusal = _refusal(_body(messages=[{"role": "user", "content": "x" * 11}]))
    assert "the limit is 10" in refusal.message


def test_an_image_over_the_size_limit_is_refused_before_it_is_decoded(settings):
    settings.WEBCHAT_MAX_IMAGE_BYTES = 100
    png = base64.b64encode(image_files.png()).decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    refusal = _refusal(_body(messages=[{"role": "user", "content": [part]}]))
    assert "the limit is" in refusal.message
    assert refusal.param == "messages[0].content[0]"


def test_more_images_than_a_message_may_have_are_refused(settings):
    settings.WEBCHAT_MAX_IMAGES_PER_MESSAGE = 1
    png = base64.b64encode(image_files.png()).decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    refusal = _refusal(_body(messages=[{"role": "user", "content": [part, part]}]))
    assert refusal.param == "messages[0]"


def test_a_good_request_becomes_the_chat_s_messages_and_settings():
    parsed = request_parse(
        _body(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use English."}]},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            ],
            max_completion_tokens=64,
            temperature=0.2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert parsed.system_prompt == "Be brief.\n\nUse English."
    assert [(message.role, message.text) for message in parsed.messages] == [("user", "Hello")]
    assert parsed.stream
    assert parsed.include_usage
    assert parsed.settings_values == {
        "temperature": 0.2,
        "top_p": None,
        "top_k": None,
        "max_tokens": 64,
        "reasoning_effort": "",
    }


def test_a_request_too_large_for_the_upstream_is_refused(settings):
    settings.WEBCHAT_MAX_REQUEST_BYTES = 2000
    parsed = request_parse(_body())
    image = NormalizedImage(
        original_name="photo",
        content_type="image/jpeg",
        extension="jpg",
        data=b"\xff" * 3000,
        width=10,
        height=10,
        thumbnail=b"",
    )
    turns = [Turn(role="user", text="Look", images=[image])]
    with pytest.raises(ApiError) as refused:
        upstream_request(parsed, turns)
    assert refused.value.status == 400
    assert upstream_request(parsed, [Turn(role="user", text="Look")]).messages[-1] == {
        "role": "user",
        "content": "Look",
    }
