"""The public name of the Sphinx extension: ``extensions = ["sphere_docs.sphinx"]`` in ``conf.py``.

The extension itself is :mod:`sphere_docs.engines.sphinx`.
"""

from __future__ import annotations

from .engines.sphinx import setup

__all__ = ["setup"]
