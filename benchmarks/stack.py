"""The processes of a benchmark run: the fake upstream and Webchat as in production.

Webchat runs as ``make run`` and the systemd unit run it: ``manage.py serve``, DEBUG off,
SECRET_KEY set, a freshly migrated database (SQLite in a temporary folder, or a PostgreSQL
database made for the run and dropped after it), collected static files, and the in-memory
channel layer, or Redis with several processes.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-not-secret"
MODEL = "fake-model"
# The same fake model, streaming fast: frames must then be paced by the coalescing interval.
FAST_MODEL = "fake-model-fast"
MAX_UPSTREAM_PER_PROCESS = 5000


@dataclass(frozen=True)
class Setup:
    name: str
    processes: int
    # A PostgreSQL server URL without a database name; None means SQLite.
    postgres: str | None = None
    redis: str | None = None


EMBEDDED = Setup("embedded", processes=1)


def production(postgres: str, redis: str) -> Setup:
    return Setup("production", processes=2, postgres=postgres, redis=redis)


@dataclass(frozen=True)
class Restart:
    """One process restarted: how it exited, how long it took to stop and to serve again."""

    port: int
    # time.monotonic() when it was sent SIGTERM.
    signalled_at: float
    exit_code: int
    stop_seconds: float
    start_seconds: float


@dataclass(frozen=True)
class Upstream:
    """The fake upstream's pace, the same for every reply of a run."""

    first_token_delay: float
    token_interval: float
    token_count: int
    fast_token_interval: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeUpstreamProcess:
    """``python -m tests.fake_upstream`` with a request log to read timings from."""

    def __init__(self, workdir: Path, pace: Upstream) -> None:
        self.log = workdir / "upstream-requests.jsonl"
        self.pace = pace
        self.process: subprocess.Popen | None = None
        self.base_url = ""
        self._read_offset = 0
        self._entries: dict[str, dict] = {}

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "tests.fake_upstream",
            "--port=0",
            f"--first-token-delay={self.pace.first_token_delay}",
            f"--token-interval={self.pace.token_interval}",
            f"--token-count={self.pace.token_count}",
            f"--model-token-interval={FAST_MODEL}={self.pace.fast_token_interval}",
            f"--request-log={self.log}",
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError("The fake upstream did not start.")

    def stop(self) -> None:
        _stop(self.process)

    def entries(self, prompts: list[str], timeout: float = 10.0) -> dict[str, dict]:
        """The log entries of these prompts, waiting for requests still being finished."""
        deadline = time.monotonic() + timeout
        while True:
            self._read_new_entries()
            if all(prompt in self._entries for prompt in prompts):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return {prompt: self._entries[prompt] for prompt in prompts if prompt in self._entries}

    def _read_new_entries(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as log:
            log.seek(self._read_offset)
            while (line := log.readline()).endswith(b"\n"):
                entry = json.loads(line)
                # Other requests may quote the same prompt (a title for the conversation).
                if entry["stream"]:
                    self._entries[entry["prompt"]] = entry
            # A line still being written is read again next time.
            self._read_offset = log.tell() - len(line)


class Webchat:
    """Webchat's database, static files and daphne processes for one set-up."""

    def __init__(self, setup: Setup, workdir: Path, upstream_url: str, *, max_replies: int):
        self.setup = setup
        self.workdir = workdir
        self.database = f"webchat_bench_{uuid.uuid4().hex[:10]}" if setup.postgres else ""
        database_url = (
            f"{setup.postgres}/{self.database}"
            if setup.postgres
            else f"sqlite:///{workdir / 'webchat.sqlite3'}"
        )
        self.ports = [free_port() for _ in range(setup.processes)]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webchat.settings",
            "DEBUG": "false",
            "SECRET_KEY": f"bench-{uuid.uuid4().hex}",
            "DATABASE_URL": database_url,
            "STATIC_ROOT": str(workdir / "static"),
            "MEDIA_ROOT": str(workdir / "media"),
            "WEBCHAT_API_BASE": upstream_url,
            "WEBCHAT_API_KEY": "bench-key-not-secret",
            "WEBCHAT_MODELS": f"{MODEL},{FAST_MODEL}",
            "WEBCHAT_CHANNEL_PREFIX": f"webchat-bench-{uuid.uuid4().hex[:8]}",
            # Every conversation of the run may stream at once, none waits for a slot
            # (benchmarks/RESULTS.md says so next to the figures).
            "WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER": str(max_replies),
            "WEBCHAT_MAX_UPSTREAM_PER_PROCESS": str(MAX_UPSTREAM_PER_PROCESS),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("REDIS_URL", None)
        if setup.redis:
            self.env["REDIS_URL"] = setup.redis
        self.processes: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def manage(self, *args: str) -> str:
        return _run([sys.executable, "manage.py", *args], self.env)

    def prepare(self, *, users: int, conversations_per_user: int, long_messages: int) -> dict:
        """Make the database, migrate it, collect static files and seed the run's data."""
        if self.setup.postgres:
            _psql(self.setup.postgres, f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput")
        # As `serve --prepare` collects: its next start finds them current, as a restart does.
        self.manage(
            "shell",
            "-c",
            "from webchat.static_collection import static_files_collect_if_changed\n"
            "static_files_collect_if_changed()",
        )
        seeded = _run(
            [
                sys.executable,
                "-m",
                "benchmarks.seed",
                f"--users={users}",
                f"--password={PASSWORD}",
                f"--conversations-per-user={conversations_per_user}",
                f"--model={MODEL}",
                f"--model={FAST_MODEL}",
                f"--long-messages={long_messages}",
            ],
            self.env,
        )
        return json.loads(seeded)

    def start(self, *, ready_path: str = "/accounts/login/") -> float:
        """Start every process as the systemd unit does; return the first one's start time:
        from the start command to the first page served."""
        start_times = []
        for port in self.ports:
            started = time.monotonic()
            self.processes.append(self._serve(port))
            _wait_for_page(
                f"http://127.0.0.1:{port}", self.processes[-1], self._log(port), path=ready_path
            )
            start_times.append(time.monotonic() - started)
        return start_times[0]

    def restart(self, index: int) -> Restart:
        """Restart one process as ``systemctl restart`` does, SIGTERM, its exit awaited (it
        drains its replies) and a new one started, then wait until its /healthz answers, as
        a rolling restart does before going on to the next (docs/deployment.md)."""
        port = self.ports[index]
        began = time.monotonic()
        self.processes[index].terminate()
        # Beyond the systemd unit's TimeoutStopSec (30 s), which would kill it.
        exit_code = self.processes[index].wait(timeout=60)
        stopped = time.monotonic()
        self.processes[index] = self._serve(port)
        _wait_for_page(
            f"http://127.0.0.1:{port}", self.processes[index], self._log(port), path="/healthz"
        )
        return Restart(
            port=port,
            signalled_at=began,
            exit_code=exit_code,
            stop_seconds=stopped - began,
            start_seconds=time.monotonic() - stopped,
        )

    def measure_make_run_start(self) -> float:
        """``make run``'s start on the migrated database, through to the first page."""
        port = free_port()
        started = time.monotonic()
        process = self._serve(port, "--prepare")
        try:
            _wait_for_page(f"http://127.0.0.1:{port}", process, self._log(port))
            return time.monotonic() - started
        finally:
            _stop(process)

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)
        self.processes = []
        if self.setup.postgres:
            _psql(self.setup.postgres, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if self.setup.redis:
            _forget_redis_keys(self.setup.redis, self.env["WEBCHAT_CHANNEL_PREFIX"])

    def _log(self, port: int) -> Path:
        return self.workdir / f"daphne-{port}.log"

    def _serve(self, port: int, *options: str) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "serve", "--port", str(port), *options]
        with self._log(port).open("ab") as log:
            return subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )


def _wait_for_page(
    url: str,
    process: subprocess.Popen,
    log: Path,
    timeout: float = 30,
    *,
    path: str = "/accounts/login/",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"daphne did not serve a page in {timeout} s:\n{log.read_text()}")


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{result.stderr}")
    return result.stdout


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _psql(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(statement)


def _forget_redis_keys(url: str, prefix: str) -> None:
    """Delete the run's own keys (its channels and cache), and nothing else."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


def redis_cpu_seconds(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
