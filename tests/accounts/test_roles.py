"""Roles (Django groups), which models each group may use, and deactivating users."""

import io
from importlib import import_module

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client, TestCase
from django.urls import reverse

from accounts import access, roles, socket_sessions
from accounts.models import ModelAccess
from conversations import images, services
from conversations.models import Conversation, Message
from tests import image_files
from tests.factories import ConversationFactory, UserFactory, user_with_role
from tests.generation_helpers import communicator_for

HTMX = {"HX-Request": "true"}


def test_the_migration_creates_the_role_groups_with_their_permissions(db):
    reviewer = Group.objects.get(name=roles.REVIEWER)
    assert set(reviewer.permissions.values_list("codename", flat=True)) == {
        "view_conversation",
        "view_message",
        "view_attachment",
        "view_flag",
        "add_flag",
        "change_flag",
        "view_reviewaccess",
        "view_share",
        "view_shareevent",
    }
    admin_permissions = set(
        Group.objects.get(name=roles.ADMIN).permissions.values_list("codename", flat=True)
    )
    assert {"change_conversation", "change_user", "add_invitation", "change_share"} <= (
        admin_permissions
    )
    assert Group.objects.filter(name=roles.MEMBER).exists()


@pytest.fixture
def pages(db):
    """A member's conversation with an image, and the other personas."""
    member = user_with_role(roles.MEMBER, username="member")
    conversation = ConversationFactory(owner=member)
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="picture.png", limits=images.ImageLimits()
    )
    user_message, reply = services.message_send(
        conversation=conversation, text="Look", images=[picture]
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    personas = {
        "member": member,
        "other member": user_with_role(roles.MEMBER, username="other"),
        "reviewer": user_with_role(roles.REVIEWER, username="reviewer"),
        "admin": user_with_role(roles.ADMIN, username="admin"),
        "inactive": user_with_role(roles.MEMBER, username="inactive", is_active=False),
    }
    urls = {
        "chat": reverse("conversations:index"),
        "the member's conversation": conversation.get_absolute_url(),
        "the member's image": reverse(
            "conversations:attachment", args=[user_message.attachments.get().pk]
        ),
        "usage": reverse("usage"),
        "password change": reverse("password_change"),
        "admin": reverse("admin:index"),
        "admin conversations": reverse("admin:conversations_conversation_changelist"),
        "admin conversation": reverse(
            "admin:conversations_conversation_change", args=[conversation.pk]
        ),
        "admin users": reverse("admin:auth_user_changelist"),
        "admin model prices": reverse("admin:review_modelprice_changelist"),
    }
    return personas, urls


SIGN_IN = "sign in"
ADMIN_SIGN_IN = "admin sign in"
# What each role gets on each page: a status, or a redirect to a sign-in page.
EXPECTED = {
    "chat": {"member": 200, "other member": 200, "reviewer": 200, "admin": 200},
    "the member's conversation": {"member": 200, "other member": 404, "reviewer": 404},
    "the member's image": {"member": 200, "other member": 404, "reviewer": 200, "admin": 200},
    "usage": {"member": 200, "other member": 200, "reviewer": 200, "admin": 200},
    "password change": {"member": 200, "other member": 200, "reviewer": 200, "admin": 200},
    "admin": {"member": ADMIN_SIGN_IN, "reviewer": 200, "admin": 200},
    "admin conversations": {"member": ADMIN_SIGN_IN, "reviewer": 200, "admin": 200},
    "admin conversation": {"member": ADMIN_SIGN_IN, "reviewer": 200, "admin": 200},
    "admin users": {"member": ADMIN_SIGN_IN, "reviewer": 403, "admin": 200},
    "admin model prices": {"member": ADMIN_SIGN_IN, "reviewer": 403, "admin": 200},
}
# Someone else's conversation is theirs alone on the chat pages, admins included.
EXPECTED["the member's conversation"]["admin"] = 404
for _page in EXPECTED.values():
    _page.setdefault("other member", _page["member"])


@pytest.mark.parametrize("page", sorted(EXPECTED))
@pytest.mark.parametrize("persona", ["member", "other member", "reviewer", "admin", "inactive"])
def test_each_role_gets_what_it_may_on_every_page(pages, page, persona):
    personas, urls = pages
    client = Client()
    client.force_login(personas[persona])
    response = client.get(urls[page])
    expected = EXPECTED[page].get(persona, SIGN_IN if persona == "inactive" else None)
    if persona == "inactive":
        # An inactive account's session is no longer valid: every page asks to sign in.
        assert response.status_code == 302
        assert "login/?next=" in response["Location"]
    elif expected == ADMIN_SIGN_IN:
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    else:
        assert response.status_code == expected, (persona, page, response.status_code)


def test_a_reviewer_reads_a_conversation_in_the_admin_but_cannot_change_it(pages):
    personas, urls = pages
    client = Client()
    client.force_login(personas["reviewer"])
    page = client.get(urls["admin conversation"]).content.decode()
    assert "Look" in page  # the messages are shown
    assert 'name="_save"' not in page
    conversation = Conversation.objects.get()
    response = client.post(urls["admin conversation"], {"title": "Renamed", "model": "x"})
    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title != "Renamed"


def test_a_staff_user_without_a_role_sees_no_other_users_images(pages):
    _personas, urls = pages
    staff_without_role = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff_without_role)
    assert client.get(urls["the member's image"]).status_code == 404


# --- Allowed models -----------------------------------------------------------------


@pytest.fixture
def three_models(settings):
    settings.WEBCHAT_MODELS = ["model-a", "model-b", "model-c"]


def test_without_any_model_access_everyone_may_use_every_model(owner, three_models):
    assert access.allowed_models(owner) == ["model-a", "model-b", "model-c"]


def test_a_user_may_use_only_the_models_of_their_groups(db, three_models):
    member = user_with_role(roles.MEMBER)
    member_group = Group.objects.get(name=roles.MEMBER)
    ModelAccess.objects.create(group=member_group, model="model-b")
    ModelAccess.objects.create(group=Group.objects.get(name=roles.REVIEWER), model="model-c")
    assert access.allowed_models(member) == ["model-b"]
    assert access.allowed_models(UserFactory()) == []
    assert access.allowed_models(UserFactory(is_superuser=True)) == [
        "model-a",
        "model-b",
        "model-c",
    ]


def test_the_composer_offers_only_the_allowed_models(db, three_models):
    member = user_with_role(roles.MEMBER)
    for model in ("model-a", "model-c"):
        ModelAccess.objects.create(group=Group.objects.get(name=roles.MEMBER), model=model)
    client = Client()
    client.force_login(member)
    page = client.get(reverse("conversations:index")).content.decode()
    assert 'name="model" value="model-a"' in page
    assert 'name="model" value="model-c"' in page
    assert "model-b" not in page


def test_a_new_conversation_uses_the_chosen_allowed_model(db, three_models, fake_upstream):
    member = user_with_role(roles.MEMBER)
    client = Client()
    client.force_login(member)
    response = client.post(reverse("conversations:create"), {"text": "Hi", "model": "model-b"})
    assert response.status_code == 302
    assert Conversation.objects.get().model == "model-b"


def test_sending_to_a_model_not_allowed_is_refused_without_an_upstream_call(
    db, three_models, fake_upstream
):
    member = user_with_role(roles.MEMBER)
    ModelAccess.objects.create(group=Group.objects.get(name=roles.MEMBER), model="model-a")
    client = Client()
    client.force_login(member)
    response = client.post(
        reverse("conversations:create"), {"text": "Hi", "model": "model-b"}, headers=HTMX
    )
    assert response.status_code == 422
    assert "You may not use the model “model-b”" in response.content.decode()
    assert not Conversation.objects.exists()
    assert fake_upstream.requests == []


def test_a_user_with_no_allowed_model_is_told_to_ask_an_administrator(db, three_models):
    ModelAccess.objects.create(group=Group.objects.get(name=roles.REVIEWER), model="model-a")
    with pytest.raises(services.MessageRefused, match="No model is available to you"):
        services.conversation_start(owner=UserFactory(), text="Hi")


def test_a_conversation_on_a_revoked_model_refuses_new_messages(
    owner_client, owner, conversation, fake_upstream
):
    owner.groups.add(Group.objects.get(name=roles.MEMBER))
    ModelAccess.objects.create(group=Group.objects.get(name=roles.MEMBER), model="model-z")
    response = owner_client.post(
        reverse("conversations:message-create", args=[conversation.pk]),
        {"text": "Hi"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "no longer have access" in response.content.decode()
    assert not Message.objects.exists()
    assert fake_upstream.requests == []


# --- Deactivation ---------------------------------------------------------------------


def _deactivate(user) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        user.is_active = False
        user.save()


def test_deactivating_a_user_ends_their_sessions(owner, outsider):
    owner_client, outsider_client = Client(), Client()
    owner_client.login(username="owner", password="correct horse battery")
    outsider_client.login(username="outsider", password="correct horse battery")
    assert Session.objects.count() == 2
    owner_session = owner_client.session.session_key
    _deactivate(owner)
    assert Session.objects.count() == 1
    assert not import_module(settings.SESSION_ENGINE).SessionStore().exists(owner_session)
    assert owner_client.get("/").status_code == 302
    assert outsider_client.get("/").status_code == 200


def test_the_admins_deactivate_action_ends_the_users_sessions(owner, db):
    owner_client = Client()
    owner_client.login(username="owner", password="correct horse battery")
    admin_client = Client()
    admin_client.force_login(UserFactory(is_staff=True, is_superuser=True))
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(
            reverse("admin:auth_user_changelist"),
            {"action": "deactivate", "_selected_action": [owner.pk]},
        )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.is_active
    assert owner_client.get("/").status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_deactivating_a_user_closes_their_open_sockets(conversation, owner):
    communicator = communicator_for(conversation.pk, owner)
    connected, _ = await communicator.connect()
    assert connected
    await sync_to_async(_deactivate)(owner)
    closed = await communicator.receive_output(timeout=2)
    await communicator.disconnect()
    assert closed == {"type": "websocket.close", "code": socket_sessions.SESSION_ENDED}


@pytest.mark.parametrize(
    "page",
    [
        "admin:auth_user_add",
        "admin:accounts_modelaccess_add",
        "admin:review_modelprice_add",
        "admin:accounts_invitation_add",
    ],
)
def test_an_admin_opens_the_forms_of_users_model_access_prices_and_invitations(page, db):
    client = Client()
    client.force_login(user_with_role(roles.ADMIN))
    assert client.get(reverse(page)).status_code == 200


def test_an_admin_sets_a_users_limits_on_the_users_page(db):
    member = user_with_role(roles.MEMBER, username="limited")
    client = Client()
    client.force_login(user_with_role(roles.ADMIN))
    url = reverse("admin:auth_user_change", args=[member.pk])
    assert "Messages per minute" in client.get(url).content.decode()
    response = client.post(
        url,
        {
            "username": "limited",
            "password": member.password,
            "is_active": "on",
            "groups": [Group.objects.get(name=roles.MEMBER).pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "limits-TOTAL_FORMS": "1",
            "limits-INITIAL_FORMS": "0",
            "limits-0-messages_per_minute": "5",
            "limits-0-daily_token_quota": "",
            "limits-0-monthly_token_quota": "100000",
            # The page's other inline: the user's identity provider links (none).
            "socialaccount_set-TOTAL_FORMS": "0",
            "socialaccount_set-INITIAL_FORMS": "0",
            # The user's API keys, listed read-only (api/admin.py).
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    member.refresh_from_db()
    assert (member.limits.messages_per_minute, member.limits.daily_token_quota) == (5, None)
    assert member.limits.monthly_token_quota == 100_000
