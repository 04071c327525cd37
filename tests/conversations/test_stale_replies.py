"""A reply left streaming by a generation that died is marked interrupted, text kept."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from conversations import generation, services
from conversations.models import Message
from conversations.upstream import failures
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import (
    communicator_for,
    finished,
    frames_until_final,
    latest_reply,
    send_message,
)


def _reply(conversation, *, heartbeat_age: float | None, **fields) -> Message:
    heartbeat = None if heartbeat_age is None else timezone.now() - timedelta(seconds=heartbeat_age)
    defaults = {"role": "assistant", "status": "streaming", "content": "Half a tho"}
    return MessageFactory(conversation=conversation, heartbeat_at=heartbeat, **defaults | fields)


@pytest.fixture
def stale_after_a_minute(settings):
    settings.WEBCHAT_STALE_REPLY_SECONDS = 60


def test_a_reply_with_a_stale_heartbeat_is_interrupted_with_its_text_kept(
    conversation, stale_after_a_minute
):
    dead = _reply(conversation, heartbeat_age=61)

    assert services.stale_replies_interrupt() == 1

    dead.refresh_from_db()
    assert (dead.status, dead.content, dead.error_code) == (
        "interrupted",
        "Half a tho",
        failures.INTERRUPTED,
    )
    assert "server stopped" in dead.error
    assert dead.completed_at is not None


def test_a_live_reply_of_another_process_is_left_alone(conversation, stale_after_a_minute):
    live = _reply(conversation, heartbeat_age=5, status="pending", content="")

    assert services.stale_replies_interrupt() == 0

    live.refresh_from_db()
    assert live.status == "pending"


def test_a_reply_that_never_had_a_heartbeat_goes_by_its_age(conversation, stale_after_a_minute):
    old = _reply(conversation, heartbeat_age=None)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    assert services.stale_replies_interrupt() == 1


def test_finished_replies_are_never_touched(conversation, stale_after_a_minute):
    for status in ("complete", "error", "interrupted"):
        _reply(conversation, heartbeat_age=3600, status=status)

    assert services.stale_replies_interrupt() == 0


def test_it_can_be_limited_to_one_conversation(owner, stale_after_a_minute):
    mine, other = ConversationFactory(owner=owner), ConversationFactory(owner=owner)
    _reply(mine, heartbeat_age=61)
    _reply(other, heartbeat_age=61)

    assert services.stale_replies_interrupt(conversation=mine) == 1
    assert Message.objects.get(conversation=other).status == "streaming"


def test_a_conversation_stuck_after_a_crash_takes_a_new_message(conversation, stale_after_a_minute):
    dead = _reply(conversation, heartbeat_age=61)

    _user_message, reply = services.message_send(conversation=conversation, text="Still there?")

    dead.refresh_from_db()
    assert dead.status == "interrupted"
    assert reply.status == "pending"
    assert reply.heartbeat_at is not None


def test_the_start_up_command_marks_dead_replies_interrupted(
    conversation, stale_after_a_minute, capsys
):
    _reply(conversation, heartbeat_age=61)
    _reply(ConversationFactory(), heartbeat_age=1)

    call_command("interrupt_stale_replies")

    assert "1 stale reply marked interrupted" in capsys.readouterr().out
    assert Message.objects.filter(status="interrupted").count() == 1


def test_opening_a_conversation_shows_a_dead_reply_as_interrupted(
    owner_client, conversation, stale_after_a_minute
):
    dead = _reply(conversation, heartbeat_age=61)

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    dead.refresh_from_db()
    assert dead.status == "interrupted"
    assert 'data-status="interrupted"' in page
    assert "Half a tho" in page
    assert "server stopped" in page
    assert "Continue" in page


@pytest.mark.django_db(transaction=True)
async def test_a_socket_connecting_to_a_dead_reply_shows_it_interrupted(
    conversation, owner, stale_after_a_minute
):
    dead = await sync_to_async(_reply)(conversation, heartbeat_age=61)
    communicator = communicator_for(conversation.pk, owner)

    await communicator.connect()
    frame = await communicator.receive_from()
    await communicator.disconnect()

    assert f'<article id="{dead.dom_id}"' in frame
    assert 'data-status="interrupted"' in frame
    await dead.arefresh_from_db()
    assert dead.status == "interrupted"


@pytest.mark.django_db(transaction=True)
async def test_a_connected_page_learns_when_the_reply_it_follows_dies(
    conversation, owner, settings
):
    settings.WEBCHAT_STALE_REPLY_SECONDS = 0.5
    orphan = await sync_to_async(_reply)(conversation, heartbeat_age=0)
    communicator = communicator_for(conversation.pk, owner)
    await communicator.connect()
    state = await communicator.receive_from()
    assert 'data-status="streaming"' in state

    # Nothing refreshes the heartbeat: the generation is gone (its process was killed).
    frame = await communicator.receive_from(timeout=3)
    await communicator.disconnect()

    assert f'<article id="{orphan.dom_id}"' in frame
    assert 'data-status="interrupted"' in frame
    assert "Half a tho" in frame


@pytest.mark.django_db(transaction=True)
async def test_a_generation_taken_for_dead_stops_without_overwriting_the_reply(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_SAVE_INTERVAL = 0.05
    fake_upstream.reset(token_count=200, token_interval=0.02)
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    watcher = communicator_for(conversation.pk, owner)
    await watcher.connect()
    while "word3" not in reply.content:
        await asyncio.sleep(0.02)
        await reply.arefresh_from_db()

    # Another process's sweep, after this one stalled longer than the bound.
    settings.WEBCHAT_STALE_REPLY_SECONDS = 0
    assert await sync_to_async(services.stale_replies_interrupt)() == 1
    swept = await Message.objects.aget(pk=reply.pk)
    reply = await finished(reply)
    final = (await frames_until_final(watcher, reply))[-1]
    await watcher.disconnect()

    assert (reply.status, reply.content, reply.error) == (
        "interrupted",
        swept.content,
        swept.error,
    )
    assert 'data-status="interrupted"' in final
    fake_upstream.wait_idle()
    assert fake_upstream.requests[0].disconnected


@pytest.mark.django_db(transaction=True)
async def test_a_progress_save_still_queued_when_the_stream_ends_does_not_lose_the_reply(
    async_owner_client, conversation, fake_upstream, settings, monkeypatch, caplog
):
    """Under load, database work waits its turn: the last progress save can still be queued
    when the stream ends. The final write goes after it, not refused as if the reply had
    been taken over (which left it streaming until marked interrupted)."""
    settings.WEBCHAT_SAVE_INTERVAL = 0.05
    monkeypatch.setattr(generation, "BACKGROUND_STOP_SECONDS", 0.01)
    fake_upstream.reset(token_count=20, token_interval=0.01)
    queue_moves = asyncio.Event()
    store = generation.ReplyGeneration._store

    async def store_in_turn(self, fields: dict) -> bool:
        await queue_moves.wait()  # waiters resume in the order they came
        return await store(self, fields)

    monkeypatch.setattr(generation.ReplyGeneration, "_store", store_in_turn)
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await sync_to_async(fake_upstream.wait_for_requests, thread_sensitive=False)()
    await sync_to_async(fake_upstream.wait_idle, thread_sensitive=False)()
    await asyncio.sleep(0.1)  # past BACKGROUND_STOP_SECONDS, once the stream has ended
    queue_moves.set()
    reply = await finished(reply)

    assert reply.status == "complete"
    assert reply.content.split() == [f"word{n}" for n in range(20)]
    assert "taken over" not in caplog.text
