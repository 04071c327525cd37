"""Keeping one's conversations in order: renaming, pinning and deleting them.

Synchronous, like services.py; async callers wrap them with ``sync_to_async``. Each one
checks its input first and changes nothing when it refuses. None of them moves a
conversation's ``updated_at``: putting things in order is not activity.
"""

from django.db import transaction
from django.utils.translation import gettext

from conversations.models import Conversation, Message

TITLE_MAX_CHARS = 100


class ChangeRefused(Exception):
    """A change that cannot be made; ``str(error)`` is shown to the user."""


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Give the conversation a title of the user's; no title from the model replaces it."""
    title = " ".join(title.split())
    if not title:
        raise ChangeRefused(gettext("Type a title for the conversation."))
    if len(title) > TITLE_MAX_CHARS:
        raise ChangeRefused(
            gettext("This title is %(length)s characters long; the limit is %(limit)s.")
            % {"length": len(title), "limit": TITLE_MAX_CHARS}
        )
    Conversation.objects.filter(pk=conversation.pk).update(
        title=title, title_source=Conversation.TitleSource.USER
    )
    conversation.title = title
    conversation.title_source = Conversation.TitleSource.USER
    return conversation


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin the conversation to the top of the list, or unpin it."""
    Conversation.objects.filter(pk=conversation.pk).update(pinned=pinned)
    conversation.pinned = pinned
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation and its messages; their image files are deleted once the
    deletion is committed (signals.py). Refused while a reply is being written."""
    with transaction.atomic():
        if conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).exists():
            raise ChangeRefused(
                gettext(
                    "A reply is still being written in this conversation. Stop it or wait for "
                    "it to finish, then delete the conversation."
                )
            )
        conversation.delete()
