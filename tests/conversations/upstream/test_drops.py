"""A reply cut off by a dropped connection keeps every byte that arrived before the drop:
a recorded stream is served from a raw socket, split at random points, and closed
without its end."""

import asyncio
import contextlib
import json
import random

import pytest

from conversations.upstream import client as upstream
from conversations.upstream import failures
from conversations.upstream.chunks import ContentDelta
from conversations.upstream.client import ENDED_EARLY, ChatRequest, UpstreamClient, UpstreamError
from tests.generation_helpers import (
    communicator_for,
    finished,
    frames_until_final,
    latest_reply,
    send_message,
)
from tests.upstream_fixtures import TEST_API_KEY

REQUEST = ChatRequest(model="fake-model", messages=[{"role": "user", "content": "Hello"}])
# Multi-byte characters, so that splits fall inside them too.
TOKENS = ["Grüß", " dich", ", ", "naïve", " 日本語", " テキスト", " 🙂🙃", " ok", "."] * 3


def _event(delta: dict, finish_reason: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-recorded",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


# A recorded reply, without its finish chunk and [DONE]: the upstream died mid-reply.
EVENTS = [_event({"role": "assistant", "content": ""})] + [
    _event({"content": token}) for token in TOKENS
]
RECORDING = b"".join(EVENTS)


def _text_of_complete_events(prefix: bytes) -> str:
    """The text of the events whose every byte, blank line included, is in ``prefix``."""
    text, end = "", 0
    for event, token in zip(EVENTS, ["", *TOKENS], strict=True):
        end += len(event)
        if end > len(prefix):
            break
        text += token
    return text


class CuttingUpstream:
    """Answers one request with ``pieces``, a write each, then closes before the body ends.

    ``framing`` is "close" (no length: the body ends when the connection does, as with
    HTTP/1.0 servers) or "chunked" (the terminating chunk never comes). The connection is
    closed, not reset: a reset lets the client's kernel throw away bytes it received but
    had not yet handed over, which no client can keep.
    """

    def __init__(self, pieces: list[bytes], *, framing: str) -> None:
        self.pieces = pieces
        self.framing = framing
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)  # all of it: unread bytes would mean a reset
        framing = b"transfer-encoding: chunked\r\n" if self.framing == "chunked" else b""
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            + framing
            + b"connection: close\r\n\r\n"
        )
        for piece in self.pieces:
            if self.framing == "chunked":
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            writer.write(piece)
            await writer.drain()
        writer.close()


def _random_pieces(rng: random.Random) -> tuple[bytes, list[bytes]]:
    """A random prefix of the recording (the bytes sent), and random pieces of it."""
    sent = RECORDING[: rng.randint(len(RECORDING) // 3, len(RECORDING))]
    cuts = sorted(rng.sample(range(1, len(sent)), k=min(len(sent) - 1, rng.randint(1, 40))))
    pieces = [sent[start:end] for start, end in zip([0, *cuts], [*cuts, len(sent)], strict=True)]
    return sent, pieces


async def _stream(base_url: str) -> tuple[str, UpstreamError | None]:
    text, error = "", None
    async with UpstreamClient(
        base_url=base_url, api_key=TEST_API_KEY, connect_timeout=5.0, read_timeout=5.0
    ) as client:
        try:
            async with contextlib.aclosing(client.stream_chat(REQUEST)) as events:
                async for event in events:
                    if isinstance(event, ContentDelta):
                        text += event.text
        except UpstreamError as failure:
            error = failure
    return text, error


@pytest.mark.parametrize("seed", range(50))
async def test_a_body_that_ends_early_keeps_every_complete_chunk(seed):
    sent, pieces = _random_pieces(random.Random(seed))

    async with asyncio.timeout(10), CuttingUpstream(pieces, framing="close") as base_url:
        text, error = await _stream(base_url)

    assert text == _text_of_complete_events(sent)
    assert error is not None
    assert (error.kind, error.message) == ("stream", ENDED_EARLY)


@pytest.mark.parametrize("seed", range(50))
async def test_a_chunked_body_cut_off_keeps_every_complete_chunk(seed):
    sent, pieces = _random_pieces(random.Random(seed))

    async with asyncio.timeout(10), CuttingUpstream(pieces, framing="chunked") as base_url:
        text, error = await _stream(base_url)

    assert text == _text_of_complete_events(sent)
    assert error is not None
    assert error.kind == "connection"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(3))
async def test_a_reply_cut_off_is_stored_with_every_complete_chunk(
    async_owner_client, conversation, owner, settings, seed
):
    sent, pieces = _random_pieces(random.Random(seed))
    settings.WEBCHAT_API_KEY = TEST_API_KEY
    settings.WEBCHAT_DEMO_MODE = False
    settings.WEBCHAT_MODEL_TITLES = False
    upstream.reset_clients()

    async with asyncio.timeout(20), CuttingUpstream(pieces, framing="close") as base_url:
        settings.WEBCHAT_API_BASE = base_url
        communicator = communicator_for(conversation.pk, owner)
        assert (await communicator.connect())[0]
        await send_message(async_owner_client, conversation)
        reply = await latest_reply(conversation)
        await frames_until_final(communicator, reply)
        await communicator.disconnect()
        reply = await finished(reply)
    upstream.reset_clients()

    assert (reply.status, reply.error_code) == ("interrupted", failures.STREAM)
    assert reply.content == _text_of_complete_events(sent)
