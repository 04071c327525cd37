"""Generating a reply: one reader and one loop per reply.

The *reader* task calls the upstream (waiting for a free slot, retrying what
``failures.failure_for`` says to retry) and turns its stream into items in the reply's
inbox: text, usage, notices for the bubble, and finally the end or a failure. The *loop*
is the only one that changes the reply while it runs. It takes what arrived, and on its
clock publishes a frame with what changed (new finished Markdown blocks, the open block
rendered again, new thinking text), saves progress every ``WEBCHAT_SAVE_INTERVAL``, and
answers Stop and a late page's request for the whole state, which reach it through this
process's reply runner (reply_runners.py). Nothing is written per token, and frames come
less often when many replies stream at once (``load_factor``).

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
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.db.models import prefetch_related_objects
from django.utils import timezone, translation

from conversations import (
    conversation_settings,
    frames,
    reply_runners,
    services,
    titles,
    token_estimates,
)
from conversations.markdown_stream import StreamingMarkdown
from conversations.models import Message
from conversations.upstream import failures, finish_reasons
from conversations.upstream.chunks import (
    ContentDelta,
    Finished,
    ReasoningDelta,
    Usage,
    UsageReport,
)
from conversations.upstream.client import ChatRequest, UpstreamError, get_client
from conversations.upstream.failures import Failure, RetryPolicy, StreamStalled
from webchat import metrics
from webchat.logs import log_context_carry

logger = logging.getLogger(__name__)

# Under load, frames come at most this many times less often than WEBCHAT_FRAME_INTERVAL.
MAX_SLOWDOWN = 5.0
# While the database cannot be reached, a reply's final save is tried again after this many
# seconds, doubling up to the second figure, until it gets through: its text waits in memory
# meanwhile, and an outage never leaves the reply "being written".
FINAL_SAVE_WAITS = (1.0, 30.0)

_upstream_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    WeakKeyDictionary()
)
# This process's running replies, whose tasks they hold: asyncio keeps only weak references.
# Keyed by reply id (``ReplyRun.key``).
_running: dict[int | str, "ReplyRun"] = {}


def start_generation(
    reply: Message,
    runner: reply_runners.Runner,
    *,
    exchange: list[Message] | None = None,
    exchange_html: str | None = None,
) -> asyncio.Task:
    """Start generating ``reply`` in the background and return at once.

    ``exchange`` is the new question and ``reply`` when the caller has just made them, and
    ``exchange_html`` them rendered (``frames.exchange_articles``); other tabs are shown these.
    """
    return run_start(ReplyRun(reply, runner, exchange=exchange, exchange_html=exchange_html))


def run_start(run: "ReplyRun") -> asyncio.Task:
    """Run ``run`` in the background, known to its runner and to this process's drain."""
    # A fresh context: the request's context sends database work to the request's own
    # thread, which Django's handler ends with the response, long before the reply is
    # done. It keeps the request's language, for the bubble, and its log fields.
    context = contextvars.Context()
    context.run(translation.activate, translation.get_language())
    log_context_carry(context, conversation_id=run.reply.conversation_id, reply_id=run.key)
    task = run.task = asyncio.get_running_loop().create_task(run.run(), context=context)
    runner = run.runner
    runner.replies[run.key] = run
    _running[run.key] = run
    started = time.monotonic()
    metrics.reply_started()

    def forget(_task: asyncio.Task) -> None:
        runner.replies.pop(run.key, None)
        _running.pop(run.key, None)
        metrics.reply_ended(status=run.reply.status, seconds=time.monotonic() - started)

    task.add_done_callback(forget)
    return task


def running_reply(reply_id: int) -> "ReplyRun | None":
    """The reply's generation, if this process runs it."""
    return _running.get(reply_id)


_draining = False


def accepting_replies() -> bool:
    """False once the server is shutting down (see ``replies_drain``)."""
    return not _draining


def replies_running() -> int:
    """How many replies this process is writing."""
    return len(_running)


async def replies_finish() -> None:
    """Return once the replies this process is writing now have ended."""
    tasks = {run.task for run in _running.values()}
    if tasks:
        await asyncio.wait(tasks)


async def replies_drain(grace: float) -> None:
    """On shutdown: take no new replies, give the running ones ``grace`` seconds to finish,
    then interrupt the rest, each saving its text and showing its tabs why it stopped.

    They are asked, not cancelled: a library may lose a cancellation (``asyncio.wait_for``
    does in Python 3.11, and redis-py uses it), which would leave a reply running."""
    global _draining
    _draining = True
    runs = {run.task: run for run in _running.values()}
    if not runs:
        return
    logger.info("Waiting up to %.0f s for %d replies to finish.", grace, len(runs))
    _done, unfinished = await asyncio.wait(runs, timeout=grace)
    for task in unfinished:
        runs[task].request_shutdown()
    if unfinished:
        await asyncio.wait(unfinished)
        logger.warning("%d replies were interrupted by the shutdown.", len(unfinished))


def load_factor() -> float:
    """How many times its frame budget this process's streaming replies would use, at
    least 1: with many replies at once, each sends frames (and renders) less often, so the
    cost of relaying stays bounded while every reply still moves several times a second."""
    wanted = len(_running) / (settings.WEBCHAT_FRAME_BUDGET * settings.WEBCHAT_FRAME_INTERVAL)
    return min(max(wanted, 1.0), MAX_SLOWDOWN)


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


# What the reader puts in the inbox besides stream events, and what the runner adds.
@dataclass(frozen=True)
class Notice:
    text: str


@dataclass(frozen=True)
class Ended:
    """The reader is done: the stream ended, or ``failure`` says why not."""

    failure: Failure | None = None
    cause: BaseException | None = None


@dataclass(frozen=True)
class StopRequested:
    pass


@dataclass(frozen=True)
class ShutdownRequested:
    pass


@dataclass(frozen=True)
class SyncRequested:
    channel: str


class ReplyTakenOver(Exception):
    """The reply was marked dead by a sweep (this process looked dead for a while)."""


class ReplyRun(reply_runners.RunningReply):
    """A stored reply's generation, shown in its conversation's tabs. The API's
    (api/replies.py) overrides where the request comes from, where the text goes, and, when
    nothing is stored, where the counts are kept."""

    def __init__(
        self,
        reply: Message,
        runner: reply_runners.Runner,
        *,
        exchange: list[Message] | None = None,
        exchange_html: str | None = None,
    ) -> None:
        self.reply = reply
        self.runner = runner
        self.exchange = exchange
        self.exchange_html = exchange_html
        self.inbox: list = []
        self.arrived = asyncio.Event()
        # Continuing a reply appends to the text it has.
        self.content = [reply.content] if reply.content else []
        self.reasoning = [reply.reasoning] if reply.reasoning else []
        self.content_length = len(reply.content)
        self.reasoning_length = len(reply.reasoning)
        self.markdown = StreamingMarkdown(reply.content)
        # What frames have carried so far, and what the database holds.
        self.sent_content_length = self.content_length
        self.sent_reasoning_length = self.reasoning_length
        self.sent_label: str | None = None
        self.sent_blocks = len(self.markdown.finished_blocks())
        # The text length the page's open block shows, as the last frame left it.
        self.sent_open_end = self.content_length
        self.text_read = False
        self.saved_lengths = (self.content_length, self.reasoning_length)
        self.usage_before = _stored_usage(reply)
        self.start_lengths = (self.content_length, self.reasoning_length)
        # Set once the request is made, and once its answer begins; for estimates.
        self.prompt_estimate: int | None = None
        self.answered = False
        self.usage_reported = False
        # When the model began thinking, and whether the page was told how long it did.
        self.thinking_since: float | None = None
        self.sent_thought = reply.thinking_ms is not None
        self.started_at = 0.0
        self.reader: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        reply.is_branch_end = True

    @property
    def key(self) -> int | str:
        """The reply's id among the runner's replies."""
        return self.reply.pk

    # Requests from the runner, answered by the loop.
    def request_stop(self) -> None:
        self._deliver(StopRequested())

    def request_sync(self, channel: str) -> None:
        self._deliver(SyncRequested(channel))

    def request_shutdown(self) -> None:
        self._deliver(ShutdownRequested())

    def _deliver(self, item) -> None:
        self.inbox.append(item)
        self.arrived.set()

    async def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            # The upstream is asked first; showing the exchange in other tabs can follow.
            self.reader = asyncio.create_task(self._read())
            await self._announce()
            await self._follow()
        except asyncio.CancelledError:
            # The event loop is closing (outside ``serve``, which asks replies to stop).
            self._fail(Failure(failures.INTERRUPTED, failures.SERVER_STOPPED_MESSAGE))
            await asyncio.shield(self._end(retry=False))
            raise
        except ReplyTakenOver:
            logger.warning(
                "Reply %s was marked interrupted while it was still being written (was this "
                "process stalled?); it stops here.",
                self.reply.pk,
            )
            await self._stop_reading()
            await self._show_stored()
            return
        except Exception:
            logger.exception("Generating reply %s failed", self.reply.pk)
            self._fail(Failure(failures.INTERNAL, failures.INTERNAL_MESSAGE))
        await self._end()

    async def _end(self, *, retry: bool = True) -> None:
        """Stop reading; store the final state and show it. Never raises: nobody awaits a
        reply's task."""
        try:
            await self._stop_reading()
            await self._finish(retry)
        except Exception:
            logger.exception("Reply %s could not be stored or shown at its end", self.reply.pk)

    async def _announce(self) -> None:
        """Show a new exchange in every open tab, or this reply (a new version, or one
        continued) as waiting for the model: other tabs load the changed branch."""
        exchange = self.exchange
        if exchange is None:
            exchange = await sync_to_async(services.latest_exchange)(
                conversation_id=self.reply.conversation_id
            )
            for message in exchange:
                if message.pk == self.reply.pk:
                    self.reply.versions = message.versions
        if self.exchange is not None:
            # A new exchange: its reply, waiting for the model, is in it.
            html = frames.exchange_frame(exchange, articles=self.exchange_html)
        else:
            html = frames.message_frame(
                self.reply,
                blocks=self.markdown.finished_blocks(),
                open_html=self.markdown.open_block_html(),
            )
        self.sent_label = frames.state_label(self.reply)
        await frames.publish(self.reply.conversation_id, html)
        await frames.exchange_started(exchange)

    # The reader.

    async def _read(self) -> None:
        try:
            request = await self._upstream_request()
            self.prompt_estimate = token_estimates.prompt_tokens(request.messages)
            await self._read_with_retries(request)
        except _Failed as failed:
            self._deliver(Ended(failed.failure, failed.__cause__))
        except asyncio.CancelledError:
            # The loop hears of it even if its own cancellation was lost in a library
            # (see ``replies_drain``), and so never waits for a reader that is gone.
            self._deliver(Ended(Failure(failures.INTERRUPTED, failures.SERVER_STOPPED_MESSAGE)))
            raise
        except Exception as error:
            logger.exception("Reading reply %s from the upstream failed", self.reply.pk)
            self._deliver(Ended(Failure(failures.INTERNAL, failures.INTERNAL_MESSAGE), error))
        else:
            self._deliver(Ended())

    async def _upstream_request(self) -> ChatRequest:
        return await sync_to_async(_upstream_request)(self.reply)

    async def _read_with_retries(self, request: ChatRequest) -> None:
        policy = _retry_policy()
        retries: Counter[str] = Counter()
        while True:
            try:
                async with self._upstream_slot():
                    await self._stream(request)
                return
            except (UpstreamError, StreamStalled) as error:
                failure = failures.failure_for(
                    error,
                    text_arrived=self.text_read,
                    retries=retries,
                    policy=policy,
                )
                metrics.upstream_error(
                    kind=failure.code, status_code=getattr(error, "status_code", None)
                )
                if failure.retry_in is None:
                    raise _Failed(failure) from error
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
            self._deliver(Notice(failures.WAITING_FOR_SLOT))
        async with slots:
            if queued:
                self._deliver(Notice(""))
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
                    self.answered = True
                    if isinstance(event, ContentDelta | ReasoningDelta):
                        self.text_read = True
                    self._deliver(event)
                    now = loop.time()
                    if now - rescheduled_at >= step and self.text_read:
                        watchdog.reschedule(now + stall_timeout + step)
                        rescheduled_at = now
        except TimeoutError:
            if watchdog.expired():
                raise StreamStalled(stall_timeout) from None
            raise

    async def _wait_to_retry(self, failure: Failure) -> None:
        """Wait ``failure.retry_in`` seconds, counting down in the reply bubble."""
        if not failure.retry_in:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + failure.retry_in
        while (left := deadline - loop.time()) > 0:
            self._deliver(Notice(failures.retry_notice(failure.code, left)))
            # Wake when the whole number of seconds shown changes.
            await asyncio.sleep(left - (math.ceil(left) - 1))
        self._deliver(Notice(""))

    async def _stop_reading(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()
            await asyncio.wait([self.reader])
        self._take(self.inbox)  # text that arrived before the reader stopped is kept
        self.inbox = []

    # The loop.

    async def _follow(self) -> None:
        """Take what arrived, publish it, save on the clock, until the reply ends."""
        loop = asyncio.get_running_loop()
        save_due = loop.time() + settings.WEBCHAT_SAVE_INTERVAL
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            batch, self.inbox = self.inbox, []
            outcome = self._take(batch)
            for item in batch:
                if isinstance(item, SyncRequested):
                    await self._send_whole_state(item.channel)
            if isinstance(outcome, StopRequested):
                await self._stop_reading()
                self.reply.status = Message.Status.STOPPED
                return
            if isinstance(outcome, ShutdownRequested):
                await self._stop_reading()
                self._fail(Failure(failures.INTERRUPTED, failures.SERVER_STOPPED_MESSAGE))
                return
            if isinstance(outcome, Ended):
                if outcome.failure is not None:
                    self._log_failure(outcome.failure, outcome.cause)
                    self._fail(outcome.failure)
                elif not self.content_length:
                    self._fail_empty()
                else:
                    self.reply.status = Message.Status.COMPLETE
                return
            await self._publish_progress()
            if loop.time() >= save_due:
                await self._save_progress()
                save_due = loop.time() + settings.WEBCHAT_SAVE_INTERVAL * load_factor()
            await asyncio.sleep(settings.WEBCHAT_FRAME_INTERVAL * load_factor())

    def _take(self, batch: list):
        """Apply stream events and notices; return a Stop or the end if among them."""
        outcome = None
        for item in batch:
            if isinstance(item, ContentDelta):
                self._end_thinking()
                self._note_first_text()
                self.content.append(item.text)
                self.content_length += len(item.text)
            elif isinstance(item, ReasoningDelta):
                if self.thinking_since is None:
                    self.thinking_since = time.monotonic()
                self._note_first_text()
                self.reasoning.append(item.text)
                self.reasoning_length += len(item.text)
            elif isinstance(item, Finished):
                self.reply.finish_reason = item.reason
            elif isinstance(item, UsageReport):
                self._record_usage(item.usage)
            elif isinstance(item, Notice):
                self.reply.notice = item.text
            elif isinstance(item, StopRequested | ShutdownRequested | Ended) and outcome is None:
                outcome = item
        return outcome

    def _end_thinking(self) -> None:
        """The answer began (or the reply ended): the thinking before it took this long."""
        if self.thinking_since is not None and self.reply.thinking_ms is None:
            self.reply.thinking_ms = round((time.monotonic() - self.thinking_since) * 1000)

    def _note_first_text(self) -> None:
        if self.reply.time_to_first_token_ms is None:
            elapsed = time.monotonic() - self.started_at
            self.reply.time_to_first_token_ms = round(elapsed * 1000)
            metrics.reply_first_token(elapsed)
            self.reply.status = Message.Status.STREAMING

    def _estimate_usage_if_missing(self) -> None:
        """Count what the upstream did although it reported no usage: the prompt it was
        sent and the text it wrote, once it began to answer or was stopped while asked."""
        if self.usage_reported or self.prompt_estimate is None:
            return
        if not self.answered and self.reply.status not in (
            Message.Status.STOPPED,
            Message.Status.INTERRUPTED,
        ):
            return  # refused before any answer: nothing was done
        written = self.reply.content[self.start_lengths[0] :]
        written += self.reply.reasoning[self.start_lengths[1] :]
        completion = token_estimates.text_tokens(written)
        self._record_usage(
            Usage(
                prompt_tokens=self.prompt_estimate,
                completion_tokens=completion,
                total_tokens=self.prompt_estimate + completion,
            )
        )
        self.reply.usage_estimated = True

    def _record_usage(self, usage: Usage) -> None:
        self.usage_reported = True
        total = self.usage_before + usage
        for name in Message.USAGE_FIELDS:
            setattr(self.reply, name, getattr(total, name))

    def _sync_text(self) -> None:
        """Copy the text received so far onto the in-memory reply."""
        if len(self.content) > 1:
            self.content[:] = ["".join(self.content)]
        if len(self.reasoning) > 1:
            self.reasoning[:] = ["".join(self.reasoning)]
        self.reply.content = self.content[0] if self.content else ""
        self.reply.reasoning = self.reasoning[0] if self.reasoning else ""

    async def _publish_progress(self) -> None:
        self._sync_text()
        label = frames.state_label(self.reply)
        update = None
        if self.content_length != self.sent_content_length:
            update = self.markdown.update(self.reply.content)
        html = frames.progress_frame(
            self.reply,
            markdown=update,
            blocks_start=self.sent_blocks,
            open_start=self.sent_open_end,
            reasoning_start=self.sent_reasoning_length,
            label=label if label != self.sent_label else None,
            thought=self.reply.thinking_ms is not None and not self.sent_thought,
        )
        self.sent_thought = self.reply.thinking_ms is not None
        if update is not None:
            self.sent_blocks = update.finished_count
            if update.open_html is not None or update.code_html:
                self.sent_open_end = self.content_length
        self.sent_content_length = self.content_length
        self.sent_reasoning_length = self.reasoning_length
        self.sent_label = label
        if html:
            await frames.publish(self.reply.conversation_id, html)

    async def _send_whole_state(self, channel: str) -> None:
        """Send a page that joined late (or missed a frame) the whole reply, as it is now."""
        await self._publish_progress()  # so the page and every other tab agree from here
        frames_now = frames.message_frames(
            self.reply,
            blocks=self.markdown.finished_blocks(),
            open_html=self.markdown.open_block_html(),
            sync=True,
        )
        for html in frames_now:
            if not await frames.send_to_channel(channel, html):
                return  # the page asks again on its next gap

    async def _save_progress(self) -> None:
        self._sync_text()
        lengths = (self.content_length, self.reasoning_length)
        fields: dict = {
            "status": self.reply.status,
            "time_to_first_token_ms": self.reply.time_to_first_token_ms,
        }
        if lengths != self.saved_lengths:
            fields.update(content=self.reply.content, reasoning=self.reply.reasoning)
        try:
            stored = await self._store(fields)
        except (OperationalError, InterfaceError) as error:
            # Only a checkpoint: the reply goes on, its text in memory, for the next one (or
            # the final save) to store.
            logger.warning("Reply %s: its progress could not be saved (%s).", self.reply.pk, error)
            await sync_to_async(close_old_connections)()
            return
        if not stored:
            raise ReplyTakenOver
        self.saved_lengths = lengths

    async def _store(self, fields: dict) -> bool:
        """Write ``fields``, unless the reply was marked dead by a sweep meanwhile."""
        return bool(
            await Message.objects.filter(
                pk=self.reply.pk, runner=self.runner.channel, status__in=Message.ACTIVE_STATUSES
            ).aupdate(**fields)
        )

    def _fail(self, failure: Failure) -> None:
        has_text = self.content_length or self.reasoning_length
        self.reply.status = Message.Status.INTERRUPTED if has_text else Message.Status.ERROR
        self.reply.error = failure.message
        self.reply.error_code = failure.code
        self.reply.error_detail = failure.detail

    def _fail_empty(self) -> None:
        """A stream that ended well but with no answer: say why, and offer Retry."""
        reason = self.reply.finish_reason
        logger.warning(
            "Reply %s ended without an answer (finish reason %r).", self.reply.pk, reason
        )
        self._fail(finish_reasons.empty_reply_failure(reason, thought=bool(self.reasoning_length)))

    def _log_failure(self, failure: Failure, cause: BaseException | None) -> None:
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

    async def _finish(self, retry: bool) -> None:
        """Store the final state, then show it in every tab; name a new conversation."""
        self._sync_text()
        self._end_thinking()
        self._estimate_usage_if_missing()
        self.reply.notice = ""
        self.reply.completed_at = timezone.now()
        self.markdown.update(self.reply.content)
        self.markdown.finish()
        metrics.reply_tokens_used(self.reply, before=self.usage_before)
        logger.info(
            "Reply %s ended %s after %.1f s.",
            self.key,
            self.reply.error_code or self.reply.status,
            time.monotonic() - self.started_at,
            extra={"status": self.reply.status, "error_code": self.reply.error_code},
        )
        try:
            stored = await self._store_final(retry)
        except Exception:
            logger.exception("Reply %s: its final state could not be saved", self.reply.pk)
            stored = await self._store_text_after_failed_save()
        if not stored:
            await self._show_stored()
            return
        await self._show_final()

    async def _show_final(self) -> None:
        """Show the reply, as now stored, in every tab; name a new conversation."""
        if self.reply.accepts_feedback:
            # Its feedback controls show what its owner gave before a Continue.
            await sync_to_async(prefetch_related_objects)([self.reply], "feedback")
        final = frames.message_frames(
            self.reply, blocks=self.markdown.finished_blocks(), open_html=""
        )
        for html in final:
            await frames.publish(self.reply.conversation_id, html)
        if self.reply.status == Message.Status.COMPLETE:
            titles.title_generation_start(self.reply)  # names a conversation after its first reply
        await frames.reply_finished(self.reply)

    async def _store_final(self, retry: bool) -> bool:
        """Store the final state, trying again (``retry``) while the database cannot be
        reached."""
        fields = self._final_fields()
        wait = FINAL_SAVE_WAITS[0]
        while True:
            try:
                return await self._store(fields)
            except (OperationalError, InterfaceError) as error:
                if not retry:
                    raise
                logger.warning(
                    "Reply %s: the database cannot be reached (%s); its end is saved once it "
                    "can be.",
                    self.reply.pk,
                    error,
                )
            # The broken connection goes, so that the next try opens a new one.
            await sync_to_async(close_old_connections)()
            await asyncio.sleep(wait)
            wait = min(2 * wait, FINAL_SAVE_WAITS[1])

    async def _store_text_after_failed_save(self) -> bool:
        """Keep the text, with an error that says what happened, when the full save failed."""
        has_text = self.reply.content or self.reply.reasoning
        self.reply.status = Message.Status.INTERRUPTED if has_text else Message.Status.ERROR
        self.reply.error = failures.SAVE_FAILED_MESSAGE
        self.reply.error_code = failures.INTERNAL
        for name in Message.USAGE_FIELDS:
            setattr(self.reply, name, None)
        fields = {
            name: getattr(self.reply, name)
            for name in (
                "content",
                "reasoning",
                "status",
                "error",
                "error_code",
                "error_detail",
                "completed_at",
            )
        }
        try:
            return await self._store({**fields, "runner": ""})
        except Exception:
            logger.exception("Reply %s: not even its text could be saved", self.reply.pk)
            return False

    async def _show_stored(self) -> None:
        """Show every tab the reply as stored: another process took it over."""
        stored = await sync_to_async(services.latest_exchange)(
            conversation_id=self.reply.conversation_id
        )
        for html in frames.state_frames(stored):
            await frames.publish(self.reply.conversation_id, html)
        await frames.reply_finished(self.reply)

    def _final_fields(self) -> dict:
        names = [
            "content",
            "reasoning",
            "status",
            "finish_reason",
            "error",
            "error_code",
            "error_detail",
            *Message.USAGE_FIELDS,
            "usage_estimated",
            "time_to_first_token_ms",
            "thinking_ms",
            "completed_at",
        ]
        return {name: getattr(self.reply, name) for name in names} | {"runner": ""}


class _Failed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
