"""Images attached to messages: storing their files, who may see them, and forwarding them.

Files go through Django's storage API (a folder under MEDIA_ROOT by default; any storage
backend by settings), never through a public URL: the views serve them to whoever
``attachments_visible_to`` allows.
"""

import asyncio
import base64
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from conversations import images
from conversations.images import ImageLimits, NormalizedImage
from conversations.models import Attachment, Message

logger = logging.getLogger(__name__)

# The request body beyond its messages (model, options) and each image part's JSON frame.
REQUEST_OVERHEAD_BYTES = 1024
IMAGE_PART_OVERHEAD_BYTES = 100

# Each process decodes one image at a time, in a thread of its own: however many are posted
# at once, decoding takes at most the memory of one (WEBCHAT_MAX_IMAGE_MEMORY) and one core,
# and the images waiting their turn hold no thread that requests need.
_decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-decoder")


def image_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.WEBCHAT_MAX_IMAGE_BYTES,
        max_pixels=settings.WEBCHAT_MAX_IMAGE_PIXELS,
        max_side=settings.WEBCHAT_IMAGE_MAX_SIDE,
        max_decoding_bytes=settings.WEBCHAT_MAX_IMAGE_MEMORY,
    )


async def images_normalize(
    uploads: Sequence[UploadedFile],
) -> list[NormalizedImage | images.ImageRejected]:
    """Each uploaded file normalized, or why it is refused, in this process's image
    decoder: a message's images one after the other, after the messages posted before it,
    so that only one message's normalized images are in memory while the others wait."""
    limits = image_limits()

    def normalize_each() -> list[NormalizedImage | images.ImageRejected]:
        normalized: list[NormalizedImage | images.ImageRejected] = []
        for upload in uploads:
            try:
                normalized.append(images.normalize(upload, filename=upload.name, limits=limits))
            except images.ImageRejected as rejection:
                normalized.append(rejection)
        return normalized

    return await asyncio.get_running_loop().run_in_executor(_decoder, normalize_each)


def attachments_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Attachment]:
    """The attachments ``user`` may open: those of their own conversations, and every one
    for those allowed to view attachments (reviewers and admins, by their groups) while
    staff may read conversations (WEBCHAT_STAFF_CAN_READ_CONVERSATIONS)."""
    if not user.is_authenticated:
        return Attachment.objects.none()
    if settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS and user.has_perm(
        "conversations.view_attachment"
    ):
        return Attachment.objects.all()
    return Attachment.objects.filter(message__conversation__owner=user)


@contextmanager
def files_stored(images: Sequence[NormalizedImage]) -> Iterator[list[Attachment]]:
    """Unsaved attachments of ``images``, their files already in storage.

    If the block fails (a refused message, a rolled-back transaction), the files are deleted
    again, so nothing is left behind.
    """
    attachments: list[Attachment] = []
    try:
        for image in images:
            attachment = Attachment(
                content_type=image.content_type,
                width=image.width,
                height=image.height,
                size=len(image.data),
                original_name=image.original_name,
            )
            attachments.append(attachment)
            attachment.image.save(f"image.{image.extension}", ContentFile(image.data), save=False)
            attachment.thumbnail.save("thumbnail.webp", ContentFile(image.thumbnail), save=False)
        yield attachments
    except BaseException:
        for attachment in attachments:
            files_delete(attachment)
        raise


def copies_of(originals: Sequence[Attachment]) -> list[Attachment]:
    """Unsaved attachments sharing the files of ``originals`` (an edited message's images)."""
    fields = ["image", "thumbnail", "content_type", "width", "height", "size", "original_name"]
    return [
        Attachment(**{name: getattr(original, name) for name in fields}) for original in originals
    ]


def files_delete(attachment: Attachment) -> None:
    """Delete an attachment's files from storage, unless another attachment (a copy on an
    edited message) still uses them; a failure is logged, not raised."""
    if Attachment.objects.filter(image=attachment.image.name).exists():
        return
    for field_file in (attachment.image, attachment.thumbnail):
        if not field_file.name:
            continue
        try:
            field_file.storage.delete(field_file.name)
        except Exception:
            logger.exception("Could not delete the stored file %s", field_file.name)


def images_to_forward(messages: Sequence[Message], max_request_bytes: int) -> set[int]:
    """The attachments sent in full: the newest that keep the request under its cap.

    The rest, the oldest, are replaced by a short note (see ``message_content``). Sizes
    come from the database, so no file is read to decide.
    """
    attachments = [attachment for message in messages for attachment in message.attachments.all()]
    text_only = [{"role": message.role, "content": message.content} for message in messages]
    used = REQUEST_OVERHEAD_BYTES + len(json.dumps(text_only))
    used += sum(len(json.dumps(_left_out_note(attachment))) for attachment in attachments)
    forwarded: set[int] = set()
    for attachment in reversed(attachments):
        used += IMAGE_PART_OVERHEAD_BYTES + _data_url_length(attachment)
        if used > max_request_bytes:
            break
        forwarded.add(attachment.pk)
    return forwarded


def message_content(message: Message, forwarded: set[int]) -> str | list[dict]:
    """The API ``content`` of ``message``: its text, or with images a list of parts."""
    attachments = message.attachments.all()
    if not attachments:
        return message.content
    parts = [{"type": "text", "text": message.content}] if message.content else []
    for attachment in attachments:
        forward = attachment.pk in forwarded
        parts.append(_image_part(attachment) if forward else _left_out_note(attachment))
    return parts


def _data_url_length(attachment: Attachment) -> int:
    prefix = f"data:{attachment.content_type};base64,"
    return len(prefix) + 4 * ((attachment.size + 2) // 3)


def _image_part(attachment: Attachment) -> dict:
    try:
        with attachment.image.storage.open(attachment.image.name, "rb") as stored:
            encoded = base64.b64encode(stored.read()).decode("ascii")
    except OSError:
        logger.exception("Could not read the stored image of attachment %s", attachment.pk)
        return _text_part(f"[The image “{attachment.original_name}” could not be read.]")
    url = f"data:{attachment.content_type};base64,{encoded}"
    return {"type": "image_url", "image_url": {"url": url}}


def _left_out_note(attachment: Attachment) -> dict:
    return _text_part(
        f"[An earlier image, “{attachment.original_name}”, was left out "
        "to keep the request within its size limit.]"
    )


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}
