"""Domain actions on conversations, shared by views and consumers.

These are synchronous (they run in transactions); async callers wrap them with
``sync_to_async``. Each one validates first and changes nothing when it refuses.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from accounts import access, limits
from conversations import attachments, tree
from conversations.images import NormalizedImage
from conversations.models import Attachment, Conversation, Message
from conversations.upstream import failures

TITLE_MAX_CHARS = 60
STILL_WRITING = gettext_lazy(
    "A reply is still being written in this conversation. Wait for it to finish."
)
CONTINUE_INSTRUCTION = (
    "Continue your previous reply exactly where it stopped. Do not repeat what you already wrote."
)


class MessageRefused(Exception):
    """A message that cannot be sent; ``str(error)`` is shown to the user."""


def message_text_clean(text: str, *, with_images: bool = False) -> str:
    """The text to save; it may be empty only when images go with it."""
    if not with_images and (not text or not text.strip()):
        raise MessageRefused(gettext("Type a message before sending."))
    limit = settings.WEBCHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageRefused(
            gettext("This message is %(length)s characters long; the limit is %(limit)s.")
            % {"length": f"{len(text):,}", "limit": f"{limit:,}"}
        )
    return text.strip()


def image_count_check(count: int) -> None:
    limit = settings.WEBCHAT_MAX_IMAGES_PER_MESSAGE
    if count > limit:
        raise MessageRefused(
            gettext(
                "This message has %(count)s images; the limit is %(limit)s per message. "
                "Remove some and send again."
            )
            % {"count": count, "limit": limit}
        )


def title_from_text(text: str) -> str:
    """The first words of a message, cut at a word boundary."""
    words = " ".join(text.split())
    if len(words) <= TITLE_MAX_CHARS:
        return words
    cut = words[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or words[:TITLE_MAX_CHARS]
    return cut + "…"


def model_choose(user: AbstractBaseUser, requested: str = "") -> str:
    """The model of a new conversation: the one requested, or the first the user may use."""
    allowed = access.allowed_models(user)
    if not allowed:
        raise MessageRefused(
            gettext("No model is available to you. Ask an administrator for access.")
        )
    if not requested:
        return allowed[0]
    if requested not in allowed:
        raise MessageRefused(
            gettext("You may not use the model “%(model)s”. Choose another one.")
            % {"model": requested}
        )
    return requested


def model_access_check(user: AbstractBaseUser, conversation: Conversation) -> None:
    if not access.model_allowed(user, conversation.model):
        raise MessageRefused(
            gettext(
                "You no longer have access to the model “%(model)s” of this conversation. "
                "Start a new conversation."
            )
            % {"model": conversation.model}
        )


def conversation_start(
    *,
    owner: AbstractBaseUser,
    text: str,
    images: Sequence[NormalizedImage] = (),
    model: str = "",
    system_prompt: str = "",
) -> tuple[Conversation, Message]:
    """Create a conversation with its first message; return it and the pending reply."""
    text = message_text_clean(text, with_images=bool(images))
    image_count_check(len(images))
    model = model_choose(owner, model)
    title = title_from_text(text) or title_from_text(", ".join(i.original_name for i in images))
    with attachments.files_stored(images) as unsaved_attachments, transaction.atomic():
        _active_replies_check(owner_id=owner.pk)
        conversation = Conversation.objects.create(
            owner=owner, title=title, model=model, system_prompt=system_prompt
        )
        _user_message, reply = _exchange_create(
            conversation=conversation, text=text, unsaved_attachments=unsaved_attachments
        )
    return conversation, reply


def message_send(
    *, conversation: Conversation, text: str, images: Sequence[NormalizedImage] = ()
) -> tuple[Message, Message]:
    """Add a user message (with ``images`` attached) and a pending reply to ``conversation``."""
    text = message_text_clean(text, with_images=bool(images))
    image_count_check(len(images))
    model_access_check(conversation.owner, conversation)
    with (
        _one_active_reply(conversation),
        attachments.files_stored(images) as unsaved_attachments,
        transaction.atomic(),
    ):
        # A reply left active by a generation that died must not block the conversation.
        stale_replies_interrupt(conversation=conversation)
        _active_replies_check(owner_id=conversation.owner_id)
        user_message, reply = _exchange_create(
            conversation=conversation, text=text, unsaved_attachments=unsaved_attachments
        )
    return user_message, reply


def _exchange_create(
    *,
    conversation: Conversation,
    text: str,
    unsaved_attachments: Sequence[Attachment],
    parent_id: int | None = None,
    follows_branch: bool = True,
) -> tuple[Message, Message]:
    """A user message and its pending reply, which becomes the end of the shown branch.

    The message follows the shown branch, or (editing) goes under ``parent_id``.
    """
    if follows_branch:
        parent_id = _branch_end_id(conversation)
    user_message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=text, parent_id=parent_id
    )
    for attachment in unsaved_attachments:
        attachment.message = user_message
    Attachment.objects.bulk_create(unsaved_attachments)
    # Loaded now, so the page can render the message without querying from async code;
    # without images, known to be none without asking the database.
    attached = Attachment.objects.all() if unsaved_attachments else Attachment.objects.none()
    prefetch_related_objects([user_message], Prefetch("attachments", queryset=attached))
    return user_message, _pending_reply_create(conversation, question=user_message)


def _branch_end_id(conversation: Conversation) -> int | None:
    """The last message of the shown branch, as stored now (another tab may have moved it)."""
    return tree.branch_end_id(
        Conversation.objects.filter(pk=conversation.pk).values_list("current_leaf", flat=True)[0],
        conversation_id=conversation.pk,
    )


def _pending_reply_create(conversation: Conversation, *, question: Message) -> Message:
    """A reply to ``question`` waiting for the model, shown from now on; its heartbeat
    starts now, before the generation."""
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        model=conversation.model,
        heartbeat_at=timezone.now(),
    )
    _conversation_touch(conversation, current_leaf=reply)
    return reply


def _conversation_touch(conversation: Conversation, **changes) -> None:
    """Record activity (the sidebar's order), with ``changes``, without a full save."""
    changes["updated_at"] = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(**changes)
    for name, value in changes.items():
        setattr(conversation, name, value)


def history_for_reply(reply: Message) -> list[dict]:
    """The messages to forward to the API for ``reply``: its branch of the tree before it."""
    earlier = [
        message
        for message in tree.messages_in_order(
            tree.shape_of(reply.conversation_id).branch_to(reply.parent_id)
        )
        if message.role == Message.Role.USER or message.content
    ]
    forwarded_images = attachments.images_to_forward(earlier, settings.WEBCHAT_MAX_REQUEST_BYTES)
    history = [_message_payload(message, forwarded_images) for message in earlier]
    if reply.content:
        # Continuing a reply: the model sees its own partial text and is asked to go on.
        history += [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": CONTINUE_INSTRUCTION},
        ]
    return history


def _message_payload(message: Message, forwarded_images: set[int]) -> dict:
    """One message as the API takes it; images not in ``forwarded_images`` become a note."""
    return {"role": message.role, "content": attachments.message_content(message, forwarded_images)}


def latest_exchange(*, conversation_id: int) -> list[Message]:
    """The shown branch's last user message and its reply, with their versions."""
    conversation = Conversation.objects.only("current_leaf").get(pk=conversation_id)
    shape = tree.shape_of(conversation_id)
    ids = tree.branch_ids(conversation, shape)[-2:]
    messages = tree.messages_in_order(ids)
    if len(messages) == 2 and messages[0].role == Message.Role.ASSISTANT:
        messages = messages[1:]
    tree.annotate_versions(messages, shape)
    if messages:
        messages[-1].is_branch_end = True
    return messages


def _stale_cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=settings.WEBCHAT_STALE_REPLY_SECONDS)


def _stale(cutoff: datetime) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)


def stale_replies_interrupt(*, conversation: Conversation | None = None) -> int:
    """Mark active replies whose generation died interrupted, keeping their text.

    A running generation refreshes its reply's heartbeat with every save, so only replies
    silent for WEBCHAT_STALE_REPLY_SECONDS are touched: safe with several processes.
    Returns how many replies were marked.
    """
    stale = Message.objects.filter(_stale(_stale_cutoff()), status__in=Message.ACTIVE_STATUSES)
    if conversation is not None:
        stale = stale.filter(conversation=conversation)
    if not stale.exists():
        return 0  # the usual case, answered by a read: opening a page takes no write lock
    return stale.update(
        status=Message.Status.INTERRUPTED,
        error=failures.SERVER_STOPPED_MESSAGE,
        error_code=failures.INTERRUPTED,
        completed_at=timezone.now(),
    )


def _active_replies_check(*, owner_id: int) -> None:
    """Refuse a new reply when the user has as many being written as allowed, or has
    reached a rate limit or token quota."""
    # Locking the user's row makes concurrent requests of one user take turns here.
    list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk"))
    try:
        limits.reply_allowed_check(owner_id)
    except limits.LimitReached as reached:
        raise MessageRefused(str(reached)) from None
    active = (
        Message.objects.filter(conversation__owner_id=owner_id, status__in=Message.ACTIVE_STATUSES)
        .exclude(_stale(_stale_cutoff()))
        .count()
    )
    limit = settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER
    if active >= limit:
        raise MessageRefused(
            gettext(
                "You have %(count)s replies being written already, the most allowed at once. "
                "Wait for one to finish, then try again."
            )
            % {"count": active}
        )


def reply_regenerate(*, reply: Message) -> Message:
    """Answer ``reply``'s question again, in a new version of the reply.

    The old reply stays, as another version (see ``tree``); the new one is shown and,
    from then on, forwarded to the model in its place.
    """
    if reply.role != Message.Role.ASSISTANT or reply.is_active:
        raise MessageRefused(gettext("Only a finished reply can be generated again."))
    conversation = reply.conversation
    with _one_active_reply(conversation), transaction.atomic():
        _reply_restart_check(reply)
        regenerated = _pending_reply_create(conversation, question=reply.parent)
    return regenerated


def reply_continue(*, reply: Message) -> Message:
    """Generate more of ``reply`` into the same message, after the text it already has."""
    if not reply.can_be_continued:
        raise MessageRefused(
            gettext("Only a reply that was stopped, interrupted or cut short can be continued.")
        )
    conversation = reply.conversation
    changes = {
        "status": Message.Status.PENDING,
        "error": "",
        "error_code": "",
        "finish_reason": "",
        "completed_at": None,
        "time_to_first_token_ms": None,
        "heartbeat_at": timezone.now(),
    }
    with _one_active_reply(conversation), transaction.atomic():
        _reply_restart_check(reply)
        claimed = Message.objects.filter(pk=reply.pk, status=reply.status).update(**changes)
        if not claimed:
            raise MessageRefused(gettext("This reply changed in the meantime. Reload the page."))
        _conversation_touch(conversation)
    for name, value in changes.items():
        setattr(reply, name, value)
    return reply


def _reply_restart_check(reply: Message) -> None:
    """Refuse to regenerate or continue a reply while another is written, or when it is
    not the end of the shown branch."""
    conversation = reply.conversation
    model_access_check(conversation.owner, conversation)
    _nothing_active_check(conversation)
    if _branch_end_id(conversation) != reply.pk:
        raise MessageRefused(gettext("Only the latest reply can be generated again or continued."))
    _active_replies_check(owner_id=conversation.owner_id)


def _nothing_active_check(conversation: Conversation) -> None:
    stale_replies_interrupt(conversation=conversation)
    if conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).exists():
        raise MessageRefused(STILL_WRITING)


def message_edit(*, message: Message, text: str) -> tuple[Message, Message]:
    """Send an edited ``message`` as a new version of it, and answer it.

    The conversation goes on from the new version; the original and everything after it
    stay in the tree. Images of the original go with the new version.
    """
    if message.role != Message.Role.USER:
        raise MessageRefused(gettext("Only your own messages can be edited."))
    originals = list(message.attachments.all())
    text = message_text_clean(text, with_images=bool(originals))
    conversation = message.conversation
    model_access_check(conversation.owner, conversation)
    with _one_active_reply(conversation), transaction.atomic():
        _nothing_active_check(conversation)
        _active_replies_check(owner_id=conversation.owner_id)
        edited, reply = _exchange_create(
            conversation=conversation,
            text=text,
            unsaved_attachments=attachments.copies_of(originals),
            parent_id=message.parent_id,
            follows_branch=False,
        )
    return edited, reply


def branch_show(*, conversation: Conversation, message: Message) -> None:
    """Show the version ``message`` (and the newest branch below it)."""
    with transaction.atomic():
        _nothing_active_check(conversation)
        leaf_id = tree.shape_of(conversation.pk).newest_leaf_under(message.pk)
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=leaf_id)
    conversation.current_leaf_id = leaf_id


def active_reply(conversation: Conversation) -> Message | None:
    return conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).first()


@contextmanager
def _one_active_reply(conversation: Conversation) -> Iterator[None]:
    """Turn the database's one-active-reply rule into a refusal the user can read."""
    try:
        yield
    except IntegrityError:
        if conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).exists():
            raise MessageRefused(STILL_WRITING) from None
        raise
