"""Helpers for the Sphinx tests (``from sphinx_fixtures import ...``).

Each test copies a root from ``tests/roots/test-sphere-*`` into its own
``tmp_path`` and builds it with ``sphinx.testing``'s ``make_app`` (the
fixture plugin is loaded by ``tests/conftest.py``), with ``sphere_endpoint``
pointed at the ``emulator`` fixture's loopback URL.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import sphinx

ROOTS = Path(__file__).resolve().parent / "roots"
LOADER_TAG = '<script id="sphere-docs-loader">'
BODY_THEN_LOADER = re.compile(r"<body\b[^>]*>" + re.escape(LOADER_TAG))
THEMES = ("alabaster", "furo", "sphinx_rtd_theme", "pydata_sphinx_theme", "sphinx_book_theme")
PROJECT = "eef024c1d14f46319517a65edafb5ee3"


def copy_root(name: str, dest: Path) -> Path:
    """Copy ``tests/roots/test-<name>`` to ``dest/<name>`` and return the copy."""
    target = dest / name
    shutil.copytree(ROOTS / f"test-{name}", target)
    return target


def overrides(emulator: Any = None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if emulator is not None:
        values["sphere_endpoint"] = emulator.url
    values.update(extra)
    return values


#: ``-W`` stops the build at the first warning before Sphinx 8.1 (8.1 made it finish the
#: build, report every warning, then fail, as ``-W --keep-going`` did before).
W_STOPS_AT_FIRST = sphinx.version_info < (8, 1)


def build(make_app: Callable[..., Any], srcdir: Path, buildername: str = "html",
          emulator: Any = None, *, parallel: int = 0, freshenv: bool = False,
          warningiserror: bool = False, **extra: Any) -> Any:
    """A real Sphinx build of ``srcdir``; returns the (built) SphinxTestApp.

    ``warningiserror`` is ``sphinx-build -W`` as Sphinx 8.1+ has it on every version:
    the whole build runs, every warning is in ``app.warning``, and ``statuscode`` is 1
    if there was any. Before 8.1 that is ``-W --keep-going`` (and ``SphinxTestApp``
    only takes ``warningiserror`` from 7.3), so there the app is made without it and
    set to keep going, which counts every warning and fails the build at the end.
    """
    kwargs: dict[str, Any] = {}
    if warningiserror and not W_STOPS_AT_FIRST:
        kwargs["warningiserror"] = True
    app = make_app(buildername, srcdir=srcdir, confoverrides=overrides(emulator, **extra),
                   parallel=parallel, freshenv=freshenv, **kwargs)
    if warningiserror and W_STOPS_AT_FIRST:
        app.keep_going = True  # Sphinx 7: with this, build() sets statuscode 1 on any warning
    try:
        app.build()
    finally:
        # Unregister this app's nodes and directives from docutils' global tables now,
        # so the next app of the same test does not warn "already registered".
        app.cleanup()
    return app


@dataclass(frozen=True)
class Logged:
    """One warning or error a Sphinx build emitted (after ``suppress_warnings``), as data.

    What tests assert on is ours whatever the Sphinx version: the location, the level,
    the sentence and the ``type.subtype``. How Sphinx prints them is not: the
    ``[type.subtype]`` suffix is shown by default only from Sphinx 8 (7.3 has the
    ``show_warning_types`` setting, 7.2 no way at all), so the suffix comes from the
    log record's own ``type``/``subtype`` here, not from the printed line.
    """

    location: str | None  # "path:line", "path" or None, as Sphinx resolved it
    level: str  # WARNING, ERROR or CRITICAL
    message: str  # the sentence passed to the logger: no location, level or suffix
    type: str
    subtype: str

    @property
    def file(self) -> str | None:
        if not self.location:
            return None
        path, _, line = self.location.rpartition(":")
        return path if path and (line.isdigit() or not line) else self.location

    @property
    def line(self) -> int | None:
        tail = (self.location or "").rpartition(":")[2]
        return int(tail) if tail.isdigit() else None

    def __str__(self) -> str:
        """The line Sphinx 8+ prints for it, with its ``[type.subtype]``, on every version."""
        where = f"{self.location}: " if self.location else ""
        kind = f"{self.type}.{self.subtype}" if self.subtype else self.type
        return f"{where}{self.level}: {self.message}" + (f" [{kind}]" if kind else "")


_TYPE_IN_TEXT = re.compile(r" \[(?P<type>[a-z_]+)(?:\.(?P<subtype>[a-z_]+))?\]$")


class _Capture(logging.Filter):
    """Last filter of Sphinx's warning handler: what passes every other filter is shown."""

    def __init__(self, sink: list[Logged]) -> None:
        super().__init__()
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        kind = getattr(record, "type", None) or ""
        sub = getattr(record, "subtype", None) or ""
        message = plain(logging.LogRecord.getMessage(record))
        for suffix in (f" [{kind}.{sub}]", f" [{kind}]"):  # Sphinx 8 appends it to the message
            if kind and message.endswith(suffix):
                message = message[: -len(suffix)]
                break
        else:
            # MyST 3 reports through docutils, writing "[myst.subtype]" into the sentence
            if not kind and (spelt := _TYPE_IN_TEXT.search(message)):
                kind, sub = spelt.group("type"), spelt.group("subtype") or ""
                message = message[: spelt.start()]
        level = ("CRITICAL" if record.levelno >= logging.CRITICAL
                 else "ERROR" if record.levelno >= logging.ERROR else "WARNING")
        self.sink.append(Logged(getattr(record, "location", None) or None, level, message, kind, sub))
        return True


def capturing(setup: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``sphinx.util.logging.setup`` so each app keeps its warnings in ``app.logged``.

    ``conftest.make_app`` installs it for the test, so warnings emitted while the app
    is made (``config-inited``) are kept too.
    """
    from sphinx.util.logging import NAMESPACE, WarningStreamHandler

    def setup_and_capture(app: Any, *args: Any, **kwargs: Any) -> None:
        setup(app, *args, **kwargs)
        app.logged = []
        for handler in logging.getLogger(NAMESPACE).handlers:
            if isinstance(handler, WarningStreamHandler):
                handler.addFilter(_Capture(app.logged))

    return setup_and_capture


def logged(app: Any) -> list[Logged]:
    """Every warning and error the app emitted, in order (made by ``conftest.make_app``)."""
    return list(app.logged)


def warning_lines(app: Any) -> list[str]:
    """The app's warnings as Sphinx 8+ prints them (``[type.subtype]`` shown), on any Sphinx."""
    return [str(entry) for entry in logged(app)]


def ours(app: Any, subtype: str | None = None) -> list[Logged]:
    """The warnings of type ``sphere`` (and ``subtype``, if given)."""
    return [w for w in logged(app) if w.type == "sphere" and subtype in (None, w.subtype)]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """Text without terminal colour codes (Sphinx colours its log when it likes)."""
    return ANSI.sub("", text)


def warnings_of(app: Any) -> str:
    return plain(app.warning.getvalue())


def status_of(app: Any) -> str:
    return plain(app.status.getvalue())


def touch(path: Path, text: str | None = None) -> None:
    """Rewrite (or just touch) a source file so Sphinx sees it as changed."""
    if text is not None:
        path.write_text(text, encoding="utf-8")
    stamp = time.time() + 5  # clearly newer than the last read, whatever the clock resolution
    os.utime(path, (stamp, stamp))


@dataclass(frozen=True)
class Div:
    attrs: dict[str, str | None]
    html: str


class _Divs(HTMLParser):
    """Collects the outer ``.sphere-workspace`` wrappers and the ``data-workspace`` frames."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.wrappers: list[dict[str, str | None]] = []
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "div" and "sphere-workspace" in classes:
            self.wrappers.append(found)
        if tag == "div" and "se-workspace" in classes:
            self.frames.append(found)


def frames(page_html: str) -> list[dict[str, str | None]]:
    """The SDK elements (``.se-workspace``) of a page, in order."""
    parser = _Divs()
    parser.feed(page_html)
    return parser.frames


def wrappers(page_html: str) -> list[dict[str, str | None]]:
    parser = _Divs()
    parser.feed(page_html)
    return parser.wrappers


def embed_markup(page_html: str) -> list[str]:
    """The complete markup of each embed: its wrapper ``<div>`` up to the matching ``</div>``."""
    out = []
    for match in re.finditer(r'<div class="sphere-workspace[ "]', page_html):
        depth = 0
        for tag in re.finditer(r"<(/?)div\b[^>]*>", page_html[match.start():]):
            depth += -1 if tag.group(1) else 1
            if depth == 0:
                out.append(page_html[match.start(): match.start() + tag.end()])
                break
    return out


def html_pages(outdir: Path) -> dict[str, str]:
    """Every ``.html`` file of a build (path relative to outdir -> text), search/genindex too."""
    return {
        p.relative_to(outdir).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(outdir.rglob("*.html"))
        if "_static" not in p.parts and "_sources" not in p.parts
    }


def loader_count(page_html: str) -> int:
    return page_html.count(LOADER_TAG)


def loader_right_after_body(page_html: str) -> bool:
    return BODY_THEN_LOADER.search(page_html) is not None
