"""Tokens are always counted: a reply whose usage never came is counted by an estimate,
marked as one, which quotas, usage and cost include."""

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from accounts import limits
from conversations import token_estimates
from tests.generation_helpers import HTMX, finished, reply_followed, streaming_reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_estimate_counts_text_by_its_bytes_and_each_image_and_message():
    messages = [
        {"role": "user", "content": "abcdefgh"},  # 8 bytes: 2 tokens
        {"role": "user", "content": [{"type": "text", "text": "안녕"}, {"type": "image_url"}]},
    ]
    assert token_estimates.prompt_tokens(messages) == (4 + 2) + (4 + 2 + 765)


async def test_a_stopped_reply_counts_an_estimate_towards_the_quota(
    async_owner_client, conversation, owner, fake_upstream
):
    communicator, reply = await streaming_reply(
        async_owner_client, conversation, owner, fake_upstream
    )
    await async_owner_client.post(
        reverse("conversations:reply-stop", args=[conversation.pk]), headers=HTMX
    )
    reply = await finished(reply)
    await communicator.disconnect()

    assert reply.status == "stopped"
    assert reply.usage_estimated
    sent = fake_upstream.requests[0].body["messages"]
    assert reply.prompt_tokens == token_estimates.prompt_tokens(sent)
    assert reply.completion_tokens == token_estimates.text_tokens(reply.content) > 0
    usage = await sync_to_async(limits.usage_for)(owner.pk)
    assert usage.today.tokens == reply.prompt_tokens + reply.completion_tokens


async def test_a_reply_cut_off_mid_stream_counts_an_estimate_shown_as_one(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(failure="drop_mid_stream", token_count=6)

    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert reply.status == "interrupted"
    assert reply.usage_estimated
    assert reply.completion_tokens == token_estimates.text_tokens(reply.content)
    assert "≈ " in frames[-1]


async def test_a_reported_usage_is_stored_as_it_came(
    async_owner_client, conversation, owner, fake_upstream
):
    reply, frames = await reply_followed(async_owner_client, conversation, owner)

    assert not reply.usage_estimated
    assert reply.completion_tokens == 5
    assert "≈ " not in frames[-1]


async def test_a_refused_request_counts_nothing(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(failure="http_402")

    reply, _frames = await reply_followed(async_owner_client, conversation, owner)

    assert (reply.status, reply.usage_estimated, reply.total_tokens) == ("error", False, None)
