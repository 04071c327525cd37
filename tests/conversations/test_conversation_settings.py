"""The settings panel of a conversation, and what of its settings reaches the upstream."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import ModelAccess
from conversations import conversation_settings
from conversations.models import Conversation, Message
from conversations.upstream.client import ChatRequest
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import HTMX, finished, latest_reply, send_message

VALID = {
    "model": "model-b",
    "system_prompt": "You answer in one sentence.",
    "temperature": "0.7",
    "top_p": "0.9",
    "top_k": "40",
    "max_tokens": "500",
    "reasoning_effort": "high",
}
UNSET = {
    "model": "model-a",
    "system_prompt": "",
    "temperature": "",
    "top_p": "",
    "top_k": "",
    "max_tokens": "",
    "reasoning_effort": "",
}
STORED = {
    "model": "model-a",
    "system_prompt": "Stored prompt.",
    "temperature": 1.0,
    "top_p": 0.5,
    "top_k": 10,
    "max_tokens": 100,
    "reasoning_effort": "low",
}


@pytest.fixture(autouse=True)
def _two_models(settings):
    settings.WEBCHAT_MODELS = ["model-a", "model-b"]


@pytest.fixture
def chat(owner) -> Conversation:
    return ConversationFactory(owner=owner, **STORED)


def settings_url(conversation: Conversation) -> str:
    return reverse("conversations:settings", args=[conversation.pk])


def stored_settings(conversation: Conversation) -> dict:
    conversation.refresh_from_db()
    return {name: getattr(conversation, name) for name in STORED}


def test_the_panel_shows_the_stored_settings_with_a_label_on_every_control(owner_client, chat):
    response = owner_client.get(settings_url(chat), headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<div id="settings-panel" class="settings-slot">')
    assert "<html" not in page
    assert "Stored prompt." in page
    assert 'value="1.0"' in page
    assert '<option value="low" selected>' in page
    for name in STORED:
        assert f'<label for="settings-{name}">' in page
    assert '<label for="settings-preset-name">' in page


def test_the_panel_has_a_page_of_its_own_without_javascript(owner_client, chat):
    response = owner_client.get(settings_url(chat))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" in page
    assert f'action="{settings_url(chat)}"' in page
    assert f'href="{chat.get_absolute_url()}"' in page


def test_the_chat_header_links_to_the_panel(owner_client, chat):
    page = owner_client.get(chat.get_absolute_url()).content.decode()
    assert f'href="{settings_url(chat)}"' in page
    assert f'hx-get="{settings_url(chat)}"' in page
    assert '<span class="chat-model" id="chat-model">model-a</span>' in page


def test_saving_stores_every_setting_and_returns_to_the_conversation(owner_client, chat):
    response = owner_client.post(settings_url(chat), VALID)
    assert response.status_code == 302
    assert response["Location"] == chat.get_absolute_url()
    assert stored_settings(chat) == {
        "model": "model-b",
        "system_prompt": "You answer in one sentence.",
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 500,
        "reasoning_effort": "high",
    }


def test_saving_with_htmx_shows_the_saved_panel_and_the_new_model_in_the_header(owner_client, chat):
    response = owner_client.post(settings_url(chat), VALID, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Settings saved." in page
    assert '<details class="picker model-picker" id="model-menu" hx-swap-oob="true">' in page
    assert '<span class="chat-model" id="chat-model">model-b</span>' in page


def test_emptied_settings_are_stored_unset(owner_client, chat):
    response = owner_client.post(settings_url(chat), UNSET)
    assert response.status_code == 302
    assert stored_settings(chat) == {
        "model": "model-a",
        "system_prompt": "",
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "max_tokens": None,
        "reasoning_effort": "",
    }


def test_the_bounds_themselves_are_accepted(owner_client, chat):
    bounds = {"temperature": "2", "top_p": "0", "top_k": "1", "max_tokens": "1000000"}
    response = owner_client.post(settings_url(chat), {**VALID, **bounds})
    assert response.status_code == 302
    saved = stored_settings(chat)
    assert (saved["temperature"], saved["top_p"], saved["top_k"], saved["max_tokens"]) == (
        2.0,
        0.0,
        1,
        1_000_000,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", "-0.1", "Temperature must be a number from 0 to 2."),
        ("temperature", "2.01", "Temperature must be a number from 0 to 2."),
        ("temperature", "warm", "Temperature must be a number from 0 to 2."),
        ("temperature", "nan", "Temperature must be a number from 0 to 2."),
        ("temperature", "inf", "Temperature must be a number from 0 to 2."),
        ("top_p", "1.5", "Top P must be a number from 0 to 1."),
        ("top_p", "-0.5", "Top P must be a number from 0 to 1."),
        ("top_p", "most", "Top P must be a number from 0 to 1."),
        ("top_k", "0", "Top K must be a whole number from 1 to 1,000,000."),
        ("top_k", "-3", "Top K must be a whole number from 1 to 1,000,000."),
        ("top_k", "2.5", "Top K must be a whole number from 1 to 1,000,000."),
        ("top_k", "ten", "Top K must be a whole number from 1 to 1,000,000."),
        ("top_k", "1000001", "Top K must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "0", "Max tokens must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "1000001", "Max tokens must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "1e3", "Max tokens must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "99999999999999999999", "Max tokens must be a whole number"),
        ("reasoning_effort", "extreme", "Reasoning effort must be low, medium or high."),
        ("model", "", "Choose a model."),
        ("model", "model-z", "You may not use the model “model-z”. Choose another one."),
    ],
)
def test_a_bad_value_is_refused_with_a_message_and_nothing_is_changed(
    owner_client, chat, field, value, message
):
    response = owner_client.post(settings_url(chat), {**VALID, field: value}, headers=HTMX)
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert "Nothing was saved" in page
    assert f'id="settings-{field}_error"' in page
    assert stored_settings(chat) == STORED


def test_a_refused_post_without_javascript_shows_the_page_with_the_errors(owner_client, chat):
    response = owner_client.post(settings_url(chat), {**VALID, "temperature": "3"})
    assert response.status_code == 422
    page = response.content.decode()
    assert "<html" in page
    assert "Temperature must be a number from 0 to 2." in page
    assert 'aria-invalid="true"' in page
    assert stored_settings(chat) == STORED


def test_a_system_prompt_over_the_message_limit_is_refused(owner_client, chat, settings):
    settings.WEBCHAT_MAX_MESSAGE_CHARS = 20
    response = owner_client.post(settings_url(chat), {**VALID, "system_prompt": "x" * 21})
    assert response.status_code == 422
    assert "The system prompt may be at most 20 characters long." in response.content.decode()
    assert stored_settings(chat) == STORED


def test_a_model_not_granted_to_the_user_is_not_offered_and_is_refused(owner, owner_client, chat):
    group = Group.objects.create(name="Model A only")
    ModelAccess.objects.create(group=group, model="model-a")
    owner.groups.add(group)

    panel = owner_client.get(settings_url(chat), headers=HTMX).content.decode()
    assert '<option value="model-a" selected>' in panel
    assert 'value="model-b"' not in panel

    response = owner_client.post(settings_url(chat), VALID, headers=HTMX)
    assert response.status_code == 422
    assert "You may not use the model “model-b”." in response.content.decode()
    assert stored_settings(chat) == STORED


def test_a_model_taken_away_must_be_changed(owner, owner_client):
    group = Group.objects.create(name="Model B only")
    ModelAccess.objects.create(group=group, model="model-b")
    owner.groups.add(group)
    chat = ConversationFactory(owner=owner, model="model-a")

    panel = owner_client.get(settings_url(chat), headers=HTMX).content.decode()
    assert "You no longer have access to the model “model-a”" in panel

    response = owner_client.post(settings_url(chat), {**UNSET, "model": "model-a"})
    assert response.status_code == 422
    response = owner_client.post(settings_url(chat), {**UNSET, "model": "model-b"})
    assert response.status_code == 302
    assert stored_settings(chat)["model"] == "model-b"


def test_an_old_model_no_longer_configured_stays_while_access_is_open(owner_client, owner):
    chat = ConversationFactory(owner=owner, model="retired-model")
    panel = owner_client.get(settings_url(chat), headers=HTMX).content.decode()
    assert '<option value="retired-model" selected>' in panel
    response = owner_client.post(settings_url(chat), {**UNSET, "model": "retired-model"})
    assert response.status_code == 302


def test_changing_settings_does_not_reorder_the_sidebar(owner_client, chat):
    updated_at = chat.updated_at
    owner_client.post(settings_url(chat), VALID)
    chat.refresh_from_db()
    assert chat.updated_at == updated_at


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_conversation_settings_answer_404(outsider_client, chat, method):
    response = getattr(outsider_client, method)(settings_url(chat), VALID, headers=HTMX)
    assert response.status_code == 404
    assert stored_settings(chat) == STORED


def test_the_panel_requires_get_or_post(owner_client, chat):
    assert owner_client.put(settings_url(chat)).status_code == 405


# --- The request built from the settings ---------------------------------------------------


def test_the_request_carries_every_set_setting_and_the_system_prompt_first(owner):
    chat = ConversationFactory(owner=owner, **STORED)
    reply = MessageFactory(conversation=chat, role="assistant", model="model-a", content="")
    history = [{"role": "user", "content": "Hi"}]
    request = conversation_settings.chat_request(reply=reply, messages=history)
    assert request == ChatRequest(
        model="model-a",
        messages=[{"role": "system", "content": "Stored prompt."}, *history],
        max_tokens=100,
        temperature=1.0,
        top_p=0.5,
        top_k=10,
        reasoning_effort="low",
    )


def test_the_request_leaves_out_every_unset_setting(owner):
    chat = ConversationFactory(owner=owner, model="model-a")
    reply = MessageFactory(conversation=chat, role="assistant", model="model-a", content="")
    history = [{"role": "user", "content": "Hi"}]
    body = conversation_settings.chat_request(reply=reply, messages=history).body(stream=True)
    assert body == {
        "model": "model-a",
        "messages": history,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_the_request_uses_the_model_of_the_reply(owner):
    chat = ConversationFactory(owner=owner, model="model-b")
    reply = MessageFactory(conversation=chat, role="assistant", model="model-a", content="")
    assert conversation_settings.chat_request(reply=reply, messages=[]).model == "model-a"


def test_a_chat_request_sends_reasoning_effort_only_when_set():
    assert ChatRequest(model="m", messages=[], reasoning_effort="medium").body(stream=False) == {
        "model": "m",
        "messages": [],
        "stream": False,
        "reasoning_effort": "medium",
    }
    assert "reasoning_effort" not in ChatRequest(model="m", messages=[]).body(stream=False)


@pytest.mark.django_db(transaction=True)
async def test_saved_settings_reach_the_upstream(async_owner_client, owner, fake_upstream):
    chat = await sync_to_async(ConversationFactory)(owner=owner, model="model-a")
    response = await async_owner_client.post(settings_url(chat), VALID, headers=HTMX)
    assert response.status_code == 200

    await send_message(async_owner_client, chat, "What is a tree?")
    reply = await finished(await latest_reply(chat))
    assert reply.status == Message.Status.COMPLETE

    body = fake_upstream.requests[-1].body
    assert body["model"] == "model-b"
    assert body["messages"] == [
        {"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": "What is a tree?"},
    ]
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (
        0.7,
        0.9,
        40,
        500,
    )
    assert body["reasoning_effort"] == "high"


@pytest.mark.django_db(transaction=True)
async def test_unset_settings_never_reach_the_upstream(async_owner_client, owner, fake_upstream):
    chat = await sync_to_async(ConversationFactory)(owner=owner, **STORED)
    response = await async_owner_client.post(settings_url(chat), UNSET, headers=HTMX)
    assert response.status_code == 200

    await send_message(async_owner_client, chat, "Hello")
    await finished(await latest_reply(chat))

    body = fake_upstream.requests[-1].body
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    for name in ("temperature", "top_p", "top_k", "max_tokens", "reasoning_effort"):
        assert name not in body
