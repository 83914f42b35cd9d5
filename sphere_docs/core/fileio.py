"""Small file helpers shared by the ledger, the manifest and the Sphinx page rewrite."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text", "sync_folder"]


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8", mode: int | None = None,
                      errors: str = "strict", durable: bool = False) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new file, never half of it.

    ``mode`` is the permission bits of the result; by default an existing file keeps
    its own (``mkstemp`` would leave 0600), and a new one gets 0644.  ``durable``
    also flushes the data to disk before the rename, so the new file survives a
    power cut (the file, then its folder entry): worth its cost for the ledger (it
    records workspaces that exist remotely), not for build outputs that the next
    build writes again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, errors=errors) as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename above) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported for folders here (e.g. Windows): the file itself was flushed
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any, *, mode: int | None = None, durable: bool = False,
                      compact: bool = False) -> None:
    """:func:`atomic_write_text` of ``data`` as key-sorted JSON, indented unless ``compact``.

    ``compact`` output is one line, written by the C encoder (``indent`` makes :mod:`json`
    use its pure-Python encoder, about ten times slower on a large document).
    """
    if compact:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    else:
        text = json.dumps(data, indent=1, sort_keys=True)
    atomic_write_text(path, text + "\n", mode=mode, durable=durable)
