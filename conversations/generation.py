"""Generating a reply: stream it from the upstream, relay it live, save it in batches.

A generation runs as an asyncio task in the process that accepted the message. It
publishes HTML frames to the conversation's Channels group: the first text the moment
it arrives, then coalesced deltas (only the new text) every ``WEBCHAT_FRAME_INTERVAL``,
a full Markdown re-render every ``WEBCHAT_RENDER_INTERVAL``, and a final render at the
end. Progress is written to the database every ``WEBCHAT_SAVE_INTERVAL``, never per
token. Frames carry text offsets so a page can tell which text it already has.
"""

import asyncio
import contextlib
import contextvars
import logging
import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from conversations import frames
from conversations.models import Message
from conversations.services import history_for_reply
from conversations.upstream import (
    ChatRequest,
    ContentDelta,
    Finished,
    ReasoningDelta,
    UpstreamError,
    Usage,
    UsageReport,
    get_client,
)

logger = logging.getLogger(__name__)

INTERRUPTED = "The reply was interrupted before it finished."
UNEXPECTED_FAILURE = "Something went wrong while getting the reply. Please try again."

# Strong references to running generations: asyncio keeps only weak ones.
_running: dict[int, asyncio.Task] = {}


def start_generation(reply: Message) -> asyncio.Task:
    """Start generating ``reply`` in the background and return at once."""
    # A fresh context: the request's context holds a per-request thread executor
    # that shuts down when the response is sent, long before the reply is done.
    task = asyncio.get_running_loop().create_task(
        ReplyGeneration(reply).run(), context=contextvars.Context()
    )
    _running[reply.pk] = task
    task.add_done_callback(lambda _task: _running.pop(reply.pk, None))
    return task


def running_generation(reply_id: int) -> asyncio.Task | None:
    return _running.get(reply_id)


def control_group_name(conversation_id: int) -> str:
    """The group a running generation listens on for requests from sockets."""
    return f"conversation_{conversation_id}_generation"


class ReplyGeneration:
    def __init__(self, reply: Message) -> None:
        self.reply = reply
        self.group = f"conversation_{reply.conversation_id}"
        self.layer = get_channel_layer()
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.content_length = 0
        self.reasoning_length = 0
        self.sent_content_length = 0
        self.sent_reasoning_length = 0
        self.saved_lengths = (0, 0)
        self.changed = asyncio.Event()
        self.started_at = 0.0

    async def run(self) -> None:
        self.started_at = time.monotonic()
        background = [
            asyncio.create_task(self._publish_frames()),
            asyncio.create_task(self._save_progress_periodically()),
            asyncio.create_task(self._answer_sync_requests()),
        ]
        try:
            await self._stream()
            self.reply.status = Message.Status.COMPLETE
        except UpstreamError as error:
            self._fail(error.message)
        except asyncio.CancelledError:
            self._fail(INTERRUPTED)
            raise
        except Exception:
            logger.exception("Generating reply %s failed", self.reply.pk)
            self._fail(UNEXPECTED_FAILURE)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.shield(self._finish())

    async def _stream(self) -> None:
        messages = await sync_to_async(history_for_reply)(self.reply)
        request = ChatRequest(model=self.reply.model, messages=messages)
        async for event in get_client().stream_chat(request):
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

    def _note_first_token(self) -> None:
        if self.reply.time_to_first_token_ms is None:
            elapsed = time.monotonic() - self.started_at
            self.reply.time_to_first_token_ms = round(elapsed * 1000)
            self.reply.status = Message.Status.STREAMING

    def _record_usage(self, usage: Usage) -> None:
        self.reply.prompt_tokens = usage.prompt_tokens
        self.reply.completion_tokens = usage.completion_tokens
        self.reply.total_tokens = usage.total_tokens
        self.reply.cached_tokens = usage.cached_tokens
        self.reply.reasoning_tokens = usage.reasoning_tokens
        self.reply.image_tokens = usage.image_tokens

    def _fail(self, reason: str) -> None:
        self.reply.status = Message.Status.ERROR
        self.reply.error = reason

    def _sync_text(self) -> None:
        """Copy the text received so far onto the in-memory reply."""
        if len(self.content) > 1:
            self.content[:] = ["".join(self.content)]
        if len(self.reasoning) > 1:
            self.reasoning[:] = ["".join(self.reasoning)]
        self.reply.content = self.content[0] if self.content else ""
        self.reply.reasoning = self.reasoning[0] if self.reasoning else ""

    async def _send(self, html: str) -> None:
        await self.layer.group_send(self.group, {"type": "chat.frame", "html": html})

    async def _publish_frames(self) -> None:
        render_interval = settings.WEBCHAT_RENDER_INTERVAL
        last_render = None
        while True:
            await self.changed.wait()
            self.changed.clear()
            now = time.monotonic()
            if last_render is None:
                # The first text goes out as a delta: cheapest, and soonest on screen.
                await self._send_delta()
                last_render = now
            elif now - last_render >= render_interval:
                await self._send_full_render()
                last_render = now
            else:
                await self._send_delta()
            await asyncio.sleep(settings.WEBCHAT_FRAME_INTERVAL)

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
        await self._send(html)

    async def _send_full_render(self) -> None:
        self._sync_text()
        self.sent_content_length = len(self.reply.content)
        self.sent_reasoning_length = len(self.reply.reasoning)
        await self._send(frames.message_frame(self.reply))

    async def _save_progress_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.WEBCHAT_SAVE_INTERVAL)
            lengths = (self.content_length, self.reasoning_length)
            if lengths != self.saved_lengths:
                self._sync_text()
                await Message.objects.filter(pk=self.reply.pk).aupdate(
                    content=self.reply.content,
                    reasoning=self.reply.reasoning,
                    status=self.reply.status,
                    time_to_first_token_ms=self.reply.time_to_first_token_ms,
                )
                self.saved_lengths = lengths

    async def _answer_sync_requests(self) -> None:
        """Send a full render whenever a socket joins, so a late page catches up at once."""
        channel = await self.layer.new_channel()
        control_group = control_group_name(self.reply.conversation_id)
        await self.layer.group_add(control_group, channel)
        try:
            while True:
                await self.layer.receive(channel)
                await self._send_full_render()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.layer.group_discard(control_group, channel))

    async def _finish(self) -> None:
        self._sync_text()
        self.reply.completed_at = timezone.now()
        try:
            await self.reply.asave(
                update_fields=[
                    "content",
                    "reasoning",
                    "status",
                    "finish_reason",
                    "error",
                    "prompt_tokens",
                    "completion_tokens",
                    "total_tokens",
                    "cached_tokens",
                    "reasoning_tokens",
                    "image_tokens",
                    "time_to_first_token_ms",
                    "completed_at",
                ]
            )
        finally:
            await self._send(frames.message_frame(self.reply))
