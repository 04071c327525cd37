"""Reviewers' flags on conversations and messages."""

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.translation import gettext

from conversations.models import Conversation, Message
from review.models import Flag

NOTE_MAX_CHARS = 2000


class FlagRefused(Exception):
    """A flag that cannot be made; ``str(error)`` says why."""


def flag_create(
    *,
    conversation: Conversation,
    flagged_by: AbstractBaseUser,
    note: str,
    message_id: int | None = None,
) -> Flag:
    """Flag ``conversation``, or one message of it, with a note saying why."""
    note = note.strip()
    if not note:
        raise FlagRefused(gettext("Write a note saying why you flag it."))
    if len(note) > NOTE_MAX_CHARS:
        raise FlagRefused(
            gettext("The note is %(length)s characters long; the limit is %(limit)s.")
            % {"length": f"{len(note):,}", "limit": f"{NOTE_MAX_CHARS:,}"}
        )
    message = None
    if message_id is not None:
        message = Message.objects.filter(pk=message_id, conversation=conversation).first()
        if message is None:
            raise FlagRefused(gettext("That message is not part of this conversation."))
    return Flag.objects.create(
        conversation=conversation, message=message, note=note, flagged_by=flagged_by
    )


def flags_clear(*, flags, cleared_by: AbstractBaseUser) -> int:
    """Clear the open ones of ``flags`` (a queryset); return how many were open."""
    return flags.filter(cleared_at__isnull=True).update(
        cleared_by=cleared_by, cleared_at=timezone.now()
    )
