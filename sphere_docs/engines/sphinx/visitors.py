"""Rendering: the HTML visitor, and the fallback for every other builder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sphinx.builders.html import StandaloneHTMLBuilder

from ... import pipeline
from ...pipeline import Embed
from .config import config_name
from .envdata import env_data
from .nodes import fallback_nodes, sphere_workspace

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.builders import Builder
    from sphinx.writers.html5 import HTML5Translator

__all__ = [
    "depart_workspace_html",
    "is_interactive",
    "replace_for_static_builders",
    "visit_workspace_html",
]

#: the lazy endpoint setting as conf.py spells it, for the reader's notice (pipeline.decide)
LAZY_SETTING = config_name("lazy_endpoint")


def is_interactive(builder: Builder) -> bool:
    """HTML that a browser runs: html, dirhtml, singlehtml (and their subclasses).

    epub is built by an HTML builder too, but e-readers run no SDK: it gets the
    static fallback like LaTeX.
    """
    from sphinx.builders._epub_base import EpubBuilder

    return isinstance(builder, StandaloneHTMLBuilder) and not isinstance(builder, EpubBuilder)


def render_html(builder: Builder, node: sphere_workspace, caption_html: str) -> str:
    outcome = env_data(builder.env).outcomes.get(node["key"])
    embed = Embed(page=node["page"], spec=node.spec)
    return pipeline.render(embed, outcome, builder.config.sphere_lazy_endpoint,
                           caption_html=caption_html, setting=LAZY_SETTING)


# The caption children are rendered by the translator as usual; at departure
# their markup is taken back out of ``body`` and handed to the shared html
# functions, which wrap it.  A stack (not one slot) keeps a caption that holds
# an embed of its own correct.


def visit_workspace_html(self: HTML5Translator, node: nodes.Element) -> None:
    starts: list[int] = self.__dict__.setdefault("_sphere_starts", [])
    starts.append(len(self.body))


def depart_workspace_html(self: HTML5Translator, node: nodes.Element) -> None:
    start = self.__dict__["_sphere_starts"].pop()
    caption_html = "".join(self.body[start:])
    del self.body[start:]
    assert isinstance(node, sphere_workspace)
    self.body.append(render_html(self.builder, node, caption_html) + "\n")


def replace_for_static_builders(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved``: builders that are not interactive HTML get the fallback.

    Done on the resolved doctree rather than with a visitor per translator, so
    every builder - including ones this package has never heard of - sees only
    standard docutils nodes.
    """
    if is_interactive(app.builder):
        return
    base = (app.config.html_baseurl or "").rstrip("/")
    for node in list(doctree.findall(sphere_workspace)):
        url = f"{base}/{node['docname']}.html" if base.startswith(("http://", "https://")) else None
        node.replace_self(fallback_nodes(node, url))
