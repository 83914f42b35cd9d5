"""The public name of the Python-Markdown extension: ``sphere_docs.markdown`` (or ``sphere_workspaces``).

Authors list it in ``markdown_extensions`` or pass it to ``markdown.markdown``;
the extension itself is :mod:`sphere_docs.engines.markdown` (the adapter) on
:mod:`sphere_docs.syntax.markdown` (the directive's syntax).
"""

from __future__ import annotations

from .engines.markdown import (
    COLON_FENCE_MESSAGE,
    DIRECTIVE,
    DIRECTIVE_MARK,
    EXTENSION_NAMES,
    DirectiveError,
    DirectiveWarning,
    Embed,
    SphereWorkspaceExtension,
    makeExtension,
)

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
