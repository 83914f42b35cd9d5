"""The ``sphere-workspace`` directive (reStructuredText and MyST Markdown)."""

from __future__ import annotations

from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.logging import is_suppressed_warning
from sphinx.util.docutils import SphinxDirective

from .. import html
from ..options import OPTIONS, OptionError, parse_options
from .envdata import env_data, page_path
from .nodes import sphere_workspace

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

    def run(self) -> list[nodes.Node]:
        docname = self.env.docname
        data = env_data(self.env)
        page = page_path(self.env, docname)
        try:
            spec = parse_options(
                self.arguments[0] if self.arguments else None,
                dict(self.options),
                caption="\n".join(self.content),
                default_mode=self.config.sphere_mode,
            )
            spec = data.namer(docname, page).name(spec, self.lineno)
        except OptionError as err:
            return [self._mistake(err)]
        if spec.mode == "lazy" and not self.config.sphere_lazy_endpoint:
            # Rendered as an "unavailable" box; the site setting is what is missing.
            logger.warning(
                "sphere-workspace: mode 'lazy' needs the sphere_lazy_endpoint setting "
                "(the URL of the lazy endpoint) in conf.py",
                location=(docname, self.lineno), type="sphere", subtype="config",
            )

        request = data.record(docname, page, spec, self.lineno)
        node = sphere_workspace("", spec=spec, page=page, key=request.key, docname=docname)
        self.set_source_info(node)
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, node)
        return [node]

    def _mistake(self, err: OptionError) -> nodes.Node:
        """An author's mistake: an error, as in every engine (the build fails at its end,
        see ``extension.fail_on_embed_errors``), and a box where the embed would have been."""
        docname = self.env.docname
        subtype = mistake_subtype(err)
        logger.error(err.describe(), location=(docname, self.lineno), type="sphere", subtype=subtype)
        if not is_suppressed_warning("sphere", subtype, self.config.suppress_warnings):
            env_data(self.env).record_error(docname, self.lineno, err.describe())
        return nodes.raw("", html.error_box(err.describe()), format="html")


def mistake_subtype(err: OptionError) -> str:
    """``sphere.name`` for the duplicate-name rule, ``sphere.option`` for the rest."""
    return "name" if err.problem == "duplicate value" else "option"
