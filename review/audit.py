"""The audit of staff reads, and of share links.

Whether staff may read other users' conversations at all is the deployment's choice
(WEBCHAT_STAFF_CAN_READ_CONVERSATIONS); when they may, every read is recorded: a
conversation's page or export, and each of its images, full size or thumbnail. Whoever
opens a share link but its owner, and whoever revokes one, is recorded too.
"""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from conversations.models import Attachment, Conversation, Share
from review.models import ReviewAccess, ShareEvent


def staff_can_read() -> bool:
    return settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS


def _review_access(
    viewer: AbstractBaseUser, conversation: Conversation, **fields: object
) -> ReviewAccess:
    return ReviewAccess(
        viewer=viewer,
        viewer_username=viewer.get_username(),
        conversation=conversation,
        conversation_ref=conversation.pk,
        owner_username=conversation.owner.get_username(),
        **fields,
    )


def review_accesses_record(
    *, viewer: AbstractBaseUser, conversations: Iterable[Conversation]
) -> list[ReviewAccess]:
    """Record that ``viewer`` read ``conversations`` (their owners loaded); reading one's
    own is not recorded."""
    return ReviewAccess.objects.bulk_create(
        _review_access(viewer, conversation)
        for conversation in conversations
        if conversation.owner_id != viewer.pk
    )


async def review_access_image_record(
    *, viewer: AbstractBaseUser, attachment: Attachment, kind: ReviewAccess.Kind
) -> ReviewAccess | None:
    """Record that ``viewer`` read the image ``attachment`` (its message, conversation and
    owner loaded), full size or as a thumbnail; reading one's own is not recorded."""
    conversation = attachment.message.conversation
    if conversation.owner_id == viewer.pk:
        return None
    access = _review_access(viewer, conversation, kind=kind, attachment_ref=attachment.pk)
    await access.asave()
    return access


def share_event_record(
    *, share: Share, actor: AbstractBaseUser | None, kind: ShareEvent.Kind
) -> ShareEvent:
    """Record that ``actor`` (None: someone not signed in) opened or revoked ``share`` (its
    conversation's owner loaded)."""
    conversation = share.conversation
    return ShareEvent.objects.create(
        kind=kind,
        share=share,
        share_ref=share.pk,
        conversation=conversation,
        conversation_ref=conversation.pk,
        owner_username=conversation.owner.get_username(),
        actor=actor,
        actor_username=actor.get_username() if actor is not None else "",
    )
