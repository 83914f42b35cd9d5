"""The emulator on a real, threaded loopback HTTP server (werkzeug).

Connections are kept alive (HTTP/1.1), as the real API's are: werkzeug's own
handler closes every connection, so :class:`_Handler` answers each request
itself, with the whole body read first and a ``Content-Length`` on every
answer.  An idle connection is closed after :data:`IDLE_TIMEOUT` seconds, a
request with a chunked or large body gets werkzeug's handling (and
``Connection: close``), and :meth:`EmulatorServer.stop` closes the open
connections too, so a stopped emulator refuses like a stopped server.  Keep-alive
is transport only: the API's behaviour is the same on a new connection.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

try:  # werkzeug >= 3.1; the same tuple on 3.0 (the floor), which does not export it
    from werkzeug.serving import connection_dropped_errors
except ImportError:  # pragma: no cover - werkzeug 3.0
    connection_dropped_errors = (ConnectionError, TimeoutError, ssl.SSLEOFError)

from .app import EmulatorApp, FaultPlan

__all__ = ["EmulatorServer"]

_SECRET_QUERY = re.compile(r"((?:access_token|token)=)[^&\s]+")
#: seconds an idle kept-alive connection stays open (also the limit for reading a request)
IDLE_TIMEOUT = 10.0
#: largest request body read ahead on a kept-alive connection (larger: werkzeug's handling, then close)
BODY_MAX = 1 << 20
_NO_BODY = frozenset({204, 304})


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler with HTTP/1.1 keep-alive, quiet unless the server was asked to log requests."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def run_wsgi(self) -> None:
        length = (self.headers.get("Content-Length") or "0").strip()
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() \
                or not length.isdigit() or int(length) > BODY_MAX:
            self.close_connection = True
            return super().run_wsgi()  # says Connection: close itself
        environ = self.environ = self.make_environ()
        # The whole body first, so nothing of it is left to be read as the next request.
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)) if int(length) else b"")
        answer: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return written.append

        try:
            body_iter = self.server.app(environ, start_response)
            try:
                written.extend(body_iter)
            finally:
                if hasattr(body_iter, "close"):
                    body_iter.close()
        except connection_dropped_errors as exc:  # also an emulated reset: no answer at all
            self.connection_dropped(exc, environ)
            return
        except Exception as exc:
            self.close_connection = True
            answer[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain; charset=utf-8")]]
            written[:] = [b"Internal Server Error"]
            self.server.log("error", f"Error on request: {type(exc).__name__}: {exc}")
        status, headers = answer
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        body = b"".join(written)
        self.send_response(code, reason)
        has_length = False
        for key, value in headers:
            lower = key.lower()
            if lower in ("connection", "transfer-encoding", "keep-alive"):
                continue
            has_length = has_length or lower == "content-length"
            self.send_header(key, value)
        if not has_length and code not in _NO_BODY and code >= 200 and environ["REQUEST_METHOD"] != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write: two small writes on a kept-alive connection would
        # wait for the client's delayed ACK (Nagle), 40 ms per answer.
        self._headers_buffer.append(b"\r\n")
        if body and environ["REQUEST_METHOD"] != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.log_requests:
            # never print a token given in the query string
            line = _SECRET_QUERY.sub(r"\1***", self.requestline)
            self.log("info", '"%s" %s %s', line, code, size)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        # Also reached by an emulated reset: never read another request from this socket.
        self.close_connection = True

    def log_error(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_error(format, *args)


class _Server(ThreadedWSGIServer):
    log_requests = False

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.open_connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def close_open_connections(self) -> None:
        """Wake every handler waiting on a kept-alive connection: the connection closes."""
        with self._connections_lock:
            connections = list(self.open_connections)
        for sock in connections:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.open_connections.discard(request)
        # An emulated reset armed SO_LINGER (on, 0): skip shutdown(SHUT_WR), which
        # would send FIN first, so close() sends a bare RST as a crashed peer would.
        try:
            onoff, linger = struct.unpack(
                "ii", request.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
        except OSError:
            onoff, linger = 0, 0
        if onoff and not linger:
            self.close_request(request)
        else:
            super().shutdown_request(request)


class EmulatorServer:
    """The emulator served on ``host:port`` (port 0 = a free one) in a background thread.

    >>> with EmulatorServer(token="secret", start_delay=0) as server:   # doctest: +SKIP
    ...     requests.get(server.url + "/api/v1/test", params={"access_token": "secret"})

    ``url`` is the API endpoint setting (``http://127.0.0.1:PORT``), ``host``
    the SDK host (``127.0.0.1:PORT``, https off), ``app`` the
    :class:`~sphere_docs.services.emulator.app.EmulatorApp`.  Keyword arguments other
    than the address go to the app (``clock=``, ``slots=``, ``jitter=``,
    ``faults=``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        start_delay: float = 1.0,
        projects: Mapping[str, str] | None = None,
        latency: float = 0.0,
        *,
        jitter: float = 0.0,
        faults: Mapping[str, Any] | FaultPlan | None = None,
        clock: Callable[[], float] | None = None,
        slots: int | None = None,
        log_requests: bool = False,
    ):
        self.app = EmulatorApp(token=token, start_delay=start_delay, projects=projects,
                               latency=latency, jitter=jitter, faults=faults, clock=clock,
                               slots=slots)
        self._server = _Server(host, port, self.app, _Handler)
        self._server.log_requests = log_requests
        self.port: int = int(self._server.server_address[1])
        self.host = f"{host}:{self.port}"
        self.url = f"http://{self.host}"
        self._stopped = False
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"sphere-emulator-{self.port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<EmulatorServer {self.url}>"

    # conveniences delegated to the app
    def count(self, route: str) -> int:
        return self.app.count(route)

    def stats(self) -> dict[str, Any]:
        return self.app.stats()

    def reset_stats(self) -> None:
        self.app.reset_stats()

    def set_faults(self, **kw: Any) -> None:
        self.app.set_faults(**kw)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent); wakes emulated hangs."""
        if self._stopped:
            return
        self._stopped = True
        self.app.close()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_open_connections()
        self._thread.join(timeout=5)

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (or :meth:`stop` from another thread)."""
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
