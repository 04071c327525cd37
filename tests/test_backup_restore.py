"""The backup and restore of docs/deployment.md, rehearsed.

Its two blocks run as written, as root, with only what names this machine replaced: a
scratch database and a role of their own on the machine's PostgreSQL instead of `webchat`,
folders in a temporary one instead of /var/backups, /var/lib/webchat and /etc/webchat, a
Redis prefix of the test's own, and a stand-in for `systemctl` (no systemd here) that notes
what it was asked. Webchat's tables are made by its migrations and filled by the benchmark's
seed, so what comes back is what a site holds.
"""

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import uuid

import psycopg
import pytest
import redis

from tests.live_server import ROOT

DOC = ROOT / "docs" / "deployment.md"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
# The shell the blocks run in: strict, and systemctl noted instead of run.
PRELUDE = 'set -euo pipefail\nsystemctl() { echo "$*" >> "$SYSTEMCTL_LOG"; }\n'
MESSAGES = "SELECT count(*), md5(string_agg(content, '|' ORDER BY id)) FROM conversations_message"


def _can_run_as_postgres() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return os.geteuid() == 0 and all(
        shutil.which(tool) for tool in ("runuser", "pg_dump", "pg_restore", "redis-cli")
    )


pytestmark = pytest.mark.skipif(
    not _can_run_as_postgres(),
    reason="runs the guide's commands as root, with runuser, PostgreSQL's client tools, "
    "the postgres account and redis-cli",
)


def _block(containing: str) -> str:
    """The guide's one shell block holding ``containing``."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.DOTALL)
    [block] = [block for block in blocks if containing in block]
    return block


def _for_this_machine(block: str, replacements: dict[str, str]) -> str:
    for shipped, here in replacements.items():
        assert shipped in block, f"the guide's block no longer says {shipped!r}"
        block = block.replace(shipped, here)
    return block


def _run(block: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-c", PRELUDE + block], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def _manage(*args: str, database_url: str) -> str:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "webchat.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "backup-rehearsal-not-secret",
    }
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout


def _messages(database_url: str) -> tuple[int, str]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(MESSAGES).fetchone()


@pytest.fixture
def scratch() -> dict[str, str]:
    """A database and its owner role of their own, dropped at the end."""
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=2, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust): {error}")
    suffix = uuid.uuid4().hex[:12]
    names = {"database": f"webchat_restore_{suffix}", "role": f"webchat_restore_{suffix}"}
    with admin:
        admin.execute(f'CREATE ROLE "{names["role"]}"')
        admin.execute(f'CREATE DATABASE "{names["database"]}" OWNER "{names["role"]}"')
    yield names
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{names["role"]}"')


def test_the_guides_backup_is_private_and_its_restore_brings_everything_back(tmp_path, scratch):
    database, role = scratch["database"], scratch["role"]
    database_url = f"{POSTGRES}/{database}"
    _manage("manage.py", "migrate", "--noinput", database_url=database_url)
    _manage(
        *("-m", "benchmarks.seed", "--users=2", "--password=not-secret"),
        *("--conversations-per-user=2", "--model=fake-model", "--long-messages=6"),
        database_url=database_url,
    )
    stored = _messages(database_url)
    assert stored[0] >= 8
    state, backups = tmp_path / "state", tmp_path / "backups"
    photo = state / "media" / "attachments" / "2026" / "12" / "photo.png"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"\x89PNG not really, but bytes all the same")
    (tmp_path / "env").write_text("SECRET_KEY=backup-rehearsal-not-secret\n")
    prefix = f"webchat-restore-{uuid.uuid4().hex[:12]}"
    cache = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    env = os.environ | {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
    }

    backup = _for_this_machine(
        _block("pg_dump"),
        {
            "/var/backups/webchat": str(backups),
            "--dbname=webchat": f"--dbname={database}",
            "/var/lib/webchat": str(state),
            "/etc/webchat/env": str(tmp_path / "env"),
        },
    )
    _run(backup, env)

    [made] = backups.iterdir()
    assert stat.S_IMODE(backups.stat().st_mode) == stat.S_IMODE(made.stat().st_mode) == 0o700
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in made.iterdir()} == {
        "webchat.dump": 0o600,
        "media.tar": 0o600,
        "env": 0o600,
    }
    assert {path.stat().st_uid for path in made.iterdir()} == {0}

    # Everything is lost, and Redis holds a session made since the backup.
    with psycopg.connect(database_url) as connection:
        connection.execute("DELETE FROM conversations_message")
        connection.execute("DELETE FROM conversations_conversation")
    shutil.rmtree(state / "media")
    (state / "media").mkdir()
    (state / "media" / "stray.png").write_bytes(b"made after the backup")
    cache.set(f"{prefix}:1:django.contrib.sessions.cached_dbnewer", "a session")

    restore = _for_this_machine(
        re.sub(r"backup=\S+", f"backup={made}", _block("pg_restore"), count=1),
        {
            "dropdb --if-exists webchat": f"dropdb --if-exists {database}",
            "createdb --owner=webchat webchat": f"createdb --owner={role} {database}",
            "--dbname=webchat": f"--dbname={database}",
            "/var/lib/webchat": str(state),
            "'webchat:*'": f"'{prefix}:*'",
        },
    )
    _run(restore, env)

    assert _messages(database_url) == stored
    assert photo.read_bytes() == b"\x89PNG not really, but bytes all the same"
    assert not (state / "media" / "stray.png").exists()
    assert cache.keys(f"{prefix}:*") == []
    cache.close()
    with psycopg.connect(f"{POSTGRES}/postgres") as connection:
        owner = connection.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
    assert owner == (role,)
    # The site was stopped before the database was dropped, and started after.
    assert (tmp_path / "systemctl.log").read_text().splitlines() == [
        "stop webchat-retention.timer webchat@*",
        "start webchat@8001 webchat@8002 webchat-retention.timer",
    ]
    commands = restore.splitlines()
    assert commands.index(next(c for c in commands if c.startswith("systemctl stop"))) < (
        commands.index(next(c for c in commands if "dropdb" in c))
    )
