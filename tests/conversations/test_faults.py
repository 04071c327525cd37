"""Every way a reply can fail, driven through the views, the fake upstream and a socket:
what ends up stored, and what the page was sent."""

import html
import logging

import pytest

from conversations.models import Message
from conversations.upstream import failures
from tests.generation_helpers import (
    reply_followed,
)
from tests.tcp_proxy import TcpProxy
from tests.upstream_fixtures import TEST_API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

HALF_THE_REPLY = "word0 word1 word2"


@pytest.mark.parametrize(
    ("failure", "code", "says"),
    [
        ("http_401", failures.AUTH, "rejected this server's API key"),
        ("http_403", failures.AUTH, "rejected this server's API key"),
        ("http_402", failures.QUOTA, "credit or quota is used up"),
        ("http_400", failures.BAD_REQUEST, "Invalid value for 'temperature'"),
        ("http_404", failures.BAD_REQUEST, "The model `no-such-model` does not exist."),
        ("http_413", failures.CONTEXT_LENGTH, "too long for the model"),
        ("context_length", failures.CONTEXT_LENGTH, "too long for the model"),
    ],
)
async def test_a_refusal_is_explained_once_without_a_retry_button(
    async_owner_client, conversation, owner, fake_upstream, failure, code, says
):
    fake_upstream.reset(failure=failure)

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code, reply.content) == ("error", code, "")
    assert says in f"{reply.error} {reply.error_detail}"
    assert len(fake_upstream.requests) == 1
    final = frames[-1]
    assert 'class="message-error"' in final
    if reply.error_detail:  # the provider's own words, beneath the sentence
        assert html.escape(reply.error_detail) in final
    assert "Retry" not in final
    assert "Continue" not in final
    user_message = await Message.objects.aget(conversation=conversation, role="user")
    assert user_message.content == "Hello"


@pytest.mark.parametrize("failure", ["http_401", "http_402"])
async def test_a_rejected_key_or_empty_account_is_logged_for_the_admin_without_the_key(
    async_owner_client, conversation, owner, fake_upstream, caplog, failure
):
    fake_upstream.reset(failure=failure)

    with caplog.at_level(logging.WARNING, logger="conversations"):
        reply, frames = await reply_followed(async_owner_client, conversation, owner)

    alerts = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(alerts) == 1
    assert f"HTTP {failure[-3:]}" in alerts[0].getMessage()
    assert TEST_API_KEY not in caplog.text
    assert TEST_API_KEY not in reply.error
    assert not any(TEST_API_KEY in frame for frame in frames)
    # The key did reach the upstream, as a header.
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"


@pytest.mark.parametrize("failure", ["http_500", "html_502", "http_503", "http_504"])
async def test_a_server_error_is_retried_then_given_up_with_a_retry_button(
    async_owner_client, conversation, owner, fake_upstream, settings, failure
):
    settings.WEBCHAT_SERVER_ERROR_RETRIES = 2
    fake_upstream.reset(failure=failure)

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert len(fake_upstream.requests) == 3
    assert (reply.status, reply.error_code) == ("error", failures.SERVER)
    assert f"HTTP {failure[-3:]}" in reply.error
    assert any("The chat service had a problem, retrying in 1 s" in frame for frame in frames)
    assert "Retry" in frames[-1]
    assert "<html" not in reply.error


async def test_a_server_error_that_clears_up_is_retried_into_a_complete_reply(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(failure="html_502", fail_first=1)

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    assert len(fake_upstream.requests) == 2
    assert (reply.status, reply.error, reply.error_code) == ("complete", "", "")
    assert reply.content == "word0 word1 word2 word3 word4"


@pytest.mark.parametrize(
    ("failure", "code", "says", "content"),
    [
        ("error_mid_stream", failures.STREAM, "The model stopped unexpectedly.", HALF_THE_REPLY),
        ("malformed_chunk", failures.STREAM, "could not be read", HALF_THE_REPLY),
        ("no_done", failures.STREAM, "ended the reply before it was complete", None),
        ("drop_mid_stream", failures.CONNECTION, "connection to the chat service", HALF_THE_REPLY),
    ],
)
async def test_a_stream_that_breaks_keeps_its_text_and_shows_why(
    async_owner_client, conversation, owner, fake_upstream, failure, code, says, content
):
    fake_upstream.reset(failure=failure, token_count=6)

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert len(fake_upstream.requests) == 1
    assert (reply.status, reply.error_code) == ("interrupted", code)
    assert says in f"{reply.error} {reply.error_detail}"
    expected = content or fake_upstream.config.reply_text()
    assert reply.content.strip() == expected
    final = frames[-1]
    assert 'data-status="interrupted"' in final
    assert says in final
    assert "Retry" in final
    assert "Continue" in final


@pytest.mark.parametrize("keepalive_comments", [True, False])
async def test_a_stream_that_stalls_is_abandoned_and_keeps_its_text(
    async_owner_client, conversation, owner, fake_upstream, settings, keepalive_comments
):
    settings.WEBCHAT_STALL_TIMEOUT = 0.3
    fake_upstream.reset(
        failure="stall_mid_stream", token_count=6, keepalive_comments=keepalive_comments
    )

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code) == ("interrupted", failures.STALLED)
    assert "nothing arrived for 0.3 s" in reply.error
    assert reply.content.strip() == HALF_THE_REPLY
    fake_upstream.wait_idle()
    assert fake_upstream.requests[0].disconnected


async def test_a_read_timeout_before_the_first_token_is_an_error_without_text(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_READ_TIMEOUT = 0.2
    fake_upstream.reset(first_token_delay=2.0)

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code, reply.content) == ("error", failures.TIMEOUT, "")
    assert "took too long" in reply.error
    assert "Retry" in frames[-1]


async def test_a_connect_timeout_is_an_error_with_a_retry_button(
    async_owner_client, conversation, owner, fake_upstream, settings, unanswered_upstream
):
    settings.WEBCHAT_API_BASE = unanswered_upstream
    settings.WEBCHAT_CONNECT_TIMEOUT = 0.2

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.error_code) == ("error", failures.TIMEOUT)
    assert "could not be reached in time" in reply.error
    assert "Retry" in frames[-1]


async def test_a_connection_cut_before_any_answer_is_tried_again_and_the_reply_completes(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    fake_upstream.reset(token_count=3)
    port = int(fake_upstream.base_url.rsplit(":", 1)[1].split("/")[0])
    with TcpProxy(port, cut_requests=1) as proxy:
        settings.WEBCHAT_API_BASE = f"http://127.0.0.1:{proxy.port}/v1"

        reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.content, reply.error) == ("complete", "word0 word1 word2", "")
    assert proxy.cut_left == 0
    assert len(fake_upstream.requests) == 1
    assert "message-error" not in frames[-1]
