"""Helpers for the Sphinx tests (``from sphinx_fixtures import ...``).

Each test copies a root from ``tests/roots/test-sphere-*`` into its own
``tmp_path`` and builds it with ``sphinx.testing``'s ``make_app`` (the
fixture plugin is loaded by ``tests/conftest.py``), with ``sphere_endpoint``
pointed at the ``emulator`` fixture's loopback URL.
"""

from __future__ import annotations

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
