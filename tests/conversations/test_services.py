import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.models import Conversation, Message
from tests.factories import MessageFactory


def test_it_refuses_an_empty_message():
    with pytest.raises(services.MessageRefused, match="Type a message"):
        services.message_text_clean("   \n\t ")


def test_it_refuses_a_message_over_the_limit(settings):
    settings.WEBCHAT_MAX_MESSAGE_CHARS = 10
    with pytest.raises(services.MessageRefused, match="limit is 10"):
        services.message_text_clean("x" * 11)


def test_it_keeps_a_message_at_the_limit(settings):
    settings.WEBCHAT_MAX_MESSAGE_CHARS = 10
    assert services.message_text_clean("x" * 10) == "x" * 10


def test_title_is_the_first_words_cut_at_a_word_boundary():
    title = services.title_from_text("word " * 40)
    assert title.endswith("…")
    assert len(title) <= services.TITLE_MAX_CHARS + 1
    assert "wor…" not in title


def test_title_collapses_whitespace():
    assert services.title_from_text("  Hello\n\n  there ") == "Hello there"


def test_starting_a_conversation_saves_the_message_and_a_pending_reply(owner):
    conversation, reply = services.conversation_start(owner=owner, text="  Hi there  ")
    assert conversation.owner == owner
    assert conversation.title == "Hi there"
    assert conversation.model == settings.WEBCHAT_MODELS[0]
    user_message, stored_reply = conversation.messages.all()
    assert (user_message.role, user_message.content) == ("user", "Hi there")
    assert stored_reply == reply
    assert reply.status == Message.Status.PENDING


def test_a_refused_first_message_creates_no_conversation(owner):
    with pytest.raises(services.MessageRefused):
        services.conversation_start(owner=owner, text="")
    assert not Conversation.objects.exists()


def test_a_message_without_images_is_sent_without_reading_attachments(conversation):
    with CaptureQueriesContext(connection) as queries:
        user_message, _reply = services.message_send(conversation=conversation, text="Hi")

    assert not [query for query in queries if "conversations_attachment" in query["sql"]]
    with CaptureQueriesContext(connection) as queries:
        assert list(user_message.attachments.all()) == []  # known, for rendering it
    assert len(queries) == 0


def test_it_refuses_a_second_message_while_a_reply_is_active(conversation):
    services.message_send(conversation=conversation, text="first")
    with pytest.raises(services.MessageRefused, match="still being written"):
        services.message_send(conversation=conversation, text="second")
    assert conversation.messages.count() == 2


def test_it_accepts_a_message_once_the_reply_is_done(conversation):
    _user_message, reply = services.message_send(conversation=conversation, text="first")
    reply.status = Message.Status.COMPLETE
    reply.save()
    services.message_send(conversation=conversation, text="second")
    assert conversation.messages.count() == 4


def test_history_holds_every_earlier_turn_and_skips_empty_replies(conversation):
    MessageFactory(conversation=conversation, role="user", content="one")
    MessageFactory(conversation=conversation, role="assistant", content="two")
    MessageFactory(conversation=conversation, role="user", content="three")
    MessageFactory(conversation=conversation, role="assistant", content="", status="error")
    _user_message, reply = services.message_send(conversation=conversation, text="four")
    assert services.history_for_reply(reply) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
        {"role": "user", "content": "four"},
    ]
