import uuid

import pytest
from django.test import Client
from django.urls import reverse

from conversations import rendering
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory

HTMX = {"HX-Request": "true"}


def test_it_asks_anonymous_visitors_to_sign_in(client, owner, conversation):
    for url in ["/", conversation.get_absolute_url()]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_anonymous_posts_change_nothing(client, conversation):
    response = client.post(
        reverse("conversations:message-create", args=[conversation.pk]), {"text": "hi"}
    )
    assert response.status_code == 302
    assert not Message.objects.exists()


def test_the_sidebar_lists_only_my_conversations_most_recent_first(owner_client, owner, outsider):
    older = ConversationFactory(owner=owner, title="Older chat")
    newer = ConversationFactory(owner=owner, title="Newer chat")
    ConversationFactory(owner=outsider, title="Someone else's chat")
    Conversation.objects.filter(pk=older.pk).update(updated_at="2020-01-01T00:00Z")
    page = owner_client.get("/").content.decode()
    assert page.index("Newer chat") < page.index("Older chat")
    assert "Someone else" not in page
    assert newer.get_absolute_url() in page


def test_a_conversation_page_shows_its_messages_and_connects_its_socket(owner_client, conversation):
    MessageFactory(conversation=conversation, content="Hello *there*")
    MessageFactory(conversation=conversation, role="assistant", content="Hi **you**")
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert "Hello *there*" in page
    assert "<strong>you</strong>" in page
    assert f'ws-connect="/ws/conversations/{conversation.pk}/"' in page


def test_a_finished_reply_is_rendered_once_however_often_its_page_is_shown(
    owner_client, conversation, monkeypatch
):
    text = f"Hi **again**, reply {uuid.uuid4()}"
    MessageFactory(conversation=conversation, role="assistant", content=text)
    rendered = []
    render_markdown = rendering.render_markdown
    monkeypatch.setattr(
        rendering, "render_markdown", lambda text: rendered.append(text) or render_markdown(text)
    )
    for _ in range(3):
        page = owner_client.get(conversation.get_absolute_url()).content.decode()
        assert "<strong>again</strong>" in page
    assert rendered == [text]


def test_a_streaming_reply_is_rendered_afresh_and_not_kept(owner_client, conversation):
    reply = MessageFactory(
        conversation=conversation, role="assistant", content="Half **way**", status="streaming"
    )
    kept = rendering.render_finished_markdown.cache_info().currsize
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert "Half <strong>way</strong>" in page
    Message.objects.filter(pk=reply.pk).update(content="Half **way** there")
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert "Half <strong>way</strong> there" in page
    assert rendering.render_finished_markdown.cache_info().currsize == kept


def test_another_users_conversation_answers_404(outsider_client, conversation):
    assert outsider_client.get(conversation.get_absolute_url()).status_code == 404


def test_posting_to_another_users_conversation_answers_404_and_saves_nothing(
    outsider_client, conversation
):
    url = reverse("conversations:message-create", args=[conversation.pk])
    assert outsider_client.post(url, {"text": "sneaky"}).status_code == 404
    assert not Message.objects.exists()


def test_posting_to_a_missing_conversation_answers_404(owner_client):
    url = reverse("conversations:message-create", args=[999_999])
    assert owner_client.post(url, {"text": "hello"}).status_code == 404


def test_sending_requires_post(owner_client, conversation):
    url = reverse("conversations:message-create", args=[conversation.pk])
    assert owner_client.get(url).status_code == 405


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_message_is_refused_inline_and_saves_nothing(owner_client, conversation, text):
    url = reverse("conversations:message-create", args=[conversation.pk])
    response = owner_client.post(url, {"text": text}, headers=HTMX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer-error"
    assert "Type a message" in response.content.decode()
    assert not Message.objects.exists()


def test_an_overlong_message_is_refused_and_kept_in_the_composer(
    owner_client, conversation, settings
):
    settings.WEBCHAT_MAX_MESSAGE_CHARS = 20
    url = reverse("conversations:message-create", args=[conversation.pk])
    text = "a message that is far too long"
    response = owner_client.post(url, {"text": text})
    assert response.status_code == 422
    page = response.content.decode()
    assert "the limit is 20" in page
    assert f">{text}</textarea>" in page
    assert not Message.objects.exists()


def test_a_message_holding_a_nul_is_refused_and_kept_in_the_composer(owner_client, conversation):
    url = reverse("conversations:message-create", args=[conversation.pk])
    response = owner_client.post(url, {"text": "before\x00after"})
    assert response.status_code == 422
    assert "NUL character" in response.content.decode()
    assert not Message.objects.exists()


def test_a_second_message_while_a_reply_streams_is_refused(owner_client, conversation):
    MessageFactory(conversation=conversation, role="assistant", status="streaming", content="par")
    url = reverse("conversations:message-create", args=[conversation.pk])
    response = owner_client.post(url, {"text": "another"}, headers=HTMX)
    assert response.status_code == 422
    assert "still being written" in response.content.decode()
    assert conversation.messages.count() == 1


def test_an_empty_first_message_creates_no_conversation(owner_client):
    response = owner_client.post(reverse("conversations:create"), {"text": " "}, headers=HTMX)
    assert response.status_code == 422
    assert not Conversation.objects.exists()


def test_csrf_is_enforced_on_sending(owner, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    url = reverse("conversations:message-create", args=[conversation.pk])
    assert client.post(url, {"text": "hello"}).status_code == 403
    assert not Message.objects.exists()


def test_the_demo_banner_explains_how_to_set_a_key(owner_client, settings):
    settings.WEBCHAT_DEMO_MODE = True
    page = owner_client.get("/").content.decode()
    assert "built-in demo model" in page
    assert "WEBCHAT_API_KEY" in page


def test_the_api_key_never_reaches_the_page(owner_client, conversation, settings):
    settings.WEBCHAT_API_KEY = "sk-recognisable-secret-123"
    settings.WEBCHAT_DEMO_MODE = False
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert "sk-recognisable-secret-123" not in page
