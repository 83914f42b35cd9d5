"""``sphere-docs check``: find every embed of a docs tree and validate it, without building.

Three syntaxes are found:

* Markdown pages (``.md``): the ```` ```{sphere-workspace} ```` fence, with
  ``:name: value`` option lines or a MyST-style ``---`` YAML block.  They go
  through the real Python-Markdown directive syntax (:mod:`sphere_docs.syntax.markdown`) in
  deferred mode, so the same scanner, the same nesting rules and the same
  error texts apply as in a build, and nothing is provisioned.  A page that
  belongs to an MkDocs site (an ``mkdocs.yml`` above it) is converted with
  that site's ``markdown_extensions``, read with MkDocs' own loader, so an
  embed inside an admonition or a tab is found exactly when MkDocs would
  render it.  What is code is decided by :mod:`sphere_docs.syntax.fences` with the
  site's fence extension's rules, and the build's warnings (a ``:::`` colon
  fence, directive text the page shows as text) are check's warnings.
* MyST pages of a Sphinx project (a ``conf.py`` above them): as above, after
  unwrapping MyST container directives (```` ````{note} ````, ``:::{tip}``) so
  embeds nested in them are seen, turning ``:::{sphere-workspace}`` colon
  fences into backtick fences, blanking out code blocks (markdown-it's
  closing rule: :func:`sphere_docs.syntax.fences.commonmark_closes`), and scanning
  ``{eval-rst}`` blocks as rST.
* reStructuredText pages (``.rst``): ``.. sphere-workspace::`` directives,
  found by docutils' own parser (:mod:`sphere_docs.syntax.rst`): literal blocks,
  comments, tables and code directives are what docutils says, and docutils
  splits the directive block (argument, option field list, content).

Each embed is validated with :func:`sphere_docs.core.options.parse_options`; a
problem is reported as ``file:line: message`` with the same text a build
prints (:meth:`OptionError.at`, or the Markdown extension's
:class:`~sphere_docs.syntax.markdown.DirectiveError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markdown import Markdown

from .. import pipeline
from ..core import catalog
from ..core.embed import Embed
from ..core.naming import PageNamer
from ..core.settings import SiteSettings
from ..site import find_site, load_mkdocs_config, load_site
from ..syntax import rst
from ..syntax.markdown import DIRECTIVE, EXTENSION_NAMES, DirectiveError, DirectiveExtension
from ..syntax.myst import prepare as prepare_myst
from ..syntax.myst import strip_front_matter

__all__ = [
    "SKIP_DIRS",
    "CheckResult",
    "Problem",
    "check_paths",
    "find_pages",
    "find_site",
    "load_mkdocs_config",
    "scan_markdown",
    "scan_rst",
]

MARKDOWN_SUFFIXES = (".md", ".markdown")
RST_SUFFIXES = (".rst",)
#: folders never scanned (build output, VCS, dependencies); hidden folders are skipped too
SKIP_DIRS = frozenset({"site", "_build", "node_modules", "__pycache__"})
#: Markdown extensions used for pages of no known site (those that are installed)
DEFAULT_MARKDOWN_EXTENSIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("toc", {}),
    ("tables", {}),
    ("attr_list", {}),
    ("md_in_html", {}),
    ("def_list", {}),
    ("footnotes", {}),
    ("admonition", {}),
    ("pymdownx.details", {}),
    ("pymdownx.superfences", {}),
    ("pymdownx.tabbed", {"alternate_style": True}),
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """An invalid embed (``severity="error"``) or a doubtful one (``"warning"``).

    ``message`` is the location-free sentence; :attr:`text` adds ``file:line:``.
    ``option``/``value``/``valid`` are known for option errors.
    """

    file: str
    line: int | None
    message: str
    option: str | None = None
    value: Any = None
    valid: str | None = None
    severity: str = "error"

    @property
    def where(self) -> str:
        """``file:line`` (parts that are unknown are left out)."""
        return ":".join(str(p) for p in (self.file, self.line) if p not in (None, ""))

    @property
    def text(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_json(self) -> dict[str, Any]:
        value = self.value
        if not (value is None or isinstance(value, (str, int, float, bool))):
            value = str(value)
        return {
            "file": self.file,
            "line": self.line,
            "option": self.option,
            "value": value,
            "valid": self.valid,
            "message": self.message,
            "severity": self.severity,
        }

    @classmethod
    def from_catalog(cls, problem: catalog.Problem, file: str) -> Problem:
        """The catalog's problem as check reports it (its severity is the code's)."""
        err = problem.error
        return cls(file, problem.line, problem.sentence, err.option if err else problem.option,
                   err.value if err else None, err.valid if err else None, problem.severity.value)


@dataclass
class CheckResult:
    embeds: list[Embed] = field(default_factory=list)  #: valid ones; ``page`` is the file as displayed
    problems: list[Problem] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)  #: every page scanned
    #: embeds per page, valid or not (an invalid embed is still an embed)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        files = sum(1 for n in self.counts.values() if n)
        text = (f"{plural(self.total, 'embed')} in {plural(files, 'file')}, "
                f"{plural(len(self.errors), 'error')}")
        if self.warnings:
            text += f", {plural(len(self.warnings), 'warning')}"
        return text

    def add(self, other: CheckResult) -> None:
        self.embeds.extend(other.embeds)
        self.problems.extend(other.problems)
        self.pages.extend(other.pages)
        for page, count in other.counts.items():
            self.counts[page] = self.counts.get(page, 0) + count


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------- finding pages


def find_pages(paths: Sequence[str | os.PathLike[str]]) -> Iterator[tuple[Path, str]]:
    """``(path, display)`` of every ``.md``/``.rst`` page under ``paths``, sorted per argument.

    A file named explicitly is always checked; folders skip :data:`SKIP_DIRS`
    and hidden folders.  ``display`` keeps the argument as the user wrote it.
    """
    for arg in paths:
        root = Path(arg)
        if root.is_file():
            yield root, _display(root)
            continue
        found: list[Path] = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in files:
                if name.endswith(MARKDOWN_SUFFIXES + RST_SUFFIXES) and not name.startswith("."):
                    found.append(Path(folder) / name)
        for path in sorted(found, key=lambda p: p.relative_to(root).as_posix()):
            yield path, _display(path)


def _display(path: Path) -> str:
    text = path.as_posix()
    return text[2:] if text.startswith("./") else text


# --------------------------------------------------------------------------- reStructuredText


def scan_rst(text: str, file: str, *, line_offset: int = 0,
             default_mode: str = "build") -> CheckResult:
    """Every ``.. sphere-workspace::`` directive of an rST text (read by docutils), validated."""
    result = CheckResult(pages=[file], counts={file: 0})
    try:
        found = rst.find_directives(text, source=file, line_offset=line_offset)
    except Exception as exc:  # docutils failed on this page
        result.problems.append(Problem(
            file, None, f"{DIRECTIVE}: cannot check this page: docutils failed with "
            f"{type(exc).__name__}: {exc}"))
        return result
    namer = PageNamer(file)
    for directive in sorted(found, key=lambda d: d.line):
        result.counts[file] += 1
        _rst_directive(result, namer, file, directive, default_mode)
    return result


def _rst_directive(result: CheckResult, namer: PageNamer, file: str, directive: rst.RstDirective,
                   default_mode: str) -> None:
    line_no, error = directive.line, directive.error
    if error is not None:
        if error.kind == "option block":
            result.problems.append(Problem(file, line_no, catalog.invalid_option_block_at(error.text)))
        elif error.kind == "duplicate option":
            result.problems.append(Problem(
                file, line_no, catalog.option_given_twice(str(error.option)),
                option=error.option, value=error.value, valid="each option once",
            ))
        else:  # docutils' other complaints about the option block (`:two words: x`)
            result.problems.append(Problem(
                file, line_no, catalog.invalid_option_block(error.text),
                option=error.option, value=error.value,
            ))
        return
    lines = directive.option_lines
    spec, problems = pipeline.read_embed(file, line_no, directive.argument, directive.options,
                                         caption=directive.caption, default_mode=default_mode,
                                         option_lines=lines)
    if spec is not None:
        spec, problems = pipeline.name_embed(namer, spec, line_no, option_lines=lines)
    if spec is None:
        result.problems.extend(Problem.from_catalog(p, file) for p in problems)
        return
    result.embeds.append(Embed(file, spec, line_no))


# --------------------------------------------------------------------------- Markdown


class _MarkdownChecker:
    """One Markdown instance (with the site's extensions) + the extension in deferred mode."""

    def __init__(self, extensions: Sequence[Any], configs: dict[str, Any], default_mode: str):
        settings = SiteSettings(mode=default_mode)
        self.extension = DirectiveExtension(settings=settings, deferred=True)
        kept = [e for e in extensions
                if e not in EXTENSION_NAMES and not isinstance(e, DirectiveExtension)]
        configs = {k: v for k, v in configs.items() if k not in EXTENSION_NAMES}
        self.md = Markdown(extensions=[*kept, self.extension], extension_configs=configs)

    def check(self, text: str, file: str, line_offset: int) -> CheckResult:
        result = CheckResult(pages=[file], counts={file: 0})
        self.md.reset()
        self.extension.begin_page(file, line_offset)
        try:
            self.md.convert(text)
        except Exception as exc:  # another extension failed on this page
            self.extension.finish_page()
            result.problems.append(Problem(
                file, None, f"{DIRECTIVE}: cannot check this page: Markdown failed with "
                f"{type(exc).__name__}: {exc}"))
            return result
        warnings: list[DirectiveError] = []
        embeds, errors = self.extension.finish_page(warnings)
        for embed in embeds:
            result.embeds.append(Embed(file, embed.spec, embed.line))
        for warning in warnings:  # directive text the page shows as text (a ':::' fence...): as the build
            result.problems.append(Problem(file, warning.line, warning.message, severity="warning"))
        for err in errors:
            opt = err.option_error
            result.problems.append(Problem(
                file, err.line, err.message,
                option=opt.option if opt else None,
                value=opt.value if opt else None,
                valid=opt.valid if opt else None,
            ))
        # an invalid embed is still an embed: one, however many problems it has
        result.counts[file] = len(embeds) + len({err.directive_line for err in errors})
        return result


def scan_markdown(text: str, file: str, checker: _MarkdownChecker, *, myst: bool,
                  default_mode: str = "build") -> CheckResult:
    """Every embed of a Markdown page (MyST rules when ``myst``), validated."""
    body, offset = strip_front_matter(text.replace("\r\n", "\n"))
    if not myst:  # the extension reads the page as the build does
        result = checker.check(body, file, offset)
    else:
        prepared = prepare_myst(body.split("\n"))
        result = checker.check("\n".join(prepared.lines), file, offset)
        for start, rows in prepared.rst:
            result.add(scan_rst("\n".join(rows), file, line_offset=offset + start,
                                default_mode=default_mode))
    result.pages = [file]
    result.problems.sort(key=lambda p: (p.line or 0))
    result.embeds.sort(key=lambda e: e.line or 0)
    return result


# --------------------------------------------------------------------------- site detection


@dataclass
class _Site:
    kind: str  #: "mkdocs", "sphinx" or "none"
    config: Path | None
    checker: _MarkdownChecker | None = None
    problem: Problem | None = None  #: reported once, for the first page of the site


def _default_extensions() -> tuple[list[str], dict[str, Any]]:
    import importlib

    names: list[str] = []
    configs: dict[str, Any] = {}
    for name, config in DEFAULT_MARKDOWN_EXTENSIONS:
        module = name if "." in name else f"markdown.extensions.{name}"
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names.append(name)
        if config:
            configs[name] = dict(config)
    return names, configs


class _Sites:
    """Site of each page, one Markdown checker per site, built on first use."""

    def __init__(self, default_mode: str):
        self.default_mode = default_mode
        self._sites: dict[tuple[str, Path | None], _Site] = {}

    def for_page(self, page: Path) -> _Site:
        kind, config = find_site(page.resolve().parent)
        key = (kind, config)
        if key not in self._sites:
            self._sites[key] = self._make(kind, config)
        return self._sites[key]

    def _make(self, kind: str, config: Path | None) -> _Site:
        site = _Site(kind, config)
        extensions: list[Any]
        configs: dict[str, Any]
        if kind == "mkdocs" and config is not None:
            loaded = load_site(config)  # MkDocs' own loader: the extensions the build uses
            if loaded.markdown_extensions is None:
                extensions, configs = _default_extensions()
                site.problem = Problem(
                    _display(config), None,
                    f"{DIRECTIVE}: cannot load {config.name} ({'; '.join(loaded.messages[-2:])}); its pages "
                    "were checked with the default Markdown extensions",
                    severity="warning",
                )
            else:
                extensions = loaded.markdown_extensions
                configs = loaded.markdown_configs
        elif kind == "sphinx":
            extensions, configs = [], {}
        else:
            extensions, configs = _default_extensions()
        site.checker = _MarkdownChecker(extensions, configs, self.default_mode)
        return site


def _relative_config(config: Path) -> str:
    try:
        return _display(config.relative_to(Path.cwd()))
    except ValueError:
        return config.as_posix()


# --------------------------------------------------------------------------- entry point


def check_paths(paths: Sequence[str | os.PathLike[str]] = (".",), *,
                default_mode: str = "build") -> CheckResult:
    """Find and validate every embed under ``paths`` (files or folders)."""
    result = CheckResult()
    sites = _Sites(default_mode)
    reported: set[int] = set()
    for path, display in find_pages(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.pages.append(display)
            result.problems.append(Problem(display, None, f"{DIRECTIVE}: cannot read this page: {exc}"))
            continue
        if path.suffix in RST_SUFFIXES:
            result.add(scan_rst(text, display, default_mode=default_mode))
            continue
        site = sites.for_page(path)
        if site.problem is not None and id(site) not in reported:
            reported.add(id(site))
            problem = site.problem
            if site.config is not None:
                problem = Problem(_relative_config(site.config.resolve()), None, problem.message,
                                  severity=problem.severity)
            result.problems.append(problem)
        assert site.checker is not None
        result.add(scan_markdown(text, display, site.checker, myst=site.kind == "sphinx",
                                 default_mode=default_mode))
    return result


def format_text(result: CheckResult) -> Iterable[str]:
    for problem in result.problems:
        if problem.severity == "error":
            yield problem.text
        else:
            yield f"{problem.where}: warning: {problem.message}"
    yield result.summary()


def format_json(result: CheckResult) -> str:
    return json.dumps([p.as_json() for p in result.problems], indent=2)


def format_github(result: CheckResult) -> Iterable[str]:
    """GitHub Actions workflow commands: each problem becomes an annotation on its file and line."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    for problem in result.problems:
        level = "error" if problem.severity == "error" else "warning"
        where = f"file={prop(problem.file)}" + (f",line={problem.line}" if problem.line else "")
        yield f"::{level} {where},title=sphere-docs check::{data(problem.message)}"
    yield result.summary()
