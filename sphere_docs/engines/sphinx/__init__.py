"""Sphinx extension: live Sphere Engine Containers workspaces.

Enable it in ``conf.py``::

    extensions = ["sphere_docs.sphinx"]          # add "myst_parser" for Markdown pages
    sphere_endpoint = "12345678.containers.sphere-engine.com"

and write ``.. sphere-workspace:: <project-id>`` (or the MyST fence
```` ```{sphere-workspace} <project-id> ````) in a page.

This module stays tiny on purpose: ``import sphere_docs.sphinx`` costs nothing
until Sphinx calls :func:`setup`, which imports the real extension
(:mod:`sphere_docs.engines.sphinx.extension`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.application import Sphinx

__all__ = ["setup"]


def setup(app: Sphinx) -> dict[str, Any]:
    from .extension import setup_extension

    return setup_extension(app)
