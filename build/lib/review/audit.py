"""The audit of staff reads.

Whether staff may read other users' conversations at all is the deployment's choice
(WEBCHAT_STAFF_CAN_READ_CONVERSATIONS); when they may, every read is recorded.
"""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from conversations.models import Conversation
from review.models import ReviewAccess


def staff_can_read() -> bool:
    return settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS


def review_accesses_record(
    *, viewer: AbstractBaseUser, conversations: Iterable[Conversation]
) -> list[ReviewAccess]:
    """Record that ``viewer`` read ``conversations`` (their owners loaded); reading one's
    own is not recorded."""
    return ReviewAccess.objects.bulk_create(
        ReviewAccess(
            viewer=viewer,
            viewer_username=viewer.get_username(),
            conversation=conversation,
            conversation_ref=conversation.pk,
            owner_username=conversation.owner.get_username(),
        )
        for conversation in conversations
        if conversation.owner_id != viewer.pk
    )
