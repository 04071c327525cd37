"""The upstream client, against the fake upstream over real HTTP on loopback."""

import asyncio
import contextlib
import json
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from conversations.upstream import client as upstream
from conversations.upstream.chunks import (
    ContentDelta,
    Finished,
    ReasoningDelta,
    StreamEvent,
    Usage,
    UsageReport,
)
from conversations.upstream.client import ChatRequest, UpstreamClient, UpstreamError
from conversations.upstream.demo import DemoTransport
from conversations.upstream.error_bodies import (
    MAX_ERROR_MESSAGE_CHARS,
    parse_retry_after,
    read_error_body,
)
from tests.fake_upstream import JSON_HEADERS, Recording
from tests.upstream_fixtures import TEST_API_KEY

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Say hello to me"}]},
]
REQUEST = ChatRequest(model="fake-model", messages=MESSAGES)


async def collect(client: UpstreamClient, request: ChatRequest = REQUEST) -> list[StreamEvent]:
    return [event async for event in client.stream_chat(request)]


def text_of(events: list[StreamEvent], kind: type = ContentDelta) -> str:
    return "".join(event.text for event in events if isinstance(event, kind))


async def collect_until_error(client: UpstreamClient) -> tuple[list[StreamEvent], UpstreamError]:
    events: list[StreamEvent] = []
    try:
        async for event in client.stream_chat(REQUEST):
            events.append(event)
    except UpstreamError as error:
        return events, error
    pytest.fail("The stream raised no UpstreamError.")


def mock_client(handler) -> UpstreamClient:
    return UpstreamClient(
        base_url="http://upstream.test/v1",
        api_key=TEST_API_KEY,
        connect_timeout=1.0,
        read_timeout=1.0,
        transport=httpx.MockTransport(handler),
    )


# --- The request ----------------------------------------------------------------------


def test_request_body_omits_unset_options():
    assert REQUEST.body(stream=False) == {
        "model": "fake-model",
        "messages": MESSAGES,
        "stream": False,
    }


def test_request_body_includes_set_options_and_asks_for_usage_when_streaming():
    request = ChatRequest(
        model="m", messages=[], max_tokens=100, temperature=0.0, top_p=0.9, top_k=40
    )
    assert request.body(stream=True) == {
        "model": "m",
        "messages": [],
        "stream": True,
        "max_tokens": 100,
        "temperature": 0.0,
        "top_p": 0.9,
        "top_k": 40,
        "stream_options": {"include_usage": True},
    }


async def test_it_forwards_the_request_body_and_the_key(fake_upstream, upstream_client):
    await collect(upstream_client)

    [recorded] = fake_upstream.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert recorded.body == {
        "model": "fake-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# --- Streaming --------------------------------------------------------------------------


async def test_it_streams_the_reply_then_finish_then_usage(fake_upstream, upstream_client):
    events = await collect(upstream_client)

    assert events == [
        ContentDelta("word0"),
        ContentDelta(" word1"),
        ContentDelta(" word2"),
        ContentDelta(" word3"),
        ContentDelta(" word4"),
        Finished("stop"),
        UsageReport(Usage(prompt_tokens=6, completion_tokens=5, total_tokens=11, text_tokens=6)),
    ]


async def test_it_skips_the_role_only_first_chunk(fake_upstream, upstream_client):
    fake_upstream.reset(role_chunk=True, token_count=2)

    events = await collect(upstream_client)

    assert events[0] == ContentDelta("word0")


async def test_it_ignores_null_empty_and_missing_deltas(fake_upstream, upstream_client):
    fake_upstream.reset(empty_deltas=True, token_count=3)

    events = await collect(upstream_client)

    assert events[:3] == [ContentDelta("word0"), ContentDelta(" word1"), ContentDelta(" word2")]


async def test_it_reads_usage_from_a_final_chunk_without_choices(fake_upstream, upstream_client):
    fake_upstream.reset(usage_on_final_empty_chunk=True)

    events = await collect(upstream_client)

    assert events[-2:] == [
        Finished("stop"),
        UsageReport(Usage.from_api(_usage(prompt=6, completion=5))),
    ]


async def test_it_reads_usage_from_the_finish_chunk(fake_upstream, upstream_client):
    fake_upstream.reset(usage_on_final_empty_chunk=False, finish_reason="length")

    events = await collect(upstream_client)

    assert events[-2:] == [
        Finished("length"),
        UsageReport(Usage.from_api(_usage(prompt=6, completion=5))),
    ]


async def test_it_ignores_keepalive_comments(fake_upstream, upstream_client):
    fake_upstream.reset(keepalive_comments=True, token_count=25)

    events = await collect(upstream_client)

    assert text_of(events) == fake_upstream.config.reply_text()


async def test_it_reassembles_events_split_across_reads(fake_upstream, upstream_client):
    reply = "Grüße aus Köln — naïve café 😀 done"
    fake_upstream.reset(split_writes=True, reply=reply, reasoning="Überlege…")

    events = await collect(upstream_client)

    assert text_of(events) == reply
    assert text_of(events, ReasoningDelta) == "Überlege…"


async def test_it_keeps_reasoning_apart_from_the_reply(fake_upstream, upstream_client):
    fake_upstream.reset(reasoning="First think, then answer.", reply="Hello there.")

    events = await collect(upstream_client)

    assert text_of(events, ReasoningDelta) == "First think, then answer."
    assert text_of(events) == "Hello there."
    first_content = next(i for i, e in enumerate(events) if isinstance(e, ContentDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_content])
    usage = events[-1].usage
    assert (usage.reasoning_tokens, usage.completion_tokens) == (4, 6)


async def test_it_reads_reasoning_under_either_field_name():
    body = b"".join(
        b"data: " + json.dumps({"choices": [{"delta": delta}]}).encode() + b"\n\n"
        for delta in ({"reasoning": "a"}, {"reasoning_content": "b"}, {"content": "c"})
    )
    client = mock_client(lambda request: _sse_response(body + b"data: [DONE]\n\n"))
    async with client:
        events = await collect(client)

    assert events == [ReasoningDelta("a"), ReasoningDelta("b"), ContentDelta("c")]


async def test_it_reuses_the_connection_after_a_finished_stream(fake_upstream, upstream_client):
    await collect(upstream_client)
    await collect(upstream_client)

    first, second = fake_upstream.requests
    assert first.client_port == second.client_port


async def test_closing_the_stream_early_closes_the_upstream_connection(
    fake_upstream, upstream_client
):
    fake_upstream.reset(token_count=1000, token_interval=0.01)

    async with contextlib.aclosing(upstream_client.stream_chat(REQUEST)) as events:
        async for event in events:
            assert event == ContentDelta("word0")
            break

    await asyncio.to_thread(fake_upstream.wait_idle)
    assert fake_upstream.requests[0].disconnected


# --- Failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "message"),
    [
        ("http_401", 401, "Incorrect API key provided."),
        ("http_402", 402, "Insufficient account balance."),
        ("http_429", 429, "Rate limit exceeded."),
        ("http_500", 500, "Internal server error."),
        ("html_502", 502, "HTTP 502 from the upstream"),
    ],
)
async def test_http_failures_raise_with_status_and_message(
    fake_upstream, upstream_client, failure, status, message
):
    fake_upstream.reset(failure=failure)

    events, error = await collect_until_error(upstream_client)

    assert events == []
    assert (error.kind, error.status_code, error.message) == ("http", status, message)
    assert error.retry_after is None


async def test_it_reads_retry_after_from_a_rate_limit(fake_upstream, upstream_client):
    fake_upstream.reset(failure="http_429", retry_after=7)

    _events, error = await collect_until_error(upstream_client)

    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, "{}", 1.5),
        ({"retry-after": "3"}, "{}", 3.0),
        (
            {},
            '{"error": {"details": [{"@type": "x/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}',
            34.4,
        ),
        (
            {"retry-after": "5"},
            '{"error": {"details": [{"@type": "RetryInfo", "retryDelay": "9s"}]}}',
            5.0,
        ),
    ],
    ids=["milliseconds first", "seconds", "body only", "header over body"],
)
async def test_it_reads_how_long_to_wait_from_headers_or_the_body(
    fake_upstream, upstream_client, headers, body, wait
):
    recorded = tuple((name.encode(), value.encode()) for name, value in headers.items())
    recording = Recording(body.encode(), status=429, headers=(*JSON_HEADERS, *recorded))
    fake_upstream.reset(recording=recording)

    _events, error = await collect_until_error(upstream_client)

    assert error.retry_after == wait


@pytest.mark.parametrize(
    ("failure", "kind", "message"),
    [
        ("drop_mid_stream", "connection", "The connection to the upstream failed"),
        ("error_mid_stream", "stream", "The model stopped unexpectedly."),
        ("malformed_chunk", "stream", "The upstream sent a malformed chunk."),
        ("no_done", "stream", "The upstream stream ended before it was complete."),
    ],
)
async def test_stream_failures_raise_after_the_first_half(
    fake_upstream, upstream_client, failure, kind, message
):
    fake_upstream.reset(failure=failure, token_count=6)

    events, error = await collect_until_error(upstream_client)

    expected_text = (
        "word0 word1 word2 word3 word4 word5" if failure == "no_done" else "word0 word1 word2"
    )
    assert text_of(events) == expected_text
    assert (error.kind, error.status_code) == (kind, None)
    assert error.message.startswith(message)


async def test_a_slow_upstream_raises_a_timeout(fake_upstream):
    fake_upstream.reset(first_token_delay=1.0)
    client = UpstreamClient(
        base_url=fake_upstream.base_url, api_key="k", connect_timeout=1.0, read_timeout=0.05
    )
    async with client:
        _events, error = await collect_until_error(client)

    assert error.kind == "timeout"


async def test_an_unreachable_upstream_raises_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = UpstreamClient(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=TEST_API_KEY,
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    async with client:
        _events, error = await collect_until_error(client)

    assert error.kind == "connection"
    assert error.message.startswith("Could not connect to the upstream")


async def test_the_api_key_never_appears_in_an_error():
    echo = json.dumps({"error": {"message": f"Key {TEST_API_KEY} is not valid."}})
    async with mock_client(lambda request: httpx.Response(401, text=echo)) as client:
        _events, error = await collect_until_error(client)

    assert TEST_API_KEY not in str(error)
    assert error.message == "Key [redacted] is not valid."


@pytest.mark.parametrize("where", ["body", "chunk"])
async def test_no_part_of_the_api_key_survives_where_a_long_message_is_cut(where):
    # The message is shortened to MAX_ERROR_MESSAGE_CHARS; the cut falls inside the key.
    message = "x" * (MAX_ERROR_MESSAGE_CHARS - 10) + f" key {TEST_API_KEY} is not valid."
    echo = json.dumps({"error": {"message": message}})
    if where == "body":
        answer = httpx.Response(401, text=echo)
    else:
        answer = httpx.Response(
            200, text=f"data: {echo}\n\n", headers={"content-type": "text/event-stream"}
        )
    async with mock_client(lambda request: answer) as client:
        _events, error = await collect_until_error(client)

    assert error.message.endswith(" key [red…")


async def test_a_reply_that_is_not_an_event_stream_raises():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": {"message": "Streaming is off."}})

    async with mock_client(handler) as client:
        _events, error = await collect_until_error(client)

    assert (error.kind, error.message) == ("stream", "Streaming is off.")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error": {"code": 429, "message": "Slow down.", "type": "rate_limit"}}', "Slow down."),
        ('{"error": {"message": "Bad key.", "code": "invalid_api_key"}}', "Bad key."),
        ('[{"error": {"code": 500, "message": "Oops.", "status": "INTERNAL"}}]', "Oops."),
        ('{"error": "Model not found."}', "Model not found."),
        ('{"message": "Forbidden."}', "Forbidden."),
        ('{"detail": "Not allowed."}', "Not allowed."),
        ("upstream connect error\n  or disconnect", "upstream connect error or disconnect"),
        ("<html><body><h1>502 Bad Gateway</h1></body></html>", None),
        ("<!DOCTYPE html><html></html>", None),
        ("", None),
        ("   ", None),
        ('{"error": {"code": 500}}', None),
        ("[]", None),
        ("null", None),
    ],
)
def test_error_message_from_body(body, message):
    assert read_error_body(body).message == message


def test_error_message_from_body_shortens_long_text():
    message = read_error_body("x" * 1000).message

    assert len(message) == MAX_ERROR_MESSAGE_CHARS
    assert message.endswith("…")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Service temporarily unavailable", "Service temporarily unavailable"),
        ("<html><body>Bad gateway</body></html>", "HTTP 503 from the upstream"),
        ("", "HTTP 503 from the upstream"),
    ],
)
async def test_http_error_bodies_become_readable_messages(body, message):
    async with mock_client(lambda request: httpx.Response(503, text=body)) as client:
        _events, error = await collect_until_error(client)

    assert (error.status_code, error.message) == (503, message)


def test_parse_retry_after():
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert 55 < parse_retry_after(in_a_minute) <= 60
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


def test_usage_tolerates_missing_and_null_fields():
    assert Usage.from_api(None) == Usage()
    assert Usage.from_api({"prompt_tokens": 3, "completion_tokens": None}) == Usage(
        prompt_tokens=3, total_tokens=3
    )
    assert Usage.from_api(
        {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    ) == Usage(prompt_tokens=10, completion_tokens=4, total_tokens=14, reasoning_tokens=2)


# --- Non-streamed ---------------------------------------------------------------------


async def test_complete_chat_returns_the_whole_reply(fake_upstream, upstream_client):
    fake_upstream.reset(reply="A short title", reasoning="Hmm.")

    completion = await upstream_client.complete_chat(REQUEST)

    assert completion.content == "A short title"
    assert completion.reasoning == "Hmm."
    assert completion.finish_reason == "stop"
    assert completion.model == "fake-model"
    assert completion.usage == Usage.from_api(_usage(prompt=6, completion=3, reasoning=1))
    assert fake_upstream.requests[0].body == REQUEST.body(stream=False)


async def test_complete_chat_raises_on_http_errors(fake_upstream, upstream_client):
    fake_upstream.reset(failure="http_429", retry_after=2)

    with pytest.raises(UpstreamError) as caught:
        await upstream_client.complete_chat(REQUEST)

    assert (caught.value.kind, caught.value.status_code) == ("http", 429)
    assert caught.value.retry_after == 2.0


async def test_complete_chat_raises_on_a_malformed_reply(fake_upstream, upstream_client):
    fake_upstream.reset(failure="malformed_chunk")

    with pytest.raises(UpstreamError) as caught:
        await upstream_client.complete_chat(REQUEST)

    assert caught.value.kind == "stream"


# --- The shared client and the demo model -----------------------------------------------


async def test_get_client_talks_to_the_configured_upstream(fake_upstream):
    client = upstream.get_client()
    assert upstream.get_client() is client
    await collect(client)
    await upstream.client_close()

    assert client.closed
    assert upstream.get_client() is not client
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"


def test_get_client_keeps_one_client_per_event_loop_and_closes_it_when_the_loop_ends(
    fake_upstream,
):
    async def client_of_this_loop() -> UpstreamClient:
        client = upstream.get_client()
        assert upstream.get_client() is client
        await collect(client)
        assert not client.closed
        return client

    first, second = asyncio.run(client_of_this_loop()), asyncio.run(client_of_this_loop())
    assert first is not second
    assert first.closed
    assert second.closed


async def test_get_client_uses_the_demo_model_in_demo_mode(settings):
    settings.WEBCHAT_DEMO_MODE = True
    upstream.reset_clients()
    try:
        completion = await upstream.get_client().complete_chat(REQUEST)
    finally:
        upstream.reset_clients()

    # A non-streamed request asks for a title: the demo answers with the message's first words.
    assert completion.content == "Say hello to me"


async def test_the_demo_model_streams_its_canned_reply():
    client = UpstreamClient(
        base_url="http://demo.invalid/v1",
        api_key="",
        connect_timeout=1.0,
        read_timeout=1.0,
        transport=DemoTransport(first_token_delay=0.0, token_interval=0.0),
    )
    async with client:
        events = await collect(client, ChatRequest(model="webchat-demo", messages=MESSAGES))

    reply = text_of(events)
    assert reply.startswith("## ")
    assert "“Say hello to me”" in reply
    assert "`WEBCHAT_API_KEY`" in reply
    assert "\n- " in reply
    assert "| --- |" in reply
    assert "```python\n" in reply
    assert events[-2] == Finished("stop")
    assert events[-1].usage.completion_tokens == sum(isinstance(e, ContentDelta) for e in events)


async def test_the_demo_model_paces_its_reply():
    client = UpstreamClient(
        base_url="http://demo.invalid/v1",
        api_key="",
        connect_timeout=1.0,
        read_timeout=1.0,
        transport=DemoTransport(first_token_delay=0.05, token_interval=0.0),
    )
    loop = asyncio.get_running_loop()
    async with client:
        started = loop.time()
        async with contextlib.aclosing(client.stream_chat(REQUEST)) as events:
            first = await anext(events)
        elapsed = loop.time() - started

    assert isinstance(first, ContentDelta)
    assert elapsed >= 0.05


def _usage(*, prompt: int, completion: int, reasoning: int = 0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion + reasoning,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": prompt, "image_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
