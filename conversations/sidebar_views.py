"""The sidebar's views: a conversation's menu, renaming, pinning and deleting it, and
searching.

Each change is a POST; renaming and deleting first show a form (GET), a page of its own
without JavaScript or a part of the sidebar's menu with htmx. After a change, htmx gets the
conversation list again and anything else goes back to the page it came from (``next``).
"""

from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from accounts.theme import COOKIE_MAX_AGE
from conversations import organizing, search, titles
from conversations.lookups import (
    API_HIDDEN_COOKIE,
    api_conversations_hidden,
    conversation_for_user,
    sidebar_conversations,
)
from webchat.return_url import return_url

SIDEBAR_RESULTS = 20
PAGE_RESULTS = 50


def _conversation_list(request: HttpRequest, return_to: str) -> HttpResponse:
    context = {
        "sidebar_conversations": list(
            sidebar_conversations(request.user, hide_api=api_conversations_hidden(request))
        ),
        "current_path": urlsplit(return_to).path,
        "return_to": return_to,
    }
    return render(request, "conversations/partials/_conversation_list.html", context)


def _form(
    request: HttpRequest, name: str, context: dict, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The rename or delete form: in the sidebar's menu with htmx, else on a page."""
    context = {**context, "error": error}
    page = f"conversations/conversation_{name}.html"
    if not request.htmx:
        return render(request, page, context, status=status)
    response = render(request, f"{page}#form", context, status=status)
    if status != 200:  # a refusal replaces the form, not the list the form would replace
        response = reswap(
            retarget(response, f"#conversation-{context['conversation'].pk}-menu"), "innerHTML"
        )
    return response


@require_GET
def conversation_menu(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """A sidebar item's menu: fetched when first opened with htmx, else a page of its own."""
    conversation = conversation_for_user(request.user, conversation_id)
    context = {
        "conversation": conversation,
        "return_to": return_url(request, conversation.get_absolute_url()),
    }
    if request.htmx:
        return render(request, "conversations/conversation_menu.html#menu", context)
    return render(request, "conversations/conversation_menu.html", context)


@require_http_methods(["GET", "POST"])
def conversation_rename(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    return_to = return_url(request, conversation.get_absolute_url())
    context = {"conversation": conversation, "return_to": return_to, "title": conversation.title}
    if request.method == "GET":
        return _form(request, "rename", context)
    title = request.POST.get("title", "")
    try:
        organizing.conversation_rename(conversation=conversation, title=title)
    except organizing.ChangeRefused as refusal:
        context["title"] = title
        return _form(request, "rename", context, error=str(refusal), status=422)
    async_to_sync(titles.title_publish)(conversation.pk, conversation.title)
    if request.htmx:
        return _conversation_list(request, return_to)
    return redirect(return_to)


def _pin(request: HttpRequest, conversation_id: int, *, pinned: bool) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    return_to = return_url(request, conversation.get_absolute_url())
    organizing.conversation_pin(conversation=conversation, pinned=pinned)
    if request.htmx:
        return _conversation_list(request, return_to)
    return redirect(return_to)


@require_POST
def conversation_pin(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _pin(request, conversation_id, pinned=True)


@require_POST
def conversation_unpin(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _pin(request, conversation_id, pinned=False)


@require_http_methods(["GET", "POST"])
def conversation_delete(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Ask first (GET), then delete (POST)."""
    conversation = conversation_for_user(request.user, conversation_id)
    index = reverse("conversations:index")
    return_to = return_url(request, index)
    own_page = conversation.get_absolute_url()
    context = {"conversation": conversation, "return_to": return_to}
    if request.method == "GET":
        return _form(request, "delete", context)
    try:
        organizing.conversation_delete(conversation=conversation)
    except organizing.ChangeRefused as refusal:
        return _form(request, "delete", context, error=str(refusal), status=422)
    if urlsplit(return_to).path == own_page:
        # Deleted from its own page, which is gone: on to a new chat.
        return HttpResponseClientRedirect(index) if request.htmx else redirect(index)
    if request.htmx:
        return _conversation_list(request, return_to)
    return redirect(return_to)


@require_GET
def conversation_search(request: HttpRequest) -> HttpResponse:
    """The user's conversations matching ``q``: in the sidebar as one types (htmx), or on
    a page of their own."""
    query = request.GET.get("q", "")
    limit = SIDEBAR_RESULTS if request.htmx else PAGE_RESULTS
    context: dict = {"query": " ".join(query.split()), "results": [], "search_error": ""}
    try:
        context["results"] = search.search(request.user, query, limit)
    except search.QueryRefused as refusal:
        context["search_error"] = str(refusal)
    if request.htmx:
        context["announce"] = True
        return render(request, "conversations/partials/_search_results.html", context)
    context["sidebar_conversations"] = list(
        sidebar_conversations(request.user, hide_api=api_conversations_hidden(request))
    )
    return render(request, "conversations/search.html", context)


@require_POST
def api_conversations_show(request: HttpRequest) -> HttpResponse:
    """Show or hide the conversations held through the API in the sidebar (a cookie, like
    the theme: a choice of this browser's)."""
    response = redirect(return_url(request))
    if request.POST.get("hide") == "1":
        response.set_cookie(
            API_HIDDEN_COOKIE,
            "1",
            max_age=COOKIE_MAX_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    else:
        response.delete_cookie(API_HIDDEN_COOKIE, samesite="Lax")
    return response
