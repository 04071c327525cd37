"""Domain actions on conversations, shared by views and consumers.

These are synchronous (they run in transactions); async callers wrap them with
``sync_to_async``. Each one validates first and changes nothing when it refuses.
"""

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Sum, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext

from accounts import access, limits
from conversations import attachments, tree
from conversations.images import NormalizedImage
from conversations.models import Attachment, Conversation, Message, UnstoredReply

TITLE_MAX_CHARS = 60
STILL_WRITING = gettext_lazy(
    "A reply is still being written in this conversation. Wait for it to finish."
)
CONTINUE_INSTRUCTION = (
    "Continue your previous reply exactly where it stopped. Do not repeat what you already wrote."
)


class MessageRefused(Exception):
    """A message that cannot be sent; ``str(error)`` is shown to the user.

    ``code`` says which limit refused it, where the API answers it differently: a rate
    limit or quota (``limits.RATE``, ``limits.QUOTA``), or ``TOO_MANY_ACTIVE``."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


TOO_MANY_ACTIVE = "too_many_active"


def message_text_clean(text: str, *, with_images: bool = False) -> str:
    """The text to save; it may be empty only when images go with it."""
    if not with_images and (not text or not text.strip()):
        raise MessageRefused(gettext("Type a message before sending."))
    if "\x00" in text:
        raise MessageRefused(
            gettext("The message holds a NUL character, which cannot be kept. Remove it.")
        )
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


def conversation_start_check(
    *, owner: AbstractBaseUser, text: str, image_count: int, model: str = ""
) -> None:
    """Refuse, as ``conversation_start`` would, what can be judged before any image is
    decoded: the text, the number of images, the model, the user's limits and replies."""
    message_text_clean(text, with_images=bool(image_count))
    image_count_check(image_count)
    model_choose(owner, model)
    _active_replies_check(owner_id=owner.pk, lock=False)


def conversation_start(
    *,
    owner: AbstractBaseUser,
    text: str,
    images: Sequence[NormalizedImage] = (),
    model: str = "",
    system_prompt: str = "",
    runner: str = "",
) -> tuple[Conversation, Message]:
    """Create a conversation with its first message; return it and the pending reply."""
    text = message_text_clean(text, with_images=bool(images))
    image_count_check(len(images))
    model = model_choose(owner, model)
    title = title_from_text(text) or ngettext("Image", "%(count)s images", len(images)) % {
        "count": len(images)
    }
    with attachments.files_stored(images) as unsaved_attachments, transaction.atomic():
        _active_replies_check(owner_id=owner.pk)
        conversation = Conversation.objects.create(
            owner=owner, title=title, model=model, system_prompt=system_prompt
        )
        _user_message, reply = _exchange_create(
            conversation=conversation,
            text=text,
            unsaved_attachments=unsaved_attachments,
            runner=runner,
        )
    return conversation, reply


@dataclass(frozen=True)
class Turn:
    """One message of a conversation given whole (the API's ``messages``)."""

    role: str  # Message.Role
    text: str
    images: Sequence[NormalizedImage] = ()


def api_conversation_start(
    *,
    owner: AbstractBaseUser,
    model: str,
    turns: Sequence[Turn],
    system_prompt: str = "",
    settings_values: dict | None = None,
    api_key_id: int | None = None,
    runner: str = "",
) -> tuple[Conversation, Message]:
    """Store a conversation given whole through the API (marked as such, with the key it
    came with), its turns in order, and a pending reply to the last, which is the user's.
    ``settings_values`` are the request's options, stored as the conversation's settings."""
    question = turns[-1]
    title = title_from_text(question.text) or ngettext(
        "Image", "%(count)s images", len(question.images)
    ) % {"count": len(question.images)}
    all_images = [image for turn in turns for image in turn.images]
    with attachments.files_stored(all_images) as unsaved, transaction.atomic():
        _active_replies_check(owner_id=owner.pk)
        conversation = Conversation.objects.create(
            owner=owner,
            title=title,
            model=model,
            system_prompt=system_prompt,
            source=Conversation.Source.API,
            api_key_id=api_key_id,
            **(settings_values or {}),
        )
        parent = None
        for turn in turns[:-1]:
            parent = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=turn.role,
                content=turn.text,
                status=Message.Status.COMPLETE,
                model=model if turn.role == Message.Role.ASSISTANT else "",
            )
            _attachments_save(parent, unsaved[: len(turn.images)])
            unsaved = unsaved[len(turn.images) :]
        user_message = Message.objects.create(
            conversation=conversation, parent=parent, role=Message.Role.USER, content=question.text
        )
        _attachments_save(user_message, unsaved)
        reply = _pending_reply_create(conversation, question=user_message, runner=runner)
    return conversation, reply


def _attachments_save(message: Message, unsaved: Sequence[Attachment]) -> None:
    for attachment in unsaved:
        attachment.message = message
    Attachment.objects.bulk_create(unsaved)


def unstored_reply_start(
    *, owner: AbstractBaseUser, model: str, reserved_tokens: int, runner: str = ""
) -> UnstoredReply:
    """A reply through the API that stores no text (WEBCHAT_API_STORE off), under the same
    limits as any other; it holds ``reserved_tokens`` against the quotas while written."""
    with transaction.atomic():
        _active_replies_check(owner_id=owner.pk)
        return UnstoredReply.objects.create(
            owner=owner, model=model, reserved_tokens=reserved_tokens, runner=runner
        )


def message_send_check(*, conversation: Conversation, text: str, image_count: int) -> None:
    """Refuse, as ``message_send`` would, what can be judged before any image is decoded:
    the text, the number of images, the model, a reply being written, the user's limits."""
    message_text_clean(text, with_images=bool(image_count))
    image_count_check(image_count)
    model_access_check(conversation.owner, conversation)
    _nothing_active_check(conversation)
    _active_replies_check(owner_id=conversation.owner_id, lock=False)


def message_send(
    *,
    conversation: Conversation,
    text: str,
    images: Sequence[NormalizedImage] = (),
    runner: str = "",
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
        _active_replies_check(owner_id=conversation.owner_id)
        user_message, reply = _exchange_create(
            conversation=conversation,
            text=text,
            unsaved_attachments=unsaved_attachments,
            runner=runner,
        )
    return user_message, reply


def _exchange_create(
    *,
    conversation: Conversation,
    text: str,
    unsaved_attachments: Sequence[Attachment],
    runner: str = "",
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
    return user_message, _pending_reply_create(conversation, question=user_message, runner=runner)


def _branch_end_id(conversation: Conversation) -> int | None:
    """The last message of the shown branch, as stored now (another tab may have moved it)."""
    return tree.branch_end_id(
        Conversation.objects.filter(pk=conversation.pk).values_list("current_leaf", flat=True)[0],
        conversation_id=conversation.pk,
    )


def _pending_reply_create(conversation: Conversation, *, question: Message, runner: str) -> Message:
    """A reply to ``question`` waiting for the model, shown from now on, to be written by
    ``runner`` (reply_runners.py)."""
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        model=conversation.model,
        runner=runner,
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


def _active_replies_check(*, owner_id: int, lock: bool = True) -> None:
    """Refuse a new reply when the user has as many being written as allowed, or has
    reached a rate limit or token quota.

    Locking the user's row makes concurrent requests of one user take turns here; the
    early check, before images are decoded, only reads.
    """
    if lock:
        list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk"))
    try:
        limits.reply_allowed_check(owner_id)
    except limits.LimitReached as reached:
        raise MessageRefused(str(reached), code=reached.kind) from None
    active = Message.objects.filter(
        conversation__owner_id=owner_id, status__in=Message.ACTIVE_STATUSES
    ).count()
    active += UnstoredReply.objects.filter(
        owner_id=owner_id, status__in=Message.ACTIVE_STATUSES
    ).count()
    limit = settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER
    if active >= limit:
        raise MessageRefused(
            gettext(
                "You have %(count)s replies being written already, the most allowed at once. "
                "Wait for one to finish, then try again."
            )
            % {"count": active},
            code=TOO_MANY_ACTIVE,
        )


def reply_regenerate(*, reply: Message, runner: str = "") -> Message:
    """Answer ``reply``'s question again, in a new version of the reply.

    The old reply stays, as another version (see ``tree``); the new one is shown and,
    from then on, forwarded to the model in its place.
    """
    if reply.role != Message.Role.ASSISTANT or reply.is_active:
        raise MessageRefused(gettext("Only a finished reply can be generated again."))
    conversation = reply.conversation
    with _one_active_reply(conversation), transaction.atomic():
        _reply_restart_check(reply)
        regenerated = _pending_reply_create(conversation, question=reply.parent, runner=runner)
    return regenerated


def reply_continue(*, reply: Message, runner: str = "") -> Message:
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
        "runner": runner,
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
    if conversation.messages.filter(status__in=Message.ACTIVE_STATUSES).exists():
        raise MessageRefused(STILL_WRITING)


NOTHING_TO_SEND = gettext_lazy(
    "A message needs text or an image: type some text, or keep or add an image."
)


def _edit_kept(message: Message, removed_ids: Collection[int]) -> list[Attachment]:
    return [each for each in message.attachments.all() if each.pk not in removed_ids]


def _edit_content_check(text: str, image_count: int) -> str:
    if image_count == 0 and not text.strip():
        raise MessageRefused(str(NOTHING_TO_SEND))
    image_count_check(image_count)
    return message_text_clean(text, with_images=image_count > 0)


def message_edit_check(
    *, message: Message, text: str, removed_ids: Collection[int] = (), image_count: int = 0
) -> None:
    """Refuse, as ``message_edit`` would, what can be judged before any new image is
    decoded: the text and images left, the model, a reply being written, the user's limits."""
    if message.role != Message.Role.USER:
        raise MessageRefused(gettext("Only your own messages can be edited."))
    _edit_content_check(text, len(_edit_kept(message, removed_ids)) + image_count)
    conversation = message.conversation
    model_access_check(conversation.owner, conversation)
    _nothing_active_check(conversation)
    _active_replies_check(owner_id=conversation.owner_id, lock=False)


def message_edit(
    *,
    message: Message,
    text: str,
    removed_ids: Collection[int] = (),
    images: Sequence[NormalizedImage] = (),
    runner: str = "",
) -> tuple[Message, Message]:
    """Send an edited ``message`` as a new version of it, and answer it.

    The conversation goes on from the new version; the original and everything after it
    stay in the tree. The original's images go with the new version, but those whose ids
    are in ``removed_ids``, followed by ``images``; text may be empty while images remain.
    """
    if message.role != Message.Role.USER:
        raise MessageRefused(gettext("Only your own messages can be edited."))
    kept = _edit_kept(message, removed_ids)
    text = _edit_content_check(text, len(kept) + len(images))
    conversation = message.conversation
    model_access_check(conversation.owner, conversation)
    with (
        _one_active_reply(conversation),
        attachments.files_stored(images) as added,
        transaction.atomic(),
    ):
        _nothing_active_check(conversation)
        _active_replies_check(owner_id=conversation.owner_id)
        edited, reply = _exchange_create(
            conversation=conversation,
            text=text,
            unsaved_attachments=attachments.copies_of(kept) + added,
            runner=runner,
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


def conversation_usage(*, conversation_id: int) -> dict:
    """Tokens spent in the conversation, replaced versions included, in one query; each
    total is None while no reply reported it."""
    return Message.objects.filter(conversation_id=conversation_id).aggregate(
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        reasoning_tokens=Sum("reasoning_tokens"),
        cached_tokens=Sum("cached_tokens"),
    )


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
