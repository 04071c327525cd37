import asyncio

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import consumers, frames
from conversations.generation import control_group_name, running_generation
from conversations.models import Conversation, Message
from conversations.routing import websocket_urlpatterns
from tests.factories import MessageFactory
from tests.generation_helpers import finished, frames_until_final, latest_reply, send_message
from webchat.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(conversation_id: int, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/conversations/{conversation_id}/"
    )
    communicator.scope["user"] = user
    return communicator


async def test_it_refuses_a_socket_without_a_session(conversation):
    communicator = _communicator(conversation.pk, AnonymousUser())
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_refuses_other_users_socket(conversation, outsider):
    communicator = _communicator(conversation.pk, outsider)
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_refuses_a_socket_for_a_missing_conversation(owner):
    communicator = _communicator(999_999, owner)
    connected, _ = await communicator.connect()
    assert not connected


async def test_it_relays_frames_published_to_the_conversation(conversation, owner):
    communicator = _communicator(conversation.pk, owner)
    connected, _ = await communicator.connect()
    assert connected
    await get_channel_layer().group_send(
        f"conversation_{conversation.pk}", {"type": "chat.frame", "html": "<span id=x>hi</span>"}
    )
    assert await communicator.receive_from() == "<span id=x>hi</span>"
    await communicator.disconnect()


async def test_it_sends_the_latest_reply_on_connect_and_asks_for_a_fresh_render(
    conversation, owner
):
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="streaming", content="Partial *text*"
    )
    layer = get_channel_layer()
    control = await layer.new_channel()
    await layer.group_add(control_group_name(conversation.pk), control)

    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    frame = await communicator.receive_from()
    assert f'id="{reply.dom_id}"' in frame
    assert 'data-status="streaming"' in frame
    assert "<em>text</em>" in frame
    assert (await asyncio.wait_for(layer.receive(control), 1))["type"] == "generation.sync"
    await communicator.disconnect()


async def test_it_checks_the_session_cookie_through_the_real_stack(conversation, owner):
    client = Client()
    await sync_to_async(client.force_login)(owner)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    path = f"/ws/conversations/{conversation.pk}/"
    headers = [(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()

    stranger = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await stranger.connect()
    assert not connected


async def test_it_refuses_a_foreign_origin(conversation, owner):
    communicator = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.pk}/",
        headers=[(b"origin", b"https://evil.example")],
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_streamed_reply_reaches_the_socket_as_deltas_then_a_final_render(
    async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(reply="Streaming *works* fine", token_count=3, token_interval=0.01)
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()

    url = reverse("conversations:message-create", args=[conversation.pk])
    await async_owner_client.post(url, {"text": "hi"}, headers={"HX-Request": "true"})
    reply = await Message.objects.filter(conversation=conversation, role="assistant").alast()

    final_render = f'<article id="{reply.dom_id}"'
    received = []
    while not received or not received[-1].startswith(final_render):
        received.append(await communicator.receive_from(timeout=5))
    assert 'data-status="complete"' in received[-1]
    task = running_generation(reply.pk)
    if task is not None:
        await task

    deltas = [frame for frame in received if 'hx-swap-oob="beforeend"' in frame]
    assert deltas
    assert "<em>works</em>" in received[-1]
    await communicator.disconnect()


async def test_relaying_frames_costs_no_thread_hop(conversation, owner, monkeypatch):
    # A reply being written, alive: the dead-reply watch sleeps through the frames.
    await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="streaming", heartbeat_at=timezone.now()
    )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    await frames.publish(conversation.pk, "<p>0</p>", generation=frames.GENERATION_RUNNING)
    await communicator.receive_from()  # the state on connect
    assert await communicator.receive_from() == "<p>0</p>"  # the dead-reply watch has begun
    hops = []
    original_call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        hops.append(self.func)
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)

    for number in range(1, 21):
        html = f"<p>{number}</p>"
        await frames.publish(conversation.pk, html, generation=frames.GENERATION_RUNNING)
        assert await communicator.receive_from() == html

    assert hops == []
    await communicator.disconnect()


async def test_a_reply_streamed_to_its_end_costs_its_sockets_no_query(
    async_owner_client, conversation, owner, fake_upstream, monkeypatch
):
    fake_upstream.reset(token_count=5, token_interval=0.01)
    heartbeat_reads = []
    original_read = consumers._seconds_until_stale
    monkeypatch.setattr(
        consumers,
        "_seconds_until_stale",
        lambda conversation_id: (
            heartbeat_reads.append(conversation_id) or original_read(conversation_id)
        ),
    )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()

    await send_message(async_owner_client, conversation, "hi")
    reply = await finished(await latest_reply(conversation))
    await frames_until_final(communicator, reply)
    await communicator.disconnect()

    assert reply.status == "complete"
    assert heartbeat_reads == [conversation.pk]  # one look on connect, none while streaming


async def test_a_socket_that_missed_a_replys_last_frame_is_sent_the_reply_as_stored(
    conversation, owner, monkeypatch
):
    monkeypatch.setattr(consumers, "LOOK_AFTER_QUIET_SECONDS", 0.2)
    await sync_to_async(MessageFactory)(conversation=conversation, content="Go on")
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="Half",
        heartbeat_at=timezone.now(),
    )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    assert "Half" in await communicator.receive_from()  # the state, on connect
    await frames.publish(conversation.pk, "<p>more</p>", generation=frames.GENERATION_RUNNING)
    assert await communicator.receive_from() == "<p>more</p>"

    # The generation stores the whole reply, but its last frame is lost on the way.
    await Message.objects.filter(pk=reply.pk).aupdate(status="complete", content="Half and all")

    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    assert "Half and all" in frame
    assert 'data-status="complete"' in frame


async def test_a_title_written_before_the_socket_connected_is_shown_on_connect(conversation, owner):
    await sync_to_async(MessageFactory)(conversation=conversation, role="assistant")
    # The page was rendered with the first words; the model named the conversation since.
    await Conversation.objects.filter(pk=conversation.pk).aupdate(title="Sourdough <b>basics</b>")

    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    frame = await communicator.receive_from()
    await communicator.disconnect()

    assert '<span id="chat-title" hx-swap-oob="innerHTML">Sourdough &lt;b&gt;basics' in frame
    assert f'id="conversation-{conversation.pk}-title" hx-swap-oob="innerHTML">Sourdough' in frame
