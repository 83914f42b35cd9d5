"""What the benchmark scripts share: writing their section of RESULTS.md, stopping a server's process group.

Imported as ``common`` (``python bench/<script>.py`` puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(section: str, start: str, end: str, results: Path = RESULTS) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the old one.

    What stands outside the markers (hand-written notes) is kept; a new section goes at the end.
    """
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    if start in old and end in old:
        new = old[: old.index(start)] + section + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(new)


def stop_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop a server started in its own session (gunicorn's master and workers): TERM, then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
