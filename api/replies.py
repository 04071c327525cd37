"""An API reply's generation: the browser's (conversations/generation.py), with the request
it was given, its text sent to the HTTP response instead of the conversation's tabs, and,
when WEBCHAT_API_STORE is off, only its counts kept (``UnstoredReply``).

The generation's loop hands text over as it publishes frames: at once for the first, then
on its clock, and never writes per token; the response reads ``pieces`` until ``None``.
"""

import asyncio

from conversations import frames, generation, reply_runners
from conversations.models import Message, UnstoredReply
from conversations.upstream.client import ChatRequest

# What an unstored reply keeps of the generation's final fields.
_UNSTORED_FIELDS = frozenset(
    {
        "status",
        *Message.USAGE_FIELDS,
        "usage_estimated",
        "error_code",
        "time_to_first_token_ms",
        "completed_at",
        "runner",
    }
)


class ApiReplyRun(generation.ReplyRun):
    def __init__(
        self,
        reply: Message,
        runner: reply_runners.Runner,
        *,
        request: ChatRequest,
        unstored: UnstoredReply | None = None,
    ) -> None:
        super().__init__(reply, runner)
        self.request = request
        self.unstored = unstored
        # New (content, reasoning) text, then None once the generation has ended.
        self.pieces: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self.handed = (0, 0)

    @property
    def key(self) -> int | str:
        return f"unstored-{self.unstored.pk}" if self.unstored else self.reply.pk

    def start(self) -> asyncio.Task:
        task = generation.run_start(self)
        task.add_done_callback(lambda _task: self.pieces.put_nowait(None))
        return task

    async def _upstream_request(self) -> ChatRequest:
        return self.request

    async def _announce(self) -> None:
        """A stored API conversation comes in at the top of its owner's open sidebars; a
        page opened on it meanwhile asks for the state, which the loop answers as for any
        reply."""
        if self.unstored is None:
            await frames.conversation_to_top(self.reply.conversation_id)

    async def _publish_progress(self) -> None:
        self._hand_over()

    def _hand_over(self) -> None:
        self._sync_text()
        content, reasoning = self.handed
        if len(self.reply.content) > content or len(self.reply.reasoning) > reasoning:
            self.pieces.put_nowait((self.reply.content[content:], self.reply.reasoning[reasoning:]))
            self.handed = (len(self.reply.content), len(self.reply.reasoning))

    async def _send_whole_state(self, channel: str) -> None:
        self.markdown.update(self.reply.content)  # rendered only for a page that asks
        await super()._send_whole_state(channel)

    async def _show_final(self) -> None:
        self._hand_over()

    async def _show_stored(self) -> None:
        self._hand_over()

    async def _store(self, fields: dict) -> bool:
        if self.unstored is None:
            return await super()._store(fields)
        kept = {name: value for name, value in fields.items() if name in _UNSTORED_FIELDS}
        return bool(
            await UnstoredReply.objects.filter(
                pk=self.unstored.pk,
                runner=self.runner.channel,
                status__in=Message.ACTIVE_STATUSES,
            ).aupdate(**kept)
        )
