"""Every builder: the html family renders embeds, every other builder a static fallback.

The non-HTML builds run with no token and no reachable API: a print or
e-book build never provisions anything.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import TOKEN_ENV
from sphinx_fixtures import (
    build,
    copy_root,
    frames,
    html_pages,
    loader_count,
    loader_right_after_body,
    warnings_of,
)

SENTENCE = "An interactive workspace accompanies this section in the web version of this document."
CAPTIONS = ("Try the exercise: make the tests pass.", "A workspace in a note.", "Written in")


def squeeze(text: str) -> str:
    """Whitespace-normalised text (text, man and LaTeX writers wrap lines)."""
    return re.sub(r"\s+", " ", text)


def output_text(outdir: Path, suffixes: tuple[str, ...]) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(outdir.rglob("*")) if p.suffix in suffixes)


@pytest.mark.parametrize(("builder", "suffixes", "per_embed"), [
    ("latex", (".tex",), SENTENCE),
    ("text", (".txt",), SENTENCE),
    ("man", (".1",), SENTENCE),
    ("texinfo", (".texi",), SENTENCE),
    ("epub", (".xhtml",), SENTENCE),
])
def test_static_builders_get_the_fallback_without_warnings(
        make_app, tmp_path, monkeypatch, builder, suffixes, per_embed):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, builder)
    assert warnings_of(app) == ""
    text = squeeze(output_text(app.outdir, suffixes))
    if builder == "man":  # roff escapes hyphens and quotes; compare the words
        text = text.replace("\\-", "-").replace("\\(aq", "'")
    # the four embeds (rST, rST in an admonition, MyST) each leave the sentence
    assert text.count(per_embed) == 4, builder
    for caption in CAPTIONS:
        assert caption in text, (builder, caption)
    everything = output_text(app.outdir, (".tex", ".txt", ".1", ".texi", ".xhtml", ".html", ".js"))
    assert "sphere-docs-loader" not in everything and "sdk.min.js" not in everything
    assert "data-workspace" not in everything
    assert not (app.outdir / "sphere-workspaces.json").exists()


def test_epub_has_no_script_of_ours(make_app, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app = build(make_app, copy_root("sphere-basic", tmp_path), "epub")
    for page in app.outdir.rglob("*.xhtml"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text or "sphere" not in text, page.name
        assert "sphere-docs-css" not in text and "data-sphere-mode" not in text
    assert "sphere-workspace-fallback" in (app.outdir / "lesson.xhtml").read_text(encoding="utf-8")


def test_fallback_links_to_the_web_version_when_html_baseurl_is_set(make_app, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    app = build(make_app, copy_root("sphere-basic", tmp_path), "text",
                html_baseurl="https://course.example.org/docs/")
    assert warnings_of(app) == ""
    lesson = squeeze((app.outdir / "lesson.txt").read_text(encoding="utf-8"))
    assert f"*{SENTENCE}* https://course.example.org/docs/lesson.html" in lesson


def test_latex_build_of_an_html_env_then_html_provisions_then(make_app, emulator, tmp_path):
    """A LaTeX build sharing the environment provisions nothing; the next HTML build does."""
    src = copy_root("sphere-basic", tmp_path)
    build(make_app, src, "latex", emulator=emulator)
    assert emulator.count("POST /workspaces") == 0
    app = build(make_app, src, "html", emulator=emulator)
    assert warnings_of(app) == ""
    assert emulator.count("POST /workspaces") == 4
    assert sum(len(frames(t)) for t in html_pages(app.outdir).values()) == 4


@pytest.mark.parametrize(("builder", "pages"), [
    ("dirhtml", {"index.html": 1, "lesson/index.html": 2, "mystpage/index.html": 1}),
    ("singlehtml", {"index.html": 4}),
])
def test_dirhtml_and_singlehtml(make_app, emulator, tmp_path, builder, pages):
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, builder, emulator=emulator)
    assert warnings_of(app) == ""
    written = html_pages(app.outdir)
    for name, text in written.items():
        if name in pages:
            assert len([f for f in frames(text) if f.get("data-workspace")]) == pages[name], name
            assert loader_count(text) == 1 and loader_right_after_body(text), name
        else:
            assert loader_count(text) == 0, name
    assert (app.outdir / "sphere-workspaces.json").is_file()
