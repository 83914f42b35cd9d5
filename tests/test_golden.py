"""Cross-engine golden tests, by capability: the same sources through every engine, against one file.

Capabilities (one golden file each, in ``tests/golden/``):

* **naming** — the names every engine gives the embeds of one page;
* **problems** — every problem of a page with mistakes: line, code, severity, sentence;
* **html** — the HTML of a lazy embed (no API involved: byte for byte the same in every engine).

Engines: plain Python-Markdown (``markdown``), MkDocs (``mkdocs``), Sphinx reading rST
(``sphinx-rst``) and MyST (``sphinx-myst``), and ``sphere-docs check`` on both syntaxes
(``check-md``, ``check-rst``).  A Markdown page is ``lesson.md`` and an rST page ``lesson.rst``
everywhere, so the page part of a default name is the only thing the syntax changes.

Regenerate after an intended change with ``SPHERE_UPDATE_GOLDEN=1 python3 -m pytest tests/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort
from sphinx_fixtures import build as sphinx_build
from sphinx_fixtures import ours as sphere_warnings

from sphere_docs.core.catalog import Code
from sphere_docs.core.settings import SiteSettings
from sphere_docs.markdown import SphereWorkspaceExtension
from sphere_docs.tools.check import check_paths

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("SPHERE_UPDATE_GOLDEN") == "1"
P = "eef024c1d14f46319517a65edafb5ee3"
Q = "0123456789abcdef0123456789abcdef"
SDK_HOST = "12345678.containers.sphere-engine.com"
LAZY = "https://lazy.example.org/workspaces"
SETTINGS = {"mode": "lazy", "lazy_endpoint": LAZY, "sdk_host": SDK_HOST}
ENGINES = ["markdown", "mkdocs", "sphinx-rst", "sphinx-myst", "check-md", "check-rst"]


def md(*embeds: tuple[str, ...]) -> str:
    body = "\n".join(f"```{{sphere-workspace}} {lines[0]}\n" + "".join(f"{x}\n" for x in lines[1:]) + "```\n"
                     for lines in embeds)
    return "# Lesson\n\n" + body


def rst(*embeds: tuple[str, ...]) -> str:
    body = "\n".join(f".. sphere-workspace:: {lines[0]}\n" + "".join(f"   {x}\n" for x in lines[1:])
                     for lines in embeds)
    return "Lesson\n======\n\n" + body


#: capability -> the embeds of its one page (project id, then option lines)
PAGES: dict[str, list[tuple[str, ...]]] = {
    "naming": [(P,), (P,), (P, ":name: intro"), (Q,), (P, ":inactivity-timeout: 30"), (P, ":height: 400px")],
    "problems": [(P, ":heigth: 300px", ":height: tall", ":mode: lazzy"), (P, ":name: twin"), (P, ":name: twin"),
                 ("",), (P, ":launch: hover")],
    "html": [(P, ":name: sandbox", ":height: 420px", ":launch: visible", ":class: wide")],
}


def source(capability: str, syntax: str) -> str:
    embeds = PAGES[capability]
    return rst(*embeds) if syntax == "rst" else md(*embeds)


# -------------------------------------------------------------------------- the engines


def run_markdown(capability: str, tmp_path: Path, make_app: Any, caplog: Any) -> dict[str, Any]:
    ext = SphereWorkspaceExtension(settings=SiteSettings(**SETTINGS), deferred=True)
    converter = markdown.Markdown(extensions=["pymdownx.superfences", ext])
    ext.begin_page("lesson.md")
    html = converter.convert(source(capability, "md"))
    embeds, errors = ext.finish_page()
    return {"names": [e.spec.name for e in embeds],
            "problems": [(e.line, e.code.value, e.code.severity.value, e.message) for e in errors],
            "html": html}


def run_mkdocs(capability: str, tmp_path: Path, make_app: Any, caplog: Any) -> dict[str, Any]:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n")
    (tmp_path / "docs" / "lesson.md").write_text(source(capability, "md"))
    config = {"site_name": "Golden", "docs_dir": "docs", "site_dir": "site",
              "markdown_extensions": ["pymdownx.superfences"], "plugins": [{"sphere-workspaces": SETTINGS}]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    with caplog.at_level(logging.WARNING), contextlib.suppress(Abort):  # a page with mistakes aborts
        mkdocs_build(load_config(str(tmp_path / "mkdocs.yml")))
    located = re.compile(r"^lesson\.md:(\d+): (.*)$")
    problems = [(int(m[1]), m[2]) for r in caplog.records if r.levelno >= logging.ERROR
                and (m := located.match(r.getMessage()))]
    page = tmp_path / "site" / "lesson" / "index.html"
    manifest = tmp_path / "site" / "sphere-workspaces.json"
    return {"names": manifest_names(manifest), "problems": problems, "html": page.read_text() if page.exists() else ""}


def manifest_names(manifest: Path) -> list[str]:
    """The embeds' names in the build's sphere-workspaces.json, page by page in order."""
    if not manifest.exists():
        return []
    return [entry["name"] for entries in json.loads(manifest.read_text())["pages"].values() for entry in entries]


def run_sphinx(syntax: str, capability: str, tmp_path: Path, make_app: Any) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text("\n".join([
        'extensions = ["myst_parser", "sphere_docs.sphinx"]', 'exclude_patterns = ["_build"]',
        'sphere_mode = "lazy"', f'sphere_lazy_endpoint = "{LAZY}"', f'sphere_sdk_host = "{SDK_HOST}"']) + "\n")
    (src / "index.rst").write_text("Home\n====\n\n.. toctree::\n\n   lesson\n")
    (src / f"lesson.{syntax}").write_text(source(capability, syntax))
    app = sphinx_build(make_app, src)
    problems = [(w.line, w.message) for w in sphere_warnings(app) if w.level == "ERROR" and w.file]
    manifest = Path(app.outdir) / "sphere-workspaces.json"
    page = Path(app.outdir) / "lesson.html"
    return {"names": manifest_names(manifest), "problems": problems, "html": page.read_text() if page.exists() else ""}


def run_check(syntax: str, capability: str, tmp_path: Path) -> dict[str, Any]:
    page = tmp_path / f"lesson.{syntax}"
    page.write_text(source(capability, syntax))
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the page is "lesson.md" to check too, as to the engines
    try:
        result = check_paths([page.name], default_mode="lazy")
    finally:
        os.chdir(cwd)
    return {"names": [e.spec.name for e in result.embeds],
            "problems": [(p.line, p.message) for p in result.problems if p.severity == "error"], "html": ""}


def run(engine: str, capability: str, tmp_path: Path, make_app: Any, caplog: Any) -> dict[str, Any]:
    if engine == "markdown":
        return run_markdown(capability, tmp_path, make_app, caplog)
    if engine == "mkdocs":
        return run_mkdocs(capability, tmp_path, make_app, caplog)
    if engine.startswith("sphinx-"):
        return run_sphinx("rst" if engine == "sphinx-rst" else "md", capability, tmp_path, make_app)
    return run_check("rst" if engine == "check-rst" else "md", capability, tmp_path)


# -------------------------------------------------------------------------- golden files


def compare(name: str, actual: Any) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual if isinstance(actual, str) else json.dumps(actual, indent=2) + "\n")
        if not UPDATE:
            pytest.fail(f"{path} did not exist: written, review and commit it")
    expected = path.read_text()
    assert (actual if isinstance(actual, str) else json.dumps(actual, indent=2) + "\n") == expected


def sentence_of(problem: Any) -> tuple[int, str]:
    return problem[0], problem[-1]


def code_of(sentence: str) -> str:
    return (Code.NAME if "duplicate value" in sentence else Code.OPTION).value


@pytest.mark.parametrize("engine", ENGINES)
def test_embed_names(engine: str, tmp_path: Path, make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    syntax = "rst" if engine in ("sphinx-rst", "check-rst") else "md"
    compare(f"naming.{syntax}.json", run(engine, "naming", tmp_path, make_app, caplog)["names"])


@pytest.mark.parametrize("engine", ENGINES)
def test_problems(engine: str, tmp_path: Path, make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Line, code, severity and sentence of every problem (the page's own lines differ by syntax)."""
    syntax = "rst" if engine in ("sphinx-rst", "check-rst") else "md"
    said = sorted(sentence_of(p) for p in run(engine, "problems", tmp_path, make_app, caplog)["problems"])
    compare(f"problems.{syntax}.json",
            [{"line": line, "code": code_of(text), "severity": "error", "sentence": text} for line, text in said])


DIV_RE = re.compile(r"<div\b|</div>")


def the_embed(page: str) -> str:
    """The page's one embed: its outer ``div`` with everything inside, as the engine wrote it."""
    start = page.index('<div class="sphere-workspace')
    depth = 0
    for m in DIV_RE.finditer(page, start):
        depth += 1 if m.group(0) == "<div" else -1
        if depth == 0:
            return page[start:m.end()]
    raise AssertionError("unbalanced embed")


@pytest.mark.parametrize("engine", ["markdown", "mkdocs", "sphinx-rst", "sphinx-myst"])
def test_embed_html(engine: str, tmp_path: Path, make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    embed = the_embed(run(engine, "html", tmp_path, make_app, caplog)["html"])
    # the page path is the only difference: lesson.md / lesson.rst
    compare("html.lazy.html", embed.replace("lesson.rst", "lesson.md") + "\n")
