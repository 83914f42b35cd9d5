"""The ledger's file lock (issue 16): cheaper than filelock's, and the same lock.

Each journal line of a first build takes the lock, so it is ``flock`` on one kept
descriptor of ``ledger.json.lock`` instead of filelock's open/stat/lock/close per
acquire.  It must stay the lock filelock takes on POSIX (builds of older
sphere-docs versions use filelock), exclude other processes, time out with the
ledger's own error, and never be "held" by a child of ``fork`` through the
parent's descriptor.  Real files, real processes.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import filelock
import pytest

from sphere_docs.pipeline.ledger import LEDGER_NAME, Ledger, LedgerError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; Windows uses filelock itself")


def lock_path(cache: Path) -> str:
    return str(cache / (LEDGER_NAME + ".lock"))


def entry(n: int) -> dict[str, str]:
    return {"workspace_id": f"{n:032x}", "page": f"p{n}.md"}


def test_a_filelock_holder_keeps_the_ledger_waiting_then_its_error_names_the_fix(tmp_path: Path) -> None:
    Ledger(tmp_path).update(lambda data: None)  # the folder and the lock file exist
    other = filelock.FileLock(lock_path(tmp_path))  # what an older sphere-docs build holds
    with other:
        ledger = Ledger(tmp_path, lock_timeout=0.3)
        with pytest.raises(LedgerError) as caught:
            ledger.append(lambda data: data["entries"].update(k=entry(1)), [("entries", "k")])
        assert "is locked by another build for more than 0.3s" in str(caught.value)
        assert "wait for the other build to finish" in str(caught.value)
    ledger.update(lambda data: data["entries"].update(k=entry(2)))  # free again: written
    assert "k" in Ledger(tmp_path).read()["entries"]


def test_while_the_ledger_writes_filelock_cannot_take_the_lock(tmp_path: Path) -> None:
    seen: list[bool] = []

    def mutate(data: dict[str, Any]) -> None:
        try:
            filelock.FileLock(lock_path(tmp_path), timeout=0).acquire()
        except filelock.Timeout:
            seen.append(True)
        else:  # pragma: no cover - the failure this test exists for
            seen.append(False)

    Ledger(tmp_path).update(mutate)
    assert seen == [True]
    with filelock.FileLock(lock_path(tmp_path), timeout=0):  # released afterwards
        pass


def test_the_lock_is_reentrant_and_released_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)

    def nested(data: dict[str, Any]) -> None:  # a write inside a write (the same thread)
        ledger.append(lambda d: d["entries"].update(inner=entry(3)), [("entries", "inner")])

    ledger.update(nested)
    with filelock.FileLock(lock_path(tmp_path), timeout=0):  # not left held by the inner release
        pass


def test_a_forked_child_does_not_inherit_the_parents_lock(tmp_path: Path) -> None:
    """Sphinx ``-j`` forks: a child holding the parent's descriptor would "hold" the parent's lock."""
    ledger = Ledger(tmp_path, lock_timeout=0.3)
    ledger.update(lambda data: None)
    codes: list[int] = []

    def fork_while_locked(data: dict[str, Any]) -> None:
        with warnings.catch_warnings():  # (pytest runs threads: the child only appends and exits)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: the same Ledger object, the parent's descriptor and count copied
            code = 3
            try:
                ledger.append(lambda d: d["entries"].update(child=entry(1)), [("entries", "child")])
            except LedgerError as exc:
                code = 0 if "is locked by another build" in str(exc) else 4
            except BaseException:
                code = 5
            os._exit(code)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

    ledger.update(fork_while_locked)
    assert codes == [0]  # the child waited for the parent's lock and gave up: it never wrote
    assert "child" not in Ledger(tmp_path).read()["entries"]


def test_the_ledger_keeps_no_descriptor_once_closed(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    ledger = Ledger(tmp_path)
    for i in range(3):
        ledger.append(lambda d, i=i: d["entries"].update({f"k{i}": entry(i)}), [("entries", f"k{i}")])
    ledger.close()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
    ledger.append(lambda d: d["entries"].update(k9=entry(9)), [("entries", "k9")])  # usable after close
    assert set(Ledger(tmp_path).read()["entries"]) == {"k0", "k1", "k2", "k9"}
    ledger.close()
