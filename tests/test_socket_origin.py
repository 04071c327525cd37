"""A conversation's socket opens only from the site's own pages: the same scheme, host and
port as the request, the host one of ALLOWED_HOSTS (webchat/socket_origin.py)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from webchat.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PROXY_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.fixture
def open_socket(conversation, owner):
    """Opens the conversation's socket, signed in as its owner, through the whole stack;
    returns whether it was accepted."""

    async def open_socket(
        origin: str | None, *, host: str = "127.0.0.1:8000", scheme: str = "ws", **headers: str
    ) -> bool:
        client = Client()
        await sync_to_async(client.force_login)(owner)
        name = settings.SESSION_COOKIE_NAME
        sent = {"host": host, "cookie": f"{name}={client.cookies[name].value}", **headers}
        if origin is not None:
            sent["origin"] = origin
        communicator = WebsocketCommunicator(
            application,
            f"/ws/conversations/{conversation.pk}/",
            [(name.replace("_", "-").encode(), value.encode()) for name, value in sent.items()],
        )
        communicator.scope["scheme"] = scheme
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    return open_socket


async def test_a_page_of_the_site_opens_its_socket(open_socket):
    assert await open_socket("http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8001",  # another port of the same host
        "http://127.0.0.1",  # port 80
        "https://127.0.0.1:8000",  # another scheme
        "http://localhost:8000",  # another allowed host
        "https://evil.example",
        "null",  # a sandboxed frame or a file
        "http://127.0.0.1:notaport",
    ],
)
async def test_a_page_of_another_origin_is_refused(open_socket, origin):
    assert not await open_socket(origin)


async def test_a_program_that_sends_no_origin_is_let_through(open_socket):
    """Every browser sends an Origin: a handshake without one is no page of another site,
    and still needs the session cookie."""
    assert await open_socket(None)


async def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin(open_socket):
    # A rebound DNS name pointing at the server: its pages are "same origin" with it.
    assert not await open_socket("http://evil.example:8000", host="evil.example:8000")
    assert not await open_socket(None, host="evil.example:8000")
    assert not await open_socket(None, host="")


async def test_the_default_port_may_be_written_or_left_out(open_socket):
    assert await open_socket("http://localhost", host="localhost:80")
    assert await open_socket("http://localhost:80", host="localhost")


async def test_an_ipv6_host_is_compared_as_such(open_socket):
    assert await open_socket("http://[::1]:8000", host="[::1]:8000")
    assert not await open_socket("http://[::1]:8001", host="[::1]:8000")


async def test_over_tls_the_origin_must_be_https(open_socket):
    assert await open_socket("https://127.0.0.1:8000", scheme="wss")
    assert not await open_socket("http://127.0.0.1:8000", scheme="wss")


async def test_behind_a_trusted_tls_proxy_its_header_gives_the_scheme(open_socket, settings):
    settings.SECURE_PROXY_SSL_HEADER = PROXY_HEADER
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    behind = {"host": "chat.example.com", "x_forwarded_proto": "https"}
    assert await open_socket("https://chat.example.com", **behind)
    assert not await open_socket("http://chat.example.com", **behind)
    assert not await open_socket("https://chat.example.com:8443", **behind)
    # The proxy says plain HTTP: a page served over HTTPS is another origin.
    assert not await open_socket(
        "https://chat.example.com", host="chat.example.com", x_forwarded_proto="http"
    )


async def test_without_a_trusted_proxy_a_forwarded_scheme_is_ignored(open_socket):
    assert not await open_socket("https://127.0.0.1:8000", x_forwarded_proto="https")
    assert await open_socket("http://127.0.0.1:8000", x_forwarded_proto="https")


async def test_an_origin_named_in_csrf_trusted_origins_is_the_sites_own(open_socket, settings):
    """A proxy that passes the host without its port (nginx's $host) in front of a site on
    another port: its pages' origin is the one the settings name, as for Django's CSRF."""
    settings.SECURE_PROXY_SSL_HEADER = PROXY_HEADER
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    behind = {"host": "chat.example.com", "x_forwarded_proto": "https"}
    assert not await open_socket("https://chat.example.com:8443", **behind)

    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com:8443", "https://*.example.com"]
    assert await open_socket("https://chat.example.com:8443", **behind)
    assert not await open_socket("https://chat.example.com:8444", **behind)
    assert not await open_socket("https://other.example.com", **behind)
