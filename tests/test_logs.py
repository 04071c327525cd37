"""Every line logged while serving a request or writing a reply says which request, user,
conversation, reply and client it concerns, as text or as one JSON object a line; a
refused request is one warning without a traceback."""

import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from ipaddress import ip_network

import httpx
import pytest
from django.test import AsyncClient, Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.generation_helpers import (
    communicator_for,
    finished,
    frames_until_final,
    latest_reply,
    send_message,
)
from tests.live_server import LiveServer
from webchat.logs import access_log, json_formatter, log_context_start, log_context_update

pytestmark = pytest.mark.django_db(transaction=True)

PROXY = "10.0.0.2"


def _console() -> logging.Handler:
    """The handler the settings configure (LOGGING), with its filters."""
    return next(handler for handler in logging.getLogger().handlers if handler.name == "console")


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[str]]]:
    """The lines the configured handler writes during the test, in the text format."""
    console = _console()
    stream = io.StringIO()
    previous = console.setStream(stream)
    yield lambda: stream.getvalue().splitlines()
    console.setStream(previous)


@pytest.fixture
def json_lines(log_lines) -> Iterator[Callable[[], list[dict]]]:
    """The same, with WEBCHAT_LOG_FORMAT=json's formatter, each line parsed."""
    console = _console()
    previous = console.formatter
    console.setFormatter(json_formatter())
    yield lambda: [json.loads(line) for line in log_lines()]
    console.setFormatter(previous)


async def test_a_requests_lines_carry_its_id_user_and_client(json_lines, owner):
    client = AsyncClient()
    await client.aforce_login(owner)

    response = await client.get("/no-such-page/")

    assert response.status_code == 404
    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["level"] == "WARNING"
    assert line["message"] == "Not Found: /no-such-page/"
    assert line["request_id"] == response["X-Request-ID"]
    assert len(line["request_id"]) == 32
    assert line["user_id"] == owner.pk
    assert line["client"] == "127.0.0.1"
    assert line["status_code"] == 404
    assert line["time"].endswith("+00:00")


async def test_a_request_starts_afresh_and_an_anonymous_one_has_no_user(json_lines, owner):
    log_context_update(request_id="earlier", user_id=owner.pk, reply_id=5)  # left by another

    response = await AsyncClient().get("/no-such-page/")

    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == response["X-Request-ID"]
    assert "user_id" not in line
    assert "reply_id" not in line


async def test_each_request_gets_an_id_of_its_own():
    client = AsyncClient()
    first, second = await client.get("/healthz"), await client.get("/healthz")
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_trusted_proxys_request_id_is_kept(settings):
    settings.WEBCHAT_TRUSTED_PROXIES = [ip_network("10.0.0.0/24")]

    response = Client(REMOTE_ADDR=PROXY).get("/healthz", headers={"X-Request-ID": "edge-4f.7"})

    assert response["X-Request-ID"] == "edge-4f.7"


@pytest.mark.parametrize(
    ("trusted", "incoming"),
    [
        ([], "edge-4f1c.77"),  # no proxy is trusted
        ([ip_network("10.0.1.0/24")], "edge-4f1c.77"),  # not this one
        ([ip_network("10.0.0.0/24")], "two words"),
        ([ip_network("10.0.0.0/24")], "x" * 129),
        ([ip_network("10.0.0.0/24")], "forged\nline"),
    ],
)
def test_any_other_request_id_is_replaced(settings, trusted, incoming):
    settings.WEBCHAT_TRUSTED_PROXIES = trusted

    response = Client(REMOTE_ADDR=PROXY).get("/healthz", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


async def test_a_replys_lines_carry_its_conversation_reply_and_request(
    json_lines, async_owner_client, conversation, owner, fake_upstream
):
    fake_upstream.reset(failure="http_400")
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]

    response = await send_message(async_owner_client, conversation)
    reply = await latest_reply(conversation)
    await frames_until_final(communicator, reply)
    await communicator.disconnect()
    await finished(reply)

    lines = [line for line in json_lines() if line["logger"] == "conversations.generation"]
    failed, ended = lines
    assert failed["level"] == "WARNING"
    assert failed["message"].startswith(f"Reply {reply.pk} failed (bad_request)")
    assert ended["level"] == "INFO"
    assert ended["message"].startswith(f"Reply {reply.pk} ended bad_request after ")
    assert (ended["status"], ended["error_code"]) == ("error", "bad_request")
    for line in lines:
        assert line["conversation_id"] == conversation.pk
        assert line["reply_id"] == reply.pk
        # The request that started the reply.
        assert line["request_id"] == response["X-Request-ID"]
        assert line["user_id"] == owner.pk
        assert line["client"] == "127.0.0.1"


async def test_text_lines_name_what_is_known_after_the_message(log_lines, owner):
    client = AsyncClient()
    await client.aforce_login(owner)

    response = await client.get("/no-such-page/")

    [line] = [line for line in log_lines() if " django.request: " in line]
    assert line.endswith(
        f"WARNING django.request: Not Found: /no-such-page/ "
        f"[request_id={response['X-Request-ID']} user_id={owner.pk} client=127.0.0.1]"
    )


async def test_a_refused_host_is_one_warning_line_without_a_traceback(json_lines, log_lines):
    response = await AsyncClient().get("/healthz", headers={"Host": "evil.example"})

    assert response.status_code == 400
    assert len(log_lines()) == 1
    [line] = json_lines()
    assert line["logger"] == "django.security.DisallowedHost"
    assert line["level"] == "WARNING"
    assert line["message"].startswith("Invalid HTTP_HOST header: ")
    assert "evil.example" in line["message"]
    assert line["request_id"] == response["X-Request-ID"]
    assert "exc_info" not in line


async def test_another_refused_request_is_one_warning_line_without_a_traceback(log_lines, owner):
    # Django logs too many form fields as a suspicious operation, at ERROR, with a traceback.
    fields = {f"field{number}": "x" for number in range(1001)}

    response = await AsyncClient().post("/accounts/login/", fields)

    assert response.status_code == 400
    [line] = log_lines()
    assert " WARNING django.security.TooManyFieldsSent: The number of GET/POST parameters " in line


def test_a_server_error_keeps_its_level_and_traceback(log_lines):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("django.request").error(
            "Internal Server Error: /", exc_info=True, extra={"status_code": 500}
        )

    assert " ERROR django.request: Internal Server Error: /" in log_lines()[0]
    assert "Traceback (most recent call last):" in log_lines()


async def test_an_access_line_names_the_peer_and_the_requests_client(json_lines):
    # Daphne logs a response within its request (this test's task): behind nginx, the
    # peer is nginx.
    log_context_start(request_id="r-1", client="198.51.100.7")

    access_log(
        "http",
        "complete",
        {
            "path": "/healthz?full=1",
            "status": 200,
            "method": "GET",
            "client": "127.0.0.1:53211",
            "time_taken": 0.0042,
            "size": 2,
        },
    )

    [line] = json_lines()
    assert line["message"] == '127.0.0.1 "GET /healthz?full=1" 200 2 4ms'
    assert (line["peer"], line["client"]) == ("127.0.0.1", "198.51.100.7")
    assert line["request_id"] == "r-1"
    assert (line["method"], line["path"], line["status_code"]) == ("GET", "/healthz?full=1", 200)
    assert (line["size"], line["duration_ms"]) == (2, 4)


# --- A real server (manage.py serve), its log read as a file ----------------------------

SITE = "chat.example.test"


@pytest.fixture(scope="module")
def json_server(tmp_path_factory) -> Iterator[LiveServer]:
    """Logging JSON, with its standard output and error a file, not a terminal, and not
    unbuffered (LiveServer's default): as under systemd."""
    server = LiveServer(
        tmp_path_factory.mktemp("json-server"),
        env={
            "WEBCHAT_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "",
            "ALLOWED_HOSTS": SITE,
            "WEBCHAT_TRUSTED_PROXIES": "127.0.0.1",
        },
    )
    server.start()
    yield server
    server.stop()


def _logged(server: LiveServer) -> list[dict]:
    """The log's lines since the server started serving (before, migrate prints)."""
    lines = server.log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_each_response_is_in_the_log_as_soon_as_it_is_sent(json_server):
    with httpx.Client(base_url=json_server.url, headers={"Host": SITE}) as client:
        for number in range(3):
            response = client.get("/healthz", headers={"X-Request-ID": f"probe-{number}"})

            [line] = [
                line
                for line in _logged(json_server)
                if line["logger"] == "webchat.access"
                and line.get("request_id") == f"probe-{number}"
            ]
            assert line["level"] == "INFO"
            assert line["message"].startswith('127.0.0.1 "GET /healthz" 200 2 ')
            assert (line["method"], line["path"], line["status_code"]) == ("GET", "/healthz", 200)
            assert line["size"] == len(response.content)
            assert line["peer"] == line["client"] == "127.0.0.1"
            assert isinstance(line["duration_ms"], int)


def test_a_refused_socket_is_in_the_log_as_soon_as_it_is_refused(json_server):
    path = "/ws/conversations/1/"
    # No Origin header: AllowedHostsOriginValidator refuses the handshake.
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{json_server.port}{path}", open_timeout=10)

    # Its closing may be logged after the client is told, so it is not looked for.
    lines = [line for line in _logged(json_server) if line.get("path") == path][:2]
    assert [line["message"] for line in lines] == [
        f'127.0.0.1 "WS CONNECTING {path}"',
        f'127.0.0.1 "WS REJECTED {path}"',
    ]
    assert {line["peer"] for line in lines} == {"127.0.0.1"}


def _request_without_host(server: LiveServer) -> str:
    """An HTTP/1.0 probe with no Host header; its X-Request-ID."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status, *headers = answer.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert status.startswith("HTTP/1.0 400 "), status
    [request_id] = [
        value
        for name, _, value in (header.partition(": ") for header in headers)
        if name.lower() == "x-request-id"
    ]
    return request_id


def test_a_missing_or_bad_host_is_one_warning_line_without_a_traceback(json_server):
    without_host = _request_without_host(json_server)
    bad_host = httpx.get(f"{json_server.url}/healthz", headers={"Host": "evil.example"})
    assert bad_host.status_code == 400

    for request_id, host in [
        (without_host, f"127.0.0.1:{json_server.port}"),
        (bad_host.headers["X-Request-ID"], "evil.example"),
    ]:
        refusal, access = [
            line for line in _logged(json_server) if line.get("request_id") == request_id
        ]
        assert refusal["logger"] == "django.security.DisallowedHost"
        assert refusal["level"] == "WARNING"
        assert refusal["message"].startswith(f"Invalid HTTP_HOST header: '{host}'.")
        assert "exc_info" not in refusal
        assert (access["logger"], access["status_code"]) == ("webchat.access", 400)
    assert "Traceback" not in json_server.log.read_text()
