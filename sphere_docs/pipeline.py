"""The embed pipeline: what happens between "a directive was parsed" and "this HTML goes in the page".

Every engine adapter (plain Python-Markdown and Zensical, MkDocs, Sphinx rST
and MyST) and ``sphere-docs check`` parse their own syntax, then hand each
directive here and emit what comes back.  The decisions live here once:

* :class:`Embed`, the one record of an embed (page, line, spec, and what the
  engine needs to put the HTML back), also the provisioner's request;
* :func:`read_embed`: the option schema applied, every problem reported, each
  at its option's own line (:mod:`sphere_docs.catalog` sentences);
* :func:`name_embed`: the default name and the duplicate-name rule
  (:class:`sphere_docs.naming.PageNamer`);
* :func:`lazy_problem`: a lazy embed on a site without a lazy endpoint;
* :func:`decide` / :func:`render`: build, lazy or unavailable, and its HTML;
* :func:`page_assets`: which pages get the SDK loader and the lazy script;
* :func:`provision_now`: build-mode workspaces created or reused right now
  (for engines without a build-wide hook; MkDocs and Sphinx hand the
  provisioner every page's embeds as pages are read instead).

Layer: pipeline.  May import the core, the syntax layer and the API client;
never an engine (MkDocs, Sphinx, Python-Markdown) nor a tool.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import catalog, html
from .catalog import Code, Problem
from .naming import PageNamer
from .options import OptionError, WorkspaceSpec, parse_options

if TYPE_CHECKING:
    from .provision import Resolution
    from .settings import SiteSettings

__all__ = [
    "BUILD",
    "LAZY",
    "NOT_PROVISIONED",
    "UNAVAILABLE",
    "Embed",
    "decide",
    "lazy_problem",
    "name_embed",
    "page_assets",
    "page_is_lazy",
    "provision_now",
    "read_embed",
    "render",
]

BUILD, LAZY, UNAVAILABLE = "build", "lazy", "unavailable"
NOT_PROVISIONED = "This workspace was not provisioned."


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


# -------------------------------------------------------------------------- reading


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


def lazy_problem(spec: WorkspaceSpec, lazy_endpoint: str | None, page: str | None, line: int | None, *,
                 setting: str = "lazy_endpoint", where: str = "the site settings") -> Problem | None:
    """A lazy embed needs the lazy endpoint: the problem when the site has none."""
    if spec.mode != LAZY or lazy_endpoint:
        return None
    return Problem(Code.CONFIG, catalog.lazy_endpoint_missing(setting, where), page, line)


# -------------------------------------------------------------------------- rendering


def decide(spec: WorkspaceSpec, resolution: Resolution | None, lazy_endpoint: str | None, *,
           setting: str = "lazy_endpoint") -> tuple[str, str]:
    """``(kind, reason)``: kind is :data:`BUILD`, :data:`LAZY` or :data:`UNAVAILABLE`.

    Both the embed's HTML (:func:`render`) and its page's assets
    (:func:`page_is_lazy`) follow this, so a page carries the lazy script exactly
    when one of its embeds became a lazy placeholder.  ``resolution`` is the
    provisioner's answer for a build-mode embed (``None`` before or without one).
    """
    fell_back = resolution is not None and not resolution.workspace_id and resolution.fallback == LAZY
    if spec.mode == LAZY or fell_back:
        return (LAZY, "") if lazy_endpoint else (UNAVAILABLE, catalog.lazy_endpoint_missing_box(setting))
    if resolution is None:
        return UNAVAILABLE, NOT_PROVISIONED
    if resolution.workspace_id and resolution.fallback is None:
        return BUILD, ""
    return UNAVAILABLE, resolution.reason or "the workspace could not be created when this page was built"


def render(embed: Embed, resolution: Resolution | None, lazy_endpoint: str | None, *,
           caption_html: str | None = None, setting: str = "lazy_endpoint") -> str:
    """The embed's HTML, as :func:`decide` says."""
    spec = embed.spec
    caption = caption_html if caption_html is not None else embed.caption_html
    kind, reason = decide(spec, resolution, lazy_endpoint, setting=setting)
    if kind == BUILD:
        assert resolution is not None and resolution.workspace_id
        return html.workspace_div(spec, resolution.workspace_id, resolution.workspace_token,
                                  caption_html=caption)
    if kind == LAZY:
        assert lazy_endpoint
        return html.lazy_placeholder(spec, page=embed.page, lazy_endpoint=lazy_endpoint, caption_html=caption)
    return html.unavailable_placeholder(spec, reason, caption_html=caption)


def error_html(problems: Sequence[Problem]) -> str:
    """What the reader sees where an invalid embed stood (the build fails anyway)."""
    return html.error_box(problems[0].sentence if problems else "invalid embed")


# -------------------------------------------------------------------------- page assets


def page_is_lazy(kinds: Iterable[str]) -> bool:
    """A page needs the lazy script when one of its embeds (by :func:`decide`) is lazy."""
    return any(kind == LAZY for kind in kinds)


def page_assets(settings: SiteSettings, *, lazy: bool) -> str:
    """What goes right after ``<body>`` on a page with embeds: the SDK loader, styles, lazy script.

    Raises :class:`~sphere_docs.errors.SettingsError` (naming ``sdk_host``) when
    the site says nowhere where the SDK comes from.
    """
    return html.after_body(*settings.sdk, lazy=lazy)


# -------------------------------------------------------------------------- provisioning


def provision_now(settings: SiteSettings, embeds: Sequence[Embed],
                  logger: logging.Logger | None = None) -> dict[str, Resolution]:
    """Create or reuse the workspaces of ``embeds`` now: ``{embed.key: Resolution}``.

    For engines that render a document at a time with no build-wide hook
    (Python-Markdown alone, Zensical).  The token is checked before any request.
    """
    from .provision import Provisioner  # the client stack only when a build-mode embed needs it

    settings.token()
    with Provisioner(settings, logger=logger) as provisioner:
        return provisioner.resolve(list(embeds))
