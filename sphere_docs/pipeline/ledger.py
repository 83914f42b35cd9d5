"""The ledger of created workspaces: ``<cache>/ledger.json`` and its journal.

The ledger is the only record of which paid workspaces the builds of a site
hold, so it is written so that nothing is ever lost or silently replaced.
:mod:`sphere_docs.pipeline.provision` decides *what* to record; this module keeps it on
disk: the one schema (:func:`validate_ledger`), reading (:meth:`Ledger.read`,
every entry point: builds, ``doctor``, ``prune``), and the two ways of writing.

On disk
-------
``ledger.json`` — the whole document, replaced whole (temporary file, flushed,
``os.replace``, folder flushed)::

    {"version": 1,
     "serial": 7,            # how many times the file was written whole (absent = 0)
     "entries": {"<ledger key>": {"workspace_id", "workspace_token", ...}},
     "builds":  {"<api_base>|<scope>": {"build_id", "updated_at", "keys": [...]}},
     "intents": {"<id>": {"project_id", "creation_key", "state", "started_at", "window_end", ...}}}

(:mod:`sphere_docs.pipeline.provision` describes each section.)

``ledger.journal`` — what changed since ``ledger.json`` was last written whole,
one JSON document per line, appended::

    {"journal": 1, "serial": 7}                                   # the ledger.json it extends
    {"ops": [["intents", "<id>", {...}], ["intents", "<id2>", {...}]]}
    {"ops": [["intents", "<id>", null], ["entries", "<key>", {...}]]}

Each ``ops`` line is one group commit: every ``[section, key, value]`` sets
``section[key]`` to ``value``, or removes it when ``value`` is ``null``; the
values are checked by the same schema as ``ledger.json``.  Reading the ledger
is reading ``ledger.json`` and applying the journal's lines in order.

Why two files: the provisioner records an intent before each create and the
workspace the moment the create answers.  Rewriting the whole document each
time costs O(ledger) per create, O(M^2) for a build that creates M workspaces
(1,000 creates: two thousand encodings of a 1,000-entry document competing
with page rendering).  An append costs O(change): :meth:`Ledger.append` (the
intents and results, grouped per batch of concurrent workers by
:class:`GroupCommit`) writes one line; an intent's line is flushed to disk
(``fdatasync``) before it returns, so it is durably on disk before its create
is sent.  A result's line is written at once (it survives a ``kill -9`` of the
build) but not flushed on its own: the next intent's flush or the end of the
build flushes it, and a power cut before then loses only what its intent
still names (the next build adopts that workspace).  Each flush of a file
that grew makes the file system commit its journal, which also writes out
what the build wrote meanwhile (the site's pages): fewer flushes keep
rendering from waiting on the disk.
:meth:`Ledger.update` (once per build: the build's record, reconciling,
prune) writes ``ledger.json`` whole with the journal folded in, ``serial``
one higher, and then removes the journal — *compaction*.

What keeps it safe
------------------
* Whole or nothing.  ``ledger.json`` is replaced atomically.  The journal is
  created atomically with its header (temporary file + rename) and only ever
  appended to, one ``write`` per line; a reader ignores a last line without
  its newline (a write in progress, or one a killed build never finished: its
  create was never sent, since the line is flushed before), and the next
  writer cuts it off before appending.  A failed append (disk full) is cut off
  too, and the build stops (:class:`LedgerError`).
* Never applied twice, never lost.  The journal names the ``serial`` of the
  ``ledger.json`` it extends.  Compaction writes the new ``ledger.json`` (serial
  + 1) *before* removing the journal, so a build killed in between leaves a
  journal whose serial is lower than the ledger's: it is already folded in, and
  ignored (and replaced by the next append).  A journal *ahead* of
  ``ledger.json`` (an older copy of ``ledger.json`` put back by hand) is an
  error, never guessed at.  A reader that does not hold the lock re-reads when
  ``ledger.json`` was replaced while it read the journal.
* Damage stops everything.  A ``ledger.json`` or a journal line that is not
  the schema raises :class:`LedgerError` (file, line or key, fix) before
  anything is created; neither file is then written, moved or removed.
* One writer at a time.  Every write holds the file lock ``ledger.json.lock``
  (:class:`FileLock`: ``flock`` on the whole file, the lock :mod:`filelock`
  takes on POSIX, so every version of sphere-docs excludes every other) and starts from what is on disk: a process that sees
  the files changed since its own last write (another build) reads what was
  added (the new journal lines, or everything after a compaction) before it
  applies its change, so concurrent builds merge, as before the journal.
* Private.  Both files are mode 0600 (they hold workspace tokens).

A ledger written before the journal (no ``serial``, no journal) reads as
serial 0; an older sphere-docs reading a ledger whose journal is not folded in
yet sees it as of its last compaction (every build ends with one).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: filelock takes the lock (FileLock)
    fcntl = None  # type: ignore[assignment]

from ..core.errors import SphereDocsError
from ..core.fileio import atomic_write_text, sync_folder

__all__ = [
    "JOURNAL_NAME",
    "LEDGER_NAME",
    "GroupCommit",
    "Ledger",
    "LedgerError",
    "dump_ledger",
    "parse_journal",
    "parse_ledger",
    "parse_time",
    "validate_ledger",
]

LEDGER_NAME = "ledger.json"
JOURNAL_NAME = "ledger.journal"
LEDGER_VERSION = 1
JOURNAL_VERSION = 1
LOCK_TIMEOUT = 60.0
INTENT_STATES = ("in_flight", "unanswered")
#: the sections a journal line may change
SECTIONS = ("entries", "builds", "intents")
#: a lock-free read that keeps seeing ``ledger.json`` replaced under it gives up after this many tries
READ_TRIES = 50

#: the fix for a journal that cannot be read
JOURNAL_FIX = ("move it aside (e.g. rename it to {name}.damaged) to build from ledger.json alone; "
               "the workspaces its lines name stay on your account until you remove them (client panel)")


#: the fix for a ledger that cannot be read, in every message that reports one
MOVE_ASIDE = ("move it aside to start a new ledger (e.g. rename it to {name}.damaged); the "
              "workspaces it lists stay on your account until you remove them (client panel)")


class LedgerError(SphereDocsError):
    """The ledger cannot be read or written; nothing was created or overwritten.

    ``path`` is the file, ``problem`` what is wrong with it (with the place:
    line and column, or the key), ``fix`` what to do.  ``str()`` is one
    sentence with all three, the same in a build, ``doctor`` and ``prune``.
    """

    def __init__(self, path: Path | str, problem: str, fix: str | None = None):
        self.path = Path(path)
        self.problem = problem
        self.fix = fix or MOVE_ASIDE.format(name=self.path.name)
        super().__init__(f"sphere-workspaces: {self.sentence}")

    @property
    def sentence(self) -> str:
        """The message without the ``sphere-workspaces:`` prefix (for ``sphere-docs`` commands)."""
        return f"the ledger {self.path} {self.problem}; {self.fix}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem, self.fix))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_TIME_RE = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$")


def parse_time(text: object) -> float | None:
    """Seconds since the epoch of an API or ledger time stamp (UTC when no offset), or None."""
    if not isinstance(text, str):
        return None
    match = _TIME_RE.match(text)
    if not match:
        return None
    day, clock, zone = match.groups()
    if not zone or zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        return datetime.fromisoformat(f"{day}T{clock}{zone}").timestamp()
    except ValueError:
        return None



class _Shape(Exception):
    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def _found(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _at(base: str, key: str) -> str:
    return f"{base}[{json.dumps(key)}]" if base else json.dumps(key)


def _check(value: Any, kinds: tuple[type, ...], where: str, what: str) -> None:
    # bool is an int to Python, never to the ledger
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _Shape(where, f"expected {what}, found {_found(value)}")


def _check_fields(obj: Any, where: str, fields: Mapping[str, tuple[tuple[type, ...], str, bool]]) -> None:
    _check(obj, (dict,), where, "an object")
    for name, (kinds, what, required) in fields.items():
        if name not in obj:
            if required:
                raise _Shape(where, f"the key {json.dumps(name)} is missing")
            continue
        _check(obj[name], kinds, f"{where}.{name}", what)


_STR = ((str,), "a string")
_OPT_STR = ((str, type(None)), "a string or null")
_ENTRY_FIELDS: dict[str, tuple[tuple[type, ...], str, bool]] = {
    "workspace_id": (*_STR, True),
    "workspace_token": (*_OPT_STR, False),
    **{name: (*_STR, False) for name in ("endpoint", "project_id", "creation_key", "page", "name",
                                          "created_at", "last_used_build", "last_used_at", "note",
                                          "checked_at")},
}
_BUILD_FIELDS: dict[str, tuple[tuple[type, ...], str, bool]] = {
    "build_id": (*_STR, True),
    "updated_at": (*_STR, False),
    "keys": ((list,), "a list of ledger keys", True),
}
_INTENT_FIELDS: dict[str, tuple[tuple[type, ...], str, bool]] = {
    **{name: (*_STR, True) for name in ("endpoint", "project_id", "creation_key", "ledger_key",
                                         "state", "started_at", "window_end")},
    **{name: (*_STR, False) for name in ("page", "name", "build_id", "host", "ended_at", "reason")},
    "pid": ((int,), "a process id", False),
    "fields": ((dict,), "an object of creation fields", False),
}


def validate_ledger(data: Any) -> None:
    """Raise ``ValueError`` naming the first place where ``data`` is not a ledger (the one schema).

    Every key this module reads is checked for its type; keys it does not know
    are left alone (a newer sphere-docs may add some).
    """
    try:
        _validate(data)
    except _Shape as shape:
        raise ValueError(str(shape)) from None


def _validate(data: Any) -> None:
    _check(data, (dict,), "the top level", "an object")
    if "version" not in data:
        raise _Shape("the top level", 'the key "version" is missing')
    version = data["version"]
    _check(version, (int,), "version", "the number 1")
    if version != LEDGER_VERSION:
        raise _Shape("version", f"expected the number 1, found {_found(version)}")
    if "serial" in data:
        _check(data["serial"], (int,), "serial", "a count of writes (a whole number)")
        if data["serial"] < 0:
            raise _Shape("serial", f"expected a count of writes (a whole number), found {data['serial']}")
    if "entries" not in data:
        raise _Shape("the top level", 'the key "entries" is missing')
    for section in SECTIONS:
        _check(data.get(section, {}), (dict,), section, "an object")
        for key, item in data.get(section, {}).items():
            _ITEM_CHECKS[section](item, _at(section, key))


def _validate_entry(entry: Any, where: str) -> None:
    _check_fields(entry, where, _ENTRY_FIELDS)
    if not entry["workspace_id"].strip():
        raise _Shape(f"{where}.workspace_id", "expected a workspace id, found an empty string")


def _validate_build(build: Any, where: str) -> None:
    _check_fields(build, where, _BUILD_FIELDS)
    for i, item in enumerate(build["keys"]):
        _check(item, (str,), f"{where}.keys[{i}]", "a ledger key (a string)")


def _validate_intent(intent: Any, where: str) -> None:
    _check_fields(intent, where, _INTENT_FIELDS)
    if intent["state"] not in INTENT_STATES:
        raise _Shape(f"{where}.state", f"expected one of {', '.join(INTENT_STATES)}, "
                                       f"found {_found(intent['state'])}")
    for name in ("started_at", "window_end", "ended_at"):
        if name in intent and parse_time(intent[name]) is None:
            raise _Shape(f"{where}.{name}", f"expected a time such as 2024-05-01T12:00:00Z, "
                                            f"found {_found(intent[name])}")
    for name, value in intent.get("fields", {}).items():
        _check(value, (str,), f"{where}.fields.{name}", "a string")


_ITEM_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "entries": _validate_entry, "builds": _validate_build, "intents": _validate_intent}


def parse_ledger(raw: bytes, path: Path) -> dict[str, Any]:
    """The ledger in ``raw`` (the bytes of ``path``), validated; :class:`LedgerError` if it is not one."""
    if not raw.strip():
        raise LedgerError(path, "is empty (a ledger is never written empty: it was cut short)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LedgerError(path, f"is damaged: byte {exc.start} (line {line}) is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerError(path, f"is damaged: line {exc.lineno}, column {exc.colno}: {exc.msg} "
                                "(not valid JSON; cut short?)") from None
    except RecursionError:
        raise LedgerError(path, "is damaged: nested too deeply to be a ledger") from None
    if isinstance(data, dict) and isinstance(data.get("version"), int) \
            and not isinstance(data.get("version"), bool) and data["version"] > LEDGER_VERSION:
        raise LedgerError(path, f"was written by a newer sphere-docs (ledger version {data['version']})",
                          fix="upgrade sphere-docs (pip install -U sphere-docs) to build with it")
    try:
        _validate(data)
    except _Shape as shape:
        raise LedgerError(path, f"is damaged: at {shape.where}: {shape.problem}") from None
    data.setdefault("builds", {})
    data.setdefault("intents", {})
    return data  # type: ignore[no-any-return]


def dump_ledger(data: Mapping[str, Any]) -> str:
    """The ledger as JSON text: key-sorted, one line per section (``builds``, ``entries``...).

    Written by the C encoder in one call per section (``indent`` makes :mod:`json`
    use its pure-Python encoder, several times slower; the ledger is written around
    every create).  ``python -m json.tool`` shows it indented.
    """
    lines = (f" {json.dumps(key)}: {json.dumps(data[key], sort_keys=True)}" for key in sorted(data))
    return "{\n" + ",\n".join(lines) + "\n}\n"



# --------------------------------------------------------------------------- the journal's lines


class _Journal:
    """What a journal's bytes say: the serial it extends, its changes, how much of it is whole."""

    __slots__ = ("lines", "ops", "serial", "size")

    def __init__(self, serial: int, ops: list[list[Any]], size: int, lines: int):
        self.serial = serial
        self.ops = ops
        self.size = size  #: bytes of complete lines (a last line without its newline is not counted)
        self.lines = lines  #: complete lines, the header included


def _journal_damage(path: Path, line: int, problem: str) -> LedgerError:
    return LedgerError(path, f"is damaged: line {line}: {problem}",
                       fix=JOURNAL_FIX.format(name=path.name))


def _parse_line(raw: bytes, path: Path, line: int) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _journal_damage(path, line, f"byte {exc.start} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _journal_damage(path, line, f"column {exc.colno}: {exc.msg} (not valid JSON)") from None
    except RecursionError:
        raise _journal_damage(path, line, "nested too deeply to be a journal line") from None


def _parse_ops(raw: bytes, path: Path, first_line: int) -> tuple[list[list[Any]], int, int]:
    """The changes of the complete ``ops`` lines in ``raw``: (ops, bytes used, lines used)."""
    used = raw.rfind(b"\n") + 1
    ops: list[list[Any]] = []
    line = first_line
    for text in raw[:used].split(b"\n")[:-1]:
        record = _parse_line(text, path, line)
        if not isinstance(record, dict) or not isinstance(record.get("ops"), list):
            raise _journal_damage(path, line, 'expected an object with an "ops" list')
        for i, op in enumerate(record["ops"]):
            where = f"ops[{i}]"
            if not (isinstance(op, list) and len(op) == 3 and op[0] in SECTIONS and isinstance(op[1], str)):
                raise _journal_damage(path, line, f"at {where}: expected [section, key, value] with a "
                                                  f"section among {', '.join(SECTIONS)}")
            if op[2] is not None:
                try:
                    _ITEM_CHECKS[op[0]](op[2], _at(op[0], op[1]))
                except _Shape as shape:
                    raise _journal_damage(path, line, f"at {shape.where}: {shape.problem}") from None
            ops.append(op)
        line += 1
    return ops, used, line - first_line


def parse_journal(raw: bytes, path: Path) -> _Journal:
    """The journal in ``raw`` (the bytes of ``path``); :class:`LedgerError` if a complete line is damaged."""
    end = raw.find(b"\n")
    if end < 0:  # it is created with its header in one rename: no whole first line is damage
        raise _journal_damage(path, 1, "the header line is missing (the file is empty or cut short)")
    header = _parse_line(raw[:end], path, 1)
    if not isinstance(header, dict) or "journal" not in header:
        raise _journal_damage(path, 1, 'expected the header {"journal": 1, "serial": N}')
    version = header["journal"]
    if isinstance(version, int) and not isinstance(version, bool) and version > JOURNAL_VERSION:
        raise LedgerError(path, f"was written by a newer sphere-docs (journal version {version})",
                          fix="upgrade sphere-docs (pip install -U sphere-docs) to build with it")
    serial = header.get("serial")
    if version != JOURNAL_VERSION or isinstance(version, bool) or not isinstance(serial, int) \
            or isinstance(serial, bool) or serial < 0:
        raise _journal_damage(path, 1, 'expected the header {"journal": 1, "serial": N}')
    ops, used, lines = _parse_ops(raw[end + 1:], path, 2)
    return _Journal(serial, ops, end + 1 + used, lines + 1)


def _apply(data: dict[str, Any], ops: Iterable[list[Any]]) -> None:
    for section, key, value in ops:
        items = data.setdefault(section, {})
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value


def _signature(path: Path) -> tuple[int, int, int, int, int] | None:
    """Which version of a file this is (a replaced file is another inode), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# --------------------------------------------------------------------------- the file lock


class LockTimeout(Exception):
    """Another process held the ledger's lock for longer than the timeout."""


class FileLock:
    """The ledger's inter-process lock: ``fcntl.flock`` on one kept descriptor of the lock file.

    The lock :mod:`filelock` takes on POSIX (``flock`` on the whole file, which stays
    in place), so builds of any sphere-docs version exclude each other.  Why not
    filelock itself: during a first build the workers take this lock for each journal
    line, and filelock's acquire and release are an ``open``, several ``fstat`` and ``flock``
    calls and a ``close`` each time.  Every one of those system calls hands the GIL back, and
    while MkDocs renders pages on the main thread a worker then waits up to a switch
    interval (5 ms) to get it again: they were most of a create's time and a third of
    its CPU (issue 16).  Kept open, an uncontended acquire is one call and a release one.
    Where ``fcntl`` is missing (Windows) or the file system has no ``flock`` (some
    network mounts), filelock does the job, as before.

    Reentrant within a process (a counter); the threads of a process take turns on the
    ledger's own mutex before they get here.  A descriptor inherited through ``fork``
    is never used (a ``flock`` on it would be the parent's lock): the child opens its own.
    """

    POLL = 0.05  #: seconds between tries while another process holds the lock

    def __init__(self, path: Path, timeout: float):
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._pid = 0
        self._depth = 0
        self._fallback: Any = None  #: a filelock.FileLock where flock cannot be used

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        if self._pid != os.getpid():  # a child of fork: the parent's descriptor and count are not ours
            self._fd, self._pid, self._depth = None, os.getpid(), 0
        if self._depth:
            self._depth += 1
            return
        if self._fallback is None and not self._flock():
            import filelock  # only where flock cannot be used

            self._fallback = filelock.FileLock(str(self.path), timeout=self.timeout)
        if self._fallback is not None:
            import filelock

            try:
                self._fallback.acquire()
            except filelock.Timeout:
                raise LockTimeout from None
        self._depth = 1

    def release(self) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        if self._fallback is not None:
            self._fallback.release()
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:  # an object nobody closed (prune, doctor): no descriptor left behind
        with contextlib.suppress(Exception):
            self.close()

    def _flock(self) -> bool:
        """Take the lock with ``flock``; False where ``flock`` cannot be used here."""
        if fcntl is None:
            return False
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout from None
                time.sleep(self.POLL)
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                    self.close()
                    return False
                raise


# --------------------------------------------------------------------------- ledger


class Ledger:
    """The ledger under ``cache_dir`` (``ledger.json`` and its journal); see the module docstring.

    :meth:`read` answers the current content; :meth:`append` records a few keys'
    changes (O(change), flushed to disk); :meth:`update` rewrites the whole ledger
    with the journal folded in.  Both writes re-read what changed on disk under the
    file lock first, so builds sharing a ledger merge.
    """

    def __init__(self, cache_dir: Path | str, *, lock_timeout: float = LOCK_TIMEOUT):
        self.dir = Path(cache_dir)
        self.path = self.dir / LEDGER_NAME
        self.journal_path = self.dir / JOURNAL_NAME
        self._lock = FileLock(self.dir / (LEDGER_NAME + ".lock"), lock_timeout)
        self._mutex = threading.RLock()  #: threads of this process take turns without polling the file lock
        self._written: bytes | None = None  #: the ledger.json this object wrote last (known valid)
        self._prepared = False
        # What this object knows of the files, valid while the lock is held and they are unchanged:
        self._state: dict[str, Any] | None = None
        self._ledger_sig: tuple[int, ...] | None = None  #: the ledger.json _state was read from
        self._journal_id: tuple[int, int] | None = None  #: (device, inode) of the journal; None: no journal
        self._journal_size = 0  #: bytes of the journal in _state (complete lines)
        self._journal_lines = 0
        self._journal_stale = False  #: the journal is folded in already (a compaction was cut short)
        self._journal_open: tuple[tuple[int, int] | None, int, int] | None = None  #: (journal id, pid, fd)
        self._serial = 0  #: ledger.json's serial

    @staticmethod
    def used_keys(data: Mapping[str, Any]) -> set[str]:
        """Ledger keys that the last build of some site scope used (what prune keeps)."""
        used: set[str] = set()
        for build in data.get("builds", {}).values():
            if isinstance(build, Mapping):
                used.update(str(k) for k in build.get("keys") or ())
        return used

    @staticmethod
    def entry_api_base(key: str, entry: Mapping[str, Any]) -> str:
        """The API endpoint an entry's workspace lives on (older entries only have it in the key)."""
        return str(entry.get("endpoint") or key.split("|", 1)[0])

    @staticmethod
    def empty() -> dict[str, Any]:
        return {"version": LEDGER_VERSION, "entries": {}, "builds": {}, "intents": {}}

    # -- reading

    def _read_bytes(self, path: Path) -> tuple[bytes, tuple[int, ...]] | None:
        """The bytes of ``path`` and the signature of the file they came from; None when there is none."""
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise LedgerError(path, "is a folder, not a file") from None
        except PermissionError:
            raise LedgerError(
                path, "cannot be read: permission denied",
                fix=f"let the user who builds read and write it (e.g. chmod u+rw {path}); "
                    "it is not replaced, so its workspaces stay known") from None
        except OSError as exc:
            raise LedgerError(path, f"cannot be read: {exc.strerror or exc}") from None
        return raw, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _read_ledger(self) -> tuple[dict[str, Any], tuple[int, ...] | None]:
        got = self._read_bytes(self.path)
        if got is None:
            return self.empty(), None
        raw, sig = got
        if raw == self._written:  # our own last write, unchanged since: valid, no need to check again
            data: dict[str, Any] = json.loads(raw)
            data.setdefault("builds", {})
            data.setdefault("intents", {})
            return data, sig
        return parse_ledger(raw, self.path), sig

    def _load(self) -> tuple[dict[str, Any], tuple[int, ...] | None, _Journal | None, tuple[int, int] | None]:
        """ledger.json and the journal as one consistent pair (re-read while ledger.json is replaced)."""
        for _ in range(READ_TRIES):
            data, sig = self._read_ledger()
            got = self._read_bytes(self.journal_path)
            if _signature(self.path) != sig:
                continue  # compacted while we read: the journal we saw may be folded in already
            if got is None:
                return data, sig, None, None
            journal = parse_journal(got[0], self.journal_path)
            serial = data.get("serial", 0)
            if journal.serial > serial:
                raise LedgerError(
                    self.journal_path,
                    f"continues ledger.json with serial {journal.serial}, but ledger.json next to it has "
                    f"serial {serial} (an older copy of ledger.json was put back?)",
                    fix="put back the ledger.json it belongs with, or move the journal aside (e.g. rename it "
                        f"to {JOURNAL_NAME}.damaged) to build from this ledger.json; the workspaces its lines "
                        "name stay on your account until you remove them (client panel)")
            if journal.serial == serial:
                _apply(data, journal.ops)
            return data, sig, journal, (got[1][0], got[1][1])
        raise LedgerError(self.path, f"was replaced {READ_TRIES} times while it was read",
                          fix="build again when the other builds sharing this cache folder have finished")

    def read(self) -> dict[str, Any]:
        """The current content (``ledger.json`` with the journal applied), validated.

        An empty ledger when there is no file yet.  Takes no lock: a build may be
        writing meanwhile (what it is writing is not seen yet).  Raises
        :class:`LedgerError` when a file exists but cannot be used.
        """
        return self._load()[0]

    # -- writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._prepared:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(self.path, f"cannot be created: the cache folder {self.dir} cannot be "
                                             f"made ({exc.strerror or exc})",
                                  fix="set the cache setting to a folder the build can write") from None
            ignore = self.dir / ".gitignore"
            if not ignore.exists():
                with contextlib.suppress(OSError):
                    ignore.write_text("# sphere-docs cache: local state, never commit or publish\n*\n")
            self._prepared = True
        with self._mutex:
            try:
                with self._lock:
                    yield
            except LockTimeout:
                raise LedgerError(self.path, f"is locked by another build for more than {self._lock.timeout:g}s",
                                  fix="wait for the other build to finish, then build again") from None
            except LedgerError:
                self._state = None
                raise
            except OSError as exc:
                self._state = None
                raise LedgerError(self.path, f"cannot be written: {exc.strerror or exc}",
                                  fix=f"make room or give write access in {self.dir}, then build again; "
                                      "the file as it was is kept") from None
            except BaseException:
                self._state = None
                raise

    def _current(self) -> dict[str, Any]:
        """The content on disk, under the lock: what this object knows plus what others added since."""
        state = self._state
        if state is not None and _signature(self.path) == self._ledger_sig:
            try:
                st = os.stat(self.journal_path)
            except FileNotFoundError:
                st = None
            if st is None and self._journal_id is None:
                return state
            if st is not None and (st.st_dev, st.st_ino) == self._journal_id and st.st_size >= self._journal_size:
                if st.st_size > self._journal_size:  # another build appended: apply its lines
                    with open(self.journal_path, "rb") as fh:
                        fh.seek(self._journal_size)
                        tail = fh.read()
                    ops, used, lines = _parse_ops(tail, self.journal_path, self._journal_lines + 1)
                    if not self._journal_stale:
                        _apply(state, ops)
                    self._journal_size += used
                    self._journal_lines += lines
                return state
        data, sig, journal, journal_id = self._load()
        self._state, self._ledger_sig, self._journal_id = data, sig, journal_id
        self._serial = data.get("serial", 0)
        self._journal_size = journal.size if journal is not None else 0
        self._journal_lines = journal.lines if journal is not None else 0
        self._journal_stale = journal is not None and journal.serial < self._serial
        return data

    def append(self, mutate: Callable[[dict[str, Any]], Any], touches: Iterable[tuple[str, str]], *,
               durable: bool = True) -> Any:
        """Let ``mutate`` change the ledger at the ``(section, key)`` places ``touches`` names only;
        append those places' new values to the journal (one ``write``), and with ``durable``
        flush it to disk before this returns.

        O(change), not O(ledger).  Without ``durable`` the line survives the process (a
        ``kill -9``), not a power cut until the next durable write flushes it: for changes
        whose loss the ledger already covers (a create's result: its intent is durable).
        Raises :class:`LedgerError` (and records nothing) when the ledger on disk cannot
        be read, or when the journal cannot be written.
        """
        places = list(dict.fromkeys(touches))
        with self._locked():
            state = self._current()
            had = [key in state[section] for section, key in places]
            result = mutate(state)
            ops = [[section, key, state[section].get(key)] for section, key in places]
            ops = [op for op, before in zip(ops, had, strict=True) if op[2] is not None or before]
            if ops:
                self._write_line(ops, durable)
            return result

    def _write_line(self, ops: list[list[Any]], durable: bool) -> None:
        line = (json.dumps({"ops": ops}, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        if self._journal_id is None or self._journal_stale:  # a new journal: header and line in one rename
            header = json.dumps({"journal": JOURNAL_VERSION, "serial": self._serial}) + "\n"
            atomic_write_text(self.journal_path, header + line.decode("utf-8"), mode=0o600, durable=True)
            st = os.stat(self.journal_path)
            self._journal_id = (st.st_dev, st.st_ino)
            self._journal_size = st.st_size
            self._journal_lines = 2
            self._journal_stale = False
            return
        fd = self._journal_fd()
        try:
            if os.fstat(fd).st_size != self._journal_size:
                os.ftruncate(fd, self._journal_size)  # a line a killed build never finished
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                (getattr(os, "fdatasync", None) or os.fsync)(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._journal_size)
            self._close_journal()
            raise
        self._journal_size += len(line)
        self._journal_lines += 1

    def _journal_fd(self) -> int:
        """The journal open for appending, kept open while it stays the same file (fewer system calls
        per line: see :class:`FileLock`); a descriptor inherited through ``fork`` is not used."""
        kept = self._journal_open
        if kept is not None and kept[0] == self._journal_id and kept[1] == os.getpid():
            return kept[2]
        self._close_journal()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._journal_id:  # replaced since _current() looked: read again
            os.close(fd)
            self._state = None
            raise LedgerError(self.journal_path, "was replaced while it was written",
                              fix="build again when the other builds sharing this cache folder have finished")
        self._journal_open = (self._journal_id, os.getpid(), fd)
        return fd

    def _close_journal(self) -> None:
        kept, self._journal_open = self._journal_open, None
        if kept is not None and kept[1] == os.getpid():
            with contextlib.suppress(OSError):
                os.close(kept[2])

    def close(self) -> None:
        """Close the descriptors this object keeps open (the lock file's and the journal's)."""
        with self._mutex:
            self._close_journal()
            self._lock.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._close_journal()

    def update(self, mutate: Callable[[dict[str, Any]], Any]) -> Any:
        """Re-read the ledger under the lock, let ``mutate`` change it, write it whole, atomically
        and durably, with the journal folded in (then removed): a compaction.

        Raises :class:`LedgerError` (and writes nothing) when the files on disk cannot be
        read, or when the ledger cannot be written.
        """
        with self._locked():
            data = self._current()
            self._state = None  # ``data`` is the caller's from here on
            result = mutate(data)
            data["serial"] = self._serial + 1
            text = dump_ledger(data)
            # workspace tokens: private to the builder
            atomic_write_text(self.path, text, mode=0o600, durable=True)
            self._written = text.encode("utf-8")
            self._close_journal()
            if self._journal_id is not None:  # folded in; a removal cut short leaves it stale, not wrong
                with contextlib.suppress(OSError):
                    self.journal_path.unlink()
                    sync_folder(self.dir)
            return result


# --------------------------------------------------------------------------- group commit


class _Change:
    __slots__ = ("apply", "done", "durable", "error", "result", "touches")

    def __init__(self, apply: Callable[[dict[str, Any]], Any], touches: Iterable[tuple[str, str]] | None,
                 durable: bool):
        self.apply = apply
        self.durable = durable
        self.touches = None if touches is None else list(touches)
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """The changes of concurrent workers go to the ledger together: one journal line per batch.

    :meth:`apply` returns once the change is on disk (or raises the write's error).
    A change that names the places it touches is appended (:meth:`Ledger.append`,
    flushed to disk when some change of the batch is ``durable``); one that does not
    (``touches=None``) makes its batch a whole write (:meth:`Ledger.update`).
    """

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._cond = threading.Condition()
        self._queue: list[_Change] = []
        self._busy = False

    def apply(self, change: Callable[[dict[str, Any]], Any],
              touches: Iterable[tuple[str, str]] | None = None, *, durable: bool = True) -> Any:
        item = _Change(change, touches, durable)
        with self._cond:
            self._queue.append(item)
            while self._busy and not item.done:
                self._cond.wait()
            if not item.done:
                batch, self._queue = self._queue, []
                self._busy = True
        if not item.done:
            error: BaseException | None = None
            try:
                def mutate(data: dict[str, Any]) -> None:
                    for each in batch:
                        each.result = each.apply(data)
                if any(each.touches is None for each in batch):
                    self.ledger.update(mutate)
                else:
                    self.ledger.append(mutate, (place for each in batch for place in each.touches or ()),
                                       durable=any(each.durable for each in batch))
            except BaseException as exc:  # the writer's error is every waiter's error
                error = exc
            with self._cond:
                for each in batch:
                    each.error = error
                    each.done = True
                self._busy = False
                self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result
