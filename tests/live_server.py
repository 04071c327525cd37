"""A real Webchat server (``manage.py serve``, as in production) in a subprocess, for
end-to-end tests."""

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432"
# What asyncio logs for a task that failed with nobody to hear it.
UNRETRIEVED = "exception was never retrieved"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._own_database = workdir / "live.sqlite3"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self._own_database}",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DEBUG": "false",
            "SECRET_KEY": "live-server-test-secret-key",
            "STATIC_ROOT": str(workdir / "static"),
            "WEBCHAT_CHANNEL_PREFIX": f"webchat-live-{self.port}",
            "MEDIA_ROOT": str(workdir / "media"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log = workdir / "server.log"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def create_user(self, username: str, password: str) -> None:
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model;"
            f"get_user_model().objects.create_user({username!r}, password={password!r})",
        )

    def start(self, *, prepare: bool = True) -> None:
        """Start as ``make run`` does: migrate, collect static files, sweep, serve.

        A second server sharing the first one's database and static files (pass the same
        ``DATABASE_URL``, ``REDIS_URL``, ``STATIC_ROOT`` and ``MEDIA_ROOT`` in ``env``) skips
        the preparation with ``prepare=False``.
        """
        fresh = not self._own_database.exists()
        if prepare and fresh and self.env["DATABASE_URL"] == f"sqlite:///{self._own_database}":
            # Migrating a fresh database takes seconds of CPU, copying a migrated one
            # milliseconds; ``--prepare`` still migrates, finding nothing left to apply.
            shutil.copyfile(_migrated_sqlite_database(), self._own_database)
        static_root = Path(self.env["STATIC_ROOT"])
        if prepare and not static_root.exists():
            # Likewise for static files: compressing them takes seconds. With settings that
            # collect otherwise, ``--prepare`` sees it and collects them again.
            shutil.copytree(_collected_static_files(), static_root)
        command = [sys.executable, "manage.py", "serve", "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--prepare"] if prepare else command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_serving()
        except RuntimeError:
            self.stop()  # a fixture that fails here never stops it
            raise

    def _wait_until_serving(self, timeout: float = 120) -> None:
        # Generous: migrating a fresh database takes long on a busy machine; only a server
        # that is truly stuck waits this long.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/accounts/login/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        """Stop the server; a task of its that failed with nobody to hear it fails the test
        (as tests/conftest.py does for the tests' own tasks)."""
        process_stop(self.process)
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        if UNRETRIEVED in log:
            start = log.index(UNRETRIEVED)
            raise AssertionError(f"The server's log says:\n{log[start : start + 3000]}")


@functools.cache
def _migrated_sqlite_database() -> Path:
    """A SQLite database migrated once per test process, for live servers to start from."""
    folder = Path(tempfile.mkdtemp(prefix="webchat-migrated-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    database = folder / "migrated.sqlite3"
    _migrate(f"sqlite:///{database}")
    # The migrating process's last connection folded the write-ahead log into the file.
    assert not database.with_name(f"{database.name}-wal").exists()
    return database


@functools.cache
def _collected_static_files() -> Path:
    """Static files collected once per test process, as ``serve --prepare`` collects them."""
    folder = Path(tempfile.mkdtemp(prefix="webchat-static-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    static_root = folder / "static"
    _prepare(
        "shell",
        "-c",
        "from webchat.static_collection import static_files_collect_if_changed\n"
        "static_files_collect_if_changed()",
        DEBUG="false",
        STATIC_ROOT=str(static_root),
    )
    return static_root


def _migrate(database_url: str) -> None:
    _prepare("migrate", "--no-input", "--verbosity", "0", DATABASE_URL=database_url)


def _prepare(*args: str, **env: str) -> None:
    """Run ``manage.py`` with the live servers' settings and ``env``; its error if it fails."""
    prepared = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "SECRET_KEY": "live-server-test-secret-key",
            **env,
        },
        capture_output=True,
        text=True,
    )
    if prepared.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{prepared.stderr}")


def process_stop(process: subprocess.Popen | None) -> None:
    """Ask a server process to stop, and kill it if it has not within ten seconds."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition, *, what: str, timeout: float = 20.0) -> None:
    """Poll what a live server writes and nothing signals (its database, its health)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting for {what}.")
        time.sleep(0.05)


def sign_in(client: httpx.Client, username: str, password: str) -> None:
    """Sign in through the real form, CSRF cookie and all."""
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert response.status_code == 302, response.text


@contextmanager
def postgres_database(prefix: str, *, migrated: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database of its own on the machine's server, whatever the suite's
    DATABASE_URL is, dropped afterwards; the test is skipped without a server. ``migrated``:
    a copy of one migrated once per test process, which servers start faster on."""
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=2, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust): {error}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        if migrated:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_migrated_postgres_database()}"')
        else:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        _postgres_database_drop(name)


@functools.cache
def _migrated_postgres_database() -> str:
    name = f"webchat_migrated_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_postgres_database_drop, name)
    _migrate(f"{POSTGRES}/{name}")
    return name


def _postgres_database_drop(name: str) -> None:
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
