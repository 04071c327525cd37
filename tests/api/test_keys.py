"""The keys page, the keys' storage, the admin's view of them, and the sidebar's API
conversations."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import limits, roles
from api.models import ApiKey
from conversations import reply_runners
from conversations.models import Conversation, Message, UnstoredReply
from review import usage_report
from tests.factories import ConversationFactory, MessageFactory, user_with_role

pytestmark = pytest.mark.django_db


def _new_key(html: str) -> str:
    return re.search(r'id="new-api-key"[^>]* value="(wc-[\w-]+)"', html).group(1)


def test_a_new_key_is_shown_once_and_stored_only_hashed(owner, owner_client):
    response = owner_client.post("/api/keys/", {"name": "Laptop", "expires_in": "30"})

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    key = _new_key(html)
    assert 'data-copy-link="new-api-key"' in html
    stored = ApiKey.objects.get(owner=owner)
    assert stored.name == "Laptop"
    assert stored.prefix == key[:11]
    assert stored.digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {getattr(stored, field.attname) for field in ApiKey._meta.fields}
    assert timedelta(days=29) < stored.expires_at - timezone.now() <= timedelta(days=30)
    # The list shows the prefix; no later page shows the key.
    listed = owner_client.get("/api/keys/").content.decode()
    assert f"{stored.prefix}…" in listed
    assert key not in listed


def test_the_page_says_whether_api_exchanges_are_kept(owner_client, settings):
    assert "kept as a conversation marked" in owner_client.get("/api/keys/").content.decode()
    settings.WEBCHAT_API_STORE = False
    assert "are not kept" in owner_client.get("/api/keys/").content.decode()


def test_a_key_needs_a_name(owner, owner_client):
    response = owner_client.post("/api/keys/", {"name": "", "expires_in": ""})
    assert response.status_code == 422
    assert "Give the key a name." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_owner_revokes_a_key_and_others_cannot(owner, owner_client, outsider_client):
    api_key, _key = ApiKey.issue(owner=owner, name="Script")

    assert outsider_client.post(f"/api/keys/{api_key.pk}/revoke/").status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert outsider_client.get("/api/keys/").content.decode().count(api_key.prefix) == 0

    assert owner_client.post(f"/api/keys/{api_key.pk}/revoke/").status_code == 302
    api_key.refresh_from_db()
    assert not api_key.is_usable
    assert "Revoked" in owner_client.get("/api/keys/").content.decode()


def test_the_keys_page_is_linked_from_the_usage_page(owner_client):
    # The usage page is the account's page: the user's name in the sidebar.
    assert 'href="/accounts/usage/"' in owner_client.get("/").content.decode()
    assert 'href="/api/keys/"' in owner_client.get("/accounts/usage/").content.decode()


def test_admins_see_every_key_and_revoke_them(owner):
    admin = user_with_role(roles.ADMIN, username="boss")  # the role, not a superuser
    client = Client()
    client.force_login(admin)
    api_key, key = ApiKey.issue(owner=owner, name="Owner's script")

    ConversationFactory(owner=owner, source=Conversation.Source.API, api_key=api_key)
    listing = client.get("/admin/api/apikey/").content.decode()
    assert '<td class="field-conversation_count">1</td>' in listing
    assert "Owner&#x27;s script" in listing
    assert api_key.prefix in listing
    assert key not in listing
    revoked, _key = ApiKey.issue(owner=owner, name="Old")
    revoked.revoke()
    usable = client.get("/admin/api/apikey/?state=usable").content.decode()
    assert api_key.prefix in usable
    assert revoked.prefix not in usable
    user_page = client.get(f"/admin/auth/user/{owner.pk}/change/").content.decode()
    assert api_key.prefix in user_page

    response = client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_the_sidebar_marks_api_conversations_and_can_hide_them(owner, owner_client):
    ConversationFactory(owner=owner, title="From the browser")
    ConversationFactory(owner=owner, title="From a script", source=Conversation.Source.API)

    html = owner_client.get("/").content.decode()
    badge = r'<span class="badge-api"[^>]*>API</span> <span id="[^"]+">From a script'
    assert re.search(badge, html)
    assert "Hide API conversations" in html

    response = owner_client.post("/api-conversations/", {"hide": "1", "next": "/"})
    assert response.status_code == 302
    html = owner_client.get("/").content.decode()
    assert "From a script" not in html
    assert "From the browser" in html
    assert "Show API conversations" in html
    # So that one coming in while the page is open stays hidden too (sidebar.js).
    assert '<div class="conversation-list" id="conversation-list" data-hides-api>' in html

    owner_client.post("/api-conversations/", {"next": "/"})
    assert "From a script" in owner_client.get("/").content.decode()


def test_an_api_conversation_s_page_says_so(owner, owner_client):
    held = ConversationFactory(owner=owner, title="From a script", source=Conversation.Source.API)
    chat = ConversationFactory(owner=owner, title="From the browser")
    in_header = re.compile(r'<header class="chat-header">((?!</header>).)*class="badge-api"', re.S)
    assert in_header.search(owner_client.get(f"/c/{held.pk}/").content.decode())
    assert not in_header.search(owner_client.get(f"/c/{chat.pk}/").content.decode())


def test_a_sidebar_without_api_conversations_offers_no_toggle(owner, owner_client):
    ConversationFactory(owner=owner, title="From the browser")
    assert "API conversations" not in owner_client.get("/").content.decode()


def test_unstored_replies_count_and_reserve_like_stored_ones(owner, settings):
    settings.WEBCHAT_DAILY_TOKEN_QUOTA = 10_000
    conversation = ConversationFactory(owner=owner)
    MessageFactory(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
        prompt_tokens=100,
        completion_tokens=50,
    )
    UnstoredReply.objects.create(
        owner=owner,
        model="fake-model",
        status=Message.Status.COMPLETE,
        reserved_tokens=2000,
        prompt_tokens=30,
        completion_tokens=20,
    )
    UnstoredReply.objects.create(
        owner=owner, model="fake-model", reserved_tokens=700, runner="runner.gone"
    )

    usage = limits.usage_for(owner.pk)
    assert usage.today.tokens == 200
    assert usage.today.reserved == 700
    assert usage.replies_last_minute == 3


def test_the_admin_usage_report_counts_unstored_replies(owner):
    conversation = ConversationFactory(owner=owner)
    MessageFactory(conversation=conversation, role=Message.Role.USER)
    MessageFactory(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
        prompt_tokens=100,
        completion_tokens=50,
    )
    UnstoredReply.objects.create(
        owner=owner,
        model="fake-model",
        status=Message.Status.COMPLETE,
        reserved_tokens=2000,
        prompt_tokens=30,
        completion_tokens=20,
    )
    today = timezone.localdate()

    [row] = usage_report.usage_report(start=today, end=today)

    assert (row.username, row.messages, row.replies) == ("owner", 2, 2)
    assert (row.tokens_in, row.tokens_out) == (130, 70)


def test_a_dead_process_s_unstored_reply_stops_holding_its_reservation(owner):
    active = UnstoredReply.objects.create(
        owner=owner, model="fake-model", reserved_tokens=700, runner="runner.gone"
    )

    reply_runners.replies_of_dead_runners_interrupt()

    active.refresh_from_db()
    assert active.status == Message.Status.INTERRUPTED
    assert limits.usage_for(owner.pk).today.reserved == 0
