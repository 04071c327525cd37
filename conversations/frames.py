"""HTML frames pushed over the websocket; the htmx ws extension swaps them by id."""

from django.template.loader import render_to_string
from django.utils.html import format_html

from conversations.models import Message


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
