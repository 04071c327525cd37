"""Staff reading another user's images, full size or as thumbnails, is recorded like a
reading of the conversation; owners' own readings are not, and with
WEBCHAT_STAFF_CAN_READ_CONVERSATIONS off staff get no image at all."""

import io

import pytest
from django.test import Client
from django.urls import reverse

from accounts import roles
from conversations import images, services
from conversations.models import Attachment, Message
from review.models import ReviewAccess
from tests import image_files
from tests.factories import ConversationFactory, user_with_role

IMAGE, THUMBNAIL = "conversations:attachment", "conversations:attachment-thumbnail"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _attachment(owner) -> Attachment:
    conversation = ConversationFactory(owner=owner, title="Holiday")
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="beach.png", limits=images.ImageLimits()
    )
    question, reply = services.message_send(
        conversation=conversation, text="Look", images=[picture]
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    return question.attachments.get()


@pytest.fixture
def member(db):
    return user_with_role(roles.MEMBER, username="member")


@pytest.fixture
def attachment(member) -> Attachment:
    return _attachment(member)


@pytest.fixture(params=[roles.REVIEWER, roles.ADMIN])
def staff(request, db):
    return user_with_role(request.param, username="staff")


def test_an_owner_reading_their_images_is_not_recorded(member, attachment):
    client = _client(member)
    for name in (IMAGE, THUMBNAIL):
        response = client.get(reverse(name, args=[attachment.pk]))
        assert response.status_code == 200
        assert "max-age=86400" in response["Cache-Control"]
    assert not ReviewAccess.objects.exists()


def test_staff_reading_an_image_of_their_own_is_not_recorded(staff):
    attachment = _attachment(staff)
    for name in (IMAGE, THUMBNAIL):
        assert _client(staff).get(reverse(name, args=[attachment.pk])).status_code == 200
    assert not ReviewAccess.objects.exists()


def test_each_staff_reading_of_another_users_image_is_recorded(staff, attachment):
    client = _client(staff)
    for name in (IMAGE, THUMBNAIL, THUMBNAIL):
        response = client.get(reverse(name, args=[attachment.pk]))
        assert response.status_code == 200
        # Not kept by the browser: every reading reaches the server and its audit.
        assert "no-store" in response["Cache-Control"]
        assert "max-age" not in response["Cache-Control"]
    accesses = ReviewAccess.objects.order_by("pk")
    assert [(access.kind, access.attachment_ref) for access in accesses] == [
        (ReviewAccess.Kind.IMAGE, attachment.pk),
        (ReviewAccess.Kind.THUMBNAIL, attachment.pk),
        (ReviewAccess.Kind.THUMBNAIL, attachment.pk),
    ]
    conversation = attachment.message.conversation
    for access in accesses:
        assert (access.viewer, access.viewer_username) == (staff, "staff")
        assert (access.conversation, access.conversation_ref) == (conversation, conversation.pk)
        assert access.owner_username == "member"


def test_a_missing_image_answers_404_and_records_nothing(staff, attachment):
    attachment.image.storage.delete(attachment.image.name)
    assert _client(staff).get(reverse(IMAGE, args=[attachment.pk])).status_code == 404
    assert not ReviewAccess.objects.exists()


def test_with_reading_off_staff_get_404_and_nothing_is_recorded(
    staff, member, attachment, settings
):
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    for name in (IMAGE, THUMBNAIL):
        url = reverse(name, args=[attachment.pk])
        assert _client(staff).get(url).status_code == 404
        assert _client(member).get(url).status_code == 200
    assert not ReviewAccess.objects.exists()


def test_the_audit_lists_image_readings(attachment, db):
    reviewer = user_with_role(roles.REVIEWER, username="reviewer")
    client = _client(reviewer)
    client.get(reverse(IMAGE, args=[attachment.pk]))
    client.get(reverse(THUMBNAIL, args=[attachment.pk]))
    page = reverse(
        "admin:conversations_conversation_change", args=[attachment.message.conversation_id]
    )
    client.get(page)
    audit = reverse("admin:review_reviewaccess_changelist")
    page = client.get(audit).content.decode()
    assert f"image {attachment.pk}" in page
    assert f"thumbnail of image {attachment.pk}" in page
    assert "the conversation" in page
    only_images = client.get(audit, {"kind__exact": "image"})
    assert [access.kind for access in only_images.context["cl"].result_list] == ["image"]
