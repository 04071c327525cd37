"""Real providers' recorded streams and error bodies (tests/data/recordings), replayed byte
for byte over HTTP on loopback, cut at random points (inside characters too), through the
real client: what it reads must match the manifest's independent reading."""

import pytest

from conversations.upstream import failures
from conversations.upstream.chunks import (
    MAX_FINISH_REASON_CHARS,
    ContentDelta,
    Finished,
    ReasoningDelta,
    UsageReport,
)
from conversations.upstream.client import ChatRequest, UpstreamError
from conversations.upstream.error_bodies import shorten
from conversations.upstream.failures import RetryPolicy, failure_for
from tests.recordings import (
    COMPLETIONS,
    ERRORS,
    STREAMS,
    StoredUsage,
    completion_recording,
    error_recording,
    stream_recording,
)

REQUEST = ChatRequest(model="recorded-model", messages=[{"role": "user", "content": "Hi"}])
SEEDS = ("first", "second", "third")
POLICY = RetryPolicy(rate_limit_retries=3, server_error_retries=2, max_wait=60.0, base_delay=1.0)
# What a recording's meaning (its manifest's reading) is to the user.
FAILURE_CODES = {
    "quota": failures.QUOTA,
    "rate_limited": failures.RATE_LIMITED,
    "auth": failures.AUTH,
    "context_length": failures.CONTEXT_LENGTH,
    "bad_request": failures.BAD_REQUEST,
    "content_filter": failures.CONTENT_FILTER,
    "server": failures.SERVER,
    "overloaded": failures.SERVER,
}


def _ids(entries: list[dict]) -> list[str]:
    return [entry["file"] for entry in entries]


async def _read(client) -> tuple[list, UpstreamError | None]:
    events = []
    try:
        async for event in client.stream_chat(REQUEST):
            events.append(event)
    except UpstreamError as error:
        return events, error
    return events, None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("entry", STREAMS, ids=_ids(STREAMS))
async def test_a_recorded_stream_is_read_as_recorded(entry, seed, fake_upstream, upstream_client):
    fake_upstream.reset(recording=stream_recording(entry, seed=f"{entry['file']}:{seed}"))

    events, error = await _read(upstream_client)

    text = "".join(event.text for event in events if isinstance(event, ContentDelta))
    reasoning = "".join(event.text for event in events if isinstance(event, ReasoningDelta))
    finished = [event.reason for event in events if isinstance(event, Finished)]
    reports = [event.usage for event in events if isinstance(event, UsageReport)]
    assert text == entry["answer"]
    assert reasoning == entry["reasoning"]
    if entry["error"]:
        assert error is not None
        assert error.from_provider
        assert error.message == shorten(entry["error"])
    else:
        assert error is None
        expected_reason = entry["finish_reason"].lower()[:MAX_FINISH_REASON_CHARS]
        assert (finished[-1] if finished else "") == expected_reason
    expected_usage = StoredUsage.of(entry)
    if expected_usage is not None and not entry["error"]:
        assert StoredUsage.read(reports[-1]) == expected_usage


@pytest.mark.parametrize("entry", COMPLETIONS, ids=_ids(COMPLETIONS))
async def test_a_recorded_whole_reply_is_read_as_recorded(entry, fake_upstream, upstream_client):
    fake_upstream.reset(recording=completion_recording(entry))

    completion = await upstream_client.complete_chat(REQUEST)

    assert (completion.content, completion.reasoning) == (entry["answer"], entry["reasoning"])
    assert completion.finish_reason == entry["finish_reason"]
    assert StoredUsage.read(completion.usage) == StoredUsage.of(entry)


@pytest.mark.parametrize("entry", ERRORS, ids=_ids(ERRORS))
async def test_a_recorded_error_body_is_understood(entry, fake_upstream, upstream_client):
    fake_upstream.reset(recording=error_recording(entry))

    events, error = await _read(upstream_client)

    assert events == []
    assert error is not None
    assert error.status_code == entry["status"]
    if entry["content_type"].startswith("text/html"):
        assert not error.from_provider  # a gateway's page says nothing to a person
    else:
        assert error.from_provider
        assert error.message == shorten(entry["message"])
    assert error.retry_after == entry.get("retry_after_seconds")
    failure = failure_for(error, text_arrived=False, retries={}, policy=POLICY)
    assert failure.code == FAILURE_CODES[entry["meaning"]]
    assert (failure.retry_in is not None) == (
        failure.code in (failures.RATE_LIMITED, failures.SERVER)
    )
