"""Fixtures for code that talks to the upstream API: a real fake server on loopback."""

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from conversations.upstream import client as upstream
from tests.fake_upstream import FakeUpstream

TEST_API_KEY = "test-key-not-secret"


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    """One fake upstream per test process (so per xdist worker), started once."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream, settings) -> Iterator[FakeUpstream]:
    """The fake upstream with a default config, and Django settings pointing at it."""
    fake_upstream_server.reset()
    settings.WEBCHAT_API_BASE = fake_upstream_server.base_url
    settings.WEBCHAT_API_KEY = TEST_API_KEY
    settings.WEBCHAT_DEMO_MODE = False
    # Retries back off in milliseconds, so that no test sleeps for long.
    settings.WEBCHAT_RETRY_BASE_DELAY = 0.01
    upstream.reset_clients()
    yield fake_upstream_server
    upstream.reset_clients()


@pytest.fixture
async def upstream_client(fake_upstream: FakeUpstream) -> AsyncIterator[upstream.UpstreamClient]:
    """A client of the fake upstream, closed after the test."""
    async with upstream.UpstreamClient(
        base_url=fake_upstream.base_url,
        api_key=TEST_API_KEY,
        connect_timeout=5.0,
        read_timeout=5.0,
    ) as client:
        yield client


@pytest.fixture
def unanswered_upstream() -> Iterator[str]:
    """A base URL whose connections are never accepted: connecting to it times out.

    The listening socket's backlog is full, so the kernel drops further SYNs.
    """
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}/v1"
        for filler in fillers:
            filler.close()
