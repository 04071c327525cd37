"""How the upstream client reaches the upstream over HTTP.

Straight connections go through aiohttp, by httpx-aiohttp's transport: aiohttp parses HTTP
in C, and a streamed chunk costs the client about a third of the CPU of httpx's own
transport (benchmarks/RESULTS.md, "Upstream transport"). When the environment names a
proxy, httpx's own transport is used, which reads HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and
NO_PROXY as httpx documents them. Both trust the certificate authorities of SSL_CERT_FILE
or SSL_CERT_DIR, else certifi's (httpx.create_ssl_context).
"""

import contextlib
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def upstream_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for a new client: None, for httpx's own, when a proxy is set."""
    # The function httpx reads the proxy variables with, so both agree on what is set.
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return AiohttpUpstreamTransport(limits)


class AiohttpUpstreamTransport(httpx.AsyncBaseTransport):
    """httpx-aiohttp's transport, raising for each failure the error httpx's own transport
    raises for it. httpx-aiohttp 0.2 names a refused connection, an untrusted certificate
    and a connection closed before the answer all ConnectTimeout, so they would read as
    timeouts, and a kept-alive connection the upstream had closed would not be retried."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._transport = AiohttpTransport(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors():
            response = await self._transport.handle_async_request(request)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._transport.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._stream.aclose()


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise aiohttp's errors, as they come or as httpx-aiohttp renamed them, as httpx's."""
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError) as raised:
        error = raised.__cause__ if isinstance(raised, httpx.TransportError) else raised
        if not isinstance(error, aiohttp.ClientError):
            raise
        raise _httpx_error_type(error)(str(error) or type(error).__name__) from error


def _httpx_error_type(error: aiohttp.ClientError) -> type[httpx.TransportError]:
    # Most specific first: aiohttp's errors inherit from one another.
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout
    if isinstance(error, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout
    if isinstance(error, aiohttp.ClientConnectorError):
        # Refused, no such host, or a certificate that is not trusted.
        return httpx.ConnectError
    closed_or_not_http = (
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError
    )
    if isinstance(error, closed_or_not_http):
        # Closed before or during the answer, or an answer that is not HTTP.
        return httpx.RemoteProtocolError
    if isinstance(error, aiohttp.ClientConnectionError):
        return httpx.ReadError
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol
    return httpx.TransportError
