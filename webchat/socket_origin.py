"""Sockets opened by the site's own pages only.

Websockets are not bound by the same-origin policy: any page the user opens, on another
site or on another port of this host, could open a conversation's socket with the user's
cookie and read it. Browsers send the opening page's origin with every handshake; it must
be the request's own, the same scheme, host and port, or one CSRF_TRUSTED_ORIGINS names, as
Django's CSRF check asks of a form post, and the host one of ALLOWED_HOSTS. Channels'
AllowedHostsOriginValidator compares the host only.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _headers(scope: dict) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _is_secure(scope: dict, headers: dict[str, str]) -> bool:
    """As Django's ``request.is_secure()``: the trusted TLS proxy's header, when present,
    says whether the browser's connection is HTTPS; otherwise this connection does."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower()
        if header in headers:
            return headers[header].split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") == "wss"


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port (the scheme's default when none is written)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _allowed_hosts() -> list[str]:
    # As Django's request.get_host().
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def origin_allowed(scope: dict) -> bool:
    """Whether a socket's handshake comes from one of the site's own pages.

    A handshake without an Origin is let through: every browser sends one, so it comes
    from a program (a script, the benchmark), which still needs the session cookie.
    """
    headers = _headers(scope)
    host = headers.get("host", "")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    if "origin" not in headers:
        return True
    scheme = "https" if _is_secure(scope, headers) else "http"
    own = _origin(f"{scheme}://{host}")
    origin = _origin(headers["origin"])
    return origin is not None and (origin == own or origin in _trusted_origins())


def _trusted_origins() -> set[tuple[str, str, int] | None]:
    """The origins CSRF_TRUSTED_ORIGINS names exactly, which Django's CSRF check accepts
    too: the site's own, when its proxy passes no port in Host (nginx's ``$host``) and the
    site is not on the scheme's default port. Wildcards are not taken."""
    return {_origin(url) for url in settings.CSRF_TRUSTED_ORIGINS if "*" not in url}


class SameOriginValidator:
    """ASGI middleware refusing a socket whose Origin is not the site's own."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier.as_asgi()(scope, receive, send)
