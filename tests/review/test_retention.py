"""Deleting conversations inactive for longer than the retention period, files included."""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations import images, services
from conversations.models import Attachment, Conversation, Message
from review.models import Flag, ReviewAccess
from tests import image_files
from tests.factories import ConversationFactory


def _stored_files(settings) -> set[Path]:
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def _conversation(owner, *, days_idle: int, pictures: int = 0) -> Conversation:
    conversation = ConversationFactory(owner=owner)
    normalized = [
        images.normalize(
            io.BytesIO(image_files.png()), filename=f"p{n}.png", limits=images.ImageLimits()
        )
        for n in range(pictures)
    ]
    _question, reply = services.message_send(
        conversation=conversation, text="Hello", images=normalized
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="Hi")
    idle_since = timezone.now() - timedelta(days=days_idle)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=idle_since)
    return conversation


@pytest.fixture
def conversations(owner):
    """Two conversations idle for 100 days (one with two images), one for 10 days."""
    return {
        "old with images": _conversation(owner, days_idle=100, pictures=2),
        "old": _conversation(owner, days_idle=100),
        "recent": _conversation(owner, days_idle=10, pictures=1),
    }


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("delete_old_conversations", *args, stdout=out)
    return out.getvalue()


def test_a_dry_run_reports_what_would_go_and_deletes_nothing(conversations, settings):
    files = _stored_files(settings)
    image_bytes = sum(
        Attachment.objects.filter(
            message__conversation=conversations["old with images"]
        ).values_list("size", flat=True)
    )
    output = _run("--days", "30", "--dry-run")
    assert output.startswith(
        "Would delete 2 conversations inactive for more than 30 days: 4 messages, 2 images ("
    )
    assert f", {image_bytes} bytes)." in output
    assert Conversation.objects.count() == 3
    assert _stored_files(settings) == files


def test_it_deletes_old_conversations_with_their_image_files(
    conversations, settings, django_capture_on_commit_callbacks
):
    recent_files = {
        Path(settings.MEDIA_ROOT) / name
        for attachment in Attachment.objects.filter(message__conversation=conversations["recent"])
        for name in (attachment.image.name, attachment.thumbnail.name)
    }
    assert len(_stored_files(settings)) == 6
    ReviewAccess.objects.create(
        viewer_username="reviewer",
        conversation=conversations["old"],
        conversation_ref=conversations["old"].pk,
        owner_username="owner",
    )
    Flag.objects.create(conversation=conversations["old"], note="Kept?")
    with django_capture_on_commit_callbacks(execute=True):
        output = _run("--days", "30")
    assert output.startswith("Deleted 2 conversations inactive for more than 30 days: 4 messages")
    assert list(Conversation.objects.all()) == [conversations["recent"]]
    assert Message.objects.count() == 2
    assert not Flag.objects.exists()
    assert ReviewAccess.objects.get().conversation is None  # the audit stays
    assert _stored_files(settings) == recent_files


def test_the_period_comes_from_the_setting(conversations, settings):
    settings.WEBCHAT_RETENTION_DAYS = 5
    assert _run("--dry-run").startswith("Would delete 3 conversations inactive for more than 5")


def test_with_retention_off_nothing_is_deleted(conversations, settings):
    settings.WEBCHAT_RETENTION_DAYS = 0
    output = _run()
    assert "WEBCHAT_RETENTION_DAYS is 0" in output
    assert Conversation.objects.count() == 3


@pytest.mark.parametrize("days", ["0", "-3"])
def test_a_period_below_one_day_is_refused(conversations, days):
    with pytest.raises(CommandError, match=f"--days must be at least 1, not {days}"):
        _run("--days", days)
    assert Conversation.objects.count() == 3
