"""Requests' synchronous work runs on a fixed set of threads, kept between requests."""

import asyncio
import threading

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_started
from django.db import connection, connections
from django.db.backends.signals import connection_created

from webchat.handlers import PooledThreadsASGIHandler, RequestThreads


def _thread_name() -> str:
    return threading.current_thread().name


@pytest.fixture
def handler():
    handler = PooledThreadsASGIHandler()
    yield handler
    for executor in handler.threads.executors:
        executor.submit(connections.close_all).result()
        executor.shutdown()


@pytest.fixture
def client(handler):
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=handler), base_url="http://127.0.0.1"
    )


@pytest.fixture
def request_threads():
    """The names of the threads that began each request."""
    names: list[str] = []

    def note_thread(**kwargs) -> None:
        names.append(_thread_name())

    request_started.connect(note_thread, weak=False)
    yield names
    request_started.disconnect(note_thread)


@pytest.mark.django_db(transaction=True)
async def test_requests_one_after_another_run_on_one_kept_thread(client, request_threads):
    async with client:
        for _ in range(5):
            assert (await client.get("/healthz")).text == "ok"

    assert len(request_threads) == 5
    assert len(set(request_threads)) == 1
    assert request_threads[0].startswith("request-")
    assert request_threads[0] != _thread_name()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's come from a pool")
async def test_a_kept_thread_keeps_its_sqlite_connection(handler, client):
    opened: list[str] = []

    def note_connection(**kwargs) -> None:
        opened.append(_thread_name())

    connection_created.connect(note_connection, weak=False)
    try:
        async with client:
            for _ in range(5):
                assert (await client.get("/healthz")).text == "ok"
    finally:
        connection_created.disconnect(note_connection)

    assert len(opened) == 1
    # Open still, and with no age at which a request's end would close it.
    kept = handler.threads.executors[0].submit(_connection_state).result()
    assert kept == (True, None)


def _connection_state() -> tuple[bool, float | None]:
    return connection.connection is not None, connection.close_at


async def test_requests_at_once_go_to_the_least_busy_thread():
    threads = RequestThreads(2)
    names: list[str] = []
    all_inside = asyncio.Barrier(3)

    async def borrow() -> None:
        async with threads.borrowed():
            names.append(await sync_to_async(_thread_name)())
            await all_inside.wait()

    await asyncio.gather(borrow(), borrow(), borrow())

    assert len(set(names)) == 2
    assert threads.requests == [0, 0]
    for executor in threads.executors:
        executor.shutdown()


async def test_a_failed_request_gives_its_thread_back():
    threads = RequestThreads(2)

    with pytest.raises(RuntimeError):
        async with threads.borrowed():
            raise RuntimeError("the view failed")

    assert threads.requests == [0, 0]
