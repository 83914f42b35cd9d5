"""The same mistake, the same verdict, in every engine.

Each row of :data:`MISTAKES` is one kind of author's mistake; each engine builds
(or checks) the same source and must report the same sentence, at the same line,
with the same severity.  The README's "Mistakes" table is this table:

==================  =====================================================  ========
mistake             engines                                                severity
==================  =====================================================  ========
unknown option      plain Markdown, MkDocs, Zensical, Sphinx rST + MyST,   error
                    ``check``
invalid value       (all of them)                                          error
missing project id  (all of them)                                          error
duplicate name      (all of them)                                          error
unclosed fence      the Markdown ones (rST has no fences)                  error
==================  =====================================================  ========

"error" means: the build fails (MkDocs: ``Aborted``, plain Markdown: an
exception, Zensical: exit status 1, Sphinx: an ``ERROR`` line and exit status 1
at the end, ``check``: exit status 1) and the message names file and line.
"""

from __future__ import annotations

import html
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml
from conftest import zensical_command
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort
from sphinx_fixtures import build as sphinx_build
from sphinx_fixtures import ours as sphere_warnings

from sphere_docs.core.options import OPTIONS
from sphere_docs.markdown import DirectiveError
from sphere_docs.tools.check import check_paths

P = "eef024c1d14f46319517a65edafb5ee3"
SDK_HOST = "12345678.containers.sphere-engine.com"
LAZY = "https://lazy.example.org/workspaces"
VALID = ", ".join(OPTIONS)


def md_embed(*lines: str, project: str = P, close: bool = True) -> str:
    return "\n".join([f"```{{sphere-workspace}} {project}".rstrip(), *lines, *(["```"] if close else [])]) + "\n"


def rst_embed(*lines: str, project: str = P) -> str:
    return "\n".join([f".. sphere-workspace:: {project}".rstrip(), *(f"   {x}" for x in lines)]) + "\n"


#: name -> (Markdown page, rST page or None, line of the mistake, sentence, Sphinx subtype).
#: An option's problem is at the option's own line; the others at the directive's.
MISTAKES: dict[str, tuple[str, str | None, int, str, str]] = {
    "unknown option": (
        "# Lesson\n\n" + md_embed(":heigth: 300px"),
        "Lesson.\n\n" + rst_embed(":heigth: 300px"),
        4, f"sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {VALID}", "option"),
    "invalid value": (
        "# Lesson\n\n" + md_embed(":mode: lazzy"),
        "Lesson.\n\n" + rst_embed(":mode: lazzy"),
        4, "sphere-workspace: invalid value 'lazzy' for option 'mode' (did you mean 'lazy'?); expected build | lazy", "option"),
    "missing project id": (
        "# Lesson\n\n" + md_embed(project=""),
        "Lesson.\n\n" + rst_embed(project=""),
        3, "sphere-workspace: missing project id; expected a project id of 32 hexadecimal characters",
        "option"),
    "duplicate name": (
        "# Lesson\n\n" + md_embed(":name: twin") + "\n" + md_embed(":name: twin"),
        "Lesson.\n\n" + rst_embed(":name: twin") + "\n\n" + rst_embed(":name: twin"),
        8, "sphere-workspace: duplicate value 'twin' for option 'name'; "
           "expected a name not used by another embed on this page (line 3)", "name"),
    "unclosed fence": (
        "# Lesson\n\n" + md_embed(":height: 300px", close=False) + "\nMore prose.\n",
        None,
        3, "sphere-workspace: the fence opened here is never closed; "
           "expected a closing ``` line at the same indentation", "fence"),
}
ENGINES = ["plain", "mkdocs", "zensical", "sphinx-rst", "sphinx-myst", "check"]
EXTENSION_SETTINGS = {"mode": "lazy", "lazy_endpoint": LAZY, "sdk_host": SDK_HOST}


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def mkdocs_site(root: Path, page: str, *, plugin: bool) -> Path:
    write(root, "docs/index.md", "# Home\n")
    write(root, "docs/lesson.md", page)
    sphere: dict[str, Any] = {"sphere_workspaces": EXTENSION_SETTINGS}
    config: dict[str, Any] = {"site_name": "Mistakes", "docs_dir": "docs", "site_dir": "site",
                              "markdown_extensions": ["pymdownx.superfences"]}
    if plugin:
        config["plugins"] = [{"sphere-workspaces": EXTENSION_SETTINGS}]
    else:
        config["markdown_extensions"].append(sphere)
    return write(root, "mkdocs.yml", yaml.safe_dump(config, sort_keys=False))


def sphinx_project(root: Path, rel: str, page: str) -> Path:
    write(root, "conf.py", "\n".join([
        'extensions = ["myst_parser", "sphere_docs.sphinx"]',
        'exclude_patterns = ["_build"]',
        'sphere_mode = "lazy"',
        f'sphere_lazy_endpoint = "{LAZY}"',
        f'sphere_sdk_host = "{SDK_HOST}"',
    ]) + "\n")
    write(root, "index.rst", "Home\n====\n\n.. toctree::\n\n   lesson\n")
    write(root, rel, page)
    return root


def verdict(engine: str, mistake: str, tmp_path: Path, make_app: Any,
            caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    """``(severity, located sentence)`` as the engine reported it."""
    md_page, rst_page, _, _, _ = MISTAKES[mistake]
    if engine == "plain":
        with pytest.raises(DirectiveError) as info:
            markdown.markdown(md_page, extensions=["pymdownx.superfences", "sphere_workspaces"],
                              extension_configs={"sphere_workspaces": {**EXTENSION_SETTINGS, "page": "lesson.md"}})
        return "error", str(info.value)
    if engine == "mkdocs":
        config = mkdocs_site(tmp_path, md_page, plugin=True)
        with caplog.at_level(logging.WARNING), pytest.raises(Abort):
            mkdocs_build(load_config(str(config)))
        ours = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.ERROR and "sphere-workspace:" in r.getMessage()]
        return "error", ours[0]
    if engine == "zensical":
        config = mkdocs_site(tmp_path, md_page, plugin=False)
        exe = zensical_command()
        result = subprocess.run([exe, "build", "--clean", "-f", str(config)], cwd=tmp_path,
                                capture_output=True, text=True, env=dict(os.environ))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        return "error", result.stderr.strip().removeprefix("Error: ")
    if engine.startswith("sphinx"):
        rel, page = ("lesson.rst", rst_page) if engine == "sphinx-rst" else ("lesson.md", md_page)
        assert page is not None
        src = sphinx_project(tmp_path / "src", rel, page)
        app = sphinx_build(make_app, src)
        assert app.statuscode == 1
        # as data, not as Sphinx prints it (colours, the [sphere.*] suffix differ by version)
        said = [w for w in sphere_warnings(app) if w.level == "ERROR" and w.message.startswith("sphere-workspace:")]
        return "error", f"{Path(said[0].file or '').name}:{said[0].line}: {said[0].message}"
    assert engine == "check"
    write(tmp_path / "docs", "lesson.md", md_page)
    result = check_paths([tmp_path / "docs" / "lesson.md"])
    (problem,) = result.problems
    return problem.severity, f"lesson.md:{problem.line}: {problem.message}"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_same_mistake_reads_the_same_everywhere(mistake: str, engine: str, tmp_path: Path, make_app: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    _md_page, rst_page, line, sentence, _ = MISTAKES[mistake]
    if engine == "sphinx-rst" and rst_page is None:
        pytest.skip("reStructuredText has no fences")
    severity, located = verdict(engine, mistake, tmp_path, make_app, caplog)
    assert severity == "error"
    file = "lesson.rst" if engine == "sphinx-rst" else "lesson.md"
    assert located == f"{file}:{line}: {sentence}"


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_sphinx_reports_each_mistake_with_its_own_subtype(mistake: str, tmp_path: Path, make_app: Any) -> None:
    md_page, _, _, _, subtype = MISTAKES[mistake]
    src = sphinx_project(tmp_path / "src", "lesson.md", md_page)
    app = sphinx_build(make_app, src, suppress_warnings=[f"sphere.{subtype}"])
    assert ": ERROR: sphere-workspace:" not in app.warning.getvalue()  # the author silenced it
    assert app.statuscode == 0


# -- every problem of an embed, each at its own line ----------------------------------------

#: one embed, three mistakes: (line, sentence) of each, as every engine must report them
THREE_MISTAKES = [
    (4, f"sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {VALID}"),
    (5, "sphere-workspace: invalid value 'tall' for option 'height'; "
        "expected a CSS length such as 600px, 70vh, 40em or 100%"),
    (6, "sphere-workspace: invalid value 'lazzy' for option 'mode' (did you mean 'lazy'?); expected build | lazy"),
]
THREE_MD = "# Lesson\n\n" + md_embed(":heigth: 300px", ":height: tall", ":mode: lazzy")
THREE_RST = "Lesson.\n\n" + rst_embed(":heigth: 300px", ":height: tall", ":mode: lazzy")


def every_problem(engine: str, tmp_path: Path, make_app: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every located sentence the engine reported for the one embed of THREE_MD / THREE_RST."""
    if engine == "plain":  # used alone, the first stops the conversion; deferred, all are collected
        from sphere_docs.core.settings import SiteSettings
        from sphere_docs.markdown import SphereWorkspaceExtension

        ext = SphereWorkspaceExtension(settings=SiteSettings(**EXTENSION_SETTINGS), deferred=True)
        md = markdown.Markdown(extensions=["pymdownx.superfences", ext])
        ext.begin_page("lesson.md")
        md.convert(THREE_MD)
        return [str(err) for err in ext.finish_page()[1]]
    if engine == "mkdocs":
        config = mkdocs_site(tmp_path, THREE_MD, plugin=True)
        with caplog.at_level(logging.WARNING), pytest.raises(Abort):
            mkdocs_build(load_config(str(config)))
        return [r.getMessage() for r in caplog.records
                if r.levelno >= logging.ERROR and "sphere-workspace:" in r.getMessage()]
    if engine.startswith("sphinx"):
        rel, page = ("lesson.rst", THREE_RST) if engine == "sphinx-rst" else ("lesson.md", THREE_MD)
        src = sphinx_project(tmp_path / "src", rel, page)
        app = sphinx_build(make_app, src)
        assert app.statuscode == 1
        return [f"{Path(w.file or '').name}:{w.line}: {w.message}" for w in sphere_warnings(app)
                if w.level == "ERROR" and w.file]
    assert engine == "check"
    write(tmp_path / "docs", "lesson.md", THREE_MD)
    write(tmp_path / "docs", "lesson.rst", THREE_RST)
    result = check_paths([tmp_path / "docs"])
    return [f"{Path(p.file).name}:{p.line}: {p.message}" for p in result.problems if p.severity == "error"]


@pytest.mark.parametrize("engine", ["plain", "mkdocs", "sphinx-rst", "sphinx-myst", "check"])
def test_every_problem_of_an_embed_is_reported_at_its_own_line(engine: str, tmp_path: Path, make_app: Any,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    said = every_problem(engine, tmp_path, make_app, caplog)
    files = ["lesson.md", "lesson.rst"] if engine == "check" else [
        "lesson.rst" if engine == "sphinx-rst" else "lesson.md"]
    assert sorted(said) == sorted(f"{file}:{line}: {sentence}" for file in files for line, sentence in THREE_MISTAKES)


def test_the_notice_in_the_page_lists_every_problem() -> None:
    """Where the invalid embed stood, the reader (and the author previewing) sees all three sentences."""
    from sphere_docs.core.settings import SiteSettings
    from sphere_docs.markdown import SphereWorkspaceExtension

    ext = SphereWorkspaceExtension(settings=SiteSettings(**EXTENSION_SETTINGS), deferred=True)
    page = markdown.Markdown(extensions=["pymdownx.superfences", ext])
    ext.begin_page("lesson.md")
    out = page.convert(THREE_MD)
    notice = out[out.index('data-sphere-mode="error"'):]
    for _, sentence in THREE_MISTAKES:
        assert html.escape(sentence, quote=True) in notice


def test_check_counts_an_embed_with_three_problems_once(tmp_path: Path) -> None:
    write(tmp_path, "lesson.md", THREE_MD)
    write(tmp_path, "lesson.rst", THREE_RST)
    result = check_paths([tmp_path])
    assert (result.total, len(result.errors)) == (2, 6)
    assert result.summary() == "2 embeds in 2 files, 6 errors"
