"""Automatic retries, and the bounds on concurrent replies."""

from itertools import pairwise

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations.models import Message
from conversations.upstream import failures
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import (
    HTMX,
    communicator_for,
    finished,
    frames_until_final,
    latest_reply,
    send_message,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_rate_limit_is_retried_after_the_wait_retry_after_asks_for(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(failure="http_429", retry_after=0.3, fail_first=2)
    communicator = communicator_for(conversation.pk, owner)
    await communicator.connect()

    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    frames = await frames_until_final(communicator, reply)
    reply = await finished(reply)
    await communicator.disconnect()

    assert reply.status == "complete"
    assert reply.content == "word0 word1 word2 word3 word4"
    requests = fake_upstream.requests
    assert len(requests) == 3
    gaps = [later.received_at - earlier.received_at for earlier, later in pairwise(requests)]
    assert all(gap >= 0.3 for gap in gaps), gaps
    assert all(gap < 1.0 for gap in gaps), gaps
    notices = [frame for frame in frames if "Rate limited, retrying in 1 s" in frame]
    assert len(notices) == 2
    assert "Rate limited" not in frames[-1]


async def test_a_rate_limit_that_lasts_is_given_up_clearly_after_the_bound(
    async_owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_RATE_LIMIT_MAX_RETRIES = 2
    fake_upstream.reset(failure="http_429")

    await send_message(async_owner_client, conversation)
    reply = await finished(await latest_reply(conversation))

    assert len(fake_upstream.requests) == 3
    assert (reply.status, reply.error_code) == ("error", failures.RATE_LIMITED)
    assert "rate limiting requests. Please try again in a minute." in reply.error


async def test_a_rate_limit_asking_for_more_than_the_longest_wait_is_given_up_at_once(
    async_owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_RATE_LIMIT_MAX_WAIT = 5
    fake_upstream.reset(failure="http_429", retry_after=90)

    await send_message(async_owner_client, conversation)
    reply = await finished(await latest_reply(conversation))

    assert len(fake_upstream.requests) == 1
    assert "try again in 90 s" in reply.error


async def test_the_user_message_is_stored_before_the_upstream_is_called(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(failure="http_500")
    await send_message(async_owner_client, conversation, "Keep me")
    await finished(await latest_reply(conversation))

    user_message = await Message.objects.aget(conversation=conversation, role="user")
    assert user_message.content == "Keep me"
    assert user_message.created_at.timestamp() <= fake_upstream.requests[0].received_at


async def test_requests_beyond_the_process_cap_wait_for_a_slot_and_say_so(
    async_owner_client, owner, fake_upstream, settings
):
    settings.WEBCHAT_MAX_UPSTREAM_PER_PROCESS = 1
    fake_upstream.reset(first_token_delay=0.3)
    first, second = [await sync_to_async(ConversationFactory)(owner=owner) for _ in range(2)]
    watcher = communicator_for(second.pk, owner)
    await watcher.connect()

    await send_message(async_owner_client, first)
    await send_message(async_owner_client, second)
    second_reply = await latest_reply(second)
    frames = await frames_until_final(watcher, second_reply)
    await watcher.disconnect()
    replies = [await finished(await latest_reply(c)) for c in (first, second)]

    assert [reply.status for reply in replies] == ["complete", "complete"]
    assert any(str(failures.WAITING_FOR_SLOT) in frame for frame in frames)
    earlier, later = fake_upstream.requests
    assert later.received_at - earlier.received_at >= 0.3


async def test_a_user_may_not_have_more_replies_being_written_than_the_limit(
    async_owner_client, owner, fake_upstream, settings
):
    settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER = 1
    busy, other = [await sync_to_async(ConversationFactory)(owner=owner) for _ in range(2)]
    await sync_to_async(MessageFactory)(
        conversation=busy, role="assistant", status="streaming", runner="runner.busy!1"
    )

    response = await send_message(async_owner_client, other, "Me too")

    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer-error"
    assert "replies being written already" in response.content.decode()
    assert not await Message.objects.filter(conversation=other).aexists()


async def test_a_new_conversation_is_refused_too_when_the_user_is_at_the_limit(
    async_owner_client, owner, fake_upstream, settings
):
    settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER = 1
    busy = await sync_to_async(ConversationFactory)(owner=owner)
    await sync_to_async(MessageFactory)(
        conversation=busy, role="assistant", status="pending", runner="runner.busy!1"
    )

    response = await async_owner_client.post(
        reverse("conversations:create"), {"text": "New topic"}, headers=HTMX
    )

    assert response.status_code == 422
    assert await Message.objects.acount() == 1
