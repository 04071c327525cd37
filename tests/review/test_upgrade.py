"""A database made before the split into three apps migrates with every row kept.

tests/data/upgrade-from-92108ce.sqlite3 (see tests/data/README.md) holds one of each moved
model, made by the code of commit 92108ce; it is migrated in a copy, by a real
`manage.py migrate`, and read back through the new apps.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

DATABASE = Path(__file__).parents[1] / "data" / "upgrade-from-92108ce.sqlite3"

# Run by `manage.py shell -c` in the migrated copy; prints what the test checks, as JSON.
READ_BACK = """
import json
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from accounts.models import Invitation, ModelAccess, UserLimits
from conversations import search
from conversations.models import Attachment, Conversation, Message, Preset
from review.models import Flag, ModelPrice, ReviewAccess

users = get_user_model().objects
alice, bob = users.get(username="alice"), users.get(username="bob")
limits = UserLimits.objects.get()
price = ModelPrice.objects.get()
access = ModelAccess.objects.select_related("group").get()
invitation = Invitation.objects.select_related("group", "created_by").get()
conversation = Conversation.objects.get()
reply = Message.objects.get(role="assistant")
flag = Flag.objects.select_related("flagged_by").get()
review_access = ReviewAccess.objects.get()
print(json.dumps({
    "groups": {
        "alice": list(alice.groups.values_list("name", flat=True)),
        "bob": list(bob.groups.values_list("name", flat=True)),
    },
    "limits": [limits.user.username, limits.messages_per_minute, limits.daily_token_quota,
               limits.monthly_token_quota],
    "price": [price.model, str(price.input_price_per_million),
              str(price.output_price_per_million)],
    "access": [access.group.name, access.model],
    "invitation": [invitation.group.name, invitation.created_by.username],
    "preset": list(Preset.objects.values_list("owner__username", "name")),
    "conversation": [conversation.owner.username, conversation.title],
    "reply": [reply.prompt_tokens, reply.completion_tokens, reply.total_tokens],
    "attachments": list(Attachment.objects.values_list("message__role", flat=True)),
    "flag": [flag.flagged_by.username, flag.note, flag.message_id == reply.pk],
    "review_access": [review_access.viewer_username, review_access.owner_username,
                      review_access.conversation_id == conversation.pk, review_access.kind],
    "bob_may": sorted(
        perm for perm in ["review.add_flag", "review.change_flag", "review.view_flag",
                          "review.view_reviewaccess", "review.delete_flag"]
        if bob.has_perm(perm)
    ),
    "old_content_types": ContentType.objects.filter(
        app_label="conversations",
        model__in=["userlimits", "modelaccess", "invitation", "flag", "reviewaccess",
                   "modelprice"],
    ).count(),
    "found": [result.conversation.title for result in search.search(alice, "Gyeongbokgung")],
}))
"""


def _manage(*arguments: str, database: Path) -> str:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SECRET_KEY": "x",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("upgrade") / "db.sqlite3"
    shutil.copy(DATABASE, copy)
    _manage("migrate", "--no-input", database=copy)
    return copy


def test_every_row_is_kept_under_the_new_apps(migrated):
    found = json.loads(_manage("shell", "--verbosity=0", "-c", READ_BACK, database=migrated))
    assert found == {
        "groups": {"alice": ["Member"], "bob": ["Reviewer"]},
        "limits": ["alice", 5, 1000, 20000],
        "price": ["gemini-3-pro-preview", "1.2500", "10.0000"],
        "access": ["Member", "gemini-3-pro-preview"],
        "invitation": ["Member", "admin"],
        "preset": [["alice", "Translator"]],
        "conversation": ["alice", "Trip to Seoul"],
        "reply": [12, 7, 19],
        "attachments": ["user"],
        "flag": ["bob", "Check this", True],
        "review_access": ["bob", "alice", True, "conversation"],
        # The Reviewer group's permissions followed the models to the review app.
        "bob_may": [
            "review.add_flag",
            "review.change_flag",
            "review.view_flag",
            "review.view_reviewaccess",
        ],
        "old_content_types": 0,
        "found": ["Trip to Seoul"],
    }


def test_nothing_is_left_to_migrate(migrated):
    planned = _manage("migrate", "--plan", database=migrated)
    assert "No planned migration operations." in planned
