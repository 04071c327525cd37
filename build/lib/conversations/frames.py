"""HTML frames pushed over the websocket; the htmx ws extension swaps them by id."""

from channels.layers import get_channel_layer
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conversations.models import Message, conversation_group_name


def delta_frame(
    reply: Message, *, content_start: int, content: str, reasoning_start: int, reasoning: str
) -> str:
    """New text to append to a streaming reply, with the offsets it starts and ends at."""
    parts = []
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
    if content:
        parts.append(
            format_html(
                '<span id="{}-tail" hx-swap-oob="beforeend" data-start="{}" '
                'data-end="{}">{}</span>',
                reply.dom_id,
                content_start,
                content_start + len(content),
                content,
            )
        )
    return "".join(parts)


def message_frame(message: Message) -> str:
    """The whole message, rendered as on the page, replacing what the page shows."""
    return render_to_string(
        "conversations/partials/_message.html", {"message": message, "oob": True}
    )


def exchange_frame(messages: list[Message]) -> str:
    """Messages to add at the end of the page; it skips those it already shows.

    A tab that did not send the message (or missed it while reconnecting) learns of
    the new exchange this way.
    """
    articles = SafeString(
        "".join(
            render_to_string("conversations/partials/_message.html", {"message": message})
            for message in messages
        )
    )
    return format_html('<div hx-swap-oob="beforeend:#messages">{}</div>', articles)


def state_frame(exchange: list[Message]) -> str:
    """The latest exchange, added if missing, then its reply as stored (empty: no reply)."""
    replies = [message for message in exchange if message.role == Message.Role.ASSISTANT]
    if not replies:
        return ""
    return exchange_frame(exchange) + message_frame(replies[-1])


def branch_changed_frame(conversation_id: int) -> str:
    """Tells every tab that another version is shown now: each loads the branch again."""
    url = reverse("conversations:older-messages", args=[conversation_id])
    return format_html(
        '<div id="branch-sync" hx-swap-oob="true" hx-get="{}" hx-trigger="load" '
        'hx-target="#messages" hx-swap="innerHTML"></div>',
        url,
    )


# What a frame from a generation tells the sockets' dead-reply watch (consumers.py).
GENERATION_RUNNING = "running"
GENERATION_ENDED = "ended"


async def publish(conversation_id: int, html: str, *, generation: str = "") -> None:
    """Send ``html`` to every open tab of the conversation, in any server process.

    ``generation`` is set on the frames of a reply's generation: GENERATION_RUNNING while
    it runs, GENERATION_ENDED on its last frame.
    """
    event = {"type": "chat.frame", "html": html}
    if generation:
        event["generation"] = generation
    await get_channel_layer().group_send(conversation_group_name(conversation_id), event)
