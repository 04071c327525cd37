"""HTML frames pushed over the websocket; the htmx ws extension swaps them by id."""

import asyncio
import logging
from weakref import WeakKeyDictionary

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from accounts.deactivation import user_group_name
from conversations import services
from conversations.markdown_stream import MarkdownUpdate, StreamingMarkdown
from conversations.models import Conversation, Message, conversation_group_name
from conversations.rendering import render_finished_markdown
from webchat.outages import channel_layer_round_trip, layer_call

logger = logging.getLogger(__name__)

# A frame stays under this many characters, however long the reply: a longer state is sent
# as the reply without its text, then its finished blocks a frame at a time.
FRAME_LIMIT = 512 * 1024


def state_label(reply: Message) -> str:
    """The passing state shown under a reply: a notice, or waiting for the model."""
    if reply.notice:
        return str(reply.notice)
    if reply.status == Message.Status.PENDING:
        return gettext("Waiting for the model…")
    return ""


def progress_frame(
    reply: Message,
    *,
    markdown: MarkdownUpdate | None,
    blocks_start: int,
    open_start: int,
    reasoning_start: int,
    label: str | None,
    thought: bool = False,
) -> str:
    """What changed in a streaming reply: finished Markdown blocks to append (numbered, so
    a page can tell it missed some), the open block to show in place of the last one, or the
    lines to add to an open code block, new thinking text (with the offsets it spans), and
    its state label when that changed, and, once the model ``thought`` and began its
    answer, how long it thought. Offsets are what the page checks before applying a piece:
    the blocks it has, and the text length its open block shows."""
    parts = []
    if thought:
        parts.append(
            format_html(
                '<span id="{}-thinking-label" hx-swap-oob="outerHTML">{}</span>',
                reply.dom_id,
                reply.thinking_label,
            )
        )
    reasoning = reply.reasoning[reasoning_start:]
    if reasoning:
        parts.append(
            format_html(
                '<span id="{}-reasoning-tail" hx-swap-oob="beforeend" data-start="{}" '
                'data-end="{}">{}</span>',
                reply.dom_id,
                reasoning_start,
                reasoning_start + len(reasoning),
                reasoning,
            )
        )
    if markdown is not None:
        if markdown.finished_count > blocks_start:
            parts.append(
                format_html(
                    '<div id="{}-blocks" hx-swap-oob="beforeend" data-start="{}" '
                    'data-end="{}">{}</div>',
                    reply.dom_id,
                    blocks_start,
                    markdown.finished_count,
                    mark_safe(markdown.finished_html),
                )
            )
        if markdown.open_html is not None:
            parts.append(_open_block(reply, markdown.finished_count, markdown.open_html))
        elif markdown.code_html:
            parts.append(
                format_html(
                    '<code id="{}-code" hx-swap-oob="beforeend" data-blocks="{}" '
                    'data-start="{}" data-end="{}">{}</code>',
                    reply.dom_id,
                    markdown.finished_count,
                    open_start,
                    len(reply.content),
                    mark_safe(markdown.code_html),
                )
            )
    if label is not None:
        parts.append(_label(reply, label))
    return "".join(parts)


def _open_block(reply: Message, finished_count: int, open_html: str) -> str:
    return format_html(
        '<div id="{}-tail" hx-swap-oob="innerHTML" data-blocks="{}" data-end="{}">{}</div>',
        reply.dom_id,
        finished_count,
        len(reply.content),
        open_block_with_code_id(reply, open_html),
    )


def open_block_with_code_id(reply: Message, open_html: str) -> SafeString:
    """The open block, its code element (an open code fence's) named, so that frames can
    add lines to it."""
    named = open_html.replace(_OPEN_CODE, f'{_OPEN_CODE[:-1]} id="{reply.dom_id}-code">', 1)
    return mark_safe(named)


_OPEN_CODE = '<pre class="highlight"><code>'


def _label(reply: Message, label: str) -> str:
    return format_html(
        '<p id="{}-state" class="message-state" role="status" hx-swap-oob="outerHTML">{}</p>',
        reply.dom_id,
        label,
    )


def message_frame(
    message: Message, *, blocks: list[str] | None = None, open_html: str = "", sync: bool = False
) -> str:
    """The whole message, rendered as on the page, replacing what the page shows.

    A reply being generated passes its rendered Markdown (``blocks`` and ``open_html``);
    otherwise it is rendered from its text. ``sync`` marks the live state sent to a page that
    joined late: the page takes it whatever it shows.
    """
    context = {"message": message, "oob": True, "sync": sync}
    if blocks is not None:
        context.update(
            rendered_blocks=SafeString("".join(blocks)),
            rendered_block_count=len(blocks),
            rendered_open=open_block_with_code_id(message, open_html),
        )
    return render_to_string("conversations/partials/_message.html", context)


def message_frames(
    message: Message, *, blocks: list[str], open_html: str, sync: bool = False
) -> list[str]:
    """A reply as it is now, from its rendered blocks, in frames under FRAME_LIMIT: the
    whole message when it fits, else the message without its text, then its blocks."""
    whole = message_frame(message, blocks=blocks, open_html=open_html, sync=sync)
    if len(whole) <= FRAME_LIMIT:
        return [whole]
    frames = [message_frame(message, blocks=[], sync=True)]
    start = 0
    while start < len(blocks):
        end, size = start + 1, len(blocks[start])
        while end < len(blocks) and size + len(blocks[end]) <= FRAME_LIMIT:
            size += len(blocks[end])
            end += 1
        frames.append(_blocks_frame(message, blocks[start:end], start=start))
        start = end
    if message.is_active:
        frames.append(_open_block(message, len(blocks), open_html))
    return frames


def _blocks_frame(message: Message, blocks: list[str], *, start: int) -> str:
    return format_html(
        '<div id="{}-blocks" hx-swap-oob="beforeend" data-start="{}" data-end="{}">{}</div>',
        message.dom_id,
        start,
        start + len(blocks),
        mark_safe("".join(blocks)),
    )


def exchange_frame(messages: list[Message], *, articles: str | None = None) -> str:
    """Messages to add at the end of the page; it skips those it already shows.

    A tab that did not send the message (or missed it while reconnecting) learns of
    the new exchange this way. A reply comes without its text: its own frames follow.
    ``articles`` are the messages already rendered (``exchange_articles``).
    """
    if articles is None:
        articles = exchange_articles(messages)
    return format_html('<div hx-swap-oob="beforeend:#messages">{}</div>', articles)


def exchange_articles(messages: list[Message]) -> SafeString:
    """The messages of an exchange as the page shows them; a reply without its text."""
    return SafeString(
        "".join(
            render_to_string(
                "conversations/partials/_message.html",
                {"message": message, "rendered_blocks": "", "rendered_block_count": 0}
                if message.role == Message.Role.ASSISTANT
                else {"message": message},
            )
            for message in messages
        )
    )


def state_frames(exchange: list[Message]) -> list[str]:
    """The latest exchange, added if missing, then its reply as stored (none: no reply);
    the reply before it offers no actions any more."""
    replies = [message for message in exchange if message.role == Message.Role.ASSISTANT]
    if not replies:
        return []
    reply = replies[-1]
    blocks, open_html = stored_reply_markdown(reply)
    return [
        exchange_frame(exchange) + earlier_actions_frame(exchange),
        *message_frames(reply, blocks=blocks, open_html=open_html),
    ]


def stored_reply_markdown(reply: Message) -> tuple[list[str], str]:
    """A stored reply's rendered Markdown: its finished blocks and its open block."""
    if not reply.is_active:
        whole = render_finished_markdown(reply.content)  # kept: pages show it again and again
        if len(whole) <= FRAME_LIMIT:
            return [whole], ""
    markdown = StreamingMarkdown(reply.content)
    if not reply.is_active:
        markdown.finish()
    return markdown.finished_blocks(), markdown.open_block_html()


def earlier_actions_frame(exchange: list[Message]) -> str:
    """Empties the actions of the reply the exchange's question follows: Regenerate and
    Continue apply only at the end of the shown branch (empty: no such reply)."""
    question = next((m for m in exchange if m.role == Message.Role.USER), None)
    if question is None or question.parent_id is None:
        return ""
    return format_html(
        '<div class="message-actions" id="message-{}-actions" hx-swap-oob="true"></div>',
        question.parent_id,
    )


def usage_frame(usage: dict) -> str:
    """The header's token total of the conversation (``services.conversation_usage``)."""
    return render_to_string(
        "conversations/partials/_usage.html", {"conversation_usage": usage, "oob": True}
    )


def sidebar_entry_frame(conversation: Conversation) -> str:
    """The conversation's sidebar entry, for the top of its section (pinned or not); a
    page that lists it already moves its own entry there (static/webchat/sidebar.js)."""
    entry = render_to_string(
        "conversations/partials/_conversation_list.html",
        {
            "sidebar_conversations": [conversation],
            "entries_only": True,
            "current_path": "",
            "return_to": conversation.get_absolute_url(),
        },
    )
    return format_html('<div hx-swap-oob="afterbegin:#conversation-list">{}</div>', entry)


def branch_changed_frame(conversation_id: int) -> str:
    """Tells every tab that another version is shown now: each loads the branch again."""
    url = reverse("conversations:older-messages", args=[conversation_id])
    return format_html(
        '<div id="branch-sync" hx-swap-oob="true" hx-get="{}" hx-trigger="load" '
        'hx-target="#messages" hx-swap="innerHTML"></div>',
        url,
    )


def title_frame(conversation_id: int, title: str) -> str:
    """Out-of-band swaps that put ``title`` in the page heading and the sidebar entry."""
    return format_html(
        '<span id="chat-title" hx-swap-oob="innerHTML">{title}</span>'
        '<span id="conversation-{pk}-title" hx-swap-oob="innerHTML">{title}</span>',
        title=title,
        pk=conversation_id,
    )


def page_state_frames(conversation_id: int) -> tuple[list[str], Message | None]:
    """What a page that joins, or missed frames, is sent: the latest exchange as stored,
    with the conversation's title (the model may have named it since the page was rendered)
    and, once its reply ended, the token total; and the reply if it is still being written
    (its process then sends the live state)."""
    exchange = services.latest_exchange(conversation_id=conversation_id)
    state = state_frames(exchange)
    if state:
        title = Conversation.objects.values_list("title", flat=True).get(pk=conversation_id)
        if title:
            state[0] = title_frame(conversation_id, title) + state[0]
        if not exchange[-1].is_active:
            # A reply may have ended since the page was rendered (a new chat's first one can
            # end before its page connects); an active one sends the total when it ends.
            usage = services.conversation_usage(conversation_id=conversation_id)
            state[-1] += usage_frame(usage)
    active = [message for message in exchange if message.is_active]
    return state, active[0] if active else None


async def publish(conversation_id: int, html: str) -> bool:
    """Send ``html`` to every open tab of the conversation, in any server process.

    While the channel layer is unreachable (Redis is down) the frame is lost and this
    answers False; the conversation's tabs are sent its stored state once it is back."""
    event = {"type": "chat.frame", "html": html}
    if await _group_send(conversation_group_name(conversation_id), event):
        return True
    _missed.add(conversation_id)
    _catch_up_start()
    return False


async def publish_to_owner(owner_id: int, html: str) -> bool:
    """Send ``html`` to every open tab of the user, whichever conversation it shows (lost
    while the channel layer is unreachable: a reload shows it)."""
    event = {"type": "chat.frame", "html": html}
    return await _group_send(user_group_name(owner_id), event)


async def send_to_channel(channel: str, html: str) -> bool:
    """Send ``html`` to one socket (lost while the channel layer is unreachable)."""
    return await layer_call(get_channel_layer().send(channel, {"type": "chat.frame", "html": html}))


async def _group_send(group: str, event: dict) -> bool:
    return await layer_call(get_channel_layer().group_send(group, event))


# Conversations whose tabs missed a frame while the channel layer was unreachable. Once it
# is back, each is sent its stored state: a reply that ended meanwhile shows as ended, and
# on a reply still being written the page sees the gap and asks for its live state.
_missed: set[int] = set()
_catching_up: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = WeakKeyDictionary()
CATCH_UP_INTERVAL = 1.0
# Other processes' subscriptions come back within a second or so of this one's: their tabs
# are sent the state again after this many seconds.
RESEND_AFTER = 2.0


def _catch_up_start() -> None:
    loop = asyncio.get_running_loop()
    task = _catching_up.get(loop)
    if task is None or task.done():
        _catching_up[loop] = loop.create_task(_catch_up_when_back())


async def _catch_up_when_back() -> None:
    while _missed:
        await asyncio.sleep(CATCH_UP_INTERVAL)
        # Once this process's own subscriptions answer, its sockets get what is sent.
        if not await layer_call(_round_trip_in_time()):
            continue
        missed = sorted(_missed)
        _missed.clear()  # a frame missed from here on adds its conversation again
        await _stored_states_publish(missed)
        await asyncio.sleep(RESEND_AFTER)
        await _stored_states_publish(missed)


async def _round_trip_in_time() -> None:
    async with asyncio.timeout(CATCH_UP_INTERVAL):
        await channel_layer_round_trip()


async def _stored_states_publish(conversation_ids: list[int]) -> None:
    for conversation_id in conversation_ids:
        try:
            state, _active = await sync_to_async(page_state_frames)(conversation_id)
        except Exception:  # deleted meanwhile, or the database is out too: a reload shows it
            logger.warning("Tabs of conversation %s missed frames.", conversation_id)
            continue
        for html in state:
            if not await publish(conversation_id, html):
                break


def _conversation_for_sidebar(conversation_id: int) -> Conversation:
    fields = ("pk", "owner", "title", "pinned", "source")  # what the sidebar entry shows
    return Conversation.objects.only(*fields).get(pk=conversation_id)


async def conversation_to_top(conversation_id: int) -> None:
    """The conversation goes to the top of the sidebar in every tab of its owner."""
    conversation = await sync_to_async(_conversation_for_sidebar)(conversation_id)
    await publish_to_owner(conversation.owner_id, sidebar_entry_frame(conversation))


async def exchange_started(exchange: list[Message]) -> None:
    """Once a new exchange is shown (a message sent, Regenerate, Continue, Edit; its
    question, if new, and its reply, last): the reply before it loses its actions in the
    conversation's tabs, and the conversation goes to the top of the sidebar."""
    conversation_id = exchange[-1].conversation_id
    if earlier := earlier_actions_frame(exchange):
        await publish(conversation_id, earlier)
    await conversation_to_top(conversation_id)


async def reply_finished(reply: Message) -> None:
    """Once a reply's final state is stored: the conversation's token total, in its tabs."""
    usage = await sync_to_async(services.conversation_usage)(conversation_id=reply.conversation_id)
    await publish(reply.conversation_id, usage_frame(usage))
