"""Property-based tests of the SSE parsing in ``UpstreamClient.stream_chat``: a stream cut
into network chunks at any points, with comments, blank lines or garbage slipped in,
never crashes the client and never makes up text."""

import asyncio
import contextlib

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.upstream.chunks import ContentDelta
from conversations.upstream.client import ChatRequest, UpstreamClient, UpstreamError
from tests.fake_upstream import DONE, ChunkEncoder

FUZZ = settings(max_examples=150, deadline=None)
REQUEST = ChatRequest(model="fake-model", messages=[{"role": "user", "content": "hi"}])
# Printable text, including multi-byte characters, never a line break.
LINE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
TOKENS = st.lists(LINE_TEXT.filter(bool), min_size=1, max_size=15)
HARMLESS_LINES = st.sampled_from(["", ": keep-alive", ": PING", ":"])
GARBAGE_LINES = st.one_of(
    HARMLESS_LINES,
    LINE_TEXT,
    st.builds(
        lambda field, text: f"{field}:{text}",
        st.sampled_from(["data", "event", "id", "retry", "x"]),
        LINE_TEXT,
    ),
)


class ChunkedStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk


def _stream_lines(tokens: list[str]) -> list[str]:
    """The lines of a complete, valid stream that says ``"".join(tokens)``."""
    encoder = ChunkEncoder("fake-model")
    events = [encoder.role(), *(encoder.content(token) for token in tokens), encoder.finish("stop")]
    events.append(DONE)
    return b"".join(events).decode().split("\n")


def _network_chunks(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(body)) for cut in cuts})
    return [body[start:end] for start, end in zip([0, *points], [*points, len(body)], strict=True)]


def _streamed_text(chunks: list[bytes]) -> tuple[str, UpstreamError | None]:
    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream; charset=utf-8"}
        return httpx.Response(200, headers=headers, stream=ChunkedStream(chunks))

    async def stream() -> tuple[str, UpstreamError | None]:
        text = ""
        async with UpstreamClient(
            base_url="http://upstream.invalid/v1",
            api_key="key",
            connect_timeout=1,
            read_timeout=1,
            transport=httpx.MockTransport(answer),
        ) as client:
            try:
                async with contextlib.aclosing(client.stream_chat(REQUEST)) as events:
                    async for event in events:
                        if isinstance(event, ContentDelta):
                            text += event.text
            except UpstreamError as error:
                return text, error
        return text, None

    return asyncio.run(stream())


def _with_lines_inserted(lines: list[str], insertions: list[tuple[int, str]]) -> list[str]:
    lines = list(lines)
    for position, line in insertions:
        lines.insert(position % (len(lines) + 1), line)
    return lines


@FUZZ
@given(TOKENS, st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_a_valid_stream_cut_anywhere_gives_exactly_its_text(tokens, cuts):
    body = "\n".join(_stream_lines(tokens)).encode()
    text, error = _streamed_text(_network_chunks(body, cuts))
    assert error is None
    assert text == "".join(tokens)


@FUZZ
@given(
    TOKENS,
    st.lists(st.tuples(st.integers(min_value=0), HARMLESS_LINES), max_size=10),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
)
def test_comments_and_blank_lines_anywhere_change_nothing(tokens, insertions, cuts):
    lines = _with_lines_inserted(_stream_lines(tokens), insertions)
    text, error = _streamed_text(_network_chunks("\n".join(lines).encode(), cuts))
    assert error is None
    assert text == "".join(tokens)


@FUZZ
@given(
    TOKENS,
    st.lists(st.tuples(st.integers(min_value=0), GARBAGE_LINES), min_size=1, max_size=10),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
    st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
)
def test_a_corrupted_stream_fails_cleanly_and_never_invents_text(
    tokens, insertions, cuts, truncate_at
):
    lines = _with_lines_inserted(_stream_lines(tokens), insertions)
    body = "\n".join(lines).encode()[:truncate_at]
    text, _ = _streamed_text(_network_chunks(body, cuts))
    assert "".join(tokens).startswith(text)
