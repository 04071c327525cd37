"""``manage.py serve``: how ``make run`` and the systemd unit start the server."""

import pytest
from daphne.cli import CommandLineInterface
from django.core.management import call_command

from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory

# serve closes its database connections before serving, which a test's transaction forbids.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daphne_runs(monkeypatch) -> list[list[str]]:
    """The arguments daphne is started with; the test ends where it would serve."""
    runs: list[list[str]] = []
    monkeypatch.setattr(CommandLineInterface, "run", lambda cli, args: runs.append(args))
    return runs


@pytest.fixture
def collected_static(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    return settings.STATIC_ROOT


def test_it_marks_dead_replies_interrupted_then_serves_with_a_30_second_handshake(
    daphne_runs, settings
):
    settings.WEBCHAT_STALE_REPLY_SECONDS = 0
    dead = MessageFactory(conversation=ConversationFactory(), role="assistant", status="streaming")

    call_command("serve", "--host", "127.0.0.1", "--port", "8123")

    dead.refresh_from_db()
    assert dead.status == Message.Status.INTERRUPTED
    assert daphne_runs == [
        [
            *("--bind", "127.0.0.1", "--port", "8123"),
            *("--websocket_connect_timeout", "30"),
            "webchat.asgi:application",
        ]
    ]


def test_prepare_migrates_and_collects_static_files_before_serving(
    daphne_runs, collected_static, capsys
):
    call_command("serve", "--prepare")

    assert "No migrations to apply." in capsys.readouterr().out
    assert (collected_static / "staticfiles.json").exists()
    assert daphne_runs[0][1:4] == ["127.0.0.1", "--port", "8000"]


def test_without_prepare_static_files_are_left_as_they_are(daphne_runs, collected_static):
    call_command("serve")

    assert not collected_static.exists()
    assert len(daphne_runs) == 1
