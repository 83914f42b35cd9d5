"""The doctree node of an embed.

A :class:`sphere_workspace` is generic: it carries the validated spec, the
page and the ledger key, and its children are the parsed caption.  Interactive
HTML builders render it through :mod:`.visitors`; every other builder (LaTeX,
text, man, Texinfo, epub, and any builder we have never heard of) gets it
replaced by plain docutils nodes in :func:`fallback_nodes` before writing, so
no builder can meet a node it has no visitor for.
"""

from __future__ import annotations

from docutils import nodes

from ...core.html import fallback_text
from ...core.options import WorkspaceSpec

__all__ = ["fallback_nodes", "sphere_workspace"]


class sphere_workspace(nodes.General, nodes.Element):  # lower case: docutils node naming
    """One embed.  Attributes: ``spec`` (named :class:`WorkspaceSpec`), ``page``
    (source path relative to the source dir, ``/``-separated) and ``key``
    (``page#name``, the provisioning key)."""

    @property
    def spec(self) -> WorkspaceSpec:
        spec = self["spec"]
        assert isinstance(spec, WorkspaceSpec)
        return spec


def fallback_nodes(node: sphere_workspace, web_url: str | None = None) -> nodes.container:
    """The static stand-in for print, PDF, e-book and plain-text outputs.

    The parsed caption (with its markup) followed by the sentence of
    :func:`html.fallback_text` and, when the web version's address is known
    (``html_baseurl``), a link to the page there.
    """
    box = nodes.container(classes=["sphere-workspace-fallback"])
    box.source, box.line = node.source, node.line
    box.extend(child.deepcopy() for child in node.children)
    sentence = fallback_text(node.spec._replace(caption=""))
    para = nodes.paragraph()
    para += nodes.emphasis(sentence, sentence)
    if web_url:
        para += nodes.Text(" ")
        para += nodes.reference(web_url, web_url, refuri=web_url)
    box += para
    return box
