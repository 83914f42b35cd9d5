"""The public name of the Python-Markdown extension: ``sphere_docs.markdown`` (or ``sphere_workspaces``).

Authors list it in ``markdown_extensions`` or pass it to ``markdown.markdown``;
the extension itself is :mod:`sphere_docs.engines.markdown` (the adapter) on
:mod:`sphere_docs.syntax.markdown` (the directive's syntax).
"""

from __future__ import annotations

from .engines.markdown import *  # noqa: F403  (this module is only a name)
from .engines.markdown import __all__  # noqa: F401
