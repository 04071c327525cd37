"""The model menu of the chat header: a conversation's model, or the next new chat's,
chosen among the models the user may use."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import ModelAccess
from conversations.models import Conversation
from tests.factories import ConversationFactory
from tests.generation_helpers import HTMX

NEW_CHAT_URL = reverse("conversations:new-chat-model")


@pytest.fixture(autouse=True)
def _three_models(settings):
    settings.WEBCHAT_MODELS = ["model-a", "model-b", "model-c"]


@pytest.fixture
def chat(owner) -> Conversation:
    return ConversationFactory(owner=owner, model="model-a")


@pytest.fixture
def only_a_and_b(owner) -> None:
    group = Group.objects.create(name="A and B")
    ModelAccess.objects.bulk_create(
        [ModelAccess(group=group, model="model-a"), ModelAccess(group=group, model="model-b")]
    )
    owner.groups.add(group)


def model_url(conversation: Conversation) -> str:
    return reverse("conversations:model", args=[conversation.pk])


def test_the_header_offers_the_models_i_may_use(owner_client, chat, only_a_and_b):
    page = owner_client.get(chat.get_absolute_url()).content.decode()
    assert f'hx-post="{model_url(chat)}"' in page
    assert 'aria-checked="true" name="model" value="model-a"' in page
    assert 'aria-checked="false" name="model" value="model-b"' in page
    assert 'value="model-c"' not in page


def test_choosing_a_model_changes_the_conversations(owner_client, chat):
    response = owner_client.post(model_url(chat), {"model": "model-b"}, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<details class="picker model-picker" id="model-menu">')
    assert '<span class="chat-model" id="chat-model">model-b</span>' in page
    chat.refresh_from_db()
    assert chat.model == "model-b"


def test_choosing_without_javascript_returns_to_the_conversation(owner_client, chat):
    response = owner_client.post(model_url(chat), {"model": "model-c"})
    assert response.status_code == 302
    assert response["Location"] == chat.get_absolute_url()
    chat.refresh_from_db()
    assert chat.model == "model-c"


@pytest.mark.parametrize("htmx", [True, False])
def test_a_model_i_may_not_use_is_refused_with_a_clear_error(
    owner_client, chat, only_a_and_b, htmx
):
    response = owner_client.post(
        model_url(chat), {"model": "model-c"}, headers=HTMX if htmx else {}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "You may not use the model “model-c”. Choose another one." in page
    assert '<details class="picker model-picker" id="model-menu" open>' in page
    assert ("<html" in page) is not htmx  # without JavaScript, a page holding the menu
    chat.refresh_from_db()
    assert chat.model == "model-a"


def test_no_model_at_all_is_refused(owner_client, chat):
    response = owner_client.post(model_url(chat), {}, headers=HTMX)
    assert response.status_code == 422
    assert "Choose a model." in response.content.decode()
    chat.refresh_from_db()
    assert chat.model == "model-a"


def test_another_users_conversation_keeps_its_model(outsider_client, chat):
    assert outsider_client.post(model_url(chat), {"model": "model-b"}).status_code == 404
    chat.refresh_from_db()
    assert chat.model == "model-a"


def test_the_new_chat_model_is_kept_for_the_next_new_chat(owner_client):
    response = owner_client.post(NEW_CHAT_URL, {"model": "model-b"}, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="chat-model" id="chat-model">model-b</span>' in page
    # The composer's hidden field follows, so the message goes to the model shown.
    assert (
        '<input type="hidden" id="composer-model" name="model" value="model-b" hx-swap-oob="true">'
        in page
    )
    index = owner_client.get(reverse("conversations:index")).content.decode()
    assert '<input type="hidden" id="composer-model" name="model" value="model-b">' in index


def test_the_new_chat_model_refuses_a_model_i_may_not_use(owner_client, only_a_and_b):
    response = owner_client.post(NEW_CHAT_URL, {"model": "model-c"}, headers=HTMX)
    assert response.status_code == 422
    assert "You may not use the model “model-c”." in response.content.decode()
    index = owner_client.get(reverse("conversations:index")).content.decode()
    assert '<input type="hidden" id="composer-model" name="model" value="model-a">' in index


def test_a_new_chat_model_taken_away_since_falls_back_to_the_first_allowed(owner, owner_client):
    owner_client.post(NEW_CHAT_URL, {"model": "model-c"})
    group = Group.objects.create(name="B only")
    ModelAccess.objects.create(group=group, model="model-b")
    owner.groups.add(group)
    index = owner_client.get(reverse("conversations:index")).content.decode()
    assert '<input type="hidden" id="composer-model" name="model" value="model-b">' in index
