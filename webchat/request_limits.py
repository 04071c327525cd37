"""Limits on what a client sends, enforced before daphne reads it: how long it may take to
send a request's head and the whole request, and how large a body may be.

daphne (Twisted's HTTP server) reads a whole request, its body into a temporary file,
before the application sees any of it, with no time limit but an idle timeout that every
byte resets: a client that sends a byte now and then holds its connection for as long as it
likes, and the application (an ASGI middleware too) would learn a body's size only once all
of it had arrived. ``RequestLimitsFactory`` wraps daphne's HTTP factory with Twisted's
protocol wrappers (``twisted.protocols.policies``), so that each connection's bytes pass
through ``RequestLimits`` first. Of each request it reads only the head, up to its blank
line, and the body's length from ``Content-Length``:

- a head not complete ``headers_timeout`` seconds after the request's first byte (after the
  connection opened, for its first request) is answered 408 and the connection closed;
- a whole request, head and body, not in within ``request_timeout`` likewise;
- a ``Content-Length`` over ``max_body_bytes`` is answered 413 at once, before any of the
  body is read; a body without one (``Transfer-Encoding: chunked``) 411, so that no body
  runs past the length its head gave;
- an ambiguous length (two, or not a number) 400, as Twisted would.

A refused request never reaches daphne. Once a connection becomes a websocket, its bytes
pass untouched: autobahn bounds frames and messages, daphne the handshake.

The factory also builds daphne's requests without Twisted's parsing of form bodies, which
reads a whole multipart body into memory and parses it on the event loop, at several
times its size, for daphne to ignore (Django parses the body itself).
"""

import asyncio
from asyncio import Handle
from collections.abc import Callable
from functools import partial

from django.utils.translation import gettext, gettext_lazy
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.iweb import INonQueuedRequestFactory
from zope.interface import provider

from conversations.images import file_size

# Longer heads are refused; Twisted refuses those over 16 KB itself.
MAX_HEAD_BYTES = 64 * 1024
# After a refusal, how long the client may go on sending (its body, unread) before the
# connection is cut: closing at once, with data unread, would reset the connection before
# the client could read the answer.
LINGER_SECONDS = 2.0
HEADERS_TOO_SLOW = gettext_lazy("The request's headers took too long to arrive.")
REQUEST_TOO_SLOW = gettext_lazy("The request took too long to arrive.")


class RequestLimits(ProtocolWrapper):
    """One connection's requests, checked as they arrive (see the module's docstring)."""

    factory: "RequestLimitsFactory"

    def __init__(self, factory: "RequestLimitsFactory", wrapped_protocol) -> None:
        super().__init__(factory, wrapped_protocol)
        self.head = b""
        self.body_length = self.body_left = 0
        # The end of a body waiting its turn to complete, and what came after it.
        self.held = b""
        self.upgrading = False
        # A websocket's bytes are no longer requests; a refused connection's are dropped.
        self.passing_through = False
        self.refused = False
        self.headers_deadline: IDelayedCall | None = None
        self.request_deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._request_started()

    def dataReceived(self, data: bytes) -> None:
        if self.held:
            self.held += data  # it waits its turn too (daphne may resume the transport)
            return
        while data and not self.refused:
            if self.passing_through:
                super().dataReceived(data)
                return
            data = self._body_received(data) if self.body_left else self._head_received(data)

    def connectionLost(self, reason) -> None:
        self._deadlines_cancel()
        self.factory.body_completion_forget(self)
        super().connectionLost(reason)

    def _head_received(self, data: bytes) -> bytes:
        """Collect the head; once whole, check it and pass it on. Returns what follows it."""
        if self.request_deadline is None:
            self._request_started()  # the first byte of another request on the connection
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end == -1:
            if len(self.head) > MAX_HEAD_BYTES:
                self._refuse(431, gettext("The request's headers are too large."))
            return b""
        head, rest = self.head[: end + 4], self.head[end + 4 :]
        self.head = b""
        if (refusal := self._head_refusal(head)) is not None:
            self._refuse(*refusal)
            return b""
        _cancel(self.headers_deadline)
        super().dataReceived(head)
        if not self.body_left:
            self._request_received()
        return rest

    def _body_received(self, data: bytes) -> bytes:
        body, rest = data[: self.body_left], data[self.body_left :]
        if len(body) == self.body_left and not self.factory.body_completion_admit(self):
            self.held = data
            self.transport.pauseProducing()
            return b""
        self.body_left -= len(body)
        super().dataReceived(body)
        if not self.body_left:
            self._request_received()
        return rest

    def _head_refusal(self, head: bytes) -> tuple[int, str] | None:
        """Why the head is refused (status and sentence), or None; sets the body's length."""
        lengths, chunked, upgrade = [], False, False
        for line in head.lstrip(b"\r\n").split(b"\r\n")[1:]:
            if line[:1] in (b" ", b"\t"):
                return 400, gettext("The request's headers are malformed.")
            name, _, value = line.partition(b":")
            name, value = name.lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                upgrade = value.lower() == b"websocket"
        if chunked:
            return 411, gettext("A request's body must come with its length (Content-Length).")
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return 400, gettext("The request's length (Content-Length) is malformed.")
        length = int(lengths[0]) if lengths else 0
        if length > self.factory.max_body_bytes:
            return 413, gettext(
                "The request is %(size)s; the server takes at most %(limit)s at once."
            ) % {"size": file_size(length), "limit": file_size(self.factory.max_body_bytes)}
        self.body_length = self.body_left = length
        self.upgrading = upgrade
        return None

    def body_completion_resume(self) -> None:
        """The held end of the body may come in now (``RequestLimitsFactory``)."""
        data, self.held = self.held, b""
        self.transport.resumeProducing()
        self.dataReceived(data)

    def _request_started(self) -> None:
        clock = self.factory.clock
        self.headers_deadline = clock.callLater(
            self.factory.headers_timeout, self._refuse, 408, HEADERS_TOO_SLOW
        )
        self.request_deadline = clock.callLater(
            self.factory.request_timeout, self._refuse, 408, REQUEST_TOO_SLOW
        )

    def _request_received(self) -> None:
        self._deadlines_cancel()
        # daphne hands an upgraded connection to the websocket protocol for good.
        self.passing_through = self.upgrading

    def _deadlines_cancel(self) -> None:
        _cancel(self.headers_deadline)
        _cancel(self.request_deadline)
        self.headers_deadline = self.request_deadline = None

    def _refuse(self, status: int, sentence: str) -> None:
        """Answer ``status`` with ``sentence``, then close: as soon as the client does, or
        after LINGER_SECONDS."""
        self._deadlines_cancel()
        self.refused = True
        body = f"{sentence}\n".encode()
        self.transport.write(
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.loseWriteConnection()
        # Kept as the request's deadline, so that a close cancels it.
        self.request_deadline = self.factory.clock.callLater(
            LINGER_SECONDS, self.transport.abortConnection
        )


def _cancel(deadline: IDelayedCall | None) -> None:
    if deadline is not None and deadline.active():
        deadline.cancel()


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}


class RequestLimitsFactory(WrappingFactory):
    """daphne's HTTP factory, its connections wrapped in ``RequestLimits``.

    It also paces the bodies that complete. When a request is complete, daphne starts its
    application (``asyncio.ensure_future``) and copies the whole body into the application's
    queue, in memory; Django reads all of it at the application's first step. Bodies
    completing together (many clients sending their last bytes at once) would all be in
    memory together. So the bodies completed since the last *settle* may total at most
    ``max_body_bytes`` (a single one always completes); a settle is scheduled with
    ``call_soon`` after each completion, so that it runs after the first steps of their
    applications, and lets the held bodies complete in their turn.
    """

    protocol = RequestLimits

    def __init__(
        self,
        wrapped_factory,
        *,
        max_body_bytes: int,
        headers_timeout: float,
        request_timeout: float,
        clock: IReactorTime | None = None,
        call_soon: Callable[[Callable[[], None]], Handle] | None = None,
    ) -> None:
        super().__init__(wrapped_factory)
        self.max_body_bytes = max_body_bytes
        self.headers_timeout = headers_timeout
        self.request_timeout = request_timeout
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        # The running event loop's, by default: the reactor's, once it runs.
        self.call_soon = call_soon
        self.completing = 0
        self.held: list[RequestLimits] = []
        self.settling: Handle | None = None

    def body_completion_admit(self, protocol: RequestLimits) -> bool:
        """Whether ``protocol``'s body may complete now; if not, it is resumed later."""
        if self.completing and self.completing + protocol.body_length > self.max_body_bytes:
            self.held.append(protocol)
            return False
        self.completing += protocol.body_length
        if self.settling is not None:
            self.settling.cancel()
        call_soon = self.call_soon or asyncio.get_running_loop().call_soon
        self.settling = call_soon(self._settle)
        return True

    def body_completion_forget(self, protocol: RequestLimits) -> None:
        if protocol in self.held:
            self.held.remove(protocol)

    def _settle(self) -> None:
        self.settling = None
        self.completing = 0
        held, self.held = self.held, []
        for protocol in held:
            protocol.body_completion_resume()

    def buildProtocol(self, addr) -> RequestLimits:
        wrapper = super().buildProtocol(addr)
        channel = wrapper.wrappedProtocol
        channel.requestFactory = _without_form_parsing(channel.requestFactory)
        return wrapper


def _without_form_parsing(request_factory):
    """``request_factory`` (daphne's request class) making requests that leave form bodies
    unparsed."""
    return provider(INonQueuedRequestFactory)(
        partial(request_factory, parsePOSTFormSubmission=False)
    )
