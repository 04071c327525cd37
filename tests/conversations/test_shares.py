"""Share links: making, listing and revoking them, the shared page and its images, who may
open what, the snapshot staying what was shared, the admin and the audit."""

import io
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts import roles
from conversations import images, services, shares
from conversations.models import Conversation, Message, Share
from review import retention
from review.models import ShareEvent
from tests import image_files
from tests.conversations.test_rendering import assert_inert
from tests.factories import ConversationFactory, MessageFactory, user_with_role
from tests.xss_payloads import PAYLOADS

HTMX = {"HX-Request": "true"}


def _picture() -> images.NormalizedImage:
    return images.normalize(
        io.BytesIO(image_files.png()), filename="picture.png", limits=images.ImageLimits()
    )


def _exchange(conversation: Conversation, question: str, answer: str) -> tuple[Message, Message]:
    asked = MessageFactory(conversation=conversation, content=question)
    answered = MessageFactory(
        conversation=conversation, role=Message.Role.ASSISTANT, content=answer, model="test-model"
    )
    return asked, answered


def _with_image(conversation: Conversation, text: str) -> Message:
    """A question with an image, and its answer, complete."""
    question, reply = services.message_send(
        conversation=conversation, text=text, images=[_picture()]
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="Nice")
    return question


def _share(conversation: Conversation, audience=Share.Audience.SIGNED_IN) -> Share:
    conversation.refresh_from_db()
    owner = conversation.owner
    return shares.share_create(conversation=conversation, user=owner, audience=audience)


def _list_url(conversation: Conversation) -> str:
    return reverse("conversations:shares", args=[conversation.pk])


def _revoke_url(share: Share) -> str:
    return reverse("conversations:share-revoke", args=[share.conversation_id, share.pk])


def _image_urls(share: Share, attachment_id: int) -> list[str]:
    return [
        reverse(name, args=[share.token, attachment_id])
        for name in ("conversations:share-image", "conversations:share-thumbnail")
    ]


# --- The owner's panel -------------------------------------------------------------------


def test_the_owner_creates_a_link_and_sees_it_listed(owner_client, conversation):
    _exchange(conversation, "What is 2+2?", "Four.")
    response = owner_client.post(_list_url(conversation), {"audience": "anyone"}, headers=HTMX)
    assert response.status_code == 200
    share = Share.objects.get()
    assert share.audience == Share.Audience.ANYONE
    assert len(share.token) >= 40
    html = response.content.decode()
    assert f'value="http://testserver/s/{share.token}/"' in html
    assert "data-copy-link" in html
    assert 'hx-post="' + _revoke_url(share) + '"' in html
    assert [m["content"] for m in share.snapshot] == ["What is 2+2?", "Four."]
    assert share.title == "Owner's chat"


def test_the_audience_is_those_signed_in_unless_chosen_otherwise(owner_client, conversation):
    response = owner_client.post(_list_url(conversation))
    assert response.status_code == 302
    assert Share.objects.get().audience == Share.Audience.SIGNED_IN


def test_an_unknown_audience_is_refused(owner_client, conversation):
    response = owner_client.post(_list_url(conversation), {"audience": "everyone"}, headers=HTMX)
    assert response.status_code == 422
    assert not Share.objects.exists()


def test_the_panel_lists_live_links_only(owner_client, conversation):
    live, revoked = _share(conversation), _share(conversation)
    shares.share_revoke(share=revoked, user=conversation.owner)
    html = owner_client.get(_list_url(conversation), headers=HTMX).content.decode()
    assert live.token in html
    assert revoked.token not in html
    # Without htmx, a page of its own.
    page = owner_client.get(_list_url(conversation)).content.decode()
    assert "<!doctype html>" in page
    assert live.token in page


def test_the_chat_header_and_the_sidebar_menu_lead_to_the_panel(owner_client, conversation):
    url = _list_url(conversation)
    chat = owner_client.get(conversation.get_absolute_url()).content.decode()
    assert f'hx-get="{url}" hx-target="#share-panel"' in chat
    menu = reverse("conversations:menu", args=[conversation.pk])
    assert f'href="{url}"' in owner_client.get(menu, headers=HTMX).content.decode()


def test_an_outsider_may_not_create_list_or_revoke(outsider_client, conversation):
    share = _share(conversation)
    assert outsider_client.get(_list_url(conversation)).status_code == 404
    assert outsider_client.post(_list_url(conversation), {"audience": "anyone"}).status_code == 404
    assert outsider_client.post(_revoke_url(share)).status_code == 404
    assert Share.objects.count() == 1
    assert not Share.objects.get().is_revoked
    with pytest.raises(shares.ShareRefused):
        shares.share_create(
            conversation=conversation,
            user=ConversationFactory().owner,
            audience=Share.Audience.ANYONE,
        )


def test_a_link_cannot_be_revoked_through_another_conversation(owner_client, owner, conversation):
    share = _share(conversation)
    other = ConversationFactory(owner=owner)
    url = reverse("conversations:share-revoke", args=[other.pk, share.pk])
    assert owner_client.post(url).status_code == 404
    assert not Share.objects.get().is_revoked


# --- Opening a link ---------------------------------------------------------------------------


def test_a_signed_in_user_opens_a_link_for_those_signed_in(outsider_client, conversation):
    _exchange(conversation, "Tell me about **cats**", "Cats are *great*.\n\n```python\nx = 1\n```")
    share = _share(conversation)
    response = outsider_client.get(share.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert '<meta name="robots" content="noindex">' in html
    assert '<h1 class="chat-title">Owner&#x27;s chat</h1>' in html
    assert "Shared by owner on" in html
    # The chat's rendering: the user's words as typed, the reply's Markdown rendered.
    assert "Tell me about **cats**" in html
    assert "Cats are <em>great</em>." in html
    assert 'class="codeblock' in html
    # Read-only: no composer, no sidebar, no controls of the conversation.
    for absent in ("composer", 'id="sidebar"', "/edit/", "/regenerate/", "ws-connect"):
        assert absent not in html
    assert re.findall(r'<form[^>]*action="([^"]+)"', html) == ["/theme/", "/language/"]
    assert "no-store" in response["Cache-Control"]


def test_an_anonymous_visitor_signs_in_for_a_signed_in_link(conversation):
    share = _share(conversation)
    response = Client().get(share.get_absolute_url())
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/s/{share.token}/"


def test_an_anonymous_visitor_opens_a_public_link(conversation):
    _exchange(conversation, "Hello", "Hi there")
    share = _share(conversation, Share.Audience.ANYONE)
    client = Client()
    client.cookies["theme"] = "dark"
    response = client.get(share.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hi there" in html
    assert 'data-theme="dark"' in html
    assert 'id="theme-form"' in html


def test_a_revoked_or_unknown_link_answers_404(owner_client, outsider_client, conversation):
    question = _with_image(conversation, "Look")
    share = _share(conversation, Share.Audience.ANYONE)
    response = owner_client.post(_revoke_url(share), headers=HTMX)
    assert response.status_code == 200
    assert share.token not in response.content.decode()
    attachment = question.attachments.get()
    for client in (outsider_client, Client(), owner_client):
        assert client.get(share.get_absolute_url()).status_code == 404
        for url in _image_urls(share, attachment.pk):
            assert client.get(url).status_code == 404
    assert outsider_client.get("/s/not-a-link/").status_code == 404
    # Revoking again is no longer possible.
    assert owner_client.post(_revoke_url(share)).status_code == 404


def test_deleting_the_conversation_or_its_owner_takes_its_links(owner, conversation):
    share = _share(conversation, Share.Audience.ANYONE)
    other = _share(ConversationFactory(owner=owner), Share.Audience.ANYONE)
    shares.share_open(share=share, viewer=user_with_role(roles.MEMBER))
    conversation.delete()
    assert Client().get(share.get_absolute_url()).status_code == 404
    assert not Share.objects.filter(pk=share.pk).exists()
    # The audit outlives it.
    assert ShareEvent.objects.get().share_ref == share.pk
    owner.delete()
    assert not Share.objects.filter(pk=other.pk).exists()


def test_a_deactivated_owners_links_stop_with_the_account(owner, outsider_client, conversation):
    share = _share(conversation)
    owner.is_active = False
    owner.save()
    assert outsider_client.get(share.get_absolute_url()).status_code == 404
    owner.is_active = True
    owner.save()
    assert outsider_client.get(share.get_absolute_url()).status_code == 200


def test_retention_deletes_the_links_with_their_conversations(conversation):
    share = _share(conversation, Share.Audience.ANYONE)
    retention.conversations_delete(Conversation.objects.filter(pk=conversation.pk))
    assert not Share.objects.filter(pk=share.pk).exists()


# --- The snapshot -----------------------------------------------------------------------------


def test_the_snapshot_is_the_branch_shown_when_the_link_was_made(outsider_client, conversation):
    _first_question, first_answer = _exchange(conversation, "First question", "First answer")
    _exchange(conversation, "Second question", "Second answer")
    # The owner went back to the first exchange's reply, then asked something else there.
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=first_answer)
    MessageFactory(conversation=conversation, parent=first_answer, content="Another question")
    share = _share(conversation)
    assert [m["content"] for m in share.snapshot] == [
        "First question",
        "First answer",
        "Another question",
    ]
    html = outsider_client.get(share.get_absolute_url()).content.decode()
    assert "Second question" not in html
    assert "Another question" in html


def test_what_happens_after_sharing_is_not_shared(outsider_client, conversation):
    question, answer = _exchange(conversation, "Original question", "Original answer")
    share = _share(conversation)
    # Later: the reply continued in place, the question edited, more messages.
    Message.objects.filter(pk=answer.pk).update(content="Original answer, continued later")
    services.message_edit(message=question, text="Edited question")
    _exchange(conversation, "Later question", "Later answer")
    Conversation.objects.filter(pk=conversation.pk).update(title="Renamed")
    html = outsider_client.get(share.get_absolute_url()).content.decode()
    for later in ("continued later", "Edited question", "Later question", "Renamed"):
        assert later not in html
    assert "Original question" in html
    assert "Original answer" in html


def test_a_reply_being_written_is_left_out(conversation):
    services.message_send(conversation=conversation, text="Still waiting")
    share = _share(conversation)
    assert [m["role"] for m in share.snapshot] == ["user"]


# --- Images -----------------------------------------------------------------------------------


def test_images_are_served_through_the_link_only_for_the_snapshot(outsider_client, conversation):
    shared_question = _with_image(conversation, "Shared picture")
    share = _share(conversation, Share.Audience.ANYONE)
    later_question = _with_image(conversation, "Later picture")
    shared, later = shared_question.attachments.get(), later_question.attachments.get()
    elsewhere = _with_image(ConversationFactory(), "Someone else's").attachments.get()

    html = Client().get(share.get_absolute_url()).content.decode()
    image_url, thumbnail_url = _image_urls(share, shared.pk)
    assert f'href="{image_url}"' in html
    assert f'src="{thumbnail_url}"' in html
    assert "/attachments/" not in html
    for client in (Client(), outsider_client):
        image = client.get(image_url)
        assert image.status_code == 200
        assert image["Content-Type"] == shared.content_type
        assert "no-store" in image["Cache-Control"]
        assert client.get(thumbnail_url)["Content-Type"] == images.THUMBNAIL_CONTENT_TYPE
        for attachment in (later, elsewhere):
            for url in _image_urls(share, attachment.pk):
                assert client.get(url).status_code == 404
        # The image's own address stays the owner's.
        assert client.get(reverse("conversations:attachment", args=[shared.pk])).status_code in (
            302,
            404,
        )


def test_images_of_a_signed_in_link_need_a_sign_in(conversation):
    question = _with_image(conversation, "Picture")
    share = _share(conversation)
    for url in _image_urls(share, question.attachments.get().pk):
        assert Client().get(url).status_code == 302


# --- Untrusted output -------------------------------------------------------------------------


def test_model_output_is_rendered_inert_in_the_shared_page(outsider_client, conversation):
    # No stored reply holds a NUL (chunks.valid_text), nor can PostgreSQL store one.
    payloads = [payload for payload in PAYLOADS if "\x00" not in payload]
    _question, answer = _exchange(conversation, "<script>alert(1)</script>", "\n\n".join(payloads))
    share = _share(conversation)
    html = outsider_client.get(share.get_absolute_url()).content.decode()
    blocks = re.search(
        rf'<div id="message-{answer.pk}-blocks">(.*?)</div><div id="message-{answer.pk}-tail"',
        html,
        re.DOTALL,
    )
    assert blocks is not None
    assert_inert(blocks.group(1))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html


# --- Audit and admin --------------------------------------------------------------------------


def test_openings_by_others_and_revocations_are_audited(
    owner_client, outsider_client, outsider, conversation
):
    share = _share(conversation, Share.Audience.ANYONE)
    owner_client.get(share.get_absolute_url())
    assert not ShareEvent.objects.exists()  # one's own reading is not recorded
    outsider_client.get(share.get_absolute_url())
    Client().get(share.get_absolute_url())
    owner_client.post(_revoke_url(share))
    events = list(ShareEvent.objects.order_by("pk"))
    assert [(e.kind, e.actor_username) for e in events] == [
        (ShareEvent.Kind.OPENED, "outsider"),
        (ShareEvent.Kind.OPENED, ""),
        (ShareEvent.Kind.REVOKED, "owner"),
    ]
    assert {(e.share_ref, e.conversation_ref, e.owner_username) for e in events} == {
        (share.pk, conversation.pk, "owner")
    }
    assert events[0].actor == outsider


SECRET = "zqxvwplkmjhg"


def _admin_client(role: str) -> Client:
    client = Client()
    client.force_login(user_with_role(role, username="staff"))
    return client


def test_the_admin_lists_links_and_hides_what_they_show_when_staff_may_not_read(settings, db):
    conversation = ConversationFactory(title=SECRET)
    _exchange(conversation, SECRET, SECRET)
    share = _share(conversation, Share.Audience.ANYONE)
    client = _admin_client(roles.REVIEWER)
    changelist = reverse("admin:conversations_share_changelist")
    change = reverse("admin:conversations_share_change", args=[share.pk])
    review = reverse("admin:conversations_conversation_change", args=[conversation.pk])

    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = True
    listed = client.get(changelist).content.decode()
    assert SECRET in listed  # the conversation's title
    assert "Anyone with the link" in listed
    assert share.token not in listed + client.get(change).content.decode()

    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    for url in (changelist, change, review):
        page = client.get(url).content.decode()
        assert SECRET not in page, url
        assert share.token not in page, url
    assert f"Conversation {conversation.pk}" in client.get(changelist).content.decode()
    assert client.get(changelist, {"title__startswith": SECRET[:5]}).status_code == 400
    # The review page tells how it was shared, and the list finds the conversations shared.
    assert "Anyone with the link, made" in client.get(review).content.decode()
    unshared = ConversationFactory()
    conversations = reverse("admin:conversations_conversation_changelist")
    for value, listed in (("yes", conversation), ("no", unshared)):
        found = client.get(conversations, {"shared": value}).context["cl"].result_list
        assert list(found) == [listed]


def test_an_admin_revokes_links_from_the_list(db):
    share = _share(ConversationFactory(), Share.Audience.ANYONE)
    changelist = reverse("admin:conversations_share_changelist")
    reviewer = _admin_client(roles.REVIEWER)
    refused = reviewer.post(changelist, {"action": "revoke", "_selected_action": [share.pk]})
    assert refused.status_code == 200  # no such action for reviewers
    assert not Share.objects.get().is_revoked
    admin = Client()
    admin.force_login(user_with_role(roles.ADMIN, username="boss"))
    response = admin.post(changelist, {"action": "revoke", "_selected_action": [share.pk]})
    assert response.status_code == 302
    assert Share.objects.get().is_revoked
    event = ShareEvent.objects.get()
    assert (event.kind, event.actor_username) == (ShareEvent.Kind.REVOKED, "boss")
    audit_list = admin.get(reverse("admin:review_shareevent_changelist")).content.decode()
    assert "boss" in audit_list
