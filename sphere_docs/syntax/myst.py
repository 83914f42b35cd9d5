"""MyST preparation: a MyST page rewritten line for line so the Markdown directive syntax sees its embeds.

Container directives are unwrapped, ``:::{sphere-workspace}`` colon fences become
backtick fences, code blocks are blanked out (markdown-it's closing rule:
:func:`sphere_docs.syntax.fences.commonmark_closes`) and ``{eval-rst}`` bodies are
handed back for the rST reader.  Line numbers never shift.

Layer: syntax.  Imports only the core and the syntax layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from ..core.catalog import DIRECTIVE
from . import fences, rst

__all__ = ["LITERAL_DIRECTIVES", "Prepared", "prepare", "strip_front_matter", "unclosed_fence"]


_MD_FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_MYST_NAME_RE = re.compile(r"^[ \t]*\{(?P<name>[^}\s]+)\}")
_MYST_OPTION_RE = re.compile(r"^[ \t]*:[\w-]+:")
#: MyST directives whose body is not Markdown
LITERAL_DIRECTIVES = rst.LITERAL_DIRECTIVES | {"eval-rst"}


def _fence_end(lines: list[str], start: int, fence: str, indent: int = 0) -> int:
    """Index of the closing fence line (``len(lines)`` when it is never closed), by markdown-it's rule."""
    i = start
    while i < len(lines):
        if fences.commonmark_closes(lines[i], fence, indent):
            return i
        i += 1
    return i


@dataclass
class Prepared:
    lines: list[str]
    rst: list[tuple[int, list[str]]] = field(default_factory=list)  #: (0-based start, lines)


def prepare(lines: list[str]) -> Prepared:
    """Line-for-line rewrite (numbers never shift) so the Markdown extension sees MyST embeds.

    Unwrap container directives, turn ``:::{sphere-workspace}`` into a backtick
    fence, blank out code blocks (markdown-it's fences: the page's Markdown
    instance has no fence extension) and hand ``{eval-rst}`` bodies to the rST
    scanner.  Pages outside MyST go to the extension as they are: it reads
    their fences by their engine's rules and reports ``:::`` fences itself.
    """
    out = list(lines)
    prepared = Prepared(out)
    open_containers: list[tuple[str, int]] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if open_containers and fences.commonmark_closes(line, *open_containers[-1]):
            out[i] = ""
            open_containers.pop()
            i += 1
            continue
        m = _MD_FENCE_RE.match(line)
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        fence, info = m["fence"], m["info"]
        indent = len(m["indent"].expandtabs(4))
        named = _MYST_NAME_RE.match(info)
        name = named["name"].lower() if named else None
        if fence[0] == ":" and not name:
            i += 1  # no directive: a line of text
            continue
        end = _fence_end(lines, i + 1, fence, indent)
        if name == DIRECTIVE:
            if fence[0] == ":":
                inner = max((len(f["fence"]) for row in lines[i + 1:end]
                             if (f := _MD_FENCE_RE.match(row)) and f["fence"][0] == "`"), default=2)
                ticks = "`" * max(3, inner + 1)
                out[i] = m["indent"] + ticks + info
                if end < n:
                    out[end] = m["indent"] + ticks
            i = end + 1
            continue
        if name is None or name in LITERAL_DIRECTIVES:
            if name == "eval-rst":
                prepared.rst.append((i + 1, lines[i + 1:end]))
            for k in range(i, min(end + 1, n)):
                out[k] = ""
            i = end + 1  # a code block: nothing in it is an embed
            continue
        # a container directive: its body is Markdown that may hold embeds
        out[i] = ""
        open_containers.append((fence, indent))
        k = i + 1
        if k < n and lines[k].strip() == "---":
            close = next((j for j in range(k + 1, n) if lines[j].strip() == "---"), None)
            if close is not None:
                for j in range(k, close + 1):
                    out[j] = ""
                k = close + 1
        else:
            while k < n and _MYST_OPTION_RE.match(lines[k]):
                out[k] = ""
                k += 1
        i = k
    return prepared


_FRONT_MATTER_RE = re.compile(r"\A-{3}[ \t]*\n(.*?\n)?(?:-{3}|\.{3})[ \t]*(?:\n|\Z)", re.DOTALL)


def strip_front_matter(text: str) -> tuple[str, int]:
    """The page without its YAML front matter, and how many lines that was (for line numbers)."""
    m = _FRONT_MATTER_RE.match(text)
    if not m:
        return text, 0
    try:
        data = yaml.safe_load(m.group(1) or "")
    except yaml.YAMLError:
        return text, 0
    if data is not None and not isinstance(data, dict):
        return text, 0
    return text[m.end():], m.group(0).count("\n")


def unclosed_fence(lines: list[str], line: int) -> str | None:
    """The directive fence opened at ``line`` (1-based) when nothing below it can close it, else ``None``.

    markdown-it (CommonMark) lets an unclosed fence run to the end of its
    container, so MyST would take the rest of the page as the caption where
    Python-Markdown reports an error.  The test is deliberately loose (any later
    line of only that fence character, at least as long, whatever its prefix): it
    never calls a closed fence unclosed.
    """
    if not 0 < line <= len(lines):
        return None
    opening = lines[line - 1].lstrip(" \t>")
    fence = opening[: len(opening) - len(opening.lstrip(opening[:1]))] if opening[:1] in "`~:" else ""
    if len(fence) < 3:
        return None
    for row in lines[line:]:
        bare = row.strip(" \t>").rstrip()
        if len(bare) >= len(fence) and bare == fence[0] * len(bare):
            return None
    return fence
