"""A TCP proxy on loopback whose connections can be cut, as a network drop would."""

import contextlib
import socket
import ssl
import struct
import threading
from typing import Self


class TcpProxy:
    """Forwards a local port to ``target_port``; ``drop()`` resets every open connection.

    The first ``cut_requests`` connections are reset once a request arrives on them, before
    a byte of answer: as a server closing an idle kept-alive connection just as it is reused.
    With ``tls``, clients speak TLS to the proxy (it terminates it with that context).
    """

    def __init__(
        self, target_port: int, *, cut_requests: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.target_port = target_port
        self.cut_left = cut_requests
        self.tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        # Each open connection's two sockets, and the two threads pumping between them.
        self._open: dict[tuple[socket.socket, socket.socket], list[threading.Thread]] = {}
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self.drop()

    def refuse(self) -> None:
        """Close the port and reset every open connection: the target looks down."""
        # Closing alone does not wake the thread waiting in accept(); shutting down does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join()
        self.drop()

    def accept_again(self) -> None:
        """Listen on the same port again, after ``refuse()``."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def drop(self) -> int:
        """Reset every open connection (an RST, no goodbye); return how many were open.

        On return each connection is closed: the client's next write or read fails.
        """
        with self._lock:
            connections, self._open = self._open, {}
        for (client, server), pumps in connections.items():
            with contextlib.suppress(OSError):
                # A zero linger time makes closing send a reset. Closing here would not
                # close a socket another thread is reading; shutting down wakes the pumps,
                # and they close it.
                _reset_on_close(client)
                client.shutdown(socket.SHUT_RDWR)
                server.shutdown(socket.SHUT_RDWR)
            for pump in pumps:
                pump.join()
        return len(connections)

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # closed
            if self.tls is not None:
                try:
                    client = self.tls.wrap_socket(client, server_side=True)
                except OSError:  # the client refused the certificate, say
                    client.close()
                    continue
            if self.cut_left:
                self.cut_left -= 1
                threading.Thread(target=_cut_after_request, args=(client,), daemon=True).start()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # the server is down: so is the connection
                continue
            pumps = [
                threading.Thread(target=self._pump, args=pair, daemon=True)
                for pair in ((client, server), (server, client))
            ]
            with self._lock:  # started under the lock, so that drop() can join them
                self._open[client, server] = pumps
                for pump in pumps:
                    pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with self._lock:
            self._open.pop((source, sink), None)
            self._open.pop((sink, source), None)
        for connection in (source, sink):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes the pump reading the other way
            connection.close()


def _reset_on_close(connection: socket.socket) -> None:
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _cut_after_request(client: socket.socket) -> None:
    with contextlib.suppress(OSError):
        client.recv(65536)
        _reset_on_close(client)
    client.close()
