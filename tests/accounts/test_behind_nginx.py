"""Behind the shipped nginx site, each client is throttled by its own address, whatever it
writes in X-Forwarded-For itself."""

from collections.abc import Iterator

import httpx
import pytest

from benchmarks.nginx import NGINX, NginxSite
from tests.live_server import LiveServer

PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
)


@pytest.fixture
def webchat(tmp_path) -> Iterator[LiveServer]:
    (tmp_path / "webchat").mkdir()
    server = LiveServer(
        tmp_path / "webchat",
        env={"WEBCHAT_TRUSTED_PROXIES": "127.0.0.1", "WEBCHAT_LOGIN_MAX_FAILURES": "2"},
    )
    server.start()
    try:
        server.create_user("dave", PASSWORD)
        yield server
    finally:
        server.stop()


@pytest.fixture
def nginx(webchat) -> Iterator[str]:
    """nginx running the shipped site in front of the server; its HTTPS address."""
    site = NginxSite(upstream_ports=[webchat.port])
    try:
        site.start()
        yield site.url
    finally:
        site.remove()


def _client(nginx: str, local_address: str) -> httpx.Client:
    """A browser on a machine of its own: the loopback has every 127.x address."""
    transport = httpx.HTTPTransport(local_address=local_address, verify=False)
    return httpx.Client(base_url=nginx, transport=transport, timeout=30)


def _sign_in(client: httpx.Client, password: str, *, forged: str) -> int:
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={
            "username": "dave",
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"X-Forwarded-For": forged},
    )
    return response.status_code


def test_each_client_behind_nginx_is_throttled_by_its_own_address(nginx):
    with _client(nginx, "127.0.0.2") as guesser, _client(nginx, "127.0.0.3") as dave:
        # Each forged address differs: were it believed, no address would reach the limit.
        assert _sign_in(guesser, "wrong", forged="192.0.2.1") == 200
        assert _sign_in(guesser, "wrong", forged="192.0.2.2") == 200
        assert _sign_in(guesser, PASSWORD, forged="192.0.2.3") == 429
        # Were every client nginx's 127.0.0.1, Dave would be locked out with the guesser.
        assert _sign_in(dave, PASSWORD, forged="127.0.0.2") == 302
