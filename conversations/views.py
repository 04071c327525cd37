from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from conversations import services
from conversations.forms import FirstAdminForm
from conversations.generation import start_generation
from conversations.models import Conversation, Message

SIDEBAR_LIMIT = 100


async def _get_conversation_for_user(request: HttpRequest, conversation_id: int) -> Conversation:
    """The user's own conversation; anyone else's answers 404, revealing nothing."""
    user = await request.auser()
    try:
        return await Conversation.objects.aget(pk=conversation_id, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None


async def _sidebar_conversations(request: HttpRequest) -> list[Conversation]:
    user = await request.auser()
    recent = Conversation.objects.filter(owner=user).only("pk", "title", "updated_at")
    return [conversation async for conversation in recent[:SIDEBAR_LIMIT]]


async def _chat_page(
    request: HttpRequest,
    conversation: Conversation | None,
    *,
    draft: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    messages: list[Message] = []
    if conversation is not None:
        messages = [message async for message in conversation.messages.all()]
    context = {
        "conversation": conversation,
        "chat_messages": messages,
        "sidebar_conversations": await _sidebar_conversations(request),
        "draft": draft,
        "composer_error": error,
    }
    return render(request, "conversations/chat.html", context, status=status)


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
    return await _chat_page(request, conversation)


@require_POST
async def conversation_create(request: HttpRequest) -> HttpResponse:
    text = request.POST.get("text", "")
    try:
        conversation, reply = await sync_to_async(services.conversation_start)(
            owner=await request.auser(), text=text
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
    text = request.POST.get("text", "")
    try:
        user_message, reply = await sync_to_async(services.message_send)(
            conversation=conversation, text=text
        )
    except services.MessageRefused as refusal:
        return await _refused(request, conversation, text, str(refusal))
    start_generation(reply)
    if request.htmx:
        return render(
            request,
            "conversations/partials/_exchange.html",
            {"chat_messages": [user_message, reply]},
        )
    return redirect(conversation)


@login_not_required
@require_http_methods(["GET", "POST"])
def first_admin_setup(request: HttpRequest) -> HttpResponse:
    """On a fresh install, the first visitor creates the first admin account."""
    if get_user_model().objects.exists():
        return redirect("conversations:index")
    form = FirstAdminForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("conversations:index")
    return render(request, "setup.html", {"form": form})
