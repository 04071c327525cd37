"""The message tree: editing a message, switching versions, and paging a long branch."""

import io
import itertools

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import images, services, tree
from conversations.models import Attachment, Conversation, Message
from tests import image_files
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import HTMX, finished


def _exchange(conversation, question: str, answer: str) -> tuple[Message, Message]:
    asked = MessageFactory(conversation=conversation, role="user", content=question)
    return asked, MessageFactory(conversation=conversation, role="assistant", content=answer)


def _edit_url(message: Message) -> str:
    return reverse("conversations:message-edit", args=[message.conversation_id, message.pk])


def _show_url(message: Message) -> str:
    return reverse("conversations:version-show", args=[message.conversation_id, message.pk])


def _shown(conversation) -> list[str]:
    conversation.refresh_from_db()
    return [message.content for message in tree.branch(conversation)]


# --- Editing ----------------------------------------------------------------------------


def test_an_edited_message_becomes_a_new_version_and_the_conversation_goes_on_from_it(
    conversation,
):
    _exchange(conversation, "one", "1")
    asked, _answer = _exchange(conversation, "two", "2")
    _exchange(conversation, "three", "3")

    edited, reply = services.message_edit(message=asked, text="two, edited")

    assert edited.parent_id == asked.parent_id
    assert reply.parent_id == edited.pk
    assert _shown(conversation) == ["one", "1", "two, edited", ""]
    assert services.history_for_reply(reply) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two, edited"},
    ]
    assert Message.objects.filter(content="three").exists()  # kept, in the other version


def test_an_edited_message_keeps_its_images_and_their_files_outlive_the_original(
    conversation, django_capture_on_commit_callbacks
):
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="p.png", limits=images.ImageLimits()
    )
    asked, reply = services.message_send(conversation=conversation, text="Look", images=[picture])
    Message.objects.filter(pk=reply.pk).update(status="complete", content="A picture.")
    asked = Message.objects.prefetch_related("attachments").get(pk=asked.pk)

    edited, _reply = services.message_edit(message=asked, text="Look closer")

    (original,), (copy,) = asked.attachments.all(), edited.attachments.all()
    assert copy.image.name == original.image.name
    storage = original.image.storage
    with django_capture_on_commit_callbacks(execute=True):
        original.delete()
    assert storage.exists(copy.image.name)


@pytest.mark.parametrize("text", ["", "   ", "x" * 40_000])
def test_a_refused_edit_is_explained_and_changes_nothing(owner_client, conversation, text):
    asked, _answer = _exchange(conversation, "one", "1")

    response = owner_client.post(_edit_url(asked), {"text": text}, headers=HTMX)

    assert response.status_code == 422
    assert conversation.messages.count() == 2


def test_editing_while_a_reply_is_written_is_refused(owner_client, conversation):
    asked, answer = _exchange(conversation, "one", "")
    Message.objects.filter(pk=answer.pk).update(status="streaming")

    response = owner_client.post(_edit_url(asked), {"text": "changed"}, headers=HTMX)

    assert response.status_code == 422
    assert "still being written" in response.content.decode()
    assert conversation.messages.count() == 2


def test_only_ones_own_user_messages_can_be_edited(owner_client, outsider_client, conversation):
    asked, answer = _exchange(conversation, "one", "1")
    assert owner_client.get(_edit_url(answer)).status_code == 404
    assert outsider_client.get(_edit_url(asked)).status_code == 404
    assert outsider_client.post(_edit_url(asked), {"text": "mine"}).status_code == 404
    assert conversation.messages.count() == 2


def test_the_edit_form_works_without_javascript(owner_client, conversation):
    asked, _answer = _exchange(conversation, "one", "1")
    page = owner_client.get(_edit_url(asked)).content.decode()
    assert f'<form class="message-edit" method="post" action="{_edit_url(asked)}"' in page
    assert ">one</textarea>" in page


def _pictured_exchange(conversation, *names: str) -> Message:
    """A user message with an image for each of ``names``, and its finished reply."""
    pictures = [
        images.normalize(io.BytesIO(image_files.png()), filename=name, limits=images.ImageLimits())
        for name in names
    ]
    asked, reply = services.message_send(conversation=conversation, text="Look", images=pictures)
    Message.objects.filter(pk=reply.pk).update(status="complete", content="Pictures.")
    return asked


def _newest_user_message(conversation) -> Message:
    return conversation.messages.filter(role="user").order_by("pk").last()


def test_the_edit_form_shows_the_images_each_removable_and_text_not_required(
    owner_client, conversation
):
    asked = _pictured_exchange(conversation, "cat.png", "dog.png")
    page = owner_client.get(_edit_url(asked), headers=HTMX).content.decode()
    assert 'enctype="multipart/form-data"' in page
    textarea = page[page.index("<textarea") : page.index("</textarea>")]
    assert "required" not in textarea
    for attachment in asked.attachments.all():
        thumbnail = reverse("conversations:attachment-thumbnail", args=[attachment.pk])
        assert f'<img src="{thumbnail}" alt="{attachment.original_name}">' in page
        assert f'name="remove" value="{attachment.pk}"' in page
        assert f"Remove {attachment.original_name}" in page
    assert 'name="images"' in page


def test_an_image_only_edit_keeps_the_images_not_removed_on_the_new_version(
    owner_client, conversation
):
    asked = _pictured_exchange(conversation, "cat.png", "dog.png")
    cat, dog = asked.attachments.order_by("pk")

    response = owner_client.post(
        _edit_url(asked), {"text": "", "remove": [str(cat.pk)]}, headers=HTMX
    )

    assert response.status_code == 200
    edited = _newest_user_message(conversation)
    assert edited.pk != asked.pk
    assert edited.content == ""
    (kept,) = edited.attachments.all()
    assert (kept.original_name, kept.image.name) == ("dog.png", dog.image.name)
    assert asked.attachments.count() == 2  # the original version is untouched
    assert (
        reverse("conversations:attachment-thumbnail", args=[kept.pk]) in response.content.decode()
    )


def test_an_edit_adds_new_images_after_the_kept_ones(owner_client, conversation):
    asked = _pictured_exchange(conversation, "cat.png")
    upload = image_files.upload("bird.png", image_files.png((300, 200)))

    response = owner_client.post(
        _edit_url(asked), {"text": "And this", "images": [upload]}, headers=HTMX
    )

    assert response.status_code == 200
    edited = _newest_user_message(conversation)
    assert [each.original_name for each in edited.attachments.order_by("pk")] == [
        "cat.png",
        "bird.png",
    ]


def test_an_edit_without_text_or_images_is_refused_in_the_form_and_changes_nothing(
    owner_client, conversation
):
    asked = _pictured_exchange(conversation, "cat.png")
    (cat,) = asked.attachments.all()

    response = owner_client.post(
        _edit_url(asked), {"text": "  ", "remove": [str(cat.pk)]}, headers=HTMX
    )

    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == f"#{asked.dom_id}-edit-error"
    assert str(services.NOTHING_TO_SEND) in response.content.decode()
    assert conversation.messages.count() == 2
    assert Attachment.objects.count() == 1


def test_an_edit_refused_without_javascript_shows_the_form_again_with_the_error(
    owner_client, conversation
):
    asked = _pictured_exchange(conversation, "cat.png")
    (cat,) = asked.attachments.all()

    response = owner_client.post(_edit_url(asked), {"text": "", "remove": [str(cat.pk)]})

    page = response.content.decode()
    assert response.status_code == 422
    assert str(services.NOTHING_TO_SEND) in page
    assert f'name="remove" value="{cat.pk}" class="visually-hidden" checked' in page
    assert conversation.messages.count() == 2


def test_an_outsider_cannot_edit_away_the_images_of_a_message(outsider_client, conversation):
    asked = _pictured_exchange(conversation, "cat.png")
    (cat,) = asked.attachments.all()

    response = outsider_client.post(_edit_url(asked), {"text": "", "remove": [str(cat.pk)]})

    assert response.status_code == 404
    assert conversation.messages.count() == 2
    assert outsider_client.get(_edit_url(asked)).status_code == 404


@pytest.mark.django_db(transaction=True)
async def test_an_edit_streams_a_new_reply_shown_in_place_of_the_old_branch(
    async_owner_client, owner, fake_upstream
):
    conversation = await sync_to_async(ConversationFactory)(owner=owner, model="fake-model")
    asked, _answer = await sync_to_async(_exchange)(conversation, "one", "old answer")
    fake_upstream.reset(reply="New answer.")

    response = await async_owner_client.post(_edit_url(asked), {"text": "uno"}, headers=HTMX)

    shown = response.content.decode()
    assert response.status_code == 200
    assert "uno" in shown
    assert "old answer" not in shown
    assert "2 / 2" in shown
    reply = await finished(await Message.objects.filter(role="assistant").alast())
    assert reply.content == "New answer."
    assert fake_upstream.requests[0].body["messages"] == [{"role": "user", "content": "uno"}]


# --- Switching versions -----------------------------------------------------------------


def test_switching_to_an_earlier_version_shows_its_branch_and_the_conversation_goes_on_there(
    owner_client, conversation
):
    asked, first = _exchange(conversation, "one", "first answer")
    second = MessageFactory(conversation=conversation, parent=asked, role="assistant", content="2")
    MessageFactory(conversation=conversation, role="user", content="after the second")
    assert _shown(conversation)[-2:] == ["2", "after the second"]

    response = owner_client.post(_show_url(first), headers=HTMX)

    page = response.content.decode()
    assert response.status_code == 200
    assert "first answer" in page
    assert "after the second" not in page
    assert "1 / 2" in page
    assert _shown(conversation) == ["one", "first answer"]
    _question, reply = services.message_send(conversation=conversation, text="go on")
    assert [m["content"] for m in services.history_for_reply(reply)] == [
        "one",
        "first answer",
        "go on",
    ]
    # Back to the second version: the newest branch below it is shown again.
    Message.objects.filter(pk=reply.pk).update(status="complete")
    owner_client.post(_show_url(second))
    assert _shown(conversation) == ["one", "2", "after the second"]


def test_the_version_switch_is_a_pair_of_forms(owner_client, conversation):
    asked, first = _exchange(conversation, "one", "1")
    second = MessageFactory(conversation=conversation, parent=asked, role="assistant", content="2")
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    url = _show_url(first)
    assert f'<form method="post" action="{url}" hx-post="{url}"' in page
    assert "2 / 2" in page
    assert _show_url(second) not in page  # shown already: no "next"


def test_switching_while_a_reply_is_written_is_refused(owner_client, conversation):
    asked, first = _exchange(conversation, "one", "1")
    MessageFactory(conversation=conversation, parent=asked, role="assistant", status="streaming")

    leaf = Conversation.objects.get(pk=conversation.pk).current_leaf_id

    response = owner_client.post(_show_url(first), headers=HTMX)

    assert response.status_code == 422
    assert Conversation.objects.get(pk=conversation.pk).current_leaf_id == leaf


def test_another_users_versions_answer_404(outsider_client, conversation):
    _asked, answer = _exchange(conversation, "one", "1")
    leaf = Conversation.objects.get(pk=conversation.pk).current_leaf_id
    assert outsider_client.post(_show_url(answer)).status_code == 404
    assert Conversation.objects.get(pk=conversation.pk).current_leaf_id == leaf


# --- Long conversations -----------------------------------------------------------------


def _long_conversation(owner, count: int) -> Conversation:
    conversation = ConversationFactory(owner=owner)
    messages = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="user" if number % 2 == 0 else "assistant",
            content=f"message {number}",
        )
        for number in range(count)
    )
    for parent, message in itertools.pairwise(messages):
        message.parent = parent
    Message.objects.bulk_update(messages, ["parent"], batch_size=500)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=messages[-1])
    return conversation


def test_a_long_conversation_opens_with_its_newest_messages(owner_client, owner):
    conversation = _long_conversation(owner, 2000)

    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    assert page.count('<article id="message-') == 40
    assert "message 1999" in page
    assert "message 1959" not in page
    assert "Load earlier messages" in page


def test_opening_a_long_conversation_costs_as_many_queries_as_a_short_one(
    owner_client, owner, django_assert_max_num_queries
):
    short, long = _long_conversation(owner, 20), _long_conversation(owner, 2000)
    owner_client.get(short.get_absolute_url())  # warm the session and caches
    with CaptureQueriesContext(connection) as short_queries:
        owner_client.get(short.get_absolute_url())
    with django_assert_max_num_queries(len(short_queries)):
        owner_client.get(long.get_absolute_url())


def test_older_messages_load_page_by_page_back_to_the_first(owner_client, owner):
    conversation = _long_conversation(owner, 90)
    url = reverse("conversations:older-messages", args=[conversation.pk])
    oldest = Message.objects.get(content="message 50").pk

    older = owner_client.get(url, {"before": oldest}, headers=HTMX).content.decode()
    assert older.count('<article id="message-') == 40
    assert "message 10" in older
    assert "message 49" in older
    assert "message 50" not in older
    assert "Load earlier messages" in older

    first = Message.objects.get(content="message 10").pk
    oldest_page = owner_client.get(url, {"before": first}, headers=HTMX).content.decode()
    assert oldest_page.count('<article id="message-') == 10
    assert "Load earlier messages" not in oldest_page


def test_older_messages_refuse_a_bad_position_and_show_nothing_off_the_branch(
    owner_client, owner, conversation
):
    long = _long_conversation(owner, 10)
    url = reverse("conversations:older-messages", args=[long.pk])
    assert owner_client.get(url, {"before": "x"}).status_code == 400
    elsewhere = MessageFactory(conversation=conversation).pk
    response = owner_client.get(url, {"before": elsewhere}, headers=HTMX)
    assert '<article id="message-' not in response.content.decode()


def test_deleting_the_conversation_deletes_files_shared_by_versions(
    conversation, django_capture_on_commit_callbacks
):
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="p.png", limits=images.ImageLimits()
    )
    asked, reply = services.message_send(conversation=conversation, text="Look", images=[picture])
    Message.objects.filter(pk=reply.pk).update(status="complete")
    asked = Message.objects.prefetch_related("attachments").get(pk=asked.pk)
    services.message_edit(message=asked, text="Again")
    name = Attachment.objects.first().image.name
    storage = Attachment.objects.first().image.storage

    with django_capture_on_commit_callbacks(execute=True):
        conversation.delete()

    assert not Attachment.objects.exists()
    assert not storage.exists(name)
