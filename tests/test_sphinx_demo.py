"""``sphinx_demo/`` builds with warnings as errors, for the web and for print."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import assert_no_leak
from sphinx_fixtures import build, frames, html_pages, loader_count, warnings_of

DEMO = Path(__file__).resolve().parent.parent / "sphinx_demo"


@pytest.fixture
def demo_src(tmp_path, monkeypatch):
    src = tmp_path / "sphinx_demo"
    shutil.copytree(DEMO, src, ignore=shutil.ignore_patterns("_build", ".sphere-docs-cache"))
    for name in ("SPHERE_DEMO_THEME", "SPHERE_DEMO_ON_ERROR", "SPHERE_DEMO_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return src


@pytest.mark.slow
def test_demo_html_with_warnings_as_errors(make_app, emulator, demo_src):
    app = build(make_app, demo_src, emulator=emulator, warningiserror=True)
    assert app.statuscode == 0 and warnings_of(app) == ""
    pages = html_pages(app.outdir)
    embeds = {name: len(frames(text)) for name, text in pages.items() if frames(text)}
    assert embeds == {"index.html": 1, "lessons/build-mode.html": 3,
                      "lessons/lazy-mode.html": 2, "lessons/print.html": 1}
    assert loader_count(pages["getting-started.html"]) == 0
    assert loader_count(pages["reference.html"]) == 0
    assert pages["lessons/lazy-mode.html"].count('data-sphere-mode="lazy"') == 2
    assert emulator.count("POST /workspaces") == 5
    assert ":inactivity-timeout:" in pages["reference.html"]  # the generated options table
    assert_no_leak(texts=[app.status.getvalue(), app.warning.getvalue()], roots=[demo_src])


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["latex", "text"])
def test_demo_print_builds_with_warnings_as_errors(make_app, demo_src, builder, monkeypatch):
    monkeypatch.delenv("SPHERE_ENGINE_ACCESS_TOKEN", raising=False)
    app = build(make_app, demo_src, builder, warningiserror=True)
    assert app.statuscode == 0 and warnings_of(app) == ""
