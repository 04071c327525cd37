"""From a POST to a stored reply, through the real httpx client and the fake upstream."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.urls import reverse

from conversations import services
from conversations.models import Conversation, Message
from tests.factories import MessageFactory
from tests.generation_helpers import HTMX, Page, finished, latest_reply, send_message

pytestmark = pytest.mark.django_db(transaction=True)


async def _finished_reply(conversation) -> Message:
    return await finished(await latest_reply(conversation))


async def _listening_to(conversation):
    """The channel layer and a channel that receives the frames of ``conversation``'s tabs."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(conversation.group_name, channel)
    return layer, channel


async def test_a_sent_message_is_answered_and_stored_with_usage(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(reply="Hello from the **fake** upstream.")
    response = await send_message(async_owner_client, conversation, "Hi there")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hi there" in page
    assert 'data-status="pending"' in page

    reply = await _finished_reply(conversation)
    assert reply.status == Message.Status.COMPLETE
    assert reply.content == "Hello from the **fake** upstream."
    assert reply.finish_reason == "stop"
    assert reply.completion_tokens == len(fake_upstream.config.reply_tokens())
    assert reply.total_tokens == reply.prompt_tokens + reply.completion_tokens
    assert reply.time_to_first_token_ms is not None
    assert reply.completed_at is not None


async def test_the_whole_history_is_forwarded_on_each_turn(
    async_owner_client, conversation, fake_upstream
):
    await sync_to_async(MessageFactory)(conversation=conversation, role="user", content="one")
    await sync_to_async(MessageFactory)(conversation=conversation, role="assistant", content="two")
    await send_message(async_owner_client, conversation, "three")
    await _finished_reply(conversation)

    body = fake_upstream.requests[-1].body
    assert body["model"] == conversation.model
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    assert "temperature" not in body


async def test_reasoning_is_kept_apart_from_the_reply(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(reasoning="Let me think.", reply="The answer.")
    await send_message(async_owner_client, conversation, "Why?")
    reply = await _finished_reply(conversation)
    assert reply.reasoning == "Let me think."
    assert reply.content == "The answer."


async def test_a_failed_upstream_call_is_stored_as_an_error(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(failure="http_500")
    await send_message(async_owner_client, conversation, "Hello")
    reply = await _finished_reply(conversation)
    assert reply.status == Message.Status.ERROR
    assert reply.error
    user_message = await Message.objects.filter(conversation=conversation, role="user").aget()
    assert user_message.content == "Hello"


async def test_text_that_arrived_before_a_dropped_stream_is_kept(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(token_count=10, failure="drop_mid_stream")
    await send_message(async_owner_client, conversation, "Hello")
    reply = await _finished_reply(conversation)
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.content.startswith("word0 ")


async def test_progress_is_saved_while_the_reply_streams(
    async_owner_client, conversation, fake_upstream, settings
):
    settings.WEBCHAT_SAVE_INTERVAL = 0.05
    fake_upstream.reset(token_count=40, token_interval=0.01)
    await send_message(async_owner_client, conversation, "Tell me a story")
    reply = await Message.objects.filter(conversation=conversation, role="assistant").alast()
    saved_partial = ""
    for _ in range(200):
        await asyncio.sleep(0.01)
        await reply.arefresh_from_db()
        if reply.status == Message.Status.STREAMING and reply.content:
            saved_partial = reply.content
            break
    assert saved_partial.startswith("word0")
    reply = await _finished_reply(conversation)
    assert reply.content.startswith(saved_partial)
    assert reply.status == Message.Status.COMPLETE


async def test_a_new_conversation_starts_from_the_first_message(async_owner_client, fake_upstream):
    response = await async_owner_client.post(
        reverse("conversations:create"), {"text": "Plan a trip to Seoul"}, headers=HTMX
    )
    conversation = await Conversation.objects.aget()
    assert response["HX-Redirect"] == conversation.get_absolute_url()
    assert conversation.title == "Plan a trip to Seoul"
    reply = await _finished_reply(conversation)
    assert reply.status == Message.Status.COMPLETE


async def test_a_sent_message_is_announced_to_other_tabs_without_reading_it_back(
    async_owner_client, conversation, fake_upstream, monkeypatch
):
    fake_upstream.reset(token_count=3)
    exchange_reads = []
    monkeypatch.setattr(
        services, "latest_exchange", lambda **kwargs: exchange_reads.append(kwargs) or []
    )
    layer, channel = await _listening_to(conversation)

    await send_message(async_owner_client, conversation, "Announced question")
    reply = await _finished_reply(conversation)

    announcement = (await asyncio.wait_for(layer.receive(channel), timeout=5))["html"]
    assert announcement.startswith('<div hx-swap-oob="beforeend:#messages">')
    assert "Announced question" in announcement
    assert f'id="{reply.dom_id}"' in announcement
    assert exchange_reads == []


async def test_frames_are_published_to_the_conversation_group(
    async_owner_client, conversation, fake_upstream
):
    # The stream waits after three tokens until a text frame is seen, so the test does not
    # depend on the frame clock ticking before a fast stream ends.
    fake_upstream.reset(token_count=6, hold_after=3)
    layer, channel = await _listening_to(conversation)

    await send_message(async_owner_client, conversation, "Hello")
    frames = []
    while '-tail" hx-swap-oob="innerHTML"' not in (frames[-1]["html"] if frames else ""):
        frames.append(await asyncio.wait_for(layer.receive(channel), timeout=10))
    fake_upstream.release()
    reply = await _finished_reply(conversation)
    while not frames[-1]["html"].startswith(f'<article id="{reply.dom_id}"'):
        frames.append(await asyncio.wait_for(layer.receive(channel), timeout=10))
    assert all(frame["type"] == "chat.frame" for frame in frames)
    # First the exchange, for tabs that did not send it, then the text as it arrives.
    assert frames[0]["html"].startswith('<div hx-swap-oob="beforeend:#messages">')
    page = Page(reply.dom_id)
    page.apply(frames[0]["html"])
    assert (page.status, page.text) == ("pending", "")
    page.apply(frames[1]["html"])
    assert f'<div id="{reply.dom_id}-tail" hx-swap-oob="innerHTML"' in frames[1]["html"]
    assert page.words
    assert reply.content.startswith(page.text.strip())
    final = frames[-1]["html"]
    assert f'id="{reply.dom_id}"' in final
    assert 'hx-swap-oob="outerHTML"' in final
    assert 'data-status="complete"' in final
