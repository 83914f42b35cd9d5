"""The ``sphere-workspace`` directive (reStructuredText and MyST Markdown)."""

from __future__ import annotations

import re
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.logging import is_suppressed_warning

from ... import pipeline
from ...core import catalog
from ...core.catalog import Code, Problem
from ...core.options import OPTIONS
from ...syntax import myst
from .envdata import env_data, page_path
from .nodes import sphere_workspace
from .visitors import LAZY_SETTING

__all__ = ["SphereWorkspaceDirective"]

logger = logging.getLogger(__name__)


class _RawOptions(dict):  # type: ignore[type-arg]
    """An ``option_spec`` that takes every option as its raw string.

    docutils and MyST both look converters up with ``spec[name]``; answering
    for *unknown* names too means neither rejects an option with its own
    generic message, so :func:`options.parse_options` sees everything the
    author wrote and reports it with the shared text (valid options listed).
    """

    def __missing__(self, key: str) -> object:
        return directives.unchanged


class SphereWorkspaceDirective(SphinxDirective):
    """``.. sphere-workspace:: <project-id>`` with options and an optional caption body."""

    required_arguments = 0  # a missing id gets the shared message, not docutils'
    optional_arguments = 1
    final_argument_whitespace = True  # "abc def" is reported as a bad project id
    has_content = True
    option_spec: ClassVar[dict[str, object]] = _RawOptions(  # type: ignore[misc]
        (name, directives.unchanged) for name in OPTIONS
    )

    _lines: list[str] | None = None  #: the page's source lines, once read (see _page_lines)

    def run(self) -> list[nodes.Node]:
        docname = self.env.docname
        data = env_data(self.env)
        page = page_path(self.env, docname)
        fence = self._unclosed_fence()
        if fence:
            return self._mistakes([Problem(Code.FENCE, catalog.unclosed_fence(fence), page, self.lineno)])
        lines = self._option_lines()
        spec, problems = pipeline.read_embed(
            page, self.lineno, self.arguments[0] if self.arguments else None, dict(self.options),
            caption="\n".join(self.content), default_mode=self.config.sphere_mode, option_lines=lines)
        if spec is not None:
            spec, problems = pipeline.name_embed(data.namer(docname, page), spec, self.lineno,
                                                 option_lines=lines)
        if spec is None:
            return self._mistakes(problems)
        problem = pipeline.lazy_problem(spec, self.config.sphere_lazy_endpoint, page,
                                        self.lineno, setting=LAZY_SETTING, where="conf.py")
        if problem is not None:  # rendered as an "unavailable" notice; the site setting is what is missing
            self._mistakes([problem])
        request = data.record(docname, page, spec, self.lineno)
        node = sphere_workspace("", spec=spec, page=page, key=request.key, docname=docname)
        self.set_source_info(node)
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, node)
        return [node]

    def _mistakes(self, problems: list[Problem]) -> list[nodes.Node]:
        """An author's mistakes: each an error at its own line, as in every engine (the build
        fails at its end, see ``extension.fail_on_embed_errors``), and a box where the embed was."""
        docname = self.env.docname
        for problem in problems:
            line = problem.line or self.lineno
            logger.error(problem.sentence, location=(docname, line), type="sphere", subtype=problem.code.subtype)
            if not is_suppressed_warning("sphere", problem.code.subtype, self.config.suppress_warnings):
                env_data(self.env).record_error(docname, line, problem.sentence)
        return [nodes.raw("", pipeline.error_html(problems), format="html")]

    def _option_lines(self) -> dict[str, int]:
        """Each option's own source line (``:name: value`` in rST and MyST, ``name: value`` in MyST's YAML)."""
        lines: dict[str, int] = {}
        for k, row in enumerate(self._block_rows()):
            m = _OPTION_LINE_RE.match(row)
            name = m and (m["name"] or m["key"])
            if name and name in self.options and name not in lines:
                lines[name] = self.lineno + k
        return lines

    def _block_rows(self) -> list[str]:
        """The directive's source lines from its first one: ``block_text``, or (MyST 3, which leaves
        it empty) the page's own lines up to the fence that closes it."""
        if self.block_text:
            return self.block_text.splitlines()
        rows = self._page_lines()[self.lineno - 1:]
        end = next((k for k, row in enumerate(rows[1:], 1) if _FENCE_ONLY_RE.match(row)), len(rows))
        return rows[:end]

    def _unclosed_fence(self) -> str | None:
        """MyST: the opening fence when nothing below it can close it (:func:`myst.unclosed_fence`)."""
        source, line = self.get_source_info()
        if not (source and line and str(source).endswith((".md", ".markdown"))):
            return None
        return myst.unclosed_fence(self._page_lines(), line)

    def _page_lines(self) -> list[str]:
        """The page's source lines, read once per directive (both MyST checks above need them)."""
        if self._lines is None:
            source, _ = self.get_source_info()
            try:
                with open(str(source), encoding="utf-8-sig") as handle:
                    self._lines = handle.read().splitlines()
            except (OSError, UnicodeDecodeError):
                self._lines = []
        return self._lines


#: an option's line in a directive block: ":name: value" (rST, MyST) or "name: value" (MyST's YAML)
_FENCE_ONLY_RE = re.compile(r"^[ \t>]*(`{3,}|~{3,}|:{3,})[ \t]*$")
_OPTION_LINE_RE = re.compile(r"^[ \t>]*(?::(?P<name>[^:\s][^:]*):|(?P<key>[A-Za-z_-]+)[ \t]*:)")
