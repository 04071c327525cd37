"""Which process runs each active reply, and what happens to replies whose process died.

Every server process that writes replies is a *runner*, known by a control channel of its
own on the channel layer. An active reply stores its runner's channel; Stop and a page's
request for the live state are sent there, so they reach the process that runs the reply,
whichever process the request came to.

With several processes (a shared channel layer), a runner marks itself alive
(``ReplyRunner.seen_at``) every ``MARK_INTERVAL`` while it has replies to run or pages to
keep true, and each server process (``serve``) sweeps once per interval, from its start and
idle or not, so that no reply of a dead process waits for a page to be opened: an active
reply whose runner has not been seen for ``LAPSE`` is marked interrupted, with the text
saved so far, and every tab of its conversation is shown so. A killed process's replies are
thus marked within ``LAPSE + MARK_INTERVAL`` seconds. With the embedded single-process
set-up nothing needs marking: start-up marks every active reply at once
(``replies_orphaned_interrupt``), as no other process can be running one. This module is
the only place that decides a reply is dead.
"""

import asyncio
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from weakref import WeakKeyDictionary

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from conversations import frames, services
from conversations.models import Message, ReplyRunner, UnstoredReply
from conversations.upstream import failures
from webchat.outages import REDIS_UNREACHABLE, channel_layer_outage, layer_call

logger = logging.getLogger(__name__)

MARK_INTERVAL = 0.5
LAPSE = timedelta(seconds=3.5)
LATE_SWEEP = 1.0
# While the channel layer cannot be listened to, the runner tries again this often.
RECEIVE_RETRY_INTERVAL = 1.0
# Messages on a runner's control channel.
STOP_REQUEST = "reply.stop"
SYNC_REQUEST = "reply.sync"


@dataclass(eq=False)
class Runner:
    """This process's runner, one per event loop."""

    channel: str
    # Replies this process runs, by id (an unstored API reply's is a string); each is told
    # of requests for it.
    replies: dict[int | str, "RunningReply"] = field(default_factory=dict)
    # Open sockets in this process, by user (socket_limits.py): while there are any, the
    # sweep keeps their pages true.
    sockets: Counter[int] = field(default_factory=Counter)
    tasks: list[asyncio.Task] = field(default_factory=list)
    # Whether a thread marks it alive (with several processes only).
    marking: bool = False
    # A server process's runner sweeps from its start, idle or not (runner_start).
    sweeps_idle: bool = False

    @property
    def busy(self) -> bool:
        return bool(self.replies or self.sockets)


class RunningReply:
    """What a reply's generation offers the runner (see generation.ReplyRun)."""

    def request_stop(self) -> None:
        raise NotImplementedError

    def request_sync(self, channel: str) -> None:
        raise NotImplementedError


_runners: WeakKeyDictionary[asyncio.AbstractEventLoop, Runner] = WeakKeyDictionary()
_starting: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()
# Liveness writes get a thread of their own, so a queue of other database work (a burst of
# sends) cannot delay them past LAPSE and make a live process look dead.
_marker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reply-runner")


def shared_layer() -> bool:
    """Whether several processes share the channel layer (and so may run replies)."""
    return settings.CHANNEL_LAYERS["default"]["BACKEND"] != (
        "webchat.channel_layers.LocalChannelLayer"
    )


async def this_runner() -> Runner:
    """This process's runner, started on first use: marked alive before any reply names it."""
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is None:
        async with _starting.setdefault(loop, asyncio.Lock()):
            if (runner := _runners.get(loop)) is None:
                runner = Runner(channel=await get_channel_layer().new_channel("runner."))
                _runners[loop] = runner
                # A loop in another thread is a sync caller's, closed at its end (Django's
                # test client): a receive left waiting on the Redis layer would keep it open.
                if threading.current_thread() is threading.main_thread():
                    runner.tasks.append(asyncio.create_task(_answer_requests(runner)))
    if shared_layer() and not runner.marking:
        runner.marking = True
        await loop.run_in_executor(_marker, _with_connection, _runner_mark, (runner.channel,))
        threading.Thread(
            target=_mark_and_sweep, args=(runner, loop), name="reply-runner", daemon=True
        ).start()
    elif shared_layer() and not runner.busy:
        # An idle runner is not marked, so its mark may have lapsed: renewed before a reply
        # names it, lest another process's sweep take that reply for dead.
        await loop.run_in_executor(_marker, _with_connection, _runner_mark, (runner.channel,))
    return runner


async def runner_start() -> Runner | None:
    """At a server process's start: its runner, which from then on sweeps for the replies
    of dead processes, idle or not. None if it cannot start now (the database unreachable,
    say): the process's first reply or page starts one then."""
    try:
        runner = await this_runner()
    except Exception:
        logger.exception("The reply runner could not start with the process")
        return None
    runner.sweeps_idle = True
    return runner


def _with_connection(function, args):
    close_old_connections()
    return function(*args)


def _runner_mark(channel: str) -> None:
    # One statement, the usual case: under load each round trip waits its turn for the GIL.
    if not ReplyRunner.objects.filter(channel=channel).update(seen_at=timezone.now()):
        ReplyRunner.objects.create(channel=channel, seen_at=timezone.now())


def _mark_and_sweep(runner: Runner, loop: asyncio.AbstractEventLoop) -> None:
    """Mark the runner alive and sweep for dead replies once per MARK_INTERVAL while it has
    replies or sockets; a server process's runner sweeps when idle too. A thread of its own:
    a busy event loop cannot make a live process look dead."""
    swept_at = time.monotonic()
    while not loop.is_closed():
        if runner.busy or runner.sweeps_idle:
            try:
                if runner.busy:
                    # This thread keeps its database connection (a pool's too) between
                    # rounds: waiting for one behind a burst of requests could make it miss
                    # its marks.
                    _runner_mark(runner.channel)
                # A sweep that comes late says this machine is overloaded: the other
                # processes may be as late to mark themselves, so none is judged this round.
                on_time = time.monotonic() - swept_at < MARK_INTERVAL + LATE_SWEEP
                swept_at = time.monotonic()
                if on_time and (marked := replies_of_dead_runners_interrupt(runner.channel)):
                    shown = {each: _latest_state_frames(each) for each in marked}
                    asyncio.run_coroutine_threadsafe(_publish_states(shown), loop)
            except RuntimeError:
                return  # the event loop closed meanwhile
            except Exception:
                logger.exception("The reply runner could not mark itself alive or sweep")
                connection.close()  # a fresh one next round
        time.sleep(MARK_INTERVAL)
    connection.close()


async def _publish_states(shown: dict[int, list[str]]) -> None:
    """Show every tab of these conversations their reply as now stored."""
    for conversation_id, state in shown.items():
        for html in state:
            await frames.publish(conversation_id, html)


def _latest_state_frames(conversation_id: int) -> list[str]:
    return frames.state_frames(services.latest_exchange(conversation_id=conversation_id))


def replies_of_dead_runners_interrupt(this_channel: str = "") -> list[int]:
    """Mark active replies whose runner lapsed interrupted; return their conversations."""
    dead = _replies_of_dead_runners()
    unstored = _replies_of_dead_runners(UnstoredReply)
    if this_channel:
        dead = dead.exclude(runner=this_channel)
        unstored = unstored.exclude(runner=this_channel)
    _unstored_interrupt(unstored)
    return _interrupt(dead)


def _replies_of_dead_runners(model=Message):
    alive = ReplyRunner.objects.filter(seen_at__gte=timezone.now() - LAPSE).values("channel")
    return model.objects.filter(status__in=Message.ACTIVE_STATUSES).exclude(runner__in=alive)


def replies_orphaned_interrupt() -> list[int]:
    """At the start of the only process: every active reply is one whose process died."""
    _unstored_interrupt(UnstoredReply.objects.filter(status__in=Message.ACTIVE_STATUSES))
    return _interrupt(Message.objects.filter(status__in=Message.ACTIVE_STATUSES))


def _unstored_interrupt(replies) -> None:
    """The API's unstored replies of a dead process stop holding their reservation."""
    replies.update(
        status=Message.Status.INTERRUPTED,
        error_code=failures.INTERRUPTED,
        completed_at=timezone.now(),
        runner="",
    )


def _interrupt(replies) -> list[int]:
    conversations = sorted(set(replies.values_list("conversation_id", flat=True)))
    if conversations:  # the usual case is answered by one read
        replies.filter(conversation_id__in=conversations).update(
            status=Message.Status.INTERRUPTED,
            error=failures.SERVER_STOPPED_MESSAGE,
            error_code=failures.INTERRUPTED,
            completed_at=timezone.now(),
            runner="",
        )
        ReplyRunner.objects.filter(seen_at__lt=timezone.now() - LAPSE).delete()
    return conversations


async def _answer_requests(runner: Runner) -> None:
    """Pass Stop and sync requests on to the replies this process runs."""
    layer = get_channel_layer()
    this_task = asyncio.current_task()
    while True:
        try:
            request = await layer.receive(runner.channel)
        except REDIS_UNREACHABLE as error:
            # A layer whose receive fails while Redis is down: listen again once it is back.
            channel_layer_outage.failed(error)
            await asyncio.sleep(RECEIVE_RETRY_INTERVAL)
            continue
        if this_task.cancelling():
            # The event loop is closing, and the layer's receive let the cancellation pass
            # (Redis): waiting again would wait forever, on a reader that is gone.
            return
        reply = runner.replies.get(request.get("reply_id"))
        if reply is None:
            continue  # it ended in the meantime; its last frame says so
        if request["type"] == STOP_REQUEST:
            reply.request_stop()
        elif request["type"] == SYNC_REQUEST:
            reply.request_sync(request["channel"])


async def reply_stop(reply: Message) -> bool:
    """Stop ``reply`` in whichever process runs it; a reply whose runner is dead is marked
    interrupted at once. False: its process could not be told (Redis is down)."""
    loop = asyncio.get_running_loop()
    runner = _runners.get(loop)
    if runner is not None and (running := runner.replies.get(reply.pk)) is not None:
        running.request_stop()  # this process writes it: no need for the channel layer
        return True
    if await _runner_alive(reply.runner):
        request = {"type": STOP_REQUEST, "reply_id": reply.pk}
        return await layer_call(get_channel_layer().send(reply.runner, request))
    shown = await loop.run_in_executor(_marker, _with_connection, _dead_reply_mark, (reply,))
    await _publish_states(shown)
    return True


def _dead_reply_mark(reply: Message) -> dict[int, list[str]]:
    _interrupt(_replies_of_dead_runners().filter(conversation_id=reply.conversation_id))
    return {reply.conversation_id: _latest_state_frames(reply.conversation_id)}


async def reply_sync(reply: Message, channel: str) -> None:
    """Ask the process running ``reply`` to send its whole live state to ``channel``."""
    if reply.runner:
        request = {"type": SYNC_REQUEST, "reply_id": reply.pk, "channel": channel}
        # Lost while Redis is down: the page asks again on its next gap.
        await layer_call(get_channel_layer().send(reply.runner, request))


async def _runner_alive(channel: str) -> bool:
    if not channel:
        return False
    runner = _runners.get(asyncio.get_running_loop())
    if runner is not None and runner.channel == channel:
        return True
    if not shared_layer():
        return False  # this is the only process
    cutoff = timezone.now() - LAPSE
    return await ReplyRunner.objects.filter(channel=channel, seen_at__gte=cutoff).aexists()
