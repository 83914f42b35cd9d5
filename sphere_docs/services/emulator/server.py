"""The emulator on a real, threaded loopback HTTP server (werkzeug)."""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .app import EmulatorApp, FaultPlan

__all__ = ["EmulatorServer"]

_SECRET_QUERY = re.compile(r"((?:access_token|token)=)[^&\s]+")


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, quiet unless the server was asked to log requests."""

    server: _Server

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

    def shutdown_request(self, request: Any) -> None:
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
