"""Exporting a conversation as Markdown and JSON: the functions and the owner's downloads."""

import base64
import io
import json

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations import export, images, services
from conversations.models import Conversation, Message
from tests import image_files
from tests.factories import MessageFactory


def _with_image(conversation: Conversation) -> tuple[Message, Message]:
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="diagram.png", limits=images.ImageLimits()
    )
    question, reply = services.message_send(
        conversation=conversation, text="Explain this diagram", images=[picture]
    )
    Message.objects.filter(pk=reply.pk).update(
        status=Message.Status.COMPLETE,
        content="It shows **two** boxes.",
        reasoning="Left red, right blue.",
        finish_reason="stop",
        prompt_tokens=300,
        completion_tokens=20,
        total_tokens=320,
        cached_tokens=100,
        reasoning_tokens=5,
        time_to_first_token_ms=640,
    )
    reply.refresh_from_db()
    return question, reply


@pytest.fixture
def exported(conversation, settings):
    """The owner's conversation with settings, an image, a reply, a replaced version of
    it, and a failed reply."""
    settings.WEBCHAT_API_KEY = "sk-secret-never-exported"
    Conversation.objects.filter(pk=conversation.pk).update(
        system_prompt="Answer briefly.", temperature=0.3, reasoning_effort="low"
    )
    conversation.refresh_from_db()
    question, _reply = _with_image(conversation)
    MessageFactory(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        content="A replaced answer",
        becomes_current_leaf=False,
    )
    _follow_up, failed = services.message_send(conversation=conversation, text="And then?")
    Message.objects.filter(pk=failed.pk).update(
        status=Message.Status.ERROR, error="The API key was rejected.", error_code="auth"
    )
    conversation.refresh_from_db()
    conversation.question = question
    return conversation


def test_the_json_holds_the_shown_branch_with_settings_usage_and_images(exported):
    data = export.conversation_json(exported)
    assert data["title"] == "Owner's chat"
    assert data["model"] == "test-model"
    assert data["settings"] == {
        "system_prompt": "Answer briefly.",
        "temperature": 0.3,
        "top_p": None,
        "top_k": None,
        "max_tokens": None,
        "reasoning_effort": "low",
    }
    assert data["created_at"] == exported.created_at.isoformat()
    assert data["updated_at"] == exported.updated_at.isoformat()
    question, reply, _follow_up, failed = data["messages"]
    assert (question["role"], question["content"]) == ("user", "Explain this diagram")
    assert reply["content"] == "It shows **two** boxes."
    assert reply["reasoning"] == "Left red, right blue."
    assert reply["usage"] == {
        "prompt_tokens": 300,
        "completion_tokens": 20,
        "total_tokens": 320,
        "cached_tokens": 100,
        "reasoning_tokens": 5,
        "image_tokens": None,
    }
    assert reply["time_to_first_token_ms"] == 640
    assert (failed["status"], failed["error"], failed["error_code"]) == (
        "error",
        "The API key was rejected.",
        "auth",
    )
    assert "A replaced answer" not in json.dumps(data)

    (picture,) = question["attachments"]
    attachment = exported.question.attachments.get()
    assert picture["name"] == "diagram.png"
    assert (picture["width"], picture["height"]) == (attachment.width, attachment.height)
    head, encoded = picture["data_url"].split(",", 1)
    assert head == f"data:{attachment.content_type};base64"
    with attachment.image.open("rb") as stored:
        assert base64.b64decode(encoded) == stored.read()


def test_the_json_without_images_only_describes_them(exported):
    data = export.conversation_json(exported, images=False)
    (picture,) = data["messages"][0]["attachments"]
    assert "data_url" not in picture
    assert picture["name"] == "diagram.png"


def test_an_unreadable_image_is_exported_as_null(exported):
    attachment = exported.question.attachments.get()
    attachment.image.storage.delete(attachment.image.name)
    (picture,) = export.conversation_json(exported)["messages"][0]["attachments"]
    assert picture["data_url"] is None


def test_the_markdown_reads_as_the_conversation(exported):
    text = export.conversation_markdown(exported)
    assert text.startswith("# Owner's chat\n")
    assert "Model: test-model" in text
    assert "Settings: temperature 0.3, reasoning effort low" in text
    assert "## System prompt\n\nAnswer briefly." in text
    assert "## You · " in text
    assert "Explain this diagram" in text
    assert "[Image: diagram.png, " in text
    assert "## Assistant (test-model) · " in text
    assert "It shows **two** boxes." in text
    assert "> Left red, right blue." in text
    assert "*300 tokens in, 20 out, 5 reasoning, 100 cached.*" in text
    assert "> Failed: The API key was rejected." in text
    assert "A replaced answer" not in text
    assert text.index("Explain this diagram") < text.index("And then?")


def test_no_export_holds_the_api_key(exported):
    assert "sk-secret" not in export.conversation_markdown(exported)
    assert "sk-secret" not in json.dumps(export.conversation_json(exported))


def test_a_filename_comes_from_the_title(conversation):
    assert export.filename_for(conversation, "md") == "owners-chat.md"
    conversation.title = "../../Ünïcode / <tricky>"
    assert export.filename_for(conversation, "json") == "ünïcode-tricky.json"
    conversation.title = "???"
    assert export.filename_for(conversation, "md") == f"conversation-{conversation.pk}.md"


# --- The downloads ------------------------------------------------------------------------


def _url(name: str, conversation: Conversation) -> str:
    return reverse(f"conversations:{name}", args=[conversation.pk])


def test_the_owner_downloads_the_markdown(owner_client, exported):
    response = owner_client.get(_url("export-markdown", exported))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="owners-chat.md"'
    assert response.content.decode() == export.conversation_markdown(exported)


@pytest.mark.django_db(transaction=True)
async def test_the_owner_downloads_the_json_with_images(async_owner_client, conversation, settings):
    settings.WEBCHAT_API_KEY = "sk-secret-never-exported"
    await sync_to_async(_with_image)(conversation)
    response = await async_owner_client.get(_url("export-json", conversation))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="owners-chat.json"'
    data = json.loads(response.content)
    assert data["messages"][0]["attachments"][0]["data_url"].startswith("data:image/")
    assert b"sk-secret" not in response.content


@pytest.mark.parametrize("name", ["export-markdown", "export-json"])
def test_another_users_conversation_is_not_found(outsider_client, exported, name):
    assert outsider_client.get(_url(name, exported)).status_code == 404


@pytest.mark.parametrize("name", ["export-markdown", "export-json"])
def test_anonymous_visitors_are_asked_to_sign_in(client, exported, name):
    response = client.get(_url(name, exported))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_conversation_page_links_both_exports(owner_client, exported):
    page = owner_client.get(exported.get_absolute_url()).content.decode()
    assert f'href="{_url("export-markdown", exported)}"' in page
    assert f'href="{_url("export-json", exported)}"' in page
