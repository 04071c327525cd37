"""Reviewing conversations in the admin: who may do what, the list and the review page,
flags, the usage report, the JSON export, the audit of reads and the privacy setting."""

import base64
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from conversations import images, services
from conversations.models import Conversation, Message
from review.models import Flag, ReviewAccess
from tests import image_files
from tests.factories import ConversationFactory, MessageFactory, UserFactory, user_with_role

CHANGELIST = reverse("admin:conversations_conversation_changelist")
USAGE = reverse("admin:conversations_conversation_usage")
REPLY = "Here is **bold** text and <script>alert('x')</script> as typed.\n\n```python\nx = 1\n```"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(conversation: Conversation) -> str:
    return reverse("admin:conversations_conversation_change", args=[conversation.pk])


def _stored_files(settings) -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def _exchange(conversation, text: str, reply: str, *, image: bool = False, **reply_fields):
    """A user message (with an image) and its finished reply, as the chat stores them."""
    pictures = []
    if image:
        pictures = [
            images.normalize(
                io.BytesIO(image_files.png()), filename="cat.png", limits=images.ImageLimits()
            )
        ]
    user_message, pending = services.message_send(
        conversation=conversation, text=text, images=pictures
    )
    fields = {"status": Message.Status.COMPLETE, "content": reply, **reply_fields}
    Message.objects.filter(pk=pending.pk).update(**fields)
    pending.refresh_from_db()
    return user_message, pending


@pytest.fixture
def member(db):
    return user_with_role(roles.MEMBER, username="member")


@pytest.fixture
def reviewer(db):
    return user_with_role(roles.REVIEWER, username="reviewer")


@pytest.fixture
def admin_user(db):
    return user_with_role(roles.ADMIN, username="admin")


@pytest.fixture
def chat(member):
    """The member's conversation: a question with an image and a Markdown reply with
    usage, then a failed reply and a stopped one."""
    conversation = ConversationFactory(owner=member, title="Cats and code")
    question, reply = _exchange(
        conversation,
        "What is in this picture?",
        REPLY,
        image=True,
        prompt_tokens=120,
        completion_tokens=45,
        total_tokens=165,
        reasoning_tokens=7,
        cached_tokens=64,
        time_to_first_token_ms=812,
    )
    _exchange(
        conversation,
        "And again?",
        "",
        status=Message.Status.ERROR,
        error="The chat service had a problem (HTTP 502).",
        error_code="server",
    )
    _exchange(conversation, "One more", "Half a sent", status=Message.Status.STOPPED)
    conversation.refresh_from_db()
    conversation.question, conversation.reply = question, reply
    return conversation


# --- Who may do what ------------------------------------------------------------------------


def test_a_member_cannot_reach_the_admin(member, chat):
    client = _client(member)
    for url in (CHANGELIST, _page(chat), USAGE, reverse("admin:review_flag_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_a_reviewer_reads_but_cannot_change_or_delete(reviewer, chat, settings):
    client = _client(reviewer)
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(_page(chat)).status_code == 200
    assert client.post(_page(chat), {"title": "Renamed"}).status_code == 403
    delete = reverse("admin:conversations_conversation_delete", args=[chat.pk])
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in client.get(CHANGELIST).content.decode()
    client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [chat.pk], "post": "yes"}
    )
    chat.refresh_from_db()
    assert chat.title == "Cats and code"
    assert len(_stored_files(settings)) == 2


def test_a_reviewer_cannot_add_edit_or_delete_flags_beyond_clearing(reviewer, chat):
    flag = Flag.objects.create(conversation=chat, note="Rude", flagged_by=reviewer)
    client = _client(reviewer)
    change = reverse("admin:review_flag_change", args=[flag.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"note": "Edited"}).status_code == 403
    assert client.get(reverse("admin:review_flag_add")).status_code == 403
    delete = reverse("admin:review_flag_delete", args=[flag.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    flag.refresh_from_db()
    assert flag.note == "Rude"


def test_a_staff_account_without_a_role_sees_no_conversation(chat):
    client = _client(UserFactory(is_staff=True))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(_page(chat)).status_code == 403
    assert client.get(USAGE).status_code == 403


def test_an_admin_deletes_a_conversation_with_its_image_files(
    admin_user, chat, settings, django_capture_on_commit_callbacks
):
    assert len(_stored_files(settings)) == 2  # the image and its thumbnail
    client = _client(admin_user)
    confirmation = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [chat.pk]}
    )
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Cats and code (of member)" in page
    assert "What is in this picture?" not in page  # the messages are counted, not listed
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            CHANGELIST,
            {"action": "delete_selected", "_selected_action": [chat.pk], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()
    assert _stored_files(settings) == []


def test_an_admin_deletes_one_conversation_from_its_page_with_its_files(
    admin_user, chat, settings, django_capture_on_commit_callbacks
):
    delete = reverse("admin:conversations_conversation_delete", args=[chat.pk])
    client = _client(admin_user)
    assert client.get(delete).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.exists()
    assert _stored_files(settings) == []


# --- The review page --------------------------------------------------------------------------


def test_the_page_shows_the_transcript_rendered_and_sanitized(reviewer, chat):
    page = _client(reviewer).get(_page(chat)).content.decode()
    assert "What is in this picture?" in page
    assert "<strong>bold</strong>" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page
    assert '<pre class="highlight">' in page
    attachment = chat.question.attachments.get()
    assert reverse("conversations:attachment-thumbnail", args=[attachment.pk]) in page
    assert reverse("conversations:attachment", args=[attachment.pk]) in page


def test_the_page_shows_usage_time_to_first_token_errors_and_stops(reviewer, chat):
    page = _client(reviewer).get(_page(chat)).content.decode()
    for figure in ("<dd>120</dd>", "<dd>45</dd>", "<dd>7</dd>", "<dd>64</dd>", "<dd>812 ms</dd>"):
        assert figure in page
    assert "The chat service had a problem (HTTP 502)." in page
    assert "status-error" in page
    assert "Stopped" in page
    assert "status-stopped" in page


def test_the_page_shows_the_branch_the_user_sees_not_replaced_versions(reviewer, chat):
    replaced = MessageFactory(
        conversation=chat,
        parent=chat.question,
        role=Message.Role.ASSISTANT,
        content="An answer the user replaced",
        becomes_current_leaf=False,
    )
    page = _client(reviewer).get(_page(chat)).content.decode()
    assert replaced.content not in page
    assert "(1 in replaced versions, not shown)" in page


def test_a_reviewer_flags_a_message_and_clears_the_flag(reviewer, chat):
    client = _client(reviewer)
    flag_url = reverse("admin:conversations_conversation_flag", args=[chat.pk])
    response = client.post(flag_url, {"message": chat.reply.pk, "note": "  Made-up fact  "})
    assert response.status_code == 302
    assert response["Location"] == f"{_page(chat)}#message-{chat.reply.pk}"
    flag = Flag.objects.get()
    assert (flag.conversation, flag.message, flag.note) == (chat, chat.reply, "Made-up fact")
    assert flag.flagged_by == reviewer
    assert flag.is_open

    page = client.get(_page(chat)).content.decode()
    assert "Made-up fact" in page
    assert reverse("admin:review_flag_clear", args=[flag.pk]) in page
    flagged = client.get(reverse("admin:review_flag_changelist")).content.decode()
    assert "Made-up fact" in flagged

    response = client.post(
        reverse("admin:review_flag_clear", args=[flag.pk]), {"next": _page(chat)}
    )
    assert response["Location"] == _page(chat)
    flag.refresh_from_db()
    assert flag.cleared_by == reviewer
    assert flag.cleared_at is not None
    flagged = client.get(reverse("admin:review_flag_changelist")).content.decode()
    assert "Made-up fact" not in flagged  # the list shows open flags by default
    cleared = client.get(reverse("admin:review_flag_changelist") + "?state=cleared")
    assert "Made-up fact" in cleared.content.decode()


def test_a_reviewer_flags_the_whole_conversation(reviewer, chat):
    flag_url = reverse("admin:conversations_conversation_flag", args=[chat.pk])
    _client(reviewer).post(flag_url, {"note": "Harassment"})
    flag = Flag.objects.get()
    assert (flag.message, flag.note) == (None, "Harassment")


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"note": "   "}, "Write a note saying why you flag it."),
        ({"note": "x" * 2001}, "the limit is 2,000"),
        ({"note": "Why", "message": "abc"}, "That message is not part of this conversation."),
    ],
)
def test_a_bad_flag_is_refused_with_a_reason_and_nothing_saved(reviewer, chat, posted, error):
    flag_url = reverse("admin:conversations_conversation_flag", args=[chat.pk])
    response = _client(reviewer).post(flag_url, posted, follow=True)
    assert error in response.content.decode()
    assert not Flag.objects.exists()


def test_a_message_of_another_conversation_cannot_be_flagged_here(reviewer, chat):
    other = MessageFactory()
    flag_url = reverse("admin:conversations_conversation_flag", args=[chat.pk])
    response = _client(reviewer).post(flag_url, {"note": "Why", "message": other.pk}, follow=True)
    assert "That message is not part of this conversation." in response.content.decode()
    assert not Flag.objects.exists()


def test_flagging_needs_a_post_and_the_permission(chat):
    flag_url = reverse("admin:conversations_conversation_flag", args=[chat.pk])
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(
        *Group.objects.get(name=roles.REVIEWER).permissions.filter(codename="view_conversation")
    )
    assert _client(staff).post(flag_url, {"note": "Why"}).status_code == 403
    reviewer = user_with_role(roles.REVIEWER)
    assert _client(reviewer).get(flag_url).status_code == 405
    assert not Flag.objects.exists()


def test_the_flag_list_clears_the_selected_flags(reviewer, chat):
    flags = [Flag.objects.create(conversation=chat, note=f"Flag {n}") for n in range(2)]
    response = _client(reviewer).post(
        reverse("admin:review_flag_changelist"),
        {"action": "clear", "_selected_action": [flag.pk for flag in flags]},
    )
    assert response.status_code == 302
    assert not Flag.objects.filter(cleared_at__isnull=True).exists()
    assert set(Flag.objects.values_list("cleared_by", flat=True)) == {reviewer.pk}


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_each_conversations_figures(reviewer, chat):
    Flag.objects.create(conversation=chat, note="Check")
    response = _client(reviewer).get(CHANGELIST)
    row = response.context["cl"].result_list.get(pk=chat.pk)
    assert (row.message_count, row.tokens_used, row.open_flag_count) == (6, 165, 1)
    page = response.content.decode()
    assert "Cats and code" in page
    assert "⚑ 1" in page
    assert 'href="/admin/conversations/conversation/usage/"' in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("flagged=yes", {"flagged"}),
        ("flagged=no", {"chat", "plain"}),
        ("images=yes", {"chat"}),
        ("errors=yes", {"chat"}),
        ("errors=no", {"flagged", "plain"}),
        ("model__exact=other-model", {"plain"}),
        ("q=picture", {"chat"}),
        ("q=Cats", {"chat"}),
        ("o=4", {"plain", "flagged", "chat"}),
    ],
)
def test_the_list_filters_searches_and_sorts(reviewer, chat, member, query, found):
    flagged = ConversationFactory(owner=member, title="Flagged one")
    MessageFactory(conversation=flagged, content="nothing special")
    Flag.objects.create(conversation=flagged, note="Look")
    Flag.objects.create(conversation=chat, note="Cleared", cleared_at=timezone.now())
    plain = ConversationFactory(owner=UserFactory(), title="Plain", model="other-model")
    names = {chat.pk: "chat", flagged.pk: "flagged", plain.pk: "plain"}
    response = _client(reviewer).get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert {names[row.pk] for row in response.context["cl"].result_list} == found


def test_the_list_filters_by_owner(reviewer, chat):
    ConversationFactory(title="Someone else's")
    response = _client(reviewer).get(f"{CHANGELIST}?owner__id__exact={chat.owner_id}")
    assert [row.pk for row in response.context["cl"].result_list] == [chat.pk]


def test_the_list_sorts_by_messages_and_tokens(reviewer, chat):
    empty = ConversationFactory(title="Empty")
    client = _client(reviewer)
    for column in (4, 5):  # messages, tokens used
        response = client.get(f"{CHANGELIST}?o=-{column}")
        assert [row.pk for row in response.context["cl"].result_list] == [chat.pk, empty.pk]


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_list_takes_the_same_queries_for_3_or_30_conversations(reviewer, member):
    client = _client(reviewer)

    def add_conversations(count: int) -> None:
        for _ in range(count):
            conversation = ConversationFactory(owner=UserFactory())
            MessageFactory(conversation=conversation)
            MessageFactory(conversation=conversation, role="assistant", prompt_tokens=3)
            Flag.objects.create(conversation=conversation, note="x")

    add_conversations(3)
    few = _queries(client, CHANGELIST)
    add_conversations(27)
    assert _queries(client, CHANGELIST) == few
    assert few <= 10


def test_the_page_takes_the_same_queries_for_4_or_40_messages(
    reviewer, chat, django_assert_max_num_queries
):
    client = _client(reviewer)
    Flag.objects.create(conversation=chat, message=chat.reply, note="x")
    few = _queries(client, _page(chat))
    for n in range(18):
        _exchange(chat, f"Question {n}", f"Answer {n}", image=n % 3 == 0, prompt_tokens=1)
        Flag.objects.create(conversation=chat, message=chat.reply, note=f"flag {n}")
    assert _queries(client, _page(chat)) == few
    with django_assert_max_num_queries(12):
        client.get(_page(chat))


# --- Usage report -----------------------------------------------------------------------------


def _report_rows(response) -> list[dict]:
    text = response.content.decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_usage_report_sums_per_user_and_day_and_exports_csv(reviewer, chat, member):
    other = ConversationFactory(owner=UserFactory(username="-1+1"))
    _exchange(other, "Hi", "Hello", prompt_tokens=10, completion_tokens=5, reasoning_tokens=2)
    yesterday = timezone.now() - timedelta(days=1)
    old = MessageFactory(
        conversation=chat, role="assistant", prompt_tokens=1000, completion_tokens=1
    )
    Message.objects.filter(pk=old.pk).update(created_at=yesterday)

    client = _client(reviewer)
    page = client.get(USAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<figure class="usage-chart">' in html
    assert '<rect class="tokens-in"' in html
    response = client.get(USAGE, {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    today = timezone.localdate().isoformat()
    rows = _report_rows(response)
    assert rows == [
        {
            "Day": (timezone.localdate() - timedelta(days=1)).isoformat(),
            "User": "member",
            "Messages": "0",
            "Replies": "1",
            "Tokens in": "1000",
            "Tokens out": "1",
            "Reasoning tokens": "0",
            "Failed replies": "0",
        },
        {
            "Day": today,
            "User": "'-1+1",  # never read as a formula by a spreadsheet
            "Messages": "1",
            "Replies": "1",
            "Tokens in": "10",
            "Tokens out": "5",
            "Reasoning tokens": "2",
            "Failed replies": "0",
        },
        {
            "Day": today,
            "User": "member",
            "Messages": "3",
            "Replies": "3",
            "Tokens in": "120",
            "Tokens out": "45",
            "Reasoning tokens": "7",
            "Failed replies": "1",
        },
    ]


def test_the_usage_report_narrows_to_one_user_and_some_days(reviewer, chat):
    other = ConversationFactory()
    _exchange(other, "Hi", "Hello", prompt_tokens=10)
    today = timezone.localdate().isoformat()
    response = _client(reviewer).get(
        USAGE, {"format": "csv", "start": today, "end": today, "user": chat.owner_id}
    )
    assert [row["User"] for row in _report_rows(response)] == ["member"]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = _client(reviewer).get(USAGE, {"format": "csv", "start": tomorrow, "end": tomorrow})
    assert _report_rows(response) == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2026-02-10", "end": "2026-02-01"}, "The first day must not come after"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "Choose at most 366 days."),
        ({"start": "yesterday"}, "Enter a valid date."),
        ({"user": "999999"}, "Select a valid choice."),
    ],
)
def test_the_usage_report_explains_bad_input(reviewer, query, error):
    response = _client(reviewer).get(USAGE, query)
    assert response.status_code == 200
    page = response.content.decode()
    assert error in page
    assert "usage-chart" not in page


# --- JSON export --------------------------------------------------------------------------------


def test_the_json_export_holds_the_conversations_with_their_images(admin_user, chat, settings):
    settings.WEBCHAT_API_KEY = "sk-never-exported"
    response = _client(admin_user).post(
        CHANGELIST, {"action": "export_json", "_selected_action": [chat.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="conversations-')
    assert b"sk-never-exported" not in response.content
    (exported,) = json.loads(response.content)["conversations"]
    assert (exported["id"], exported["owner"], exported["title"]) == (
        chat.pk,
        "member",
        "Cats and code",
    )
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"] * 3
    (picture,) = exported["messages"][0]["attachments"]
    head, data = picture["data_url"].split(",", 1)
    attachment = chat.question.attachments.get()
    assert head == f"data:{attachment.content_type};base64"
    with attachment.image.open("rb") as stored:
        assert base64.b64decode(data) == stored.read()
    assert ReviewAccess.objects.get().viewer == admin_user


def test_a_reviewer_may_export_but_not_delete(reviewer, chat):
    page = _client(reviewer).get(CHANGELIST).content.decode()
    assert 'value="export_json"' in page
    assert 'value="delete_selected"' not in page


# --- Audit --------------------------------------------------------------------------------------


def test_reading_another_users_conversation_is_recorded(reviewer, chat):
    _client(reviewer).get(_page(chat))
    access = ReviewAccess.objects.get()
    assert (access.viewer, access.viewer_username) == (reviewer, "reviewer")
    assert (access.conversation, access.conversation_ref) == (chat, chat.pk)
    assert access.owner_username == "member"


def test_an_admin_reading_their_own_conversation_is_not_recorded(admin_user):
    own = ConversationFactory(owner=admin_user)
    MessageFactory(conversation=own)
    assert _client(admin_user).get(_page(own)).status_code == 200
    assert not ReviewAccess.objects.exists()


def test_the_list_alone_records_nothing(reviewer, chat):
    _client(reviewer).get(CHANGELIST)
    assert not ReviewAccess.objects.exists()


def test_audit_rows_are_listed_and_nobody_adds_edits_or_deletes_them(reviewer, chat):
    _client(reviewer).get(_page(chat))
    access = ReviewAccess.objects.get()
    superuser = UserFactory(is_staff=True, is_superuser=True)
    listing = _client(reviewer).get(reverse("admin:review_reviewaccess_changelist"))
    assert listing.status_code == 200
    assert "reviewer" in listing.content.decode()
    for user in (reviewer, superuser):
        client = _client(user)
        assert client.get(reverse("admin:review_reviewaccess_add")).status_code == 403
        change = reverse("admin:review_reviewaccess_change", args=[access.pk])
        assert client.post(change, {"viewer_username": "x"}).status_code == 403
        delete = reverse("admin:review_reviewaccess_delete", args=[access.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
    access.refresh_from_db()
    assert access.viewer_username == "reviewer"


def test_audit_rows_outlive_the_conversation(admin_user, chat, django_capture_on_commit_callbacks):
    _client(admin_user).get(_page(chat))
    number = chat.pk
    with django_capture_on_commit_callbacks(execute=True):
        chat.delete()
    access = ReviewAccess.objects.get()
    assert (access.conversation, access.conversation_ref) == (None, number)


# --- Privacy ------------------------------------------------------------------------------------


@pytest.fixture
def private(settings):
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False


def test_with_reading_off_the_page_shows_figures_but_no_text_or_images(private, reviewer, chat):
    response = _client(reviewer).get(_page(chat))
    page = response.content.decode()
    for text in ("What is in this picture?", "bold", "Cats and code", "HTTP 502", "Half a sent"):
        assert text not in page
    assert "/attachments/" not in page
    assert "<dd>120</dd>" in page
    assert "<dd>812 ms</dd>" in page
    assert "WEBCHAT_STAFF_CAN_READ_CONVERSATIONS" in page
    assert not ReviewAccess.objects.exists()


def test_with_reading_off_the_list_hides_titles_and_searches_only_owners(private, reviewer, chat):
    client = _client(reviewer)
    page = client.get(CHANGELIST).content.decode()
    assert "Cats and code" not in page
    assert f"Conversation {chat.pk}" in page
    assert 'value="export_json"' not in page
    assert list(client.get(f"{CHANGELIST}?q=picture").context["cl"].result_list) == []
    assert [c.pk for c in client.get(f"{CHANGELIST}?q=member").context["cl"].result_list] == [
        chat.pk
    ]


def test_with_reading_off_staff_get_no_image_of_others(private, reviewer, admin_user, chat):
    attachment = chat.question.attachments.get()
    for name in ("conversations:attachment", "conversations:attachment-thumbnail"):
        url = reverse(name, args=[attachment.pk])
        assert _client(reviewer).get(url).status_code == 404
        assert _client(admin_user).get(url).status_code == 404
        assert _client(chat.owner).get(url).status_code == 200


def test_with_reading_off_the_delete_confirmation_shows_no_title(private, admin_user, chat):
    delete = reverse("admin:conversations_conversation_delete", args=[chat.pk])
    page = _client(admin_user).get(delete).content.decode()
    assert "Cats and code" not in page
    assert f"Conversation {chat.pk}" in page


def test_users_are_told_whether_staff_may_read_their_conversations(member, settings):
    client = _client(member)
    told = "Reviewers and administrators of this service may read your conversations"
    assert told in client.get(reverse("conversations:index")).content.decode()
    assert told in client.get(reverse("usage")).content.decode()
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    assert told not in client.get(reverse("conversations:index")).content.decode()
    assert "never what your conversations say" in client.get(reverse("usage")).content.decode()
