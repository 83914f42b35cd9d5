"""The embed pipeline: what happens between "a directive was parsed" and "this HTML goes in the page".

Every engine adapter (plain Python-Markdown and Zensical, MkDocs, Sphinx rST
and MyST) and ``sphere-docs check`` parse their own syntax, then hand each
directive here and emit what comes back.  The decisions live here once
(with the core's :class:`Embed`, ``read_embed`` and ``name_embed``, re-exported):

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
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..core import catalog, html
from ..core.catalog import Code, Problem
from ..core.embed import Embed, name_embed, read_embed
from ..core.options import WorkspaceSpec

if TYPE_CHECKING:
    from ..core.settings import SiteSettings
    from .provision import Resolution

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


# -------------------------------------------------------------------------- reading


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
    return html.error_box([p.sentence for p in problems])


# -------------------------------------------------------------------------- page assets


def page_is_lazy(kinds: Iterable[str]) -> bool:
    """A page needs the lazy script when one of its embeds (by :func:`decide`) is lazy."""
    return any(kind == LAZY for kind in kinds)


def page_assets(settings: SiteSettings, *, lazy: bool) -> str:
    """What goes right after ``<body>`` on a page with embeds: the SDK loader, styles, lazy script.

    Raises :class:`~sphere_docs.core.errors.SettingsError` (naming ``sdk_host``) when
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
