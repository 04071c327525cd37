"""Bad data from the upstream loses nothing: a character split into the two halves JSON
writes it as is joined, a lone half or a NUL becomes U+FFFD, and absurd token counts are
dropped with a warning, so the reply can always be stored."""

import json
import logging

import httpx
import pytest

from conversations import generation
from conversations.models import Message
from conversations.upstream.chunks import ContentDelta, ReasoningDelta, Usage, UsageReport
from tests.conversations.upstream.test_client import collect, mock_client, text_of
from tests.generation_helpers import finished, latest_reply, send_message


def _stream(*chunks: dict) -> bytes:
    """An event stream of these chunks, then [DONE]. JSON writes a lone half of a
    character as its ``\\uXXXX`` escape, as a gateway that split one would."""
    data = [json.dumps(chunk) for chunk in chunks] + ["[DONE]"]
    return b"".join(f"data: {item}\n\n".encode() for item in data)


def _delta(field: str, text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {field: text}}]}


def _answer(body: bytes):
    return mock_client(
        lambda request: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body
        )
    )


@pytest.mark.parametrize("field", ["content", "reasoning_content"])
async def test_a_character_split_across_two_chunks_is_joined(field):
    kind = ContentDelta if field == "content" else ReasoningDelta
    body = _stream(_delta(field, "Hi \ud83d"), _delta(field, "\ude00 there"))

    async with _answer(body) as client:
        text = text_of(await collect(client), kind)

    assert text == "Hi 😀 there"
    text.encode()  # storable


async def test_a_lone_half_becomes_a_replacement_character():
    body = _stream(
        _delta("content", "a\ude00b"), _delta("content", "c\ud83d"), _delta("content", "d")
    )

    async with _answer(body) as client:
        text = text_of(await collect(client))

    assert text == "a\ufffdbc\ufffdd"


async def test_a_first_half_at_the_streams_end_becomes_a_replacement_character():
    body = _stream(_delta("content", "bye \ud83d"))

    async with _answer(body) as client:
        text = text_of(await collect(client))

    assert text == "bye \ufffd"


@pytest.mark.parametrize("field", ["content", "reasoning_content"])
async def test_a_nul_becomes_a_replacement_character(field):
    kind = ContentDelta if field == "content" else ReasoningDelta
    body = _stream(_delta(field, "a\x00b"), _delta(field, "\x00"))

    async with _answer(body) as client:
        text = text_of(await collect(client), kind)

    assert text == "a\ufffdb\ufffd"


@pytest.mark.parametrize("count", [-1, 10**30, 10**9 + 1])
def test_a_report_with_an_absurd_token_count_is_dropped_with_a_warning(count, caplog):
    with caplog.at_level(logging.WARNING, logger="conversations.upstream.client"):
        usage = Usage.from_api({"prompt_tokens": 11, "completion_tokens": count})

    assert usage is None
    assert f"token count of {count}; its usage is dropped" in caplog.text


async def test_usage_in_range_is_kept():
    body = _stream(
        _delta("content", "ok"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 10**9}},
    )

    async with _answer(body) as client:
        [report] = [event for event in await collect(client) if isinstance(event, UsageReport)]

    assert report.usage.completion_tokens == 10**9


@pytest.mark.django_db(transaction=True)
async def test_a_reply_with_a_split_character_and_absurd_usage_is_stored_complete(
    async_owner_client, conversation, settings, monkeypatch
):
    body = _stream(
        _delta("content", "Smile \ud83d"),
        _delta("content", "\ude00\x00"),
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": -1, "completion_tokens": 10**30},
        },
    )
    monkeypatch.setattr(generation, "get_client", lambda: _answer(body))

    await send_message(async_owner_client, conversation)
    reply = await finished(await latest_reply(conversation))

    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "Smile 😀\ufffd"
    # The report is dropped: the usage is estimated, as for an upstream that sends none.
    assert reply.usage_estimated
    assert reply.prompt_tokens > 0
    assert reply.completion_tokens > 0
