"""A user's own conversation as a file to download (see conversations/export.py). Off the
chat path, so sync."""

import json

from django.http import HttpRequest, HttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from conversations import export, tree
from conversations.lookups import conversation_for_user
from conversations.models import Conversation


def _download(conversation: Conversation, body: str, content_type: str, extension: str):
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    filename = export.filename_for(conversation, extension)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def conversation_export_markdown(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    messages = tree.branch(conversation)
    body = export.markdown_of(conversation, messages)
    return _download(conversation, body, "text/markdown", "md")


@require_GET
def conversation_export_json(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    messages = tree.branch(conversation)
    data_urls = export.data_urls_read(messages)
    body = json.dumps(export.json_of(conversation, messages, data_urls), ensure_ascii=False)
    return _download(conversation, body, "application/json", "json")
