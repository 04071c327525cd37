"""Share links: the owner's panel (make, list, copy, revoke) and the shared page with its
images. The panel is off the chat path, so sync; the images are served like the chat's."""

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations import shares, views
from conversations.lookups import conversation_for_user
from conversations.models import Conversation, Share


def _panel(
    request: HttpRequest,
    conversation: Conversation,
    *,
    note: str = "",
    error: str = "",
    created: Share | None = None,
    status: int = 200,
) -> HttpResponse:
    """The panel (htmx), or a page of its own holding it."""
    links = [
        (share, request.build_absolute_uri(share.get_absolute_url()))
        for share in shares.shares_active(conversation)
    ]
    context = {
        "conversation": conversation,
        "links": links,
        "audiences": Share.Audience.choices,
        "created": created,
        "note": note,
        "error": error,
    }
    template = "conversations/shares.html#panel" if request.htmx else "conversations/shares.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def share_list(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The conversation's live links (GET); a new one (POST)."""
    conversation = conversation_for_user(request.user, conversation_id)
    if request.method == "GET":
        return _panel(request, conversation)
    audience = request.POST.get("audience", Share.Audience.SIGNED_IN)
    try:
        share = shares.share_create(conversation=conversation, user=request.user, audience=audience)
    except shares.ShareRefused as refusal:
        return _panel(request, conversation, error=str(refusal), status=422)
    if not request.htmx:
        return redirect("conversations:shares", conversation.pk)
    return _panel(request, conversation, note=gettext("Link created."), created=share)


@require_POST
def share_revoke(request: HttpRequest, conversation_id: int, share_id: int) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    share = shares.shares_active(conversation).filter(pk=share_id).first()
    if share is None:
        raise Http404("No such link.")
    share.conversation = conversation
    shares.share_revoke(share=share, user=request.user)
    if not request.htmx:
        return redirect("conversations:shares", conversation.pk)
    return _panel(request, conversation, note=gettext("Link revoked: it no longer opens."))


def _share_or_sign_in(request: HttpRequest, share_token: str) -> Share | HttpResponse:
    try:
        share = shares.share_for_viewer(share_token, request.user)
    except shares.SignInRequired:
        return redirect_to_login(request.get_full_path())
    if share is None:
        raise Http404("No such link.")
    return share


@login_not_required
@require_GET
def share_page(request: HttpRequest, share_token: str) -> HttpResponse:
    share = _share_or_sign_in(request, share_token)
    if isinstance(share, HttpResponse):
        return share
    context = {
        "share": share,
        "shared_messages": shares.share_open(share=share, viewer=request.user),
    }
    response = render(request, "conversations/shared.html", context)
    # Revoking must take effect: no copy is kept anywhere.
    patch_cache_control(response, private=True, no_store=True)
    return response


def _share_image(
    request: HttpRequest, share_token: str, attachment_id: int, *, thumbnail: bool
) -> HttpResponse:
    share = _share_or_sign_in(request, share_token)
    if isinstance(share, HttpResponse):
        return share
    attachment = shares.share_attachment(share, attachment_id)
    if attachment is None:
        raise Http404("No such image.")
    response = views.attachment_response(attachment, thumbnail=thumbnail)
    patch_cache_control(response, private=True, no_store=True)
    return response


@login_not_required
@require_GET
def share_image(request: HttpRequest, share_token: str, attachment_id: int) -> HttpResponse:
    return _share_image(request, share_token, attachment_id, thumbnail=False)


@login_not_required
@require_GET
def share_thumbnail(request: HttpRequest, share_token: str, attachment_id: int) -> HttpResponse:
    return _share_image(request, share_token, attachment_id, thumbnail=True)
