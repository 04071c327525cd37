"""What a client may send before daphne reads it (webchat/request_limits.py), on Twisted's
test transport and clock: nothing here waits for real time."""

import asyncio
import socket
import time

import httpx
import pytest
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http

from tests.live_server import LiveServer
from webchat.request_limits import LINGER_SECONDS, RequestLimitsFactory

MAX_BODY = 1000
HEADERS_TIMEOUT = 10
REQUEST_TIMEOUT = 60


class Transport(StringTransport):
    """Twisted's test transport, with the half-close a TCP connection has."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True


class Daphne(Protocol):
    """Stands for daphne's HTTP channel: records what reaches it."""

    requestFactory = http.Request

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class Connection:
    def __init__(self, factory: RequestLimitsFactory) -> None:
        self.limits = factory.buildProtocol(None)
        self.transport = Transport()
        self.limits.makeConnection(self.transport)

    @property
    def daphne(self):
        return self.limits.wrappedProtocol

    def send(self, data: bytes) -> None:
        self.limits.dataReceived(data)

    @property
    def answer(self) -> bytes:
        return self.transport.value()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def factory(clock) -> RequestLimitsFactory:
    return RequestLimitsFactory(
        Factory.forProtocol(Daphne),
        max_body_bytes=MAX_BODY,
        headers_timeout=HEADERS_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
        clock=clock,
        call_soon=lambda callback: asyncio.get_running_loop().call_soon(callback),
    )


@pytest.fixture
def connection(factory) -> Connection:
    return Connection(factory)


def _post(length: int, *headers: str) -> bytes:
    lines = ["POST /c/new/ HTTP/1.1", "Host: chat", f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


GET = b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n"


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_requests_within_the_limits_reach_daphne_unchanged(connection, clock):
    request = _post(5) + b"hello" + GET
    for at in range(0, len(request), 7):  # in pieces, as TCP may deliver it
        connection.send(request[at : at + 7])
    clock.advance(REQUEST_TIMEOUT * 2)
    assert connection.daphne.received == request
    assert connection.answer == b""


async def test_a_body_over_the_limit_is_refused_as_soon_as_its_head_arrives(connection):
    connection.send(_post(MAX_BODY + 1))
    assert _status(connection.answer) == 413
    assert b"Connection: close" in connection.answer
    assert connection.answer.endswith(b"the server takes at most 1 KB at once.\n")
    assert connection.transport.write_closed
    connection.send(b"x" * 5000)  # the body the client goes on sending is dropped
    assert connection.daphne.received == b""


async def test_a_body_of_the_limit_is_taken(connection):
    connection.send(_post(MAX_BODY) + b"x" * MAX_BODY)
    assert connection.answer == b""
    assert connection.daphne.received.endswith(b"x" * MAX_BODY)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (_post(10, "Transfer-Encoding: chunked"), 411),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (_post(10, "Content-Length: 12"), 400),
        (_post(10).replace(b"10", b"-1"), 400),
        (_post(10).replace(b"10", b"1e9"), 400),
        (b"GET / HTTP/1.1\r\nHost: chat\r\n folded: value\r\n\r\n", 400),
    ],
    ids=["chunked", "chunked without length", "two lengths", "negative", "not digits", "fold"],
)
async def test_a_body_whose_length_is_not_one_plain_number_is_refused(connection, head, status):
    connection.send(head + b"0123456789")
    assert _status(connection.answer) == status
    assert connection.daphne.received == b""


async def test_headers_too_large_are_refused(connection):
    connection.send(b"GET / HTTP/1.1\r\nCookie: " + b"a" * 70_000)
    assert _status(connection.answer) == 431


async def test_headers_not_complete_in_time_are_answered_408_and_the_connection_closed(
    connection, clock
):
    connection.send(b"GET / HTTP/1.1\r\nHost: chat\r\n")
    clock.advance(HEADERS_TIMEOUT - 0.1)
    assert connection.answer == b""
    clock.advance(0.1)
    assert _status(connection.answer) == 408
    assert b"headers took too long" in connection.answer
    assert connection.transport.write_closed
    assert not connection.transport.aborted
    clock.advance(LINGER_SECONDS)
    assert connection.transport.aborted


async def test_a_connection_that_sends_nothing_is_closed_after_the_headers_timeout(
    connection, clock
):
    clock.advance(HEADERS_TIMEOUT)
    assert _status(connection.answer) == 408


async def test_trickled_headers_are_cut_at_the_deadline_whatever_their_pace(connection, clock):
    for byte in b"GET / HTTP/1.1\r\nHost: chat\r\nX-Slow: " + b"a" * 50:
        if connection.answer:
            break
        connection.send(bytes([byte]))
        clock.advance(0.5)
    assert _status(connection.answer) == 408
    assert clock.seconds() == HEADERS_TIMEOUT


async def test_a_body_not_complete_in_time_is_answered_408(connection, clock):
    connection.send(_post(100) + b"x" * 10)
    clock.advance(HEADERS_TIMEOUT * 2)
    assert connection.answer == b""  # its head came in time
    for _ in range(REQUEST_TIMEOUT):
        connection.send(b"x")
        clock.advance(1)
    assert _status(connection.answer) == 408
    assert b"The request took too long to arrive." in connection.answer


async def test_each_request_on_a_connection_gets_its_own_time(connection, clock):
    connection.send(GET)
    clock.advance(HEADERS_TIMEOUT * 10)  # idle between requests: Twisted's own timeout
    connection.send(b"GET /second/ HTTP/1.1\r\n")
    clock.advance(HEADERS_TIMEOUT - 1)
    connection.send(b"Host: chat\r\n\r\n")
    clock.advance(REQUEST_TIMEOUT)
    assert connection.answer == b""
    assert connection.daphne.received == GET + b"GET /second/ HTTP/1.1\r\nHost: chat\r\n\r\n"


async def test_a_closed_connection_leaves_no_timer(connection, clock):
    connection.send(b"GET / HTTP/1.1\r\n")
    connection.limits.connectionLost(None)
    assert clock.getDelayedCalls() == []


async def test_a_websocket_passes_untouched_once_upgraded(connection, clock):
    upgrade = b"GET /ws/conversations/1/ HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\n\r\n"
    frames = b"\x81\x05hello" + b"\r\n\r\nContent-Length: 999999999\r\n\r\n"
    connection.send(upgrade + frames)
    clock.advance(REQUEST_TIMEOUT * 10)
    assert connection.answer == b""
    assert connection.daphne.received == upgrade + frames


async def test_an_upgrade_request_with_a_body_over_the_limit_is_refused(connection):
    connection.send(_post(MAX_BODY + 1, "Upgrade: websocket"))
    assert _status(connection.answer) == 413


async def test_bodies_completing_at_once_complete_one_after_the_other(factory):
    first, second = Connection(factory), Connection(factory)
    for connection in (first, second):
        connection.send(_post(600) + b"x" * 599)
    first.send(b"x")
    second.send(b"x" + GET)
    second.send(GET)  # what still arrives waits behind it
    # The second body's end waits, with what followed it, and its client is paused.
    assert first.daphne.received.endswith(b"x" * 600)
    assert second.daphne.received.endswith(b"x" * 599)
    assert second.transport.producerState == "paused"
    await asyncio.sleep(0)  # the first body's application has read it
    assert second.daphne.received.endswith(b"x" * 600 + GET + GET)
    assert second.transport.producerState == "producing"


async def test_small_bodies_complete_together(factory):
    first, second = Connection(factory), Connection(factory)
    for connection in (first, second):
        connection.send(_post(400) + b"x" * 400)
    assert second.daphne.received.endswith(b"x" * 400)


async def test_a_connection_lost_while_its_body_waits_is_forgotten(factory):
    first, second = Connection(factory), Connection(factory)
    first.send(_post(600) + b"x" * 600)
    second.send(_post(600) + b"x" * 600)
    second.limits.connectionLost(None)
    await asyncio.sleep(0)
    assert factory.held == []


class RecordedRequest(http.Request):
    requests: list["RecordedRequest"] = []

    def process(self) -> None:
        self.requests.append(self)


class HTTPFactory(http.HTTPFactory):
    """Twisted's HTTP server, with requests of its own class, as daphne's is."""

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = RecordedRequest
        return protocol


async def test_form_bodies_are_left_for_django_to_parse(clock):
    factory = RequestLimitsFactory(
        HTTPFactory(reactor=clock),
        max_body_bytes=MAX_BODY,
        headers_timeout=HEADERS_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
        clock=clock,
    )
    body = b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nHello\r\n--b--\r\n'
    Connection(factory).send(
        _post(len(body), "Content-Type: multipart/form-data; boundary=b") + body
    )
    request = RecordedRequest.requests.pop()
    assert request.args == {}  # Twisted's own parsing would have read b"text"
    assert request.content.read() == body


# --- A real server (manage.py serve), its timeouts made short ----------------------------

SERVER_HEADERS_TIMEOUT = 1.0
SERVER_MAX_BODY = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("server"),
        env={
            "WEBCHAT_REQUEST_HEADERS_TIMEOUT": str(SERVER_HEADERS_TIMEOUT),
            "WEBCHAT_REQUEST_TIMEOUT": "2",
            "WEBCHAT_MAX_BODY_BYTES": str(SERVER_MAX_BODY),
        },
    )
    server.start()
    server.create_user("alice", "correct horse battery")
    yield server
    server.stop()


def _exchange(server: LiveServer, data: bytes) -> tuple[bytes, float]:
    """Send ``data`` and nothing more; what the server answers until it closes, and when
    it closed (seconds after sending)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(data)
        sent_at = time.monotonic()
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer, time.monotonic() - sent_at


def test_a_real_server_refuses_a_body_over_its_limit_before_the_body_is_sent(server):
    answer, _ = _exchange(server, _post(10 * 1024**3))
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert answer.endswith(b"The request is 10240 MB; the server takes at most 2 MB at once.\n")


def test_a_real_server_answers_408_and_closes_headers_that_never_end(server):
    answer, closed_after = _exchange(server, b"GET /accounts/login/ HTTP/1.1\r\nHost: 127")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert closed_after >= SERVER_HEADERS_TIMEOUT * 0.9


def test_a_real_server_answers_408_to_a_body_that_stops_coming(server):
    answer, _ = _exchange(server, _post(1000) + b"text=half")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"The request took too long to arrive.\n")


def test_a_real_server_serves_requests_within_its_limits(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/healthz").text == "ok"
        answer = client.post("/accounts/login/", data={"text": "x" * (SERVER_MAX_BODY - 100)})
        assert answer.status_code == 403  # Django's answer (no CSRF token): it got the body
