"""Domain actions on conversations, shared by views and consumers.

These are synchronous (they run in transactions); async callers wrap them with
``sync_to_async``. Each one validates first and changes nothing when it refuses.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Conversation, Message

TITLE_MAX_CHARS = 60


class MessageRefused(Exception):
    """A message that cannot be sent; ``str(error)`` is shown to the user."""


def message_text_clean(text: str) -> str:
    if not text or not text.strip():
        raise MessageRefused("Type a message before sending.")
    limit = settings.WEBCHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageRefused(
            f"This message is {len(text):,} characters long; the limit is {limit:,}."
        )
    return text.strip()


def title_from_text(text: str) -> str:
    """The first words of a message, cut at a word boundary."""
    words = " ".join(text.split())
    if len(words) <= TITLE_MAX_CHARS:
        return words
    cut = words[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or words[:TITLE_MAX_CHARS]
    return cut + "…"


def default_model() -> str:
    return settings.WEBCHAT_MODELS[0]


def conversation_start(*, owner: AbstractBaseUser, text: str) -> tuple[Conversation, Message]:
    """Create a conversation with its first message; return it and the pending reply."""
    text = message_text_clean(text)
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=owner, title=title_from_text(text), model=default_model()
        )
        _user_message, reply = _exchange_create(conversation=conversation, text=text)
    return conversation, reply


def message_send(*, conversation: Conversation, text: str) -> tuple[Message, Message]:
    """Add a user message and a pending reply to ``conversation``."""
    text = message_text_clean(text)
    try:
        with transaction.atomic():
            user_message, reply = _exchange_create(conversation=conversation, text=text)
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    except IntegrityError:
        if conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).exists():
            raise MessageRefused(
                "A reply is still being written in this conversation. "
                "Wait for it to finish, then send your message."
            ) from None
        raise
    return user_message, reply


def _exchange_create(*, conversation: Conversation, text: str) -> tuple[Message, Message]:
    user_message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=text
    )
    reply = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        model=conversation.model,
    )
    return user_message, reply


def history_for_reply(reply: Message) -> list[dict]:
    """The messages to forward to the API for ``reply``: everything said before it."""
    earlier = (
        reply.conversation.messages.filter(pk__lt=reply.pk)
        .exclude(role=Message.Role.ASSISTANT, content="")
        .values_list("role", "content")
    )
    return [{"role": role, "content": content} for role, content in earlier]
