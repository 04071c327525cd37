"""The upstream client's own network layer (conversations/upstream_network.py): TLS,
large bodies both ways, and kept-alive connections the upstream closed."""

import asyncio
import ssl
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import trustme

from conversations.upstream import ChatRequest, ContentDelta, UpstreamClient, UpstreamError
from conversations.upstream_network import BUFFER_LIMIT, AsyncioBackend
from tests.tcp_proxy import TcpProxy
from tests.upstream_fixtures import TEST_API_KEY


def _client(base_url: str) -> UpstreamClient:
    return UpstreamClient(
        base_url=base_url, api_key=TEST_API_KEY, connect_timeout=5.0, read_timeout=5.0
    )


async def _streamed_text(client: UpstreamClient, request: ChatRequest) -> str:
    events = [event async for event in client.stream_chat(request)]
    return "".join(event.text for event in events if isinstance(event, ContentDelta))


async def _once(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds, checking it at every turn of the event loop."""
    loop = asyncio.get_running_loop()
    held = loop.create_future()

    def check() -> None:
        if condition():
            held.set_result(None)
        else:
            loop.call_soon(check)

    check()
    await held


REQUEST = ChatRequest(model="fake-model", messages=[{"role": "user", "content": "Hello"}])


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_upstream(fake_upstream, authority) -> Iterator[str]:
    """The fake upstream behind TLS, with a certificate for 127.0.0.1 from ``authority``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with TcpProxy(urlsplit(fake_upstream.base_url).port, tls=context) as proxy:
        yield f"https://127.0.0.1:{proxy.port}/v1"


async def test_replies_are_read_through_asyncios_own_transports(fake_upstream, monkeypatch):
    opened = []
    connect_tcp = AsyncioBackend.connect_tcp

    async def counted(self, host, port, **options):
        opened.append((host, port))
        return await connect_tcp(self, host, port, **options)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", counted)
    async with _client(fake_upstream.base_url) as client:
        text = await _streamed_text(client, REQUEST)

    assert text == fake_upstream.config.reply_text()
    assert opened == [("127.0.0.1", urlsplit(fake_upstream.base_url).port)]


async def test_an_upstream_behind_tls_is_trusted_through_ssl_cert_file(
    tls_upstream, authority, fake_upstream, monkeypatch
):
    with authority.cert_pem.tempfile() as authority_file:
        monkeypatch.setenv("SSL_CERT_FILE", authority_file)
        async with _client(tls_upstream) as client:
            text = await _streamed_text(client, REQUEST)
            completion = await client.complete_chat(REQUEST)

    assert text == completion.content == fake_upstream.config.reply_text()


async def test_an_upstream_whose_certificate_is_not_trusted_is_refused(tls_upstream, fake_upstream):
    async with _client(tls_upstream) as client:
        with pytest.raises(UpstreamError) as refused:
            await _streamed_text(client, REQUEST)

    assert refused.value.kind == "connection"
    assert fake_upstream.requests == []


async def test_a_socket_that_stopped_reading_at_a_full_buffer_reads_on_once_it_empties():
    payload = bytes(range(256)) * (4 * BUFFER_LIMIT // 256)

    async def send_payload(_reader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(send_payload, "127.0.0.1", 0)
    async with server, asyncio.timeout(10):
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.sockets[0].getsockname()[1])
        await _once(lambda: stream._protocol.reading_paused)  # nothing read: the buffer fills
        received = bytearray()
        while chunk := await stream.read(65536, timeout=5):
            received += chunk
        await stream.aclose()

    assert received == payload


async def test_a_request_larger_than_the_socket_buffers_is_sent_whole(fake_upstream):
    question = "x" * (8 * 1024 * 1024)
    request = ChatRequest(model="fake-model", messages=[{"role": "user", "content": question}])

    async with _client(fake_upstream.base_url) as client:
        await _streamed_text(client, request)

    assert fake_upstream.requests[0].body["messages"][0]["content"] == question


async def test_a_kept_alive_connection_the_upstream_closed_is_not_used_again(fake_upstream):
    with TcpProxy(urlsplit(fake_upstream.base_url).port) as proxy:
        async with _client(f"http://127.0.0.1:{proxy.port}/v1") as client:
            await _streamed_text(client, REQUEST)
            assert proxy.drop() == 1
            pool = client._http._transport._pool
            async with asyncio.timeout(5):  # until the event loop has read the reset
                await _once(
                    lambda: all(connection.has_expired() for connection in pool.connections)
                )

            text = await _streamed_text(client, REQUEST)

    assert text == fake_upstream.config.reply_text()
    first, second = fake_upstream.requests
    assert first.client_port != second.client_port
