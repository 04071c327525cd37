"""What users wrote, as opposed to figures about it: the fields the admin never filters or
sorts on at a query string's request, and shows only while staff may read conversations
(WEBCHAT_STAFF_CAN_READ_CONVERSATIONS)."""

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP

from conversations.models import Attachment, Conversation, Feedback, Message, Preset, Share

PRIVATE_FIELDS: dict[type[Model], frozenset[str]] = {
    Conversation: frozenset({"title", "system_prompt"}),
    # The provider's own words about an error may quote the message.
    Message: frozenset({"content", "reasoning", "error_detail"}),
    Attachment: frozenset({"image", "thumbnail", "original_name"}),
    Preset: frozenset({"name", "system_prompt"}),
    # A share link's copy of its conversation, and its token, which would open it.
    Share: frozenset({"title", "snapshot", "token"}),
    Feedback: frozenset({"note"}),
}


def lookup_reaches_private_field(model: type[Model], lookup: str) -> bool:
    """Whether the lookup ``lookup`` on ``model`` (``title__startswith``,
    ``conversation__messages__content__contains``…) compares a private field."""
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or comparison, or no field at all
        if field.name in PRIVATE_FIELDS.get(model, ()):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False
