"""Keep the last good site when a MkDocs build fails.

MkDocs empties ``site_dir`` right after the ``pre_build`` event, long before
``env``, where the plugin provisions workspaces; a build that then fails
(``on_error: fail`` with the API down, a ``--strict`` abort, any exception)
would leave an empty or half-written folder where the last good site was.
Sphinx never has this problem: it writes over the old output.

The design: **set the old site aside, put it back on failure, drop it on success.**

* ``on_pre_build`` (the last plugin to run it, right before MkDocs cleans):
  every entry of ``site_dir`` that MkDocs would delete — everything but hidden
  entries, which MkDocs keeps (a ``.git`` checkout of ``gh-pages`` stays put) —
  is *renamed* into a sibling folder.  Renames in one folder tree are atomic
  and cost no copying, however large the site; ``site_dir`` itself (its
  inode, permissions, a symlink to it) is never replaced.
* ``on_build_error``: the failed build's output is renamed away and the old
  entries are renamed back.
* ``on_post_build`` (the last plugin to run it; after every page and file is
  written): the set-aside folder is dropped — unless ``--strict`` counted
  warnings, because then MkDocs aborts right after this event and
  ``on_build_error`` puts the old site back.

Building into a temporary folder and swapping it in was rejected: other plugins
and ``gh-deploy`` read ``config.site_dir`` after the build, and plugins running
their ``post_build`` after the swap would write into a folder that is gone.

Interruptions (``kill -9``, a power cut, Ctrl-C) are survived by journaling in
folder names.  The sibling folders of ``site`` are::

    .site.sphere-docs-saving     entries being set aside (the move is not complete)
    .site.sphere-docs-kept       the last good site, complete; a build is running
    .site.sphere-docs-restoring  site_dir was cleared; the kept entries are moving back
    .site.sphere-docs-trash      garbage: a failed build's output or a dropped old site

and each step only renames entries or renames one of these folders, so at any
instant one rule brings everything back (:meth:`SiteKeeper.recover`, run at the
start of every build, ``--dirty`` ones too): *saving* → move its entries back
into ``site_dir``; *kept* → the build that set it aside never finished, so its
output is partial: clear ``site_dir`` and move the kept entries back;
*restoring* → finish moving back; *trash* → delete.  A Ctrl-C also restores at
once, at interpreter exit (MkDocs calls ``on_build_error`` for ``Exception``
only).

Not protected, on purpose: ``--dirty`` builds (MkDocs cleans nothing; a failed
dirty build leaves the old pages in place) and ``mkdocs serve`` (it builds into
a throwaway temporary folder).  When the entries cannot be renamed (the site
folder is a mount point, so its sibling is on another file system, or its
parent is read-only), the build goes on as MkDocs would run it, unprotected, and
says so at INFO level.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

__all__ = ["SiteKeeper", "build_flags", "strict_will_abort"]

_STATES = ("saving", "kept", "restoring", "trash")


def build_flags() -> tuple[bool, bool] | None:
    """``(dirty, serving)`` of the MkDocs (or ProperDocs) ``build()`` call running this hook.

    MkDocs passes ``dirty`` and ``serve_url`` to ``commands.build.build`` but to no
    event before ``pre_build`` (``on_startup`` only runs for the command line, not
    for ``build()`` called from Python, and would change the plugin's lifecycle),
    so they are read from that call's frame.  ``None`` when no such frame is found:
    the caller then protects nothing, exactly as MkDocs alone behaves.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "build" and code.co_filename.replace("\\", "/").endswith("/commands/build.py"):
            local = frame.f_locals
            if "dirty" in local and "config" in local:
                serving = local.get("serve_url") or local.get("live_server")
                return bool(local["dirty"]), bool(serving)
        frame = frame.f_back
    return None


def strict_will_abort() -> bool:
    """Whether ``--strict`` has counted warnings, so MkDocs aborts after ``post_build``."""
    for name in ("mkdocs", "properdocs"):
        for handler in logging.getLogger(name).handlers:
            counts = getattr(handler, "get_counts", None)
            if type(handler).__name__ == "CountHandler" and callable(counts) and counts():
                return True
    return False


class SiteKeeper:
    """The journaled set-aside of one site folder (see the module docstring)."""

    def __init__(self, site_dir: str | os.PathLike[str], log: logging.Logger):
        self.site = Path(os.path.abspath(site_dir))
        real = Path(os.path.realpath(self.site))
        self.log = log
        self._folders = {state: real.parent / f".{real.name}.sphere-docs-{state}" for state in _STATES}
        self.kept = False
        self._atexit = False
        self._had_site = True

    def folder(self, state: str) -> Path:
        return self._folders[state]

    # -- the three events

    def save(self) -> bool:
        """Set the site's entries aside; ``True`` if there is now a kept site to restore.

        No site yet (a first build): an empty one is kept, so a build that fails after it
        wrote some pages (MkDocs fills each page's workspaces just before writing it) leaves
        no half site behind either.
        """
        self.recover()
        entries = self._entries(self.site)
        self._had_site = bool(entries)
        saving, kept = self.folder("saving"), self.folder("kept")
        moved: list[str] = []
        try:
            saving.mkdir()
            for name in entries:
                os.rename(self.site / name, saving / name)
                moved.append(name)
            os.rename(saving, kept)
        except OSError as exc:
            for name in moved:  # put back what was moved: the build runs unprotected
                self._try(os.rename, saving / name, self.site / name)
            self._try(os.rmdir, saving)
            self.log.info("sphere-workspaces: cannot set the previous site aside (%s); "
                          "if this build fails, %s will not hold the previous site", _why(exc), self.site)
            return False
        self.kept = True
        atexit.register(self._at_exit)
        self._atexit = True
        return True

    def restore(self) -> None:
        """The build failed: bring the kept site back (its output goes to the trash)."""
        if not self.kept:
            return
        self.kept = False
        self._unregister()
        if self._restore_kept():
            if self._had_site:
                self.log.info("sphere-workspaces: the build failed; %s holds the previous site again", self.site)
            else:
                self.log.info("sphere-workspaces: the build failed; the pages it wrote were removed from %s",
                              self.site)

    def commit(self) -> None:
        """The build succeeded: drop the kept site."""
        if not self.kept:
            return
        self.kept = False
        self._unregister()
        trash = self.folder("trash")
        self._remove(trash)
        try:
            os.rename(self.folder("kept"), trash)
        except OSError:
            try:  # a folder this build made, in the same place: renaming it does not fail in practice
                shutil.rmtree(self.folder("kept"))
            except OSError as exc:
                # Left as "kept", the next build would take it for an interrupted one's: say so.
                self.log.warning("sphere-workspaces: cannot remove %s (%s); delete it before the "
                                 "next build", self.folder("kept"), _why(exc))
        self._remove(trash)

    # -- recovery

    def recover(self) -> None:
        """Finish whatever an interrupted build left half done (see the module docstring)."""
        saving, kept, restoring = self.folder("saving"), self.folder("kept"), self.folder("restoring")
        if saving.is_dir():
            self._move_all(saving, self.site)
            self._try(os.rmdir, saving)
        if kept.is_dir():
            if self._entries(kept):
                self.log.info("sphere-workspaces: an earlier build of %s was interrupted; "
                              "putting back the site it had set aside", self.site)
            else:  # a first build set aside an empty site: what it wrote is partial
                self.log.info("sphere-workspaces: an earlier build of %s was interrupted before it "
                              "finished; removing the pages it wrote", self.site)
            self._restore_kept()
        elif restoring.is_dir():
            self._finish_restoring()
        self._remove(self.folder("trash"))

    def _restore_kept(self) -> bool:
        if not self.folder("kept").is_dir():  # already restored or committed (by a later build)
            return False
        trash = self.folder("trash")
        self._remove(trash)
        try:
            self.site.mkdir(parents=True, exist_ok=True)
            entries = self._entries(self.site)
            if entries:
                trash.mkdir(exist_ok=True)
            for name in entries:
                try:
                    os.rename(self.site / name, trash / name)
                except OSError:
                    _delete(self.site / name)
            os.rename(self.folder("kept"), self.folder("restoring"))
        except OSError as exc:
            self.log.warning("sphere-workspaces: cannot put the previous site back into %s (%s); "
                             "it is kept in %s", self.site, _why(exc), self.folder("kept"))
            return False
        self._finish_restoring()
        self._remove(trash)
        return True

    def _finish_restoring(self) -> None:
        restoring = self.folder("restoring")
        self._move_all(restoring, self.site)
        self._try(os.rmdir, restoring)

    # -- helpers

    def _at_exit(self) -> None:  # Ctrl-C (or SystemExit) in the middle of a build
        self._atexit = False
        self.restore()

    def _unregister(self) -> None:
        if self._atexit:
            atexit.unregister(self._at_exit)
            self._atexit = False

    @staticmethod
    def _entries(folder: Path) -> list[str]:
        """What MkDocs' clean would delete: every entry whose name does not start with a dot."""
        try:
            return sorted(name for name in os.listdir(folder) if not name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _move_all(self, source: Path, target: Path) -> None:
        try:
            target.mkdir(parents=True, exist_ok=True)
            names = os.listdir(source)
        except OSError as exc:
            self.log.warning("sphere-workspaces: cannot move %s back into %s (%s)", source, target, _why(exc))
            return
        for name in names:
            if os.path.lexists(target / name):  # cannot happen unless someone else writes here
                self.log.warning("sphere-workspaces: %s already exists; the kept copy stays in %s",
                                 target / name, source)
                continue
            self._try(os.rename, source / name, target / name)

    def _remove(self, folder: Path) -> None:
        if os.path.lexists(folder):
            _delete(folder)

    def _try(self, func: Callable[..., object], *args: Path) -> None:
        try:
            func(*args)
        except OSError as exc:
            self.log.debug("sphere-workspaces: %s%s failed: %s", getattr(func, "__name__", func), args, exc)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
