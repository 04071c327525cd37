"""How the upstream client reaches the upstream: through the proxy the environment names
(a real forward and CONNECT proxy on loopback), over TLS with the certificate authorities
of SSL_CERT_FILE, with large requests and kept-alive connections, and never to wherever a
redirect points."""

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpx
import pytest
import trustme

from conversations.upstream.chunks import ContentDelta
from conversations.upstream.client import LIMITS, ChatRequest, UpstreamClient, UpstreamError
from conversations.upstream.transport import AiohttpUpstreamTransport, upstream_transport
from tests.live_server import free_port
from tests.tcp_proxy import TcpProxy
from tests.upstream_fixtures import TEST_API_KEY

REQUEST = ChatRequest(model="fake-model", messages=[{"role": "user", "content": "Hello"}])
PROXY_VARIABLES = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"]


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch):
    """The machine's own proxy settings, if any, play no part."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _client(base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> UpstreamClient:
    return UpstreamClient(
        base_url=base_url,
        api_key=TEST_API_KEY,
        connect_timeout=5.0,
        read_timeout=5.0,
        transport=transport,
    )


async def _streamed_text(client: UpstreamClient, request: ChatRequest = REQUEST) -> str:
    events = [event async for event in client.stream_chat(request)]
    return "".join(event.text for event in events if isinstance(event, ContentDelta))


class ForwardProxy:
    """proxy.py (a forward and CONNECT proxy) in its own process on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.log = folder / "proxy.log"
        port_file = folder / "proxy.port"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"),
                *("--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1"),
                *("--log-file", str(self.log), "--log-level", "INFO"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = int(_when_written(port_file, self.process))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def access_log_line(self, text: str) -> str:
        """The access-log line holding ``text``; proxy.py writes it once the connection
        closes, so this waits (up to 20 s) for it."""
        return _when_written(self.log, self.process, containing=text)


def _when_written(path: Path, process: subprocess.Popen, containing: str = "") -> str:
    """The first line of ``path`` holding ``containing``, once ``process`` wrote it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                if containing in line and line.strip():
                    return line.strip()
        assert process.poll() is None, "the proxy stopped"
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never held {containing!r}")


@pytest.fixture
def forward_proxy(tmp_path) -> Iterator[ForwardProxy]:
    pytest.importorskip("proxy", reason="proxy.py (the test extra) is not installed")
    proxy = ForwardProxy(tmp_path)
    yield proxy
    proxy.stop()


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


@pytest.fixture
def trusted_authority(authority, monkeypatch) -> Iterator[None]:
    with authority.cert_pem.tempfile() as authority_file:
        monkeypatch.setenv("SSL_CERT_FILE", authority_file)
        yield


# Transports


def test_straight_connections_go_through_aiohttp(monkeypatch):
    assert isinstance(upstream_transport(LIMITS), AiohttpUpstreamTransport)
    # NO_PROXY alone names no proxy.
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert isinstance(upstream_transport(LIMITS), AiohttpUpstreamTransport)


@pytest.mark.parametrize("variable", [*PROXY_VARIABLES[:3], "https_proxy", "all_proxy"])
def test_with_a_proxy_set_httpx_reads_it_with_its_own_transport(monkeypatch, variable):
    monkeypatch.setenv(variable, "http://proxy.example:3128")
    assert upstream_transport(LIMITS) is None


async def test_a_refused_connection_is_a_connect_error_not_a_timeout():
    async with _client(f"http://127.0.0.1:{free_port()}/v1") as client:
        with pytest.raises(UpstreamError) as failed:
            await _streamed_text(client)

    assert failed.value.kind == "connection"
    assert type(failed.value.__cause__) is httpx.ConnectError


async def test_an_untrusted_certificate_is_a_connect_error(tls_upstream):
    async with _client(tls_upstream) as client:
        with pytest.raises(UpstreamError) as refused:
            await _streamed_text(client)

    assert type(refused.value.__cause__) is httpx.ConnectError
    assert "certificate" in refused.value.message.lower()


async def test_a_connection_cut_before_any_answer_is_tried_once_more_on_a_new_one(fake_upstream):
    with TcpProxy(urlsplit(fake_upstream.base_url).port, cut_requests=1) as proxy:
        async with _client(f"http://127.0.0.1:{proxy.port}/v1") as client:
            text = await _streamed_text(client)

    assert text == fake_upstream.config.reply_text()
    assert len(fake_upstream.requests) == 1


async def test_connections_cut_twice_before_any_answer_are_a_connection_error(fake_upstream):
    with TcpProxy(urlsplit(fake_upstream.base_url).port, cut_requests=2) as proxy:
        async with _client(f"http://127.0.0.1:{proxy.port}/v1") as client:
            with pytest.raises(UpstreamError) as failed:
                await _streamed_text(client)

    assert failed.value.kind == "connection"
    assert isinstance(failed.value.__cause__, httpx.RemoteProtocolError | httpx.ReadError)
    assert fake_upstream.requests == []


async def test_an_answer_that_is_not_http_is_a_protocol_error():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer_garbage() -> None:
            for _ in range(2):  # the request and its one retry
                connection, _address = server.accept()
                with connection:
                    connection.recv(65536)
                    connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        answering = threading.Thread(target=answer_garbage, daemon=True)
        answering.start()
        async with _client(f"http://127.0.0.1:{port}/v1") as client:
            with pytest.raises(UpstreamError) as failed:
                await _streamed_text(client)
        answering.join(timeout=5)

    assert failed.value.kind == "connection"
    assert type(failed.value.__cause__) is httpx.RemoteProtocolError


# Proxies


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_an_http_upstream_is_reached_through_the_proxy_the_environment_names(
    forward_proxy, fake_upstream, monkeypatch, variable
):
    monkeypatch.setenv(variable, forward_proxy.url)

    async with _client(fake_upstream.base_url) as client:
        text = await _streamed_text(client)

    assert text == fake_upstream.config.reply_text()
    upstream_address = urlsplit(fake_upstream.base_url).netloc
    line = forward_proxy.access_log_line(f"POST {upstream_address}/v1/chat/completions")
    assert "200 OK" in line
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"


async def test_an_https_upstream_is_reached_through_the_proxy_with_connect(
    forward_proxy, tls_upstream, trusted_authority, fake_upstream, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)

    async with _client(tls_upstream) as client:
        text = await _streamed_text(client)
        completion = await client.complete_chat(REQUEST)

    assert text == completion.content == fake_upstream.config.reply_text()
    forward_proxy.access_log_line(f"CONNECT {urlsplit(tls_upstream).netloc}")


async def test_no_proxy_sends_requests_to_its_hosts_straight(fake_upstream, monkeypatch):
    # A proxy that is not there: a request sent to it could not succeed.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")

    async with _client(fake_upstream.base_url) as client:
        text = await _streamed_text(client)

    assert text == fake_upstream.config.reply_text()


async def test_a_proxy_that_cannot_be_reached_is_a_connection_error(fake_upstream, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")

    async with _client(fake_upstream.base_url) as client:
        with pytest.raises(UpstreamError) as failed:
            await _streamed_text(client)

    assert failed.value.kind == "connection"
    assert fake_upstream.requests == []


# TLS


async def test_an_upstream_behind_tls_is_trusted_through_ssl_cert_file(
    tls_upstream, trusted_authority, fake_upstream
):
    async with _client(tls_upstream) as client:
        text = await _streamed_text(client)
        completion = await client.complete_chat(REQUEST)

    assert text == completion.content == fake_upstream.config.reply_text()


@pytest.fixture
def authority_folder(authority, tmp_path) -> Path:
    """A folder holding ``authority`` under OpenSSL's hashed name, as SSL_CERT_DIR wants."""
    folder = tmp_path / "authorities"
    folder.mkdir()
    pem = folder / "authority.pem"
    authority.cert_pem.write_to_path(str(pem))
    hashed = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pem.rename(folder / f"{hashed}.0")
    return folder


async def test_an_upstream_behind_tls_is_trusted_through_ssl_cert_dir(
    tls_upstream, authority_folder, fake_upstream, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_DIR", str(authority_folder))

    async with _client(tls_upstream) as client:
        text = await _streamed_text(client)

    assert text == fake_upstream.config.reply_text()


async def test_ssl_cert_file_wins_over_ssl_cert_dir(
    tls_upstream, authority_folder, fake_upstream, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_DIR", str(authority_folder))
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # public authorities only

    async with _client(tls_upstream) as client:
        with pytest.raises(UpstreamError) as refused:
            await _streamed_text(client)

    assert "certificate" in refused.value.message.lower()
    assert fake_upstream.requests == []


async def test_an_upstream_whose_certificate_is_not_trusted_is_refused(tls_upstream, fake_upstream):
    async with _client(tls_upstream) as client:
        with pytest.raises(UpstreamError) as refused:
            await _streamed_text(client)

    assert refused.value.kind == "connection"
    assert fake_upstream.requests == []


# Connections


async def test_a_request_larger_than_the_socket_buffers_is_sent_whole(fake_upstream):
    question = "x" * (8 * 1024 * 1024)
    request = ChatRequest(model="fake-model", messages=[{"role": "user", "content": question}])

    async with _client(fake_upstream.base_url) as client:
        await _streamed_text(client, request)

    assert fake_upstream.requests[0].body["messages"][0]["content"] == question


async def test_a_kept_alive_connection_the_upstream_closed_is_not_used_again(fake_upstream):
    with TcpProxy(urlsplit(fake_upstream.base_url).port) as proxy:
        async with _client(f"http://127.0.0.1:{proxy.port}/v1") as client:
            await _streamed_text(client)
            assert proxy.drop() == 1  # the reset has reached the client's socket on return

            text = await _streamed_text(client)

    assert text == fake_upstream.config.reply_text()
    first, second = fake_upstream.requests
    assert first.client_port != second.client_port


def _dropping_then_answering(drops: int):
    """A transport whose first ``drops`` requests find their connection closed before any
    answer, and whose next ones are answered."""
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        if len(sent) <= drops:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        chunk = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunk)

    return httpx.MockTransport(answer), sent


async def test_a_request_whose_connection_closed_before_any_answer_is_sent_once_more():
    transport, sent = _dropping_then_answering(drops=1)
    async with _client("http://upstream.example/v1", transport) as client:
        assert await _streamed_text(client) == "Hi"

    assert len(sent) == 2
    assert sent[0] == sent[1]


async def test_a_request_is_sent_at_most_twice():
    transport, sent = _dropping_then_answering(drops=2)
    async with _client("http://upstream.example/v1", transport) as client:
        with pytest.raises(UpstreamError) as failed:
            await _streamed_text(client)

    assert failed.value.kind == "connection"
    assert len(sent) == 2


# Redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "location",
    [
        "https://elsewhere.example/v1/chat/completions",
        "http://upstream.example/v2/chat/completions",
        "/v2/chat/completions",
    ],
)
async def test_a_redirect_is_not_followed_and_names_where_it_points(status, location):
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return httpx.Response(status, headers={"location": location})

    async with _client("https://upstream.example/v1", httpx.MockTransport(answer)) as client:
        with pytest.raises(UpstreamError) as streamed:
            await _streamed_text(client)
        with pytest.raises(UpstreamError) as completed:
            await client.complete_chat(REQUEST)

    assert sent == ["https://upstream.example/v1/chat/completions"] * 2
    where = str(httpx.URL("https://upstream.example/v1/chat/completions").join(location))
    for error in (streamed.value, completed.value):
        assert (error.kind, error.status_code) == ("http", status)
        assert where in error.message
        assert "WEBCHAT_API_BASE" in error.message
