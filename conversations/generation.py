"""Generating a reply: stream it from the upstream, relay it live, save it in batches.

A generation runs as an asyncio task in the process that accepted the message. It
publishes HTML frames to the conversation's Channels group: the first text the moment
it arrives, then coalesced deltas (only the new text) every ``WEBCHAT_FRAME_INTERVAL``,
a full Markdown re-render every ``WEBCHAT_RENDER_INTERVAL``, and a final render at the
end. Progress and a heartbeat are written to the database every ``WEBCHAT_SAVE_INTERVAL``
(each of these intervals grows when many replies stream at once; see ``load_factor``),
never per token. Frames carry text offsets so a page can tell which text it already has.

When the upstream fails, ``failures.failure_for`` decides: wait and try again (a rate
limit, or a server error before any text), or stop and store the reply with what arrived
and a message for the user. A process sends at most ``WEBCHAT_MAX_UPSTREAM_PER_PROCESS``
requests at once; replies beyond that wait for a slot, and say so.
"""

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from weakref import WeakKeyDictionary

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone, translation

from conversations import conversation_settings, frames, services, titles
from conversations.models import Message
from conversations.upstream import failures
from conversations.upstream.client import (
    ChatRequest,
    ContentDelta,
    Finished,
    ReasoningDelta,
    StreamEvent,
    UpstreamError,
    Usage,
    UsageReport,
    get_client,
)
from conversations.upstream.failures import Failure, RetryPolicy, StreamStalled

logger = logging.getLogger(__name__)

# How long a finished generation waits for its publisher and listener to stop.
BACKGROUND_STOP_SECONDS = 2.0
# Under load, frames come at most this many times less often than WEBCHAT_FRAME_INTERVAL.
MAX_SLOWDOWN = 5.0
# Messages on a generation's control group: a socket joined, a user pressed Stop, and
# the generation's own signal to its listener that it is over.
SYNC_REQUEST = "generation.sync"
STOP_REQUEST = "generation.stop"
STOP_LISTENING = "generation.listener.stop"

# Strong references to running generations: asyncio keeps only weak ones.
_running: dict[int, asyncio.Task] = {}
_upstream_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    WeakKeyDictionary()
)


def start_generation(reply: Message, *, exchange: list[Message] | None = None) -> asyncio.Task:
    """Start generating ``reply`` in the background and return at once.

    ``exchange`` is the new question and ``reply`` when the caller has just made them;
    other tabs are then shown these instead of the exchange read again from the database.
    """
    # A fresh context: the request's context sends database work to the request's own
    # thread, which Django's handler ends with the response, long before the reply is
    # done. It keeps the request's language, for the bubble.
    context = contextvars.Context()
    context.run(translation.activate, translation.get_language())
    task = asyncio.get_running_loop().create_task(
        ReplyGeneration(reply, exchange=exchange).run(), context=context
    )
    _running[reply.pk] = task
    task.add_done_callback(lambda _task: _running.pop(reply.pk, None))
    return task


def running_generation(reply_id: int) -> asyncio.Task | None:
    return _running.get(reply_id)


def load_factor() -> float:
    """How many times its frame budget this process's streaming replies would use, at
    least 1: with many replies at once, each sends frames (and renders) less often, so the
    cost of relaying stays bounded while every reply still moves several times a second."""
    wanted = len(_running) / (settings.WEBCHAT_FRAME_BUDGET * settings.WEBCHAT_FRAME_INTERVAL)
    return min(max(wanted, 1.0), MAX_SLOWDOWN)


def save_interval() -> float:
    """WEBCHAT_SAVE_INTERVAL, longer under load like frames, but never past a third of
    WEBCHAT_STALE_REPLY_SECONDS, so the heartbeat stays fresh."""
    slowed = settings.WEBCHAT_SAVE_INTERVAL * load_factor()
    return min(slowed, settings.WEBCHAT_STALE_REPLY_SECONDS / 3)


def control_group_name(conversation_id: int) -> str:
    """The group a running generation listens on for requests from sockets."""
    return f"conversation_{conversation_id}_generation"


async def stop_generation(reply: Message) -> None:
    """Ask the generation of ``reply`` to stop, in whichever process it runs."""
    await get_channel_layer().group_send(
        control_group_name(reply.conversation_id), {"type": STOP_REQUEST, "reply_id": reply.pk}
    )


def upstream_slots() -> asyncio.Semaphore:
    """This process's (this event loop's) cap on concurrent upstream requests."""
    loop = asyncio.get_running_loop()
    slots = _upstream_slots.get(loop)
    if slots is None:
        slots = asyncio.Semaphore(settings.WEBCHAT_MAX_UPSTREAM_PER_PROCESS)
        _upstream_slots[loop] = slots
    return slots


def _retry_policy() -> RetryPolicy:
    return RetryPolicy(
        rate_limit_retries=settings.WEBCHAT_RATE_LIMIT_MAX_RETRIES,
        server_error_retries=settings.WEBCHAT_SERVER_ERROR_RETRIES,
        max_wait=settings.WEBCHAT_RATE_LIMIT_MAX_WAIT,
        base_delay=settings.WEBCHAT_RETRY_BASE_DELAY,
    )


def _stored_usage(reply: Message) -> Usage:
    return Usage(
        prompt_tokens=reply.prompt_tokens or 0,
        completion_tokens=reply.completion_tokens or 0,
        total_tokens=reply.total_tokens or 0,
        cached_tokens=reply.cached_tokens or 0,
        reasoning_tokens=reply.reasoning_tokens or 0,
        image_tokens=reply.image_tokens or 0,
    )


def _upstream_request(reply: Message) -> ChatRequest:
    """The request generating ``reply``: its history and its conversation's settings, read
    in one worker-thread call."""
    messages = services.history_for_reply(reply)
    return conversation_settings.chat_request(reply=reply, messages=messages)


class GenerationFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class ReplyGeneration:
    def __init__(self, reply: Message, *, exchange: list[Message] | None = None) -> None:
        self.reply = reply
        self.exchange = exchange
        self.layer = get_channel_layer()
        # Continuing a reply appends to the text it has; offsets go on from its end.
        self.content: list[str] = [reply.content] if reply.content else []
        self.reasoning: list[str] = [reply.reasoning] if reply.reasoning else []
        self.content_length = len(reply.content)
        self.reasoning_length = len(reply.reasoning)
        self.lengths_at_start = (self.content_length, self.reasoning_length)
        self.sent_content_length = self.content_length
        self.sent_reasoning_length = self.reasoning_length
        self.saved_lengths = self.lengths_at_start
        self.usage_before = _stored_usage(reply)
        # The heartbeat this generation stored last; see _store.
        self.heartbeat_at = reply.heartbeat_at
        self.owns_reply = True
        self.changed = asyncio.Event()
        self.finished = False
        self.control_channel = ""
        self.stop_saving = asyncio.Event()
        self.started_at = 0.0
        self.task: asyncio.Task | None = None
        self.generating: asyncio.Task | None = None
        self.stopped_by_user = False
        reply.is_branch_end = True

    async def run(self) -> None:
        self.task = asyncio.current_task()
        self.started_at = time.monotonic()
        publisher = asyncio.create_task(self._publish_frames())
        saver = asyncio.create_task(self._save_progress_periodically())
        listener = asyncio.create_task(self._answer_sync_requests())
        try:
            await self._announce()
            self.generating = asyncio.create_task(self._generate())
            if self.stopped_by_user:  # before the request was even sent
                self.generating.cancel()
            try:
                await self.generating
                self.reply.status = Message.Status.COMPLETE
            except asyncio.CancelledError:
                if not self.stopped_by_user or self.task.cancelling():
                    raise
                self.reply.status = Message.Status.STOPPED
        except GenerationFailed as failed:
            self._log_failure(failed)
            self._fail(failed.failure)
        except asyncio.CancelledError:
            if self.owns_reply:
                self._fail(Failure(failures.INTERRUPTED, failures.INTERRUPTED_MESSAGE))
                raise
            self.task.uncancel()  # cancelled by _give_up_reply, not by anyone else
        except Exception:
            logger.exception("Generating reply %s failed", self.reply.pk)
            self._fail(Failure(failures.INTERNAL, failures.INTERNAL_MESSAGE))
        finally:
            # The publisher stops at the flag, not by cancellation: a cancellation that
            # lands inside the channel layer's send can be swallowed there.
            self.finished = True
            self.changed.set()
            # The saver, too, stops at a flag, and is waited for to the end: its last write
            # may still be queued behind other database work, and it sets the heartbeat
            # that _finish's write checks. Cancelled, or left behind, it would run after
            # that check, and _finish would take the reply for taken over.
            self.stop_saving.set()
            await asyncio.wait([saver])
            await self._stop_answering_sync_requests(listener)
            _done, stuck = await asyncio.wait(
                [publisher, listener], timeout=BACKGROUND_STOP_SECONDS
            )
            if stuck:
                logger.warning(
                    "Reply %s: %d helper task(s) did not stop", self.reply.pk, len(stuck)
                )
            # The listener may wait for a message that never comes: when its event loop
            # closes, the Redis layer's reader is cancelled too, and the listener can have
            # missed its own cancellation (under Python 3.11, asyncio.wait_for around
            # redis-py's socket write returns normally if the write completes as the
            # cancellation comes). The loop would then wait for it forever.
            listener.cancel()
            await asyncio.shield(self._finish())

    async def _announce(self) -> None:
        """Show the exchange in every open tab, and this reply as waiting for the model."""
        exchange = self.exchange
        if exchange is None:
            exchange = await sync_to_async(services.latest_exchange)(
                conversation_id=self.reply.conversation_id
            )
            for message in exchange:
                if message.pk == self.reply.pk:
                    self.reply.versions = message.versions
        await self._send(frames.exchange_frame(exchange) + frames.message_frame(self.reply))

    def _stop(self) -> None:
        """Stop at the user's request: the upstream request is cancelled (its connection
        closed) and the reply keeps what arrived."""
        self.stopped_by_user = True
        if self.generating is not None:
            self.generating.cancel()

    async def _generate(self) -> None:
        request = await sync_to_async(_upstream_request)(self.reply)
        policy = _retry_policy()
        retries: Counter[str] = Counter()
        while True:
            try:
                async with self._upstream_slot():
                    await self._stream(request)
                return
            except (UpstreamError, StreamStalled) as error:
                failure = failures.failure_for(
                    error, text_arrived=self._text_arrived(), retries=retries, policy=policy
                )
                if failure.retry_in is None:
                    raise GenerationFailed(failure) from error
                retries[failure.code] += 1
                logger.warning(
                    "Reply %s: %s Retrying in %.1f s.", self.reply.pk, error, failure.retry_in
                )
                await self._wait_to_retry(failure)

    @contextlib.asynccontextmanager
    async def _upstream_slot(self) -> AsyncIterator[None]:
        slots = upstream_slots()
        queued = slots.locked()
        if queued:
            await self._show_notice(failures.WAITING_FOR_SLOT)
        async with slots:
            if queued:
                await self._show_notice("")
            yield

    async def _stream(self, request: ChatRequest) -> None:
        """Stream one attempt; once text flows, a pause of WEBCHAT_STALL_TIMEOUT ends it."""
        stall_timeout = settings.WEBCHAT_STALL_TIMEOUT
        # The watchdog is moved on a few times per timeout, not with every chunk; a pause
        # is called a stall after between 1 and 1.1 times the timeout.
        step = stall_timeout / 10
        loop = asyncio.get_running_loop()
        watchdog = asyncio.timeout(None)
        try:
            async with (
                watchdog,
                contextlib.aclosing(get_client().stream_chat(request)) as events,
            ):
                rescheduled_at = -math.inf
                async for event in events:
                    self._apply(event)
                    now = loop.time()
                    if now - rescheduled_at >= step and self._text_arrived():
                        watchdog.reschedule(now + stall_timeout + step)
                        rescheduled_at = now
        except TimeoutError:
            if watchdog.expired():
                raise StreamStalled(stall_timeout) from None
            raise

    def _apply(self, event: StreamEvent) -> None:
        if isinstance(event, ContentDelta):
            self._note_first_token()
            self.content.append(event.text)
            self.content_length += len(event.text)
            self.changed.set()
        elif isinstance(event, ReasoningDelta):
            self._note_first_token()
            self.reasoning.append(event.text)
            self.reasoning_length += len(event.text)
            self.changed.set()
        elif isinstance(event, Finished):
            self.reply.finish_reason = event.reason
        elif isinstance(event, UsageReport):
            self._record_usage(event.usage)

    def _text_arrived(self) -> bool:
        """Whether this generation has received any text (not counting continued text)."""
        return (self.content_length, self.reasoning_length) != self.lengths_at_start

    def _note_first_token(self) -> None:
        if self.reply.time_to_first_token_ms is None:
            elapsed = time.monotonic() - self.started_at
            self.reply.time_to_first_token_ms = round(elapsed * 1000)
            self.reply.status = Message.Status.STREAMING

    def _record_usage(self, usage: Usage) -> None:
        total = self.usage_before + usage
        self.reply.prompt_tokens = total.prompt_tokens
        self.reply.completion_tokens = total.completion_tokens
        self.reply.total_tokens = total.total_tokens
        self.reply.cached_tokens = total.cached_tokens
        self.reply.reasoning_tokens = total.reasoning_tokens
        self.reply.image_tokens = total.image_tokens

    async def _wait_to_retry(self, failure: Failure) -> None:
        """Wait ``failure.retry_in`` seconds, counting down in the reply bubble."""
        if not failure.retry_in:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + failure.retry_in
        while (left := deadline - loop.time()) > 0:
            await self._show_notice(failures.retry_notice(failure.code, left))
            # Wake when the whole number of seconds shown changes.
            await asyncio.sleep(left - (math.ceil(left) - 1))
        await self._show_notice("")

    async def _show_notice(self, notice: str) -> None:
        self.reply.notice = notice
        await self._send_full_render()

    def _fail(self, failure: Failure) -> None:
        has_text = self.content_length or self.reasoning_length
        self.reply.status = Message.Status.INTERRUPTED if has_text else Message.Status.ERROR
        self.reply.error = failure.message
        self.reply.error_code = failure.code

    def _log_failure(self, failed: GenerationFailed) -> None:
        failure, cause = failed.failure, failed.__cause__
        status = getattr(cause, "status_code", None)
        if failure.alert_admin:
            # The message is scrubbed of the API key by the upstream client.
            logger.error(
                "The upstream refused reply %s with HTTP %s (%s): %s "
                "Check WEBCHAT_API_KEY and the account's credit.",
                self.reply.pk,
                status,
                failure.code,
                cause,
            )
        else:
            logger.warning("Reply %s failed (%s): %s", self.reply.pk, failure.code, cause)

    def _sync_text(self) -> None:
        """Copy the text received so far onto the in-memory reply."""
        if len(self.content) > 1:
            self.content[:] = ["".join(self.content)]
        if len(self.reasoning) > 1:
            self.reasoning[:] = ["".join(self.reasoning)]
        self.reply.content = self.content[0] if self.content else ""
        self.reply.reasoning = self.reasoning[0] if self.reasoning else ""

    async def _send(self, html: str, *, generation: str = frames.GENERATION_RUNNING) -> None:
        await frames.publish(self.reply.conversation_id, html, generation=generation)

    async def _publish_frames(self) -> None:
        last_render = None
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.finished:
                return
            now = time.monotonic()
            if last_render is None:
                # The first text goes out as a delta: cheapest, and soonest on screen.
                await self._send_delta()
                last_render = now
            elif now - last_render >= settings.WEBCHAT_RENDER_INTERVAL * load_factor():
                await self._send_full_render()
                last_render = now
            else:
                await self._send_delta()
            await asyncio.sleep(settings.WEBCHAT_FRAME_INTERVAL * load_factor())

    async def _send_delta(self) -> None:
        self._sync_text()
        content, reasoning = self.reply.content, self.reply.reasoning
        html = frames.delta_frame(
            self.reply,
            content_start=self.sent_content_length,
            content=content[self.sent_content_length :],
            reasoning_start=self.sent_reasoning_length,
            reasoning=reasoning[self.sent_reasoning_length :],
        )
        self.sent_content_length = len(content)
        self.sent_reasoning_length = len(reasoning)
        if html:  # empty when a full render went out since the text last changed
            await self._send(html)

    async def _send_full_render(self) -> None:
        self._sync_text()
        self.sent_content_length = len(self.reply.content)
        self.sent_reasoning_length = len(self.reply.reasoning)
        await self._send(frames.message_frame(self.reply))

    async def _save_progress_periodically(self) -> None:
        """Store the text so far (when it grew) and a fresh heartbeat, until done."""
        while self.owns_reply:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_saving.wait(), save_interval())
            if self.stop_saving.is_set():
                return
            self._sync_text()
            lengths = (self.content_length, self.reasoning_length)
            fields: dict = {
                "status": self.reply.status,
                "time_to_first_token_ms": self.reply.time_to_first_token_ms,
            }
            if lengths != self.saved_lengths:
                fields.update(content=self.reply.content, reasoning=self.reply.reasoning)
            if await self._store(fields):
                self.saved_lengths = lengths
            else:
                self._give_up_reply()

    async def _store(self, fields: dict) -> bool:
        """Write ``fields`` and a new heartbeat, unless the reply was taken over: marked
        interrupted as stale, and maybe continued since (with a heartbeat of its own)."""
        heartbeat_at = timezone.now()
        stored = await Message.objects.filter(
            pk=self.reply.pk, heartbeat_at=self.heartbeat_at, status__in=Message.ACTIVE_STATUSES
        ).aupdate(**fields, heartbeat_at=heartbeat_at)
        if stored:
            self.heartbeat_at = heartbeat_at
        return bool(stored)

    def _give_up_reply(self) -> None:
        logger.warning(
            "Reply %s was marked interrupted while still being generated (was the process "
            "stalled longer than WEBCHAT_STALE_REPLY_SECONDS?); this generation stops.",
            self.reply.pk,
        )
        self.owns_reply = False
        if self.task is not None and not self.finished:
            self.task.cancel()

    async def _answer_sync_requests(self) -> None:
        """Send a full render whenever a socket joins, so a late page catches up at once;
        stop when a user asks to."""
        channel = await self.layer.new_channel()
        control_group = control_group_name(self.reply.conversation_id)
        await self.layer.group_add(control_group, channel)
        self.control_channel = channel
        try:
            while (request := await self.layer.receive(channel))["type"] != STOP_LISTENING:
                if request["type"] == STOP_REQUEST:
                    if request.get("reply_id") == self.reply.pk:
                        self._stop()
                else:
                    await self._send_full_render()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.layer.group_discard(control_group, channel))

    async def _stop_answering_sync_requests(self, listener: asyncio.Task) -> None:
        # A message, not a cancellation: cancelling a receive in the middle of its Redis
        # read breaks the connection that every socket of this process receives through.
        if self.control_channel:
            try:
                await self.layer.send(self.control_channel, {"type": STOP_LISTENING})
                return
            except Exception:  # the layer is full or unreachable: the reply must still end
                logger.warning("Reply %s: its listener could not be told to stop", self.reply.pk)
        listener.cancel()

    async def _finish(self) -> None:
        self._sync_text()
        self.reply.notice = ""
        self.reply.completed_at = timezone.now()
        shown = self.reply
        try:
            if not (self.owns_reply and await self._store(self._final_fields())):
                logger.warning("Reply %s was taken over; its final state is not stored.", shown.pk)
                shown = await Message.objects.aget(pk=self.reply.pk)
        finally:
            await self._send(frames.message_frame(shown), generation=frames.GENERATION_ENDED)
        if shown is self.reply and shown.status == Message.Status.COMPLETE:
            titles.title_generation_start(shown)  # names the conversation after its first reply

    def _final_fields(self) -> dict:
        names = [
            "content",
            "reasoning",
            "status",
            "finish_reason",
            "error",
            "error_code",
            *Message.USAGE_FIELDS,
            "time_to_first_token_ms",
            "completed_at",
        ]
        return {name: getattr(self.reply, name) for name in names}
