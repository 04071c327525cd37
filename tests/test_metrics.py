"""/metrics: this process's numbers in Prometheus's text format, for the allowed addresses
and the token's bearer only, moved by replies and sockets."""

from ipaddress import ip_network

import pytest
from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from conversations.generation import running_reply
from tests.generation_helpers import (
    communicator_for,
    first_text,
    frames_until_final,
    latest_reply,
    reply_followed,
    send_message,
)

pytestmark = pytest.mark.django_db(transaction=True)

OUTSIDER = "203.0.113.9"
TOKEN = "scrape-secret-5d1e"


def _samples(response) -> dict[tuple[str, frozenset], float]:
    """The page's samples, by name and labels."""
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


async def _metrics() -> dict[tuple[str, frozenset], float]:
    return _samples(await AsyncClient().get("/metrics"))


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_it_answers_the_loopback_by_default_without_signing_in():
    samples = _samples(Client().get("/metrics"))
    assert ("webchat_replies_streaming", frozenset()) in samples
    assert ("webchat_sockets_open", frozenset()) in samples


def test_it_does_not_exist_for_other_addresses(owner):
    client = Client(REMOTE_ADDR=OUTSIDER)
    client.force_login(owner)  # signing in changes nothing
    assert client.get("/metrics").status_code == 404


def test_it_answers_the_allowed_networks_only(settings):
    settings.WEBCHAT_METRICS_ALLOWED = [ip_network("10.8.0.0/16"), ip_network("fd00::/8")]

    assert Client(REMOTE_ADDR="10.8.3.4").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="fd00::7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.9.0.1").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_it_answers_the_tokens_bearer_from_anywhere(settings):
    settings.WEBCHAT_METRICS_TOKEN = TOKEN
    client = Client(REMOTE_ADDR=OUTSIDER)

    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    for wrong in (f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}", "Bearer "):
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 404
    assert client.get("/metrics").status_code == 404


def test_without_a_token_no_bearer_is_let_in(settings):
    settings.WEBCHAT_METRICS_TOKEN = ""
    client = Client(REMOTE_ADDR=OUTSIDER)
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_it_only_reads():
    assert Client().post("/metrics").status_code == 405


async def test_a_reply_moves_the_numbers(async_owner_client, conversation, owner, fake_upstream):
    before = await _metrics()

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    after = await _metrics()
    assert reply.status == "complete"
    model = reply.model

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("webchat_reply_duration_seconds_count", status="complete") == 1
    assert moved("webchat_reply_time_to_first_token_seconds_count") == 1
    assert moved("webchat_prompt_tokens_total", model=model) == reply.prompt_tokens > 0
    assert moved("webchat_completion_tokens_total", model=model) == reply.completion_tokens > 0
    assert moved("webchat_frames_sent_total") >= len(frames)
    # The reply ended and its socket closed.
    assert moved("webchat_replies_streaming") == 0
    assert moved("webchat_sockets_open") == 0


async def test_replies_streaming_and_sockets_open_count_what_is_open_now(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(token_count=400, token_interval=0.02)
    before = await _metrics()
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await first_text(communicator, reply)

    during = await _metrics()
    run = running_reply(reply.pk)
    run.request_stop()
    await frames_until_final(communicator, reply)
    await run.task
    await communicator.disconnect()
    after = await _metrics()

    for name in ("webchat_replies_streaming", "webchat_sockets_open"):
        assert _value(during, name) == _value(before, name) + 1
        assert _value(after, name) == _value(before, name)
    assert (
        _value(after, "webchat_reply_duration_seconds_count", status="stopped")
        == _value(before, "webchat_reply_duration_seconds_count", status="stopped") + 1
    )


async def test_upstream_errors_are_counted_by_kind_and_status_each_attempt(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_SERVER_ERROR_RETRIES = 2
    fake_upstream.reset(failure="http_503")
    before = await _metrics()

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    after = await _metrics()
    assert reply.error_code == "server"
    labels = {"kind": "server", "code": "503"}
    moved = _value(after, "webchat_upstream_errors_total", **labels) - _value(
        before, "webchat_upstream_errors_total", **labels
    )
    assert moved == 3  # the first attempt and two retries
    assert (
        _value(after, "webchat_reply_duration_seconds_count", status="error")
        == _value(before, "webchat_reply_duration_seconds_count", status="error") + 1
    )


async def test_a_stalled_stream_is_counted_without_a_status(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_STALL_TIMEOUT = 0.2
    fake_upstream.reset(failure="stall_mid_stream")
    before = await _metrics()

    await reply_followed(async_owner_client, conversation, owner)

    labels = {"kind": "stalled", "code": "none"}
    assert _value(await _metrics(), "webchat_upstream_errors_total", **labels) == (
        _value(before, "webchat_upstream_errors_total", **labels) + 1
    )
