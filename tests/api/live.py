"""A live Webchat server for the API's tests, with users and keys made in one go, and
reads of its database."""

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.live_server import LiveServer
from tests.upstream_fixtures import TEST_API_KEY

# Users, their limits and keys: made by one `manage.py shell` (each costs a Django start).
SETUP = """
import json
from datetime import timedelta
from django.contrib.auth.models import Group
from django.utils import timezone
from accounts import roles
from accounts.models import ModelAccess, UserLimits
from api.models import ApiKey
from django.contrib.auth import get_user_model

User = get_user_model()
member = Group.objects.get(name=roles.MEMBER)
ModelAccess.objects.create(group=member, model="fake-model")
keys = {}
for name in ("alice", "carol", "erin"):
    user = User.objects.create_user(name, password="not-used-here")
    user.groups.add(member)
    keys[name] = ApiKey.issue(owner=user, name=f"{name}'s script")[1]
UserLimits.objects.create(user=User.objects.get(username="carol"), daily_token_quota=1)
UserLimits.objects.create(user=User.objects.get(username="erin"), messages_per_minute=1)
alice = User.objects.get(username="alice")
revoked, keys["revoked"] = ApiKey.issue(owner=alice, name="old laptop")
revoked.revoke()
keys["expired"] = ApiKey.issue(
    owner=alice, name="trial", expires_at=timezone.now() - timedelta(seconds=1)
)[1]
print(json.dumps(keys))
"""


class ApiServer(LiveServer):
    def __init__(self, workdir: Path, upstream_url: str, **env: str) -> None:
        super().__init__(
            workdir,
            env={
                "WEBCHAT_API_BASE": upstream_url,
                "WEBCHAT_API_KEY": TEST_API_KEY,
                "WEBCHAT_MODELS": "fake-model,fake-model-large",
                "WEBCHAT_RETRY_BASE_DELAY": "0.01",
                "WEBCHAT_MODEL_TITLES": "false",
                # The concurrency test's 50 streams are one user's.
                "WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER": "60",
                "WEBCHAT_API_KEY_MAX_FAILURES": "5",
                **env,
            },
        )
        self.database = workdir / "live.sqlite3"
        self.keys: dict[str, str] = {}

    def start(self, *, prepare: bool = True) -> None:
        super().start(prepare=prepare)
        # The last line: the shell prints what it imported first.
        self.keys = json.loads(self.manage("shell", "-c", SETUP).splitlines()[-1])

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v1"

    def query(self, sql: str, *params) -> list[tuple]:
        with closing(sqlite3.connect(self.database, timeout=10)) as connection:
            return connection.execute(sql, params).fetchall()

    def execute(self, sql: str, *params) -> None:
        with closing(sqlite3.connect(self.database, timeout=10)) as connection, connection:
            connection.execute(sql, params)
