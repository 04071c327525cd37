"""The API (``/api/v1/``, key-authenticated, no session, no CSRF: nothing a browser sends
by itself can use it) and the page where each user manages their keys."""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import access
from api import chat_requests, completions
from api.errors import ApiError
from api.forms import ApiKeyForm
from api.keys import key_authenticate
from api.models import ApiKey


def _api_view(view):
    """An API view: authenticated by its key, never by a session; no CSRF."""
    return csrf_exempt(login_not_required(view))


@_api_view
@require_GET
async def models_list(request: HttpRequest) -> HttpResponse:
    try:
        api_key = await sync_to_async(key_authenticate)(request)
    except ApiError as error:
        return error.response()
    allowed = await sync_to_async(access.allowed_models)(api_key.owner)
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": "webchat"} for model in allowed
    ]
    return JsonResponse({"object": "list", "data": data})


@_api_view
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    try:
        api_key = await sync_to_async(key_authenticate)(request)
        # In a worker thread: a body with images is megabytes of spooled file to read, of
        # JSON to parse and of base64 to decode.
        parsed = await asyncio.to_thread(lambda: chat_requests.request_parse(request.body))
        run = await completions.reply_start(api_key, parsed)
    except ApiError as error:
        return error.response()
    completion = completions.Completion(run, include_usage=parsed.include_usage)
    if not parsed.stream:
        await completions.until_ended(run)
        if error := completions.failure_of(run):
            return error.response()
        return JsonResponse(completion.whole())
    # The headers wait for the first text, so that a reply failing before any text is
    # answered with its status, as a non-streamed one is.
    try:
        first = await run.pieces.get()
    except asyncio.CancelledError:
        run.request_stop()
        raise
    if first is None:
        await run.task
        if error := completions.failure_of(run):
            return error.response()
        first = ("", "")
    response = StreamingHttpResponse(completion.events(first), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx passes each event on at once
    return response


@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """The user's keys, and a form for a new one. A new key is shown on the page that
    answers the POST, once: it is stored only hashed, so no later page can show it."""
    form = ApiKeyForm(request.POST or None)
    new_key = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _api_key, new_key = ApiKey.issue(
                owner=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
            )
            form = ApiKeyForm()
            status = 201
        else:
            status = 422
    context = {
        "form": form,
        "new_key": new_key,
        "keys": ApiKey.objects.filter(owner=request.user),
        "api_base": request.build_absolute_uri("/api/v1"),
        "api_store": settings.WEBCHAT_API_STORE,
    }
    response = render(request, "api/keys.html", context, status=status)
    patch_cache_control(response, no_store=True)
    return response


@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    get_object_or_404(ApiKey, pk=key_id, owner=request.user).revoke()
    return redirect("api:keys")
