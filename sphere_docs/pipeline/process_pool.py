"""The provisioner's workers in a child process, so API calls never compete with page rendering.

Why (issue 16): a build-mode first build makes one create per embed, and each
create is about 2 ms of Python (the HTTP stack, the ledger's journal line) plus a
dozen system calls.  On worker threads that Python holds the GIL the main thread
needs to render pages, and after every system call a worker waits up to a switch
interval (5 ms) to get the GIL back while the main thread is busy: at 1,000 creates
the build took 1.2-1.5x the time of the same site without the plugin.  In a child
process the creates run on another core and the build process only sends each
embed (one ``send`` per page) and receives each answer.

What runs where:

* the parent keeps everything else of :class:`~sphere_docs.pipeline.provision.ResolveSession`:
  reading the ledger, reconciling intents, the deployed site's manifest, progress,
  ``on_error``, Ctrl-C and SIGTERM, and recording the build (:meth:`Provisioner._conclude`);
* the child runs :meth:`Provisioner._guarded` for each embed on its own thread pool
  (the same ``concurrency``): the check or the create, its intent and its result in
  the journal, exactly as the thread pool does, and sends back the ``_Outcome``.

:class:`ProcessPool` has the part of :class:`~concurrent.futures.ThreadPoolExecutor`'s
interface the session uses (``submit`` answering a ``Future``, ``shutdown``) plus
:meth:`ProcessPool.stop`, the session's stop event carried to the child.

When it is used (:func:`can_fork`): on Linux, from the main thread of a process
that runs no other thread (``mkdocs build``, ``sphere-docs`` commands).  The child
is a ``fork`` of the build, so it needs no start-up and no pickled settings.
Elsewhere (``mkdocs serve`` runs a server thread, macOS and Windows have no safe
fork) the thread pool runs as before; ``SPHERE_DOCS_PROVISION_PROCESS=0`` forces
the thread pool.

Nothing is lost when either side dies: the child ignores SIGINT (the build's
Ctrl-C reaches the parent, which stops the child as it stops its threads); when
the parent dies (``kill -9``) the child sees the pipe close, starts nothing new,
finishes and records the calls in flight, and exits.  A child killed with its
creates in flight leaves their intents in the ledger, as a killed build does.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection, Pipe
from typing import TYPE_CHECKING, Any

from ..core.errors import SphereDocsError
from ..core.options import truth

if TYPE_CHECKING:
    from .provision import EmbedRequest, Provisioner, _Outcome

__all__ = ["ProcessPool", "can_fork"]

ENV_SWITCH = "SPHERE_DOCS_PROVISION_PROCESS"


def can_fork() -> bool:
    """May the provisioner's workers run in a forked child here (see the module docstring)?"""
    if truth(os.environ.get(ENV_SWITCH, "")) is False:
        return False
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.current_thread() is threading.main_thread() and threading.active_count() == 1)


class ProcessPool:
    """``concurrency`` workers in a forked child (see the module docstring)."""

    def __init__(self, provisioner: Provisioner, concurrency: int, stop_early: bool):
        self._futures: dict[int, Future[_Outcome]] = {}
        self._next = 0
        self._lock = threading.Lock()  #: one sender at a time on the pipe
        self._closed = False
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        ours, theirs = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # the child
            ours.close()
            code = 1
            try:
                code = _Child(provisioner, theirs, concurrency, stop_early).serve()
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self._conn = ours
        self._logger = provisioner.logger
        self._reader = threading.Thread(target=self._read, name="sphere-provision-answers", daemon=True)
        self._reader.start()

    def submit(self, lkey: str, request: EmbedRequest, entry: Any, deployed: str | None) -> Future[_Outcome]:
        future: Future[_Outcome] = Future()
        with self._lock:
            tid = self._next
            self._next += 1
            self._futures[tid] = future
            future.set_running_or_notify_cancel()
            self._send(("run", tid, lkey, request, entry, deployed))
        return future

    def stop(self) -> None:
        """Start nothing new (what the child picks up next is skipped); calls in flight finish."""
        with self._lock:
            self._send(("stop",))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if cancel_futures:
                self._send(("stop",))
            if not self._closed:
                self._send(("close",))
                self._closed = True
        if wait:
            self._reader.join()

    def _send(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError, EOFError):  # the child is gone: the reader fails what is left
            self._conn.send(message)

    def _read(self) -> None:
        try:
            while True:
                try:
                    message = self._conn.recv()
                except Exception:  # the child is gone (or sent what cannot be read): fail what is left
                    break
                kind = message[0]
                if kind == "done":
                    with self._lock:
                        future = self._futures.pop(message[1])
                    future.set_result(message[2])
                elif kind == "failed":
                    with self._lock:
                        future = self._futures.pop(message[1])
                    future.set_exception(message[2])
                elif kind == "log":
                    _, level, text, extra = message
                    self._logger.log(level, "%s", text, extra=extra)
        finally:
            lost = SphereDocsError("the provisioning process ended without answering (its creates in "
                                   "flight are named in the ledger; sphere-docs doctor lists them)")
            with self._lock:
                left, self._futures = list(self._futures.values()), {}
            for future in left:  # outside the lock: their callbacks may take the session's locks
                if not future.done():
                    future.set_exception(lost)
            self._conn.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


class _ForwardLogs(logging.Handler):
    """The child's provisioner log lines, sent to the parent's logger (with their ``extra`` flags)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]):
        super().__init__(logging.DEBUG)
        self._send_message = send

    def emit(self, record: logging.LogRecord) -> None:
        from .provision import FALLBACK_RECORD_FLAG

        flag = getattr(record, FALLBACK_RECORD_FLAG, None)
        self._send_message(("log", record.levelno, record.getMessage(),
                            {FALLBACK_RECORD_FLAG: flag} if flag is not None else None))


class _Child:
    def __init__(self, provisioner: Provisioner, conn: Connection, concurrency: int, stop_early: bool):
        self.prov = provisioner
        self.conn = conn
        self.concurrency = concurrency
        self.stop_early = stop_early
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock, contextlib.suppress(OSError, EOFError):  # parent gone: the ledger has it
            self.conn.send(message)

    def serve(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C handling stops us
        gc.freeze()  # the build's objects are the parent's: never scanned (or copied) here
        prov = self.prov
        forward = logging.getLogger(f"sphere_docs.pipeline.process_pool.{os.getpid()}")
        forward.propagate = False
        forward.setLevel(logging.DEBUG)
        forward.handlers = [_ForwardLogs(self.send)]
        prov.logger = forward
        prov._snapshot = dict(prov._snapshot)
        prov._client = None  # a connection is never shared with the parent
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sphere-provision")
        try:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):  # the parent died: start nothing new, finish what runs
                    self.stop.set()
                    break
                kind = message[0]
                if kind == "run":
                    _, tid, lkey, request, entry, deployed = message
                    if entry is not None:
                        prov._snapshot[lkey] = entry
                    if deployed is not None:
                        prov._deployed[lkey] = deployed
                    pool.submit(self.run, tid, lkey, request, entry)
                elif kind == "stop":
                    self.stop.set()
                elif kind == "close":
                    break
        finally:
            pool.shutdown(wait=True)
            prov.ledger.close()
            if prov._client is not None:
                prov._client.close()
            self.conn.close()
        return 0

    def run(self, tid: int, lkey: str, request: EmbedRequest, entry: Any) -> None:
        prov = self.prov
        try:
            outcome = prov._guarded(self.stop, self.stop_early, prov.client, lkey, request, entry)
            self.send(("done", tid, _portable_outcome(outcome)))
        except BaseException as exc:  # a bug or the client's settings: the parent raises it
            self.send(("failed", tid, _portable(exc)))


def _portable_outcome(outcome: _Outcome) -> _Outcome:
    """``outcome`` with errors that survive pickling (an error that does not becomes its text)."""
    if outcome.fatal is not None and _portable(outcome.fatal) is not outcome.fatal:
        outcome.fatal = SphereDocsError(str(outcome.fatal))
    if outcome.error is not None and _portable(outcome.error) is not outcome.error:
        from ..api.errors import SphereEngineError

        outcome.error = SphereEngineError(str(outcome.error))
    return outcome


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else one of ours with its text (a setting's error stays one)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return SphereDocsError(str(exc)) if isinstance(exc, SphereDocsError) else \
            RuntimeError(f"{type(exc).__name__}: {exc}")
