import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from conversations import consumers, frames, reply_runners
from conversations.models import Conversation, Message, ReplyRunner
from tests.factories import MessageFactory
from tests.generation_helpers import (
    Page,
    communicator_for,
    finished,
    frames_until_final,
    frames_until_progress,
    frames_until_render,
    latest_reply,
    send_message,
)
from webchat.asgi import application

OTHER_RUNNER = "runner.x!1"

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(conversation_id: int, user) -> WebsocketCommunicator:
    return communicator_for(conversation_id, user)


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


async def test_it_sends_the_stored_reply_on_connect_then_asks_its_runner_for_the_live_state(
    conversation, owner
):
    layer = get_channel_layer()
    runner = await layer.new_channel("runner.")
    await _runner_alive(runner)
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="Partial *text*",
        runner=runner,
    )

    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    state = await frames_until_render(communicator, reply)
    request = await asyncio.wait_for(layer.receive(runner), 5)
    await communicator.disconnect()

    page = Page(reply.dom_id)
    for frame in state:
        page.apply(frame)
    assert (page.status, page.text.strip()) == ("streaming", "Partial text")
    assert "<em>text</em>" in page.blocks_html + page.open_html
    assert request["type"] == reply_runners.SYNC_REQUEST
    assert request["reply_id"] == reply.pk
    assert request["channel"]  # the socket's own channel


@pytest.fixture
def sync_requests(monkeypatch) -> asyncio.Queue[tuple[int, str]]:
    """The requests for a reply's live state the consumer makes: (reply, channel)."""
    requests: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

    async def recorded(reply: Message, channel: str) -> None:
        requests.put_nowait((reply.pk, channel))

    monkeypatch.setattr(reply_runners, "reply_sync", recorded)
    return requests


async def _runner_alive(channel: str) -> None:
    """Another process's runner, alive for as long as the test runs (with several processes,
    this one's runner would otherwise sweep its replies as dead)."""
    alive = datetime.now(UTC) + timedelta(hours=1)
    await ReplyRunner.objects.aupdate_or_create(channel=channel, defaults={"seen_at": alive})


async def _streaming_reply(conversation) -> Message:
    await _runner_alive(OTHER_RUNNER)
    return await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="streaming", runner=OTHER_RUNNER
    )


class _Clock:
    """The consumer's clock, moved by hand; each reading is queued, so a test knows a
    request was read though nothing answers it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.readings: asyncio.Queue[float] = asyncio.Queue()

    def get_running_loop(self):
        return self

    def time(self) -> float:
        self.readings.put_nowait(self.now)
        return self.now

    def __getattr__(self, name: str):
        return getattr(asyncio, name)  # the rest of asyncio, as it is


async def test_a_page_that_missed_a_frame_asks_again_at_most_once_a_second(
    conversation, owner, monkeypatch, sync_requests
):
    clock = _Clock()
    monkeypatch.setattr(consumers, "asyncio", clock)
    reply = await _streaming_reply(conversation)
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    await frames_until_render(communicator, reply)  # the stored state
    on_connect = await asyncio.wait_for(sync_requests.get(), 5)

    await communicator.send_to(text_data=json.dumps({"sync": True}))
    assert await asyncio.wait_for(sync_requests.get(), 5) == on_connect
    for text in ("not json", "[]", json.dumps({"sync": 1}), json.dumps({"sync": True})):
        await communicator.send_to(text_data=text)
    await asyncio.wait_for(clock.readings.get(), 5)  # the first request
    await asyncio.wait_for(clock.readings.get(), 5)  # the last one, too soon: dropped
    clock.now += consumers.SYNC_REQUEST_INTERVAL
    await communicator.send_to(text_data=json.dumps({"sync": True}))
    assert await asyncio.wait_for(sync_requests.get(), 5) == on_connect
    await communicator.disconnect()

    assert on_connect[0] == reply.pk
    assert sync_requests.empty()
    assert clock.readings.qsize() == 1


async def test_asking_for_the_live_state_of_a_finished_reply_asks_no_runner(
    conversation, owner, monkeypatch, sync_requests
):
    looked_up: asyncio.Queue[Message | None] = asyncio.Queue()
    active_reply = consumers._active_reply

    async def recorded(conversation):
        looked_up.put_nowait(reply := await active_reply(conversation))
        return reply

    monkeypatch.setattr(consumers, "_active_reply", recorded)
    reply = await _streaming_reply(conversation)
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    await frames_until_render(communicator, reply)
    await asyncio.wait_for(sync_requests.get(), 5)  # on connect

    # It ended meanwhile: its last frame, on its way, says so.
    await Message.objects.filter(pk=reply.pk).aupdate(status="complete", runner="")
    await communicator.send_to(text_data=json.dumps({"sync": True}))
    assert await asyncio.wait_for(looked_up.get(), 5) is None
    await communicator.disconnect()

    assert sync_requests.empty()


async def test_a_finished_reply_is_sent_as_stored_and_no_runner_is_asked(
    conversation, owner, sync_requests
):
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="complete", content="All **done**"
    )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    page = Page(reply.dom_id)
    for frame in await frames_until_render(communicator, reply):
        page.apply(frame)
    # Frames are relayed once the connection is set up: this one comes after it.
    await frames.publish(conversation.pk, "<p>after</p>")
    assert await communicator.receive_from() == "<p>after</p>"
    await communicator.disconnect()

    assert (page.status, page.text.strip()) == ("complete", "All done")
    assert "<strong>done</strong>" in page.blocks_html
    assert sync_requests.empty()


async def test_it_checks_the_session_cookie_through_the_real_stack(conversation, owner):
    client = Client()
    await sync_to_async(client.force_login)(owner)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    path = f"/ws/conversations/{conversation.pk}/"
    page = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
    communicator = WebsocketCommunicator(application, path, [*page, (b"cookie", cookie.encode())])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()

    stranger = WebsocketCommunicator(application, path, headers=page)
    connected, _ = await stranger.connect()
    assert not connected


async def test_a_streamed_reply_reaches_the_socket_as_progress_then_a_final_render(
    async_owner_client, conversation, owner, fake_upstream
):
    # Held after its first token, so that the reply is seen while it is being written.
    fake_upstream.reset(reply="Streaming *works* fine", token_count=3, hold_after=1)
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()

    await send_message(async_owner_client, conversation, "hi")
    reply = await latest_reply(conversation)
    received = await frames_until_progress(communicator, reply)
    fake_upstream.release()
    received += await frames_until_final(communicator, reply)
    reply = await finished(reply)
    await communicator.disconnect()

    assert 'data-status="complete"' in received[-1]
    assert "<em>works</em>" in received[-1]
    page = Page(reply.dom_id)
    for frame in received:
        page.apply(frame)
    assert (page.status, page.text.strip()) == ("complete", "Streaming works fine")


async def test_relaying_frames_costs_no_thread_hop(conversation, owner, monkeypatch):
    reply = await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="complete", content="Done"
    )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()
    await frames_until_render(communicator, reply)  # the state on connect
    hops = []
    original_call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        hops.append(self.func)
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)

    for number in range(20):
        html = f"<p>{number}</p>"
        await frames.publish(conversation.pk, html)
        assert await communicator.receive_from() == html

    assert hops == []
    await communicator.disconnect()


async def test_a_reply_streamed_to_its_end_costs_its_sockets_no_query(
    async_owner_client, conversation, owner, fake_upstream, monkeypatch
):
    fake_upstream.reset(token_count=5, token_interval=0.01)
    reads = []
    for name in ("_owned_conversation", "_stored_state", "_active_reply"):
        original = getattr(consumers, name)
        monkeypatch.setattr(
            consumers,
            name,
            lambda *args, name=name, original=original: reads.append(name) or original(*args),
        )
    communicator = _communicator(conversation.pk, owner)
    await communicator.connect()

    await send_message(async_owner_client, conversation, "hi")
    reply = await finished(await latest_reply(conversation))
    await frames_until_final(communicator, reply)
    await communicator.disconnect()

    assert reply.status == "complete"
    assert reads == ["_owned_conversation", "_stored_state"]  # on connect, none while streaming


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
