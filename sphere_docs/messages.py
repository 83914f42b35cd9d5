"""Sentences about the directive's syntax that more than one engine prints.

Option and name problems are :class:`~sphere_docs.options.OptionError` values
(their sentence is :meth:`~sphere_docs.options.OptionError.describe`); the
problems here are about the fence around the directive.  Every engine and
``check`` take the sentence from here, so the same mistake reads the same
everywhere.
"""

from __future__ import annotations

__all__ = ["unclosed_fence"]

DIRECTIVE = "sphere-workspace"


def unclosed_fence(fence: str) -> str:
    """The directive's fence has no closing line (an error: the rest of the page would be its caption)."""
    return (f"{DIRECTIVE}: the fence opened here is never closed; "
            f"expected a closing {fence} line at the same indentation")
