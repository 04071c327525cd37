"""Share links: a read-only copy of a conversation's shown branch, opened by a token.

The owner makes a link for those signed in to this Webchat, or for anyone with it; every
opening by someone else and every revocation is recorded (review/audit.py). A revoked link,
one of a deleted conversation or of a deactivated owner, answers 404 like a link that never
was.
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext

from conversations import tree
from conversations.models import Attachment, Conversation, Message, Share
from review import audit
from review.models import ShareEvent

# What the shared page shows of each message; usage figures and the provider's own words
# about an error stay private.
SNAPSHOT_FIELDS = (
    "role",
    "content",
    "reasoning",
    "status",
    "model",
    "finish_reason",
    "error",
    "thinking_ms",
)


class ShareRefused(Exception):
    """A link that cannot be made, with the reason to show."""


class SignInRequired(Exception):
    """A link for those signed in, opened by someone who is not."""


def _message_snapshot(message: Message) -> dict:
    copied = {name: getattr(message, name) for name in SNAPSHOT_FIELDS}
    return {"id": message.pk, "created_at": message.created_at.isoformat(), **copied}


def shares_active(conversation: Conversation) -> QuerySet[Share]:
    return conversation.shares.filter(revoked_at__isnull=True)


def share_create(*, conversation: Conversation, user: AbstractBaseUser, audience: str) -> Share:
    """A link to ``conversation`` as it is shown now, for ``audience``. A reply still being
    written is left out: what it will say is not shared."""
    if conversation.owner_id != user.pk:
        raise ShareRefused(gettext("Only the owner of a conversation may share it."))
    if audience not in Share.Audience.values:
        raise ShareRefused(gettext("Choose who may open the link."))
    messages = [message for message in tree.branch(conversation) if not message.is_active]
    return Share.objects.create(
        conversation=conversation,
        audience=audience,
        title=conversation.title,
        snapshot=[_message_snapshot(message) for message in messages],
    )


def share_revoke(*, share: Share, user: AbstractBaseUser) -> None:
    """Revoke ``share`` for good, recording who did; revoking it again changes nothing."""
    revoked = Share.objects.filter(pk=share.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        share.refresh_from_db(fields=["revoked_at"])
        audit.share_event_record(share=share, actor=user, kind=ShareEvent.Kind.REVOKED)


def share_for_viewer(token: str, viewer: AbstractBaseUser | AnonymousUser) -> Share | None:
    """The live link of ``token`` with its conversation's owner, or None. Raises
    SignInRequired when the link is for those signed in and ``viewer`` is not."""
    share = (
        Share.objects.select_related("conversation__owner")
        # A deactivated owner's links stop with their account (and come back with it).
        .filter(token=token, revoked_at__isnull=True, conversation__owner__is_active=True)
        .first()
    )
    if share is None:
        return None
    if share.audience == Share.Audience.SIGNED_IN and not viewer.is_authenticated:
        raise SignInRequired
    return share


def share_open(*, share: Share, viewer: AbstractBaseUser | AnonymousUser) -> list[Message]:
    """The shared messages to show, once the opening is recorded (unless by the owner)."""
    if share.conversation.owner_id != viewer.pk:
        actor = viewer if viewer.is_authenticated else None
        audit.share_event_record(share=share, actor=actor, kind=ShareEvent.Kind.OPENED)
    return share_messages(share)


def share_messages(share: Share) -> list[Message]:
    """The snapshot as unsaved messages for the chat's templates, with their images."""
    messages = [
        Message(
            pk=copied["id"],
            conversation_id=share.conversation_id,
            created_at=datetime.fromisoformat(copied["created_at"]),
            **{name: copied[name] for name in SNAPSHOT_FIELDS},
        )
        for copied in share.snapshot
    ]
    prefetch_related_objects(messages, "attachments")
    return messages


def share_attachment(share: Share, attachment_id: int) -> Attachment | None:
    """An image of a message in the snapshot, or None for any other."""
    return Attachment.objects.filter(pk=attachment_id, message_id__in=share.message_ids).first()
