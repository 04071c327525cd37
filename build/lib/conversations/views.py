import asyncio
from pathlib import PurePath

from asgiref.sync import sync_to_async
from django.db.models import Sum
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts import access
from conversations import (
    attachments,
    conversation_settings,
    frames,
    generation,
    images,
    lookups,
    services,
    tree,
)
from conversations.generation import start_generation
from conversations.models import Attachment, Conversation, Message, Preset

# Messages shown at first, and loaded at a time when scrolling up a long conversation.
PAGE_SIZE = 40
# Stored images never change, but access to them can end: browsers keep them a day.
ATTACHMENT_MAX_AGE = 24 * 60 * 60


async def _get_conversation_for_user(request: HttpRequest, conversation_id: int) -> Conversation:
    return await lookups.aconversation_for_user(await request.auser(), conversation_id)


async def _sidebar_conversations(request: HttpRequest) -> list[Conversation]:
    recent = lookups.sidebar_conversations(await request.auser())
    return [conversation async for conversation in recent]


async def _chat_page(
    request: HttpRequest,
    conversation: Conversation | None,
    *,
    draft: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    page = None
    models: list[str] = []
    presets: list[Preset] = []
    usage = {}
    if conversation is not None:
        page = await sync_to_async(tree.branch_page)(conversation, size=PAGE_SIZE)
        usage = await conversation_usage(conversation)
    else:
        models = await sync_to_async(access.allowed_models)(await request.auser())
        presets = [preset async for preset in Preset.objects.filter(owner=await request.auser())]
    context = {
        "conversation": conversation,
        "page": page,
        "conversation_usage": usage,
        "sidebar_conversations": await _sidebar_conversations(request),
        "draft": draft,
        "composer_error": error,
        "models": models,
        "presets": presets,
    }
    return render(request, "conversations/chat.html", context, status=status)


async def conversation_usage(conversation: Conversation) -> dict:
    """Tokens spent in the conversation, replaced versions included."""
    return await conversation.messages.aaggregate(
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        reasoning_tokens=Sum("reasoning_tokens"),
        cached_tokens=Sum("cached_tokens"),
    )


async def _branch_response(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    """After the shown branch changed: its newest messages (htmx) or the page. Other tabs
    are told to load it too."""
    await frames.publish(conversation.pk, frames.branch_changed_frame(conversation.pk))
    if request.htmx:
        await conversation.arefresh_from_db(fields=["current_leaf"])
        page = await sync_to_async(tree.branch_page)(conversation, size=PAGE_SIZE)
        context = {"conversation": conversation, "page": page}
        return render(request, "conversations/partials/_branch_page.html", context)
    return redirect(conversation)


async def _refused(
    request: HttpRequest, conversation: Conversation | None, text: str, error: str
) -> HttpResponse:
    """A refused message: the error is shown and the text stays in the composer."""
    if request.htmx:
        response = render(
            request, "conversations/partials/_composer_error.html", {"error": error}, status=422
        )
        return reswap(retarget(response, "#composer-error"), "innerHTML")
    return await _chat_page(request, conversation, draft=text, error=error, status=422)


@require_GET
async def index(request: HttpRequest) -> HttpResponse:
    return await _chat_page(request, None)


@require_GET
async def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = await _get_conversation_for_user(request, conversation_id)
    # A reply whose generation died (a killed server) shows as interrupted, not streaming.
    await sync_to_async(services.stale_replies_interrupt)(conversation=conversation)
    return await _chat_page(request, conversation)


async def _posted_images(request: HttpRequest, text: str) -> list[images.NormalizedImage]:
    """The posted images, normalized one at a time in a worker thread once the cheap checks
    pass; a refusal names every file that was rejected."""
    uploads = request.FILES.getlist("images")
    services.message_text_clean(text, with_images=bool(uploads))
    services.image_count_check(len(uploads))
    limits = attachments.image_limits()
    normalized, rejections = [], []
    for upload in uploads:
        try:
            normalized.append(
                await asyncio.to_thread(
                    images.normalize, upload, filename=upload.name, limits=limits
                )
            )
        except images.ImageRejected as rejection:
            rejections.append(str(rejection))
    if rejections:
        raise services.MessageRefused(" ".join(rejections))
    return normalized


async def _posted_form(request: HttpRequest) -> QueryDict:
    """The posted form, parsed in a worker thread: a message's images are megabytes of
    multipart body copied to temporary files."""
    return await asyncio.to_thread(lambda: request.POST)


@require_POST
async def conversation_create(request: HttpRequest) -> HttpResponse:
    text = (await _posted_form(request)).get("text", "")
    try:
        posted_images = await _posted_images(request, text)
        system_prompt = await sync_to_async(conversation_settings.preset_system_prompt)(
            owner=await request.auser(), preset_id=request.POST.get("preset", "")
        )
        conversation, reply = await sync_to_async(services.conversation_start)(
            owner=await request.auser(),
            text=text,
            images=posted_images,
            model=request.POST.get("model", ""),
            system_prompt=system_prompt,
        )
    except services.MessageRefused as refusal:
        return await _refused(request, None, text, str(refusal))
    start_generation(reply)
    if request.htmx:
        return HttpResponseClientRedirect(conversation.get_absolute_url())
    return redirect(conversation)


@require_POST
async def message_create(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = await _get_conversation_for_user(request, conversation_id)
    text = (await _posted_form(request)).get("text", "")
    try:
        posted_images = await _posted_images(request, text)
        user_message, reply = await sync_to_async(services.message_send)(
            conversation=conversation, text=text, images=posted_images
        )
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, text, str(refusal))
    start_generation(reply, exchange=[user_message, reply])
    if request.htmx:
        return render(
            request,
            "conversations/partials/_exchange.html",
            {"chat_messages": [user_message, reply]},
        )
    return redirect(conversation)


@require_GET
async def older_messages(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The messages of the shown branch before ``?before=<id>``, for scrolling up."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    try:
        before = int(request.GET["before"]) if "before" in request.GET else None
    except ValueError:
        return HttpResponseBadRequest(gettext("“before” must be the number of a message."))
    page = await sync_to_async(tree.branch_page)(conversation, size=PAGE_SIZE, before=before)
    context = {"conversation": conversation, "page": page}
    if request.htmx:
        return render(request, "conversations/partials/_branch_page.html", context)
    return render(request, "conversations/older.html", context)


async def _get_message(conversation: Conversation, message_id: int) -> Message:
    try:
        messages = conversation.messages.select_related("conversation__owner")
        return await messages.prefetch_related("attachments").aget(pk=message_id)
    except Message.DoesNotExist:
        raise Http404("No such message.") from None


async def _generate_again(
    request: HttpRequest, conversation_id: int, message_id: int, action
) -> HttpResponse:
    """Run ``action`` (regenerate or continue) on a reply, then stream what it starts."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    reply = await _get_message(conversation, message_id)
    try:
        generated = await sync_to_async(action)(reply=reply)
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, "", str(refusal))
    start_generation(generated)
    return await _branch_response(request, conversation)


@require_POST
async def reply_regenerate(
    request: HttpRequest, conversation_id: int, message_id: int
) -> HttpResponse:
    """Answer the question again in a new version of the reply (also Retry after a failure)."""
    return await _generate_again(request, conversation_id, message_id, services.reply_regenerate)


@require_POST
async def reply_continue(
    request: HttpRequest, conversation_id: int, message_id: int
) -> HttpResponse:
    """Generate more of a stopped, interrupted or cut-off reply, into the same message."""
    return await _generate_again(request, conversation_id, message_id, services.reply_continue)


@require_http_methods(["GET", "POST"])
async def message_edit(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Edit a message of yours and send it again; the conversation goes on from there."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    message = await _get_message(conversation, message_id)
    if message.role != Message.Role.USER:
        raise Http404("No such message of yours.")
    if request.method == "GET":
        template = "conversations/message_edit.html"
        if request.htmx:
            template += "#form"
        return render(request, template, {"conversation": conversation, "message": message})
    text = request.POST.get("text", "")
    try:
        _edited, reply = await sync_to_async(services.message_edit)(message=message, text=text)
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, text, str(refusal))
    start_generation(reply)
    return await _branch_response(request, conversation)


@require_POST
async def version_show(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Show another version of a message (and the conversation that followed it)."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    message = await _get_message(conversation, message_id)
    try:
        await sync_to_async(services.branch_show)(conversation=conversation, message=message)
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, "", str(refusal))
    return await _branch_response(request, conversation)


@require_POST
async def reply_stop(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Stop the reply being written, wherever its generation runs; its text is kept."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    # Nothing being written (it just finished): there is nothing to stop.
    if (reply := await sync_to_async(services.active_reply)(conversation)) is not None:
        await generation.stop_generation(reply)
    if request.htmx:
        return HttpResponse(status=204)
    return redirect(conversation)


async def _get_attachment_for_user(request: HttpRequest, attachment_id: int) -> Attachment:
    """An attachment the user may see; any other answers 404, revealing nothing."""
    visible = await sync_to_async(attachments.attachments_visible_to)(await request.auser())
    try:
        return await visible.aget(pk=attachment_id)
    except Attachment.DoesNotExist:
        raise Http404("No such image.") from None


@require_GET
async def attachment_image(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = await _get_attachment_for_user(request, attachment_id)
    # The stored format may differ from the original's, and so its extension.
    extension = PurePath(attachment.image.name).suffix
    filename = PurePath(attachment.original_name).stem + extension
    return await _stored_image(attachment.image, attachment.content_type, filename)


@require_GET
async def attachment_thumbnail(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = await _get_attachment_for_user(request, attachment_id)
    filename = PurePath(attachment.original_name).stem + PurePath(attachment.thumbnail.name).suffix
    return await _stored_image(attachment.thumbnail, images.THUMBNAIL_CONTENT_TYPE, filename)


async def _stored_image(stored: FieldFile, content_type: str, filename: str) -> HttpResponse:
    try:
        data = await asyncio.to_thread(_read_stored, stored)
    except FileNotFoundError:
        raise Http404("No such image.") from None
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(False, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    patch_cache_control(response, private=True, max_age=ATTACHMENT_MAX_AGE)
    return response


def _read_stored(stored: FieldFile) -> bytes:
    with stored.storage.open(stored.name, "rb") as file:
        return file.read()
