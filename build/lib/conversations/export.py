"""A conversation as a file: Markdown to read, JSON to keep or process.

Both hold the branch of the conversation that is shown (conversations.tree), never the
versions it replaced, and nothing of the deployment (no key, no address of the upstream).
The JSON carries the images as ``data:`` URLs read from storage.

``conversation_markdown`` and ``conversation_json`` load what they need; async callers
load the branch with ``tree.branch`` and read the images with ``data_urls_read`` in a
thread, then build the result with ``markdown_of`` or ``json_of``.
"""

import base64
import logging
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_lazy

from conversations import tree
from conversations.models import Attachment, Conversation, Message

logger = logging.getLogger(__name__)

SETTINGS = ("system_prompt", "temperature", "top_p", "top_k", "max_tokens", "reasoning_effort")
# What a message's status says in a Markdown export; a complete one says nothing.
STATUS_NOTES = {
    Message.Status.ERROR: gettext_lazy("Failed"),
    Message.Status.INTERRUPTED: gettext_lazy("Interrupted"),
    Message.Status.STOPPED: gettext_lazy("Stopped by the user"),
    Message.Status.PENDING: gettext_lazy("Not answered yet"),
    Message.Status.STREAMING: gettext_lazy("Still being written"),
}


def conversation_markdown(conversation: Conversation) -> str:
    return markdown_of(conversation, tree.branch(conversation))


def conversation_json(conversation: Conversation, *, images: bool = True) -> dict:
    messages = tree.branch(conversation)
    return json_of(conversation, messages, data_urls_read(messages) if images else None)


def filename_for(conversation: Conversation, extension: str) -> str:
    stem = slugify(conversation.title, allow_unicode=True)[:80] or f"conversation-{conversation.pk}"
    return f"{stem}.{extension}"


def data_urls_read(messages: Sequence[Message]) -> dict[int, str | None]:
    """Each attachment's image as a ``data:`` URL, by attachment id (None if unreadable).

    Reads storage only (the attachments are prefetched), so it may run in any thread.
    """
    return {
        attachment.pk: _data_url(attachment)
        for message in messages
        for attachment in message.attachments.all()
    }


def _data_url(attachment: Attachment) -> str | None:
    try:
        with attachment.image.storage.open(attachment.image.name, "rb") as stored:
            encoded = base64.b64encode(stored.read()).decode("ascii")
    except OSError:
        logger.exception("Could not read the stored image of attachment %s", attachment.pk)
        return None
    return f"data:{attachment.content_type};base64,{encoded}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def json_of(
    conversation: Conversation,
    messages: Sequence[Message],
    data_urls: dict[int, str | None] | None,
) -> dict:
    """The export as a JSON-ready dict; without ``data_urls`` the images are described only."""
    return {
        "title": conversation.title,
        "model": conversation.model,
        "settings": {name: getattr(conversation, name) for name in SETTINGS},
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "messages": [_message_json(message, data_urls) for message in messages],
    }


def _message_json(message: Message, data_urls: dict[int, str | None] | None) -> dict:
    return {
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "status": message.status,
        "model": message.model,
        "finish_reason": message.finish_reason,
        "error": message.error,
        "error_code": message.error_code,
        "usage": {name: getattr(message, name) for name in Message.USAGE_FIELDS},
        "time_to_first_token_ms": message.time_to_first_token_ms,
        "created_at": _iso(message.created_at),
        "completed_at": _iso(message.completed_at),
        "attachments": [
            _attachment_json(attachment, data_urls) for attachment in message.attachments.all()
        ],
    }


def _attachment_json(attachment: Attachment, data_urls: dict[int, str | None] | None) -> dict:
    described = {
        "name": attachment.original_name,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
        "size": attachment.size,
    }
    if data_urls is not None:
        described["data_url"] = data_urls.get(attachment.pk)
    return described


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def markdown_of(conversation: Conversation, messages: Sequence[Message]) -> str:
    lines = [f"# {conversation.title or gettext('Untitled conversation')}", ""]
    lines.append(
        gettext("Model: %(model)s · Started %(started)s · Last activity %(last)s")
        % {
            "model": conversation.model,
            "started": _when(conversation.created_at),
            "last": _when(conversation.updated_at),
        }
    )
    chosen = [
        f"{name.replace('_', ' ')} {getattr(conversation, name)}"
        for name in SETTINGS[1:]
        if getattr(conversation, name) not in (None, "")
    ]
    if chosen:
        lines.append(gettext("Settings: %(settings)s") % {"settings": ", ".join(chosen)})
    if conversation.system_prompt:
        lines += ["", f"## {gettext('System prompt')}", "", conversation.system_prompt]
    for message in messages:
        lines += ["", *_message_markdown(message)]
    return "\n".join(lines) + "\n"


def _message_markdown(message: Message) -> list[str]:
    if message.role == Message.Role.USER:
        heading = gettext("You · %(when)s") % {"when": _when(message.created_at)}
    else:
        heading = gettext("Assistant (%(model)s) · %(when)s") % {
            "model": message.model,
            "when": _when(message.created_at),
        }
    lines = [f"## {heading}", ""]
    if message.reasoning:
        thinking = gettext("Thinking:")
        lines += [f"> {thinking}", ">", *(f"> {line}" for line in message.reasoning.splitlines())]
        lines.append("")
    if message.content:
        lines.append(message.content)
    for attachment in message.attachments.all():
        lines.append(
            gettext("[Image: %(name)s, %(width)s by %(height)s pixels]")
            % {
                "name": attachment.original_name,
                "width": attachment.width,
                "height": attachment.height,
            }
        )
    if note := STATUS_NOTES.get(message.status):
        lines += ["", f"> {note}{': ' + message.error if message.error else '.'}"]
    if message.role == Message.Role.ASSISTANT and message.total_tokens is not None:
        usage = gettext("%(tokens_in)s tokens in, %(tokens_out)s out") % {
            "tokens_in": message.prompt_tokens or 0,
            "tokens_out": message.completion_tokens or 0,
        }
        if message.reasoning_tokens:
            usage += ", " + gettext("%(tokens)s reasoning") % {"tokens": message.reasoning_tokens}
        if message.cached_tokens:
            usage += ", " + gettext("%(tokens)s cached") % {"tokens": message.cached_tokens}
        lines += ["", f"*{usage}.*"]
    return lines
