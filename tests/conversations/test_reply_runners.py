"""Replies whose process died are marked interrupted, their text kept (reply_runners.py).

The embedded single-process set-up marks every active reply at start-up; with several
processes, runners mark themselves alive and sweep the replies of runners that lapsed.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import generation, reply_runners, services
from conversations.models import Message, ReplyRunner
from conversations.upstream import failures
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import (
    HTMX,
    Page,
    communicator_for,
    finished,
    frames_until_final,
    frames_until_render,
    latest_reply,
    send_message,
)

NOON = datetime(2026, 6, 1, 12, tzinfo=UTC)
DEAD_RUNNER = "runner.dead!1"
LIVE_RUNNER = "runner.live!1"


def _reply(conversation, *, runner: str = DEAD_RUNNER, **fields) -> Message:
    defaults = {"role": "assistant", "status": "streaming", "content": "Half a tho"}
    return MessageFactory(conversation=conversation, runner=runner, **defaults | fields)


def _assert_interrupted_with_its_text(reply: Message) -> None:
    reply.refresh_from_db()
    assert (reply.status, reply.content, reply.error_code, reply.runner) == (
        "interrupted",
        "Half a tho",
        failures.INTERRUPTED,
        "",
    )
    assert "server stopped" in reply.error
    assert reply.completed_at is not None


@pytest.fixture
def shared_layer(monkeypatch):
    """As with several processes sharing a channel layer: runners mark themselves alive."""
    monkeypatch.setattr(reply_runners, "shared_layer", lambda: True)


# --- The embedded set-up: every active reply is orphaned at start-up ----------------------


def test_start_up_marks_every_active_reply_interrupted_with_its_text_kept(owner, capsys):
    orphan = _reply(ConversationFactory(owner=owner), runner="")
    waiting = _reply(ConversationFactory(owner=owner), status="pending", content="")

    call_command("interrupt_dead_replies")

    assert "marked interrupted in 2 conversations" in capsys.readouterr().out
    _assert_interrupted_with_its_text(orphan)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.content, waiting.runner) == ("interrupted", "", "")


def test_start_up_never_touches_finished_replies(conversation, capsys):
    for status in ("complete", "error", "interrupted", "stopped"):
        _reply(conversation, status=status, runner="")

    call_command("interrupt_dead_replies")

    assert "in 0 conversations" in capsys.readouterr().out
    statuses = Message.objects.order_by("pk").values_list("status", flat=True)
    assert list(statuses) == ["complete", "error", "interrupted", "stopped"]


def test_a_conversation_stuck_after_a_crash_takes_a_new_message_after_a_restart(conversation):
    dead = _reply(conversation)
    with pytest.raises(services.MessageRefused, match="still being written"):
        services.message_send(conversation=conversation, text="Still there?")

    call_command("interrupt_dead_replies")
    _user_message, reply = services.message_send(
        conversation=conversation, text="Still there?", runner=LIVE_RUNNER
    )

    _assert_interrupted_with_its_text(dead)
    assert (reply.status, reply.runner) == ("pending", LIVE_RUNNER)


def test_a_reply_marked_at_start_up_no_longer_counts_against_the_users_limit(owner, settings):
    settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER = 1
    dead, other = ConversationFactory(owner=owner), ConversationFactory(owner=owner)
    _reply(dead)
    with pytest.raises(services.MessageRefused, match="replies being written already"):
        services.message_send(conversation=other, text="Hello")

    call_command("interrupt_dead_replies")

    services.message_send(conversation=other, text="Hello")


# --- Several processes: runners that lapsed ----------------------------------------------


def test_a_live_runners_replies_are_left_alone(conversation):
    with time_machine.travel(NOON, tick=False):
        ReplyRunner.objects.create(channel=LIVE_RUNNER, seen_at=NOON - timedelta(seconds=2))
        live = _reply(conversation, runner=LIVE_RUNNER, status="pending", content="")

        assert reply_runners.replies_of_dead_runners_interrupt() == []

    live.refresh_from_db()
    assert (live.status, live.runner) == ("pending", LIVE_RUNNER)


def test_a_reply_whose_runner_lapsed_is_marked_interrupted_with_its_text_kept(conversation):
    with time_machine.travel(NOON, tick=False) as clock:
        ReplyRunner.objects.create(channel=DEAD_RUNNER, seen_at=NOON)
        dead = _reply(conversation)
        clock.shift(reply_runners.LAPSE - timedelta(milliseconds=1))
        assert reply_runners.replies_of_dead_runners_interrupt() == []

        clock.shift(timedelta(milliseconds=2))  # its runner was not seen for LAPSE
        assert reply_runners.replies_of_dead_runners_interrupt() == [conversation.pk]

    _assert_interrupted_with_its_text(dead)
    assert not ReplyRunner.objects.filter(channel=DEAD_RUNNER).exists()


def test_a_sweep_marks_only_the_replies_of_dead_runners(owner):
    with time_machine.travel(NOON, tick=False):
        ReplyRunner.objects.create(channel=LIVE_RUNNER, seen_at=NOON)
        ReplyRunner.objects.create(channel=DEAD_RUNNER, seen_at=NOON - timedelta(seconds=10))
        conversations = [ConversationFactory(owner=owner) for _ in range(4)]
        live = _reply(conversations[0], runner=LIVE_RUNNER)
        dead = _reply(conversations[1], runner=DEAD_RUNNER)
        never_seen = _reply(conversations[2], runner="runner.never-seen!1")
        finished_reply = _reply(conversations[3], status="complete")

        marked = reply_runners.replies_of_dead_runners_interrupt()

    assert marked == sorted([conversations[1].pk, conversations[2].pk])
    for reply in (dead, never_seen):
        _assert_interrupted_with_its_text(reply)
    live.refresh_from_db()
    finished_reply.refresh_from_db()
    assert (live.status, finished_reply.status) == ("streaming", "complete")
    # Only lapsed runners are forgotten (with a shared layer, this process's own is alive).
    kept = set(ReplyRunner.objects.values_list("channel", flat=True))
    assert LIVE_RUNNER in kept
    assert DEAD_RUNNER not in kept


def test_a_runner_never_takes_its_own_replies_for_dead(conversation):
    with time_machine.travel(NOON, tick=False):
        own = _reply(conversation, runner=LIVE_RUNNER)  # not marked alive yet

        assert reply_runners.replies_of_dead_runners_interrupt(LIVE_RUNNER) == []

    own.refresh_from_db()
    assert own.status == "streaming"


def test_start_up_with_a_shared_layer_leaves_the_replies_of_live_runners_alone(
    owner, shared_layer, capsys
):
    with time_machine.travel(NOON, tick=False):
        ReplyRunner.objects.create(channel=LIVE_RUNNER, seen_at=NOON)
        live = _reply(ConversationFactory(owner=owner), runner=LIVE_RUNNER)
        dead = _reply(ConversationFactory(owner=owner))

        call_command("interrupt_dead_replies")

    assert "marked interrupted in 1 conversation." in capsys.readouterr().out
    _assert_interrupted_with_its_text(dead)
    live.refresh_from_db()
    assert live.status == "streaming"


# --- Pages and Stop ----------------------------------------------------------------------


def test_opening_a_conversation_never_writes_even_with_a_dead_reply(owner_client, conversation):
    dead = _reply(conversation)

    with CaptureQueriesContext(connection) as queries:
        page = owner_client.get(conversation.get_absolute_url())

    assert page.status_code == 200
    writes = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
    dead.refresh_from_db()
    assert dead.status == "streaming"


def test_a_reply_marked_interrupted_shows_its_text_and_can_be_continued(owner_client, conversation):
    MessageFactory(conversation=conversation, role="user", content="Go on")
    dead = _reply(conversation)
    call_command("interrupt_dead_replies")

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    shown = Page(dead.dom_id)
    shown.load(page)
    assert (shown.status, shown.text.strip()) == ("interrupted", "Half a tho")
    assert "server stopped" in page
    assert "Continue" in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("several_processes", [False, True])
async def test_stop_on_a_reply_whose_runner_is_dead_marks_it_at_once_and_shows_it(
    async_owner_client, conversation, owner, monkeypatch, several_processes
):
    await sync_to_async(MessageFactory)(conversation=conversation, role="user", content="Go on")
    dead = await sync_to_async(_reply)(conversation)
    tab = communicator_for(conversation.pk, owner)
    await tab.connect()
    page = Page(dead.dom_id)
    for frame in await frames_until_render(tab, dead):
        page.apply(frame)
    assert page.status == "streaming"
    if several_processes:
        # Only now: the socket's runner does not sweep, so Stop is what marks the reply.
        monkeypatch.setattr(reply_runners, "shared_layer", lambda: True)
        await ReplyRunner.objects.acreate(
            channel=DEAD_RUNNER, seen_at=datetime.now(UTC) - timedelta(minutes=1)
        )

    stop = reverse("conversations:reply-stop", args=[conversation.pk])
    response = await async_owner_client.post(stop, headers=HTMX)
    for frame in await frames_until_final(tab, dead):
        page.apply(frame)
    await tab.disconnect()

    assert response.status_code == 204
    assert (page.status, page.text.strip()) == ("interrupted", "Half a tho")
    await sync_to_async(_assert_interrupted_with_its_text)(dead)


@pytest.mark.django_db(transaction=True)
async def test_stop_on_a_reply_of_a_live_runner_is_sent_to_that_runner(
    async_owner_client, conversation, shared_layer
):
    layer = get_channel_layer()
    runner = await layer.new_channel("runner.")
    await ReplyRunner.objects.acreate(channel=runner, seen_at=datetime.now(UTC))
    reply = await sync_to_async(_reply)(conversation, runner=runner)

    stop = reverse("conversations:reply-stop", args=[conversation.pk])
    await async_owner_client.post(stop, headers=HTMX)

    request = await asyncio.wait_for(layer.receive(runner), 5)
    assert request == {"type": reply_runners.STOP_REQUEST, "reply_id": reply.pk}
    await reply.arefresh_from_db()
    assert reply.status == "streaming"  # its runner stops it, and saves it as stopped


@pytest.mark.django_db(transaction=True)
async def test_a_connected_page_learns_when_the_reply_it_follows_dies(
    conversation, owner, monkeypatch
):
    # Alive while the page opens (with several processes this one's runner sweeps)...
    await ReplyRunner.objects.acreate(
        channel=DEAD_RUNNER, seen_at=datetime.now(UTC) + timedelta(minutes=1)
    )
    orphan = await sync_to_async(_reply)(conversation)
    tab = communicator_for(conversation.pk, owner)
    page = Page(orphan.dom_id)
    await tab.connect()
    for frame in await frames_until_render(tab, orphan):
        page.apply(frame)
    assert page.status == "streaming"
    # ...then dead.
    lapsed = datetime.now(UTC) - timedelta(minutes=1)
    await ReplyRunner.objects.filter(channel=DEAD_RUNNER).aupdate(seen_at=lapsed)

    # With several processes, this one's runner marks itself alive and sweeps while it has
    # sockets open (the socket connected before, so its database reads are over: the test
    # database takes one writer at a time).
    monkeypatch.setattr(reply_runners, "shared_layer", lambda: True)
    await reply_runners.this_runner()
    for frame in await frames_until_final(tab, orphan):
        page.apply(frame)
    await tab.disconnect()

    assert (page.status, page.text.strip()) == ("interrupted", "Half a tho")
    await sync_to_async(_assert_interrupted_with_its_text)(orphan)


@pytest.mark.django_db(transaction=True)
async def test_a_runner_marks_itself_alive_while_it_has_replies(monkeypatch, shared_layer):
    monkeypatch.setattr(reply_runners, "MARK_INTERVAL", 0.01)
    loop = asyncio.get_running_loop()
    marks: asyncio.Queue[str] = asyncio.Queue()
    mark = reply_runners._runner_mark

    def recorded(channel: str) -> None:
        mark(channel)
        loop.call_soon_threadsafe(marks.put_nowait, channel)

    monkeypatch.setattr(reply_runners, "_runner_mark", recorded)

    runner = await reply_runners.this_runner()  # marked before any reply names it
    assert await asyncio.wait_for(marks.get(), 5) == runner.channel
    runner.replies[1] = reply_runners.RunningReply()  # a reply waiting for the model
    for _ in range(3):  # and again, however long the reply waits, in a thread of its own
        assert await asyncio.wait_for(marks.get(), 5) == runner.channel
    runner.replies.clear()

    row = await ReplyRunner.objects.aget(channel=runner.channel)
    assert row.seen_at > datetime.now(UTC) - reply_runners.LAPSE


@pytest.mark.django_db(transaction=True)
async def test_an_idle_runner_is_marked_alive_again_before_a_new_reply_names_it(shared_layer):
    runner = await reply_runners.this_runner()
    # Idle (no replies, no sockets), it is not marked: its mark lapses, as after a quiet spell.
    lapsed = datetime.now(UTC) - 2 * reply_runners.LAPSE
    await ReplyRunner.objects.filter(channel=runner.channel).aupdate(seen_at=lapsed)

    assert await reply_runners.this_runner() is runner  # as a message is about to start a reply

    row = await ReplyRunner.objects.aget(channel=runner.channel)
    assert row.seen_at > datetime.now(UTC) - reply_runners.LAPSE


@pytest.mark.django_db(transaction=True)
async def test_a_servers_idle_runner_sweeps_with_no_page_open(
    conversation, monkeypatch, shared_layer
):
    # A server process with no reply and no page of its own (the others died) still marks
    # the replies of dead processes: none stays "being written" until a page opens.
    monkeypatch.setattr(reply_runners, "MARK_INTERVAL", 0.01)
    await ReplyRunner.objects.acreate(
        channel=DEAD_RUNNER, seen_at=datetime.now(UTC) - 2 * reply_runners.LAPSE
    )
    orphan = await sync_to_async(_reply)(conversation)
    shown: asyncio.Queue[dict] = asyncio.Queue()
    publish = reply_runners._publish_states

    async def recorded(states: dict) -> None:
        await publish(states)
        shown.put_nowait(states)

    monkeypatch.setattr(reply_runners, "_publish_states", recorded)

    runner = await reply_runners.runner_start()  # as serve does
    assert not runner.busy
    assert list(await asyncio.wait_for(shown.get(), 10)) == [conversation.pk]

    await sync_to_async(_assert_interrupted_with_its_text)(orphan)


# --- A run whose reply was marked dead meanwhile -----------------------------------------


@pytest.mark.skipif(
    reply_runners.shared_layer(),
    reason="with a shared layer this process marks its own runner alive, so it cannot play "
    "another process's sweep here; test_multiprocess.py covers that sweep across processes",
)
@pytest.mark.django_db(transaction=True)
async def test_a_run_taken_for_dead_stops_without_overwriting_the_reply(
    async_owner_client, conversation, owner, fake_upstream, settings
):
    settings.WEBCHAT_SAVE_INTERVAL = 0.05
    fake_upstream.reset(token_count=200, token_interval=0.02)
    watcher = communicator_for(conversation.pk, owner)
    await watcher.connect()
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    page = Page(reply.dom_id)
    while "word3" not in page.words:
        page.apply(await watcher.receive_from(timeout=10))

    # Another process's sweep, after this one looked dead (it marks nothing alive here).
    assert await sync_to_async(reply_runners.replies_of_dead_runners_interrupt)() == [
        conversation.pk
    ]
    swept = await Message.objects.aget(pk=reply.pk)
    reply = await finished(reply)
    for frame in await frames_until_final(watcher, reply):
        page.apply(frame)
    await watcher.disconnect()

    assert (reply.status, reply.content, reply.error) == ("interrupted", swept.content, swept.error)
    assert page.status == "interrupted"
    assert page.text.strip() == swept.content.strip()
    await asyncio.to_thread(fake_upstream.wait_idle)
    assert fake_upstream.requests[0].disconnected


@pytest.mark.django_db(transaction=True)
async def test_a_slow_progress_save_when_the_stream_ends_does_not_lose_the_reply(
    async_owner_client, conversation, fake_upstream, settings, monkeypatch, caplog
):
    """Under load, database work waits its turn: a progress save can still be waiting when
    the stream ends. The final save goes after it, and is not taken for a takeover."""
    settings.WEBCHAT_SAVE_INTERVAL = 0
    fake_upstream.reset(token_count=20, token_interval=0.01)
    queue_moves = asyncio.Event()
    store = generation.ReplyRun._store

    async def store_in_turn(self, fields: dict) -> bool:
        await queue_moves.wait()
        return await store(self, fields)

    monkeypatch.setattr(generation.ReplyRun, "_store", store_in_turn)
    await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await asyncio.to_thread(fake_upstream.wait_for_requests)
    await asyncio.to_thread(fake_upstream.wait_idle)  # the stream has ended
    queue_moves.set()
    reply = await finished(reply)

    assert reply.status == "complete"
    assert reply.content.split() == [f"word{n}" for n in range(20)]
    assert "marked interrupted while it was still being written" not in caplog.text


def test_a_dead_runners_replies_are_marked_within_5_seconds_of_its_last_mark():
    # A runner marks itself every MARK_INTERVAL, and every live one sweeps as often: its
    # replies are marked at most LAPSE after its last mark, plus one interval.
    bound = reply_runners.LAPSE.total_seconds() + 2 * reply_runners.MARK_INTERVAL
    assert bound <= 5.0
