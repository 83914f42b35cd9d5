"""Python-Markdown (and Zensical) on the embed pipeline: the ``sphere_workspaces`` extension.

Usage, alone (plain Python-Markdown, Zensical, any engine that runs Markdown
extensions)::

    markdown.markdown(text, extensions=["sphere_workspaces"],
                      extension_configs={"sphere_workspaces": {"endpoint": "...", "page": "intro.md"}})

This adapter only parses (:class:`~sphere_docs.syntax.markdown.DirectiveExtension`
finds, claims and names the directives) and emits; every decision is the
pipeline's (:mod:`sphere_docs.pipeline`): a lazy embed without a lazy
endpoint, build / lazy / unavailable and its HTML, the page's assets, and
provisioning.  Used alone, a document's build-mode workspaces are created or
reused as it converts, and the SDK loader goes before its first embed.  The
MkDocs plugin constructs it with ``settings=`` and ``deferred=True`` instead:
build-mode embeds then leave a marker the plugin fills in once the whole
site's workspaces are known (``sphere_docs.engines.mkdocs``).

Zensical (0.0.x) runs Markdown extensions with no page hook and no error
channel: the page being converted is read from its context preprocessor, and
under ``zensical build`` a problem ends the build with one located line.

Layer: engines.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any

from markdown import Markdown

from .. import pipeline
from ..core.errors import SettingsError
from ..pipeline import Embed
from ..syntax.markdown import (
    COLON_FENCE_MESSAGE,
    DIRECTIVE,
    DIRECTIVE_MARK,
    EXTENSION_NAMES,
    DirectiveError,
    DirectiveExtension,
    DirectiveWarning,
)

#: how the deferred marker of a build-mode embed starts (the MkDocs plugin fills it in); an empty
#: div, so a plugin that reads or copies the content meanwhile (search, excerpts) sees no text
PENDING_MARK = '<div data-sphere-pending="'
PENDING_RE = re.compile('<div data-sphere-pending="[^"]*"></div>')

__all__ = [
    "COLON_FENCE_MESSAGE",
    "DIRECTIVE",
    "DIRECTIVE_MARK",
    "EXTENSION_NAMES",
    "DirectiveError",
    "DirectiveWarning",
    "Embed",
    "SphereWorkspaceExtension",
    "makeExtension",
]

log = logging.getLogger("sphere_docs.markdown")


class SphereWorkspaceExtension(DirectiveExtension):
    """The directive rendered through the pipeline (see the module docstring)."""

    def extendMarkdown(self, md: Markdown) -> None:
        try:
            _ = self.settings  # a bad setting fails here, not in the middle of a page
        except SettingsError as err:
            _stop_zensical_build(md, str(err))
            raise
        super().extendMarkdown(md)

    def report(self, err: DirectiveError) -> None:
        if not self.deferred and self._md is not None:
            _stop_zensical_build(self._md, str(err))
        super().report(err)

    def current_page(self, md: Markdown) -> str | None:
        return _zensical_page(md)

    def render_embeds(self, doc: Any, embeds: list[tuple[int, Embed]]) -> dict[int, tuple[Embed, str]]:
        settings, lazy_endpoint = self.settings, self.settings.lazy_endpoint
        out: dict[int, tuple[Embed, str]] = {}
        build: list[tuple[int, Embed]] = []
        for number, embed in embeds:
            problem = pipeline.lazy_problem(embed.spec, lazy_endpoint, doc.page or None, embed.line)
            if problem is not None:
                self.report(DirectiveError.from_problem(problem))
            if embed.spec.mode == pipeline.LAZY:
                out[number] = embed, pipeline.render(embed, None, lazy_endpoint)
                doc.has_lazy = doc.has_lazy or bool(lazy_endpoint)
            elif self.deferred:  # the plugin resolves the site's workspaces, then fills the marker in
                marker = f'{PENDING_MARK}{doc.nonce}-{number}"></div>'
                out[number] = dataclasses.replace(embed, marker=marker), marker
            else:
                build.append((number, embed))
        if build:
            resolved = pipeline.provision_now(settings, [e for _, e in build], logger=log)
            for number, embed in build:
                resolution = resolved[embed.key]
                out[number] = embed, pipeline.render(embed, resolution, lazy_endpoint)
                doc.has_lazy = doc.has_lazy or pipeline.decide(
                    embed.spec, resolution, lazy_endpoint)[0] == pipeline.LAZY
        return out

    def before_first_embed(self, doc: Any) -> str:
        if self.deferred:  # the plugin puts the assets right after <body>
            return ""
        return pipeline.page_assets(self.settings, lazy=doc.has_lazy)


def _stop_zensical_build(md: Markdown, message: str) -> None:
    """Under ``zensical build``, end the build with our one located line and exit status 1.

    Zensical (0.0.x) gives Markdown extensions no error channel: an exception
    raised while a page converts crosses into its Rust runtime and comes back
    as a ``RuntimeError`` printed with two tracebacks after "No issues found".
    For a failed build the process exits anyway, so we say the sentence and
    exit first.  ``zensical serve`` keeps the exception (it reports and waits
    for the next edit), as do all other hosts.
    """
    if _zensical_page(md) is None or "build" not in sys.argv[1:2]:
        return
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    os._exit(1)  # sys.exit would become a Rust-side RuntimeError like any other exception


def _zensical_page(md: Markdown) -> str | None:
    """Zensical registers a context preprocessor carrying the page being rendered."""
    for processor in md.preprocessors:
        page = getattr(processor, "page", None)
        path = getattr(page, "path", None)
        if isinstance(path, str) and path:
            return path.replace("\\", "/")
    return None


def makeExtension(**kwargs: Any) -> SphereWorkspaceExtension:
    return SphereWorkspaceExtension(**kwargs)
