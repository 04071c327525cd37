"""The fake upstream itself, checked with a plain HTTP client."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fake_upstream import (
    DONE,
    MARKDOWN_MARKER,
    MARKDOWN_REPLY,
    MARKDOWN_TOKENS,
    FakeUpstream,
    FakeUpstreamConfig,
    split_into_tokens,
)

ROOT = Path(__file__).resolve().parent.parent

CHAT_BODY = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "one two three"}],
    "stream": True,
}


async def post_chat(base_url: str, body: dict = CHAT_BODY) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{base_url}/chat/completions", json=body)


def data_events(raw: bytes) -> list[str]:
    return [
        block.removeprefix("data: ")
        for block in raw.decode().split("\n\n")
        if block.startswith("data: ")
    ]


async def test_it_streams_server_sent_events_in_chunked_transfer(fake_upstream):
    response = await post_chat(fake_upstream.base_url)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content.startswith(b": PING\n\n")
    assert response.content.endswith(DONE)
    chunks = [json.loads(data) for data in data_events(response.content)[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 3
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_it_sends_keepalive_comments_between_events(fake_upstream):
    fake_upstream.reset(token_count=20)

    response = await post_chat(fake_upstream.base_url)

    assert response.content.count(b"\n: keep-alive\n\n") == 2


async def test_it_records_each_request(fake_upstream):
    await post_chat(fake_upstream.base_url)

    [recorded] = fake_upstream.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body == CHAT_BODY
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.received_at > 0
    assert not recorded.disconnected


async def test_reset_forgets_requests_and_applies_the_new_config(fake_upstream):
    await post_chat(fake_upstream.base_url)

    fake_upstream.reset(reply="Just this.")

    assert fake_upstream.requests == []
    assert fake_upstream.config == FakeUpstreamConfig(reply="Just this.")


async def test_a_set_reply_is_streamed_exactly_in_word_pieces(fake_upstream):
    reply = "Hello,  world!\n\n- item\n"
    fake_upstream.reset(reply=reply)

    response = await post_chat(fake_upstream.base_url)

    contents = [
        chunk["choices"][0]["delta"].get("content")
        for chunk in map(json.loads, data_events(response.content)[:-1])
        if chunk["choices"]
    ]
    pieces = [content for content in contents if content]
    assert pieces == split_into_tokens(reply) == ["Hello,  ", "world!\n\n", "- ", "item\n"]


async def test_split_writes_reach_the_client_in_many_reads(fake_upstream):
    fake_upstream.reset(split_writes=True, token_count=2)

    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{fake_upstream.base_url}/chat/completions", json=CHAT_BODY) as r,
    ):
        reads = [piece async for piece in r.aiter_raw()]

    assert len(reads) > 2 * len(data_events(b"".join(reads)))
    assert b"".join(reads).endswith(DONE)


async def test_non_streamed_requests_get_a_chat_completion(fake_upstream):
    response = await post_chat(fake_upstream.base_url, {**CHAT_BODY, "stream": False})

    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "word0 word1 word2 word3 word4",
    }
    assert completion["usage"]["total_tokens"] == 8


async def test_it_lists_its_models(fake_upstream):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{fake_upstream.base_url}/models")

    assert [model["id"] for model in response.json()["data"]] == ["fake-model", "fake-model-large"]


async def test_a_rate_limit_carries_retry_after(fake_upstream):
    fake_upstream.reset(failure="http_429", retry_after=1.5)

    response = await post_chat(fake_upstream.base_url)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.json()["error"]["code"] == 429


async def test_html_502_is_an_html_page(fake_upstream):
    fake_upstream.reset(failure="html_502")

    response = await post_chat(fake_upstream.base_url)

    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"


async def test_drop_mid_stream_closes_the_connection_without_done(fake_upstream):
    fake_upstream.reset(failure="drop_mid_stream", token_count=4)

    with pytest.raises(httpx.RemoteProtocolError):
        await post_chat(fake_upstream.base_url)


async def test_no_done_ends_the_stream_cleanly_without_done(fake_upstream):
    fake_upstream.reset(failure="no_done")

    response = await post_chat(fake_upstream.base_url)

    assert response.status_code == 200
    assert b"[DONE]" not in response.content
    assert data_events(response.content)


def test_config_rejects_an_unknown_failure():
    with pytest.raises(ValueError, match="Unknown failure"):
        FakeUpstreamConfig(failure="http_418")


def test_it_runs_as_a_command():
    command = [sys.executable, "-m", "tests.fake_upstream", "--port", "0"]
    # Test code is importable from the repository's root only, as `make bench` runs it.
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            base_url = process.stdout.readline().strip()
            response = httpx.get(f"{base_url}/models", timeout=5)
        finally:
            process.terminate()

    assert base_url.startswith("http://127.0.0.1:")
    assert response.status_code == 200


async def test_it_records_when_the_first_and_last_tokens_were_written(fake_upstream):
    fake_upstream.reset(token_count=3, token_interval=0.01)
    before = time.monotonic()

    await post_chat(fake_upstream.base_url)

    [recorded] = fake_upstream.requests
    assert before < recorded.first_token_at < recorded.last_token_at < time.monotonic()
    assert recorded.last_token_at - recorded.first_token_at >= 0.02
    assert recorded.tokens_sent == 3


def test_it_logs_each_chat_request_as_a_json_line(tmp_path):
    log = tmp_path / "requests.jsonl"
    with FakeUpstream(FakeUpstreamConfig(token_count=4), request_log=log) as fake:
        httpx.post(f"{fake.base_url}/chat/completions", json=CHAT_BODY, timeout=5)
        httpx.get(f"{fake.base_url}/models", timeout=5)
        fake.wait_idle()

    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["prompt"] == "one two three"
    assert entry["stream"] is True
    assert entry["tokens"] == 4
    assert entry["first_token_at"] <= entry["last_token_at"]
    assert entry["disconnected"] is False


def test_its_log_says_when_each_request_arrived_on_both_clocks(tmp_path):
    log = tmp_path / "requests.jsonl"
    with FakeUpstream(FakeUpstreamConfig(first_token_delay=0.05), request_log=log) as fake:
        sent, sent_wall = time.monotonic(), time.time()
        httpx.post(f"{fake.base_url}/chat/completions", json=CHAT_BODY, timeout=5)
        fake.wait_idle()

    [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    assert sent < entry["received_at"] < entry["first_token_at"] - 0.04
    assert sent_wall - 1 < entry["received_at_wall"] < time.time()


async def test_a_prompt_with_the_marker_streams_the_long_markdown_reply(fake_upstream):
    fake_upstream.reset(token_count=3)
    asking = {**CHAT_BODY, "messages": [{"role": "user", "content": f"Explain {MARKDOWN_MARKER}"}]}

    response = await post_chat(fake_upstream.base_url, asking)
    titled = await post_chat(fake_upstream.base_url, {**asking, "stream": False})

    deltas = [json.loads(event)["choices"] for event in data_events(response.content)[:-1]]
    text = "".join(c[0]["delta"].get("content") or "" for c in deltas if c)
    assert text == MARKDOWN_REPLY
    assert len(split_into_tokens(text)) == MARKDOWN_TOKENS
    for block in ("\n## ", "\n- ", "\n| ", "```python\n", "```bash\n"):
        assert block in text
    # Only streamed replies are long: a title request gets the usual reply.
    assert titled.json()["choices"][0]["message"]["content"] == "word0 word1 word2"


async def test_a_model_can_stream_at_its_own_pace(fake_upstream):
    fake_upstream.reset(token_count=3, token_interval=0.2, model_token_intervals={"quick": 0.0})

    await post_chat(fake_upstream.base_url, {**CHAT_BODY, "model": "quick"})

    [recorded] = fake_upstream.requests
    # At the default pace its three tokens would take at least two intervals.
    assert recorded.last_token_at - recorded.first_token_at < 2 * 0.2
