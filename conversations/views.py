import asyncio
from collections.abc import Collection
from pathlib import PurePath

from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.translation import gettext, gettext_lazy
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
    reply_runners,
    services,
    settings_views,
    tree,
)
from conversations.generation import start_generation
from conversations.models import Attachment, Conversation, Message, Preset
from conversations.upstream import failures
from review import audit
from review.models import ReviewAccess
from webchat.outages import REDIS_UNREACHABLE, channel_layer_outage

# Messages shown at first, and loaded at a time when scrolling up a long conversation.
PAGE_SIZE = 40
# Stored images never change: their owners' browsers keep them a day (staff's, not at all).
ATTACHMENT_MAX_AGE = 24 * 60 * 60
# While Redis is down (README, "Outages").
LAYER_UNREACHABLE = gettext_lazy(
    "Live updates are unavailable for a moment, so no reply can start. Send again shortly."
)
# The session key of the preset the user's next new chat starts from.
NEW_CHAT_PRESET = "new_chat_preset"
STOP_UNREACHABLE = gettext_lazy(
    "The server writing this reply cannot be reached for a moment. Press Stop again shortly."
)


async def _get_conversation_for_user(request: HttpRequest, conversation_id: int) -> Conversation:
    return await lookups.aconversation_for_user(await request.auser(), conversation_id)


async def _sidebar_conversations(request: HttpRequest) -> list[Conversation]:
    recent = lookups.sidebar_conversations(
        await request.auser(), hide_api=lookups.api_conversations_hidden(request)
    )
    return [conversation async for conversation in recent]


async def _chat_page(
    request: HttpRequest,
    conversation: Conversation | None,
    *,
    draft: str = "",
    error: str = "",
    note: str = "",
    status: int = 200,
) -> HttpResponse:
    user = await request.auser()
    page = None
    usage = {}
    chosen_preset = None
    presets = [preset async for preset in Preset.objects.filter(owner=user)]
    if conversation is not None:
        page = await sync_to_async(tree.branch_page)(conversation, size=PAGE_SIZE)
        usage = await sync_to_async(services.conversation_usage)(conversation_id=conversation.pk)
        models = await sync_to_async(conversation_settings.model_choices)(conversation)
        current_model = conversation.model
    else:
        models = await sync_to_async(access.allowed_models)(user)
        current_model = await request.session.aget(settings_views.NEW_CHAT_MODEL, "")
        if current_model not in models:
            current_model = models[0] if models else ""
        chosen_id = await request.session.aget(NEW_CHAT_PRESET)
        chosen_preset = next((preset for preset in presets if preset.pk == chosen_id), None)
    context = {
        "conversation": conversation,
        "page": page,
        "conversation_usage": usage,
        "sidebar_conversations": await _sidebar_conversations(request),
        "draft": draft,
        "composer_error": error,
        "composer_note": note,
        "models": models,
        "current_model": current_model,
        "presets": presets,
        "chosen_preset": chosen_preset,
    }
    return render(request, "conversations/chat.html", context, status=status)


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
        # "A reply is still being written" goes once it is written (chat.js).
        context = {"error": error, "until_idle": error == str(services.STILL_WRITING)}
        response = render(
            request, "conversations/partials/_composer_error.html", context, status=422
        )
        return reswap(retarget(response, "#composer-error"), "innerHTML")
    return await _chat_page(request, conversation, draft=text, error=error, status=422)


@require_GET
async def index(request: HttpRequest) -> HttpResponse:
    return await _chat_page(request, None)


@require_GET
async def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = await _get_conversation_for_user(request, conversation_id)
    return await _chat_page(request, conversation)


async def _posted_images(uploads: list[UploadedFile]) -> list[images.NormalizedImage]:
    """The posted images normalized, in this process's image decoder; a refusal names
    every file that was rejected. Called once every check that needs no image has passed,
    so a refused message costs no decoding."""
    normalized = await attachments.images_normalize(uploads)
    if rejections := [str(each) for each in normalized if isinstance(each, images.ImageRejected)]:
        raise services.MessageRefused(" ".join(rejections))
    return normalized


async def _runner_for_reply() -> reply_runners.Runner:
    """This process's reply runner, unless the server is shutting down."""
    if not generation.accepting_replies():
        raise services.MessageRefused(str(failures.SHUTTING_DOWN_MESSAGE))
    try:
        return await reply_runners.this_runner()
    except REDIS_UNREACHABLE as error:
        # This process has not listened on the channel layer yet, and cannot now.
        channel_layer_outage.failed(error)
        raise services.MessageRefused(str(LAYER_UNREACHABLE)) from None


async def _posted_form(request: HttpRequest) -> QueryDict:
    """The posted form, parsed in a worker thread: a message's images are megabytes of
    multipart body copied to temporary files."""
    return await asyncio.to_thread(lambda: request.POST)


@require_POST
async def conversation_create(request: HttpRequest) -> HttpResponse:
    form = await _posted_form(request)
    text, model = form.get("text", ""), form.get("model", "")
    owner = await request.auser()
    uploads = request.FILES.getlist("images")
    try:
        await sync_to_async(services.conversation_start_check)(
            owner=owner, text=text, image_count=len(uploads), model=model
        )
        system_prompt = await sync_to_async(conversation_settings.preset_system_prompt)(
            owner=owner, preset_id=form.get("preset", "")
        )
        runner = await _runner_for_reply()
        conversation, reply = await sync_to_async(services.conversation_start)(
            owner=owner,
            text=text,
            images=await _posted_images(uploads),
            model=model,
            system_prompt=system_prompt,
            runner=runner.channel,
        )
    except services.MessageRefused as refusal:
        return await _refused(request, None, text, str(refusal))
    start_generation(reply, runner)
    if request.htmx:
        return HttpResponseClientRedirect(conversation.get_absolute_url())
    return redirect(conversation)


async def _preset_menu(request: HttpRequest, context: dict) -> HttpResponse:
    """The composer's preset menu, closed, after a preset was applied (htmx)."""
    user = await request.auser()
    context["presets"] = [preset async for preset in Preset.objects.filter(owner=user)]
    return render(request, "conversations/partials/_preset_menu.html", context)


@require_POST
async def new_chat_preset_set(request: HttpRequest) -> HttpResponse:
    """Choose the preset the next new chat starts from (an empty one: none), from the
    composer's preset menu; without JavaScript the page comes back with the text typed."""
    form = await _posted_form(request)
    preset_id, text = form.get("new_chat_preset", ""), form.get("text", "")
    preset = None
    if preset_id:
        try:
            preset = await sync_to_async(conversation_settings.preset_for_owner)(
                owner=await request.auser(), preset_id=preset_id
            )
        except services.MessageRefused as refusal:
            return await _refused(request, None, text, str(refusal))
    await request.session.aset(NEW_CHAT_PRESET, preset.pk if preset else None)
    if request.htmx:
        return await _preset_menu(request, {"conversation": None, "chosen_preset": preset})
    return await _chat_page(request, None, draft=text)


@require_POST
async def preset_apply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Make a preset's system prompt the conversation's, from the composer's preset menu."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    form = await _posted_form(request)
    text = form.get("text", "")
    try:
        preset = await sync_to_async(conversation_settings.preset_for_owner)(
            owner=await request.auser(), preset_id=form.get("apply_preset", "")
        )
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, text, str(refusal))
    conversation.system_prompt = preset.system_prompt
    await conversation.asave(update_fields=["system_prompt"])
    note = gettext("The system prompt is now the preset “%(name)s”.") % {"name": preset.name}
    if request.htmx:
        return await _preset_menu(request, {"conversation": conversation, "preset_note": note})
    return await _chat_page(request, conversation, draft=text, note=note)


@require_POST
async def message_create(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = await _get_conversation_for_user(request, conversation_id)
    text = (await _posted_form(request)).get("text", "")
    uploads = request.FILES.getlist("images")
    try:
        await sync_to_async(services.message_send_check)(
            conversation=conversation, text=text, image_count=len(uploads)
        )
        runner = await _runner_for_reply()
        user_message, reply = await sync_to_async(services.message_send)(
            conversation=conversation,
            text=text,
            images=await _posted_images(uploads),
            runner=runner.channel,
        )
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, text, str(refusal))
    exchange = [user_message, reply]
    # Rendered once, for this tab's answer and the conversation's other tabs.
    articles = frames.exchange_articles(exchange)
    start_generation(reply, runner, exchange=exchange, exchange_html=articles)
    if request.htmx:
        return HttpResponse(articles)
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
        runner = await _runner_for_reply()
        generated = await sync_to_async(action)(reply=reply, runner=runner.channel)
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, "", str(refusal))
    start_generation(generated, runner)
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


def _edit_form(
    request: HttpRequest,
    conversation: Conversation,
    message: Message,
    *,
    text: str,
    removed_ids: Collection[int] = (),
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    template = "conversations/message_edit.html"
    if request.htmx:
        template += "#form"
    context = {
        "conversation": conversation,
        "message": message,
        "text": text,
        "removed_ids": removed_ids,
        "error": error,
    }
    return render(request, template, context, status=status)


def _posted_ids(values: list[str]) -> set[int]:
    return {int(value) for value in values if value.isdecimal()}


@require_http_methods(["GET", "POST"])
async def message_edit(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Edit a message of yours and send it again; the conversation goes on from there.

    Its images go again but those ticked to be removed, followed by any added."""
    conversation = await _get_conversation_for_user(request, conversation_id)
    message = await _get_message(conversation, message_id)
    if message.role != Message.Role.USER:
        raise Http404("No such message of yours.")
    if request.method == "GET":
        return _edit_form(request, conversation, message, text=message.content)
    form = await _posted_form(request)
    text, removed_ids = form.get("text", ""), _posted_ids(form.getlist("remove"))
    uploads = request.FILES.getlist("images")
    try:
        await sync_to_async(services.message_edit_check)(
            message=message, text=text, removed_ids=removed_ids, image_count=len(uploads)
        )
        runner = await _runner_for_reply()
        _edited, reply = await sync_to_async(services.message_edit)(
            message=message,
            text=text,
            removed_ids=removed_ids,
            images=await _posted_images(uploads),
            runner=runner.channel,
        )
    except services.MessageRefused as refusal:
        if request.htmx:
            # Said in the edit form, which stays as it is.
            context = {"error": str(refusal)}
            response = render(
                request, "conversations/partials/_composer_error.html", context, status=422
            )
            return reswap(retarget(response, f"#{message.dom_id}-edit-error"), "innerHTML")
        return _edit_form(
            request,
            conversation,
            message,
            text=text,
            removed_ids=removed_ids,
            error=str(refusal),
            status=422,
        )
    start_generation(reply, runner)
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
    reply = await sync_to_async(services.active_reply)(conversation)
    if reply is not None and not await reply_runners.reply_stop(reply):
        return await _refused(request, conversation, "", str(STOP_UNREACHABLE))
    if request.htmx:
        return HttpResponse(status=204)
    return redirect(conversation)


async def _get_attachment_for_user(request: HttpRequest, attachment_id: int) -> Attachment:
    """An attachment the user may see; any other answers 404, revealing nothing."""
    visible = await sync_to_async(attachments.attachments_visible_to)(await request.auser())
    try:
        # With its owner, to record a reading by staff.
        return await visible.select_related("message__conversation__owner").aget(pk=attachment_id)
    except Attachment.DoesNotExist:
        raise Http404("No such image.") from None


@require_GET
async def attachment_image(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = await _get_attachment_for_user(request, attachment_id)
    response = await asyncio.to_thread(attachment_response, attachment, thumbnail=False)
    return await _image_read(request, attachment, response, ReviewAccess.Kind.IMAGE)


@require_GET
async def attachment_thumbnail(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = await _get_attachment_for_user(request, attachment_id)
    response = await asyncio.to_thread(attachment_response, attachment, thumbnail=True)
    return await _image_read(request, attachment, response, ReviewAccess.Kind.THUMBNAIL)


async def _image_read(
    request: HttpRequest, attachment: Attachment, response: HttpResponse, kind: ReviewAccess.Kind
) -> HttpResponse:
    """The image's response, once a reading by staff is recorded. Staff's browsers may not
    keep it, so that each reading is recorded and none outlives the setting that allows it."""
    viewer = await request.auser()
    if await audit.review_access_image_record(viewer=viewer, attachment=attachment, kind=kind):
        patch_cache_control(response, private=True, no_store=True)
    else:
        patch_cache_control(response, private=True, max_age=ATTACHMENT_MAX_AGE)
    return response


def attachment_response(attachment: Attachment, *, thumbnail: bool) -> HttpResponse:
    """The stored image (or its thumbnail) of ``attachment``, read in the calling thread,
    under the original's name with the stored format's extension."""
    if thumbnail:
        stored, content_type = attachment.thumbnail, images.THUMBNAIL_CONTENT_TYPE
    else:
        stored, content_type = attachment.image, attachment.content_type
    filename = PurePath(attachment.original_name).stem + PurePath(stored.name).suffix
    try:
        with stored.storage.open(stored.name, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise Http404("No such image.") from None
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(False, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
