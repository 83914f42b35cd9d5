"""The one record of an embed, and how a directive becomes one (every engine and ``check``).

:func:`read_embed` applies the option schema and reports every problem, each
at its option's own line; :func:`name_embed` gives the default name and applies
the duplicate-name rule.  Both answer with :mod:`sphere_docs.core.catalog` problems.

Layer: core.  Imports only the core (options, naming, catalog).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .catalog import Problem
from .naming import PageNamer
from .options import OptionError, WorkspaceSpec, parse_options

__all__ = ["Embed", "name_embed", "read_embed"]


@dataclass(frozen=True)
class Embed:
    """One embed: where it is and what it asks for (``spec`` named).

    The same record is the provisioner's request (``provision.EmbedRequest``)
    and what engines keep between reading and writing a page: Sphinx pickles it
    in its environment (``docname``), the Markdown extension keeps the caption's
    HTML and, when the workspace is resolved later, the ``marker`` standing in
    the page where the embed's HTML goes.
    """

    page: str  #: source path relative to the docs root, "/"-separated
    spec: WorkspaceSpec
    line: int | None = None  #: source line, for messages
    docname: str | None = field(default=None, compare=False)
    caption_html: str | None = field(default=None, compare=False, repr=False)
    marker: str | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.page}#{self.spec.name}"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}" if self.line else self.page


def read_embed(page: str | None, line: int | None, argument: str | None,
               options: Mapping[str, Any], *, caption: str = "", default_mode: str = "build",
               option_lines: Mapping[str, int] | None = None) -> tuple[WorkspaceSpec | None, list[Problem]]:
    """The directive's spec (not yet named), or every problem it has, each at its option's line."""
    try:
        return parse_options(argument, options, caption=caption, default_mode=default_mode), []
    except OptionError as err:
        return None, catalog.option_problems(err, page, line, option_lines)


def name_embed(namer: PageNamer, spec: WorkspaceSpec, line: int | None, *,
               option_lines: Mapping[str, int] | None = None) -> tuple[WorkspaceSpec | None, list[Problem]]:
    """``spec`` with its name (the author's or the default), or the duplicate-name problem.

    Embeds of a page are named in page order, so the duplicate is reported at
    the later one (at its ``:name:`` line), naming the line of the first.
    """
    try:
        return namer.name(spec, line), []
    except OptionError as err:
        return None, catalog.option_problems(err, namer.page or None, line, option_lines)
