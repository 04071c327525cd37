"""Deleting conversations nobody has touched for a while, with their image files.

A conversation's last activity is its ``updated_at``, which every new message moves.
The files of the deleted attachments go once each batch's deletion is committed
(conversations/signals.py).
"""

from dataclasses import astuple, dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from conversations.models import Attachment, Conversation, Message

BATCH_SIZE = 200


@dataclass(frozen=True)
class Summary:
    conversations: int
    messages: int
    images: int
    bytes: int

    def __add__(self, other: "Summary") -> "Summary":
        pairs = zip(astuple(self), astuple(other), strict=True)
        return Summary(*(mine + theirs for mine, theirs in pairs))


def conversations_expired(*, days: int) -> QuerySet[Conversation]:
    """Conversations whose last activity is more than ``days`` days ago."""
    return Conversation.objects.filter(updated_at__lt=timezone.now() - timedelta(days=days))


def conversations_summarize(conversations: QuerySet[Conversation]) -> Summary:
    """How much deleting ``conversations`` removes: rows, images and their bytes."""
    ids = conversations.values("pk")
    images = Attachment.objects.filter(message__conversation__in=ids).aggregate(
        count=Count("pk"), size=Sum("size", default=0)
    )
    return Summary(
        conversations=conversations.count(),
        messages=Message.objects.filter(conversation__in=ids).count(),
        images=images["count"],
        # Thumbnails are small and their size is not stored; the images' bytes are.
        bytes=images["size"],
    )


def conversations_delete(conversations: QuerySet[Conversation]) -> Summary:
    """Delete ``conversations`` in batches, each in its own transaction, and say what went.

    Each batch is filtered again, so a conversation that came back to life meanwhile stays.
    """
    deleted = Summary(conversations=0, messages=0, images=0, bytes=0)
    ids = list(conversations.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH_SIZE):
        with transaction.atomic():
            batch = conversations.filter(pk__in=ids[start : start + BATCH_SIZE])
            deleted += conversations_summarize(batch)
            batch.delete()
    return deleted
