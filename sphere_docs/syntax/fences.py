"""The syntax layer: which lines of a Markdown page are fenced code, by the renderer's own rules.

One lexer, used by the Markdown extension's preprocessor (:mod:`sphere_docs.markdown`)
and, through it, by ``sphere-docs check``.  It mirrors, line for line, the fence
recognizers of the engines the extension runs with; it imports nothing but the
standard library, so the glue that knows the live ``Markdown`` instance passes
in whatever is configuration-dependent (see *hooks* below).

Three rule sets, chosen by what the ``Markdown`` instance registered as its
``fenced_code_block`` preprocessor:

``SUPERFENCES`` (``pymdownx.superfences``, ``SuperFencesBlockPreprocessor.search_nested``)
    A fence opens on any line whose leading run of ``>``, space and tab
    characters (the *prefix*, any length) is followed by 3+ backticks or
    tildes and a header superfences accepts (a language, ``{attributes}``,
    or ``key="value"`` options its validators take; anything else is not a
    fence).  Following lines lose up to the prefix's width of prefix
    characters.  A line whose content is exactly the same fence string
    (same character, *same length*) followed by spaces/tabs closes it; the
    closing line must sit at exactly the prefix's width.  A non-blank line
    with less indentation, or with a ``>`` when the opener had none, ends the
    attempt: the fence is dropped (its lines stay text) and *that line is not
    looked at again* as an opener.  Inside a block quote the rules of
    ``eval_quoted`` apply (deeper quotes drop the fence; a shallower quote
    after a blank line drops it).  A fence still open at the end of the page
    is dropped, and every line after its opener was consumed.  Fences do not
    nest: while one is open, nothing else opens.
``FENCED_CODE`` (``markdown.extensions.fenced_code``)
    A fence opens only at column 0, with ``FencedBlockPreprocessor``'s header
    grammar (``{attrs}``, or ``[.]lang`` and ``hl_lines="..."``), and is closed
    by the first later line that is exactly the same fence string at column 0
    followed by spaces.  An opener with no such line is not a fence, and the
    lines after it are scanned as usual.
``NO_FENCES``
    Neither extension: there are no fenced code blocks.

The directive's own fence (recognized by ``directive``, a pattern for the text
after the fence characters) follows the superfences rules under every rule
set, and may in addition start on a list item's line (``- ```{x}``), whose
following lines are indented like the item's text.  Under ``FENCED_CODE``, a
directive at column 0 follows fenced_code's rules instead (an unclosed one is
then no fence, and the lines after it are scanned as usual), and one that is
indented is cut *before* the line that ends it, so that fenced_code sees that
line exactly as it would have.

Under ``FENCED_CODE`` and ``NO_FENCES``, a fence the engine does not read but
superfences would (an indented one; any one) still holds what the author put in
it: a directive inside is no directive (``"unfenced"``), as in a code example
that the engine happens to show as text.  Column-0 lines end such a fence
(an indented one), so fenced_code's own fences are found as it finds them.

Replacing each directive's lines (:class:`Block` ``start`` to ``end``) with
one line that is no fence line, at the same prefix, leaves every other
fence exactly where the engine finds it: that is what the extension does, and
what ``tests/test_fence_differential.py`` checks against the real engines.  A
directive fence the engine drops (never closed) stays text line for line, as
the engine leaves it: its block is the opening line only, and under
superfences each line it consumed that would open a fence once that line is
gone is a ``"verbatim"`` block, to be kept from doing so.

HTML comments are not this layer's business: the engines look for fences
before they look for HTML (superfences and fenced_code run at priority 25,
``html_block`` at 20), so a fence inside a comment is a fence, and a ``-->``
inside a fence does not end a comment.  The Markdown extension lets the block
parser and the inline processor decide what a comment hides.

Hooks, for rules that depend on the live configuration:

``header_ok(line, pos)``
    superfences: whether the header at ``line[pos:]`` opens a fence (its
    validators and custom fences decide).  Default: :func:`superfences_header_ok`
    (pymdown-extensions' defaults).
``fenced_header_ok(line)``
    fenced_code: whether the column-0 ``line`` opens a fence.  Default:
    :func:`fenced_code_header_ok`.
``strict_quotes``
    superfences with ``pymdownx.quotes``: every line of a quoted fence must have
    the opener's quote level (a bool, or a callable asked once, when a quoted
    fence is met).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence

__all__ = [
    "FENCED_CODE",
    "NO_FENCES",
    "SUPERFENCES",
    "Block",
    "closes",
    "commonmark_closes",
    "fenced_code_header_ok",
    "scan",
    "superfences_header_ok",
]

SUPERFENCES = "superfences"
FENCED_CODE = "fenced_code"
NO_FENCES = "none"

#: superfences' PREFIX_CHARS
_PREFIX_CHARS = "> \t"
#: a line that may open a fence: prefix characters, maybe a list item marker (directives only),
#: then 3+ backticks or tildes
_OPENER_RE = re.compile(
    r"(?P<ws>[> \t]*)(?P<item>(?:[-*+]|\d{1,9}[.)])[ \t]+)?(?P<fence>`{3,}|~{3,})(?P<info>.*)"
)
_COLON_RE = re.compile(r"(?P<ws>[> \t]*)(?P<item>(?:[-*+]|\d{1,9}[.)])[ \t]+)?(?P<fence>:{3,})(?P<info>.*)")

#: pymdownx.superfences.RE_NESTED_FENCE_START (pymdown-extensions 10 to 13), matched after the prefix
SUPERFENCES_START_RE = re.compile(
    r'''(?x)
    (?P<fence>~{3,}|`{3,})
    (?:[ \t]*\.?(?P<lang>[\w#.+-]+)(?=[\t ]|$))?                                           # Language
    (?:
        [ \t]*(\{(?P<attrs>[^\n]*)\}) |                                                    # Optional attributes or
        (?P<options>
            (?:
                (?:[ \t]*[a-zA-Z][a-zA-Z0-9_]*(?:=(?P<quot>"|').*?(?P=quot))?)(?=[\t ]|$)  # Options
            )+
        ) |
        (?P<unrecognized>
            (?:([ \t]*[^\s]+)(?=[\t ]|$))+
        )
    )?[ \t]*$
    '''
)
_SF_OPTION_RE = re.compile(r'''(?P<key>[a-zA-Z][a-zA-Z0-9_]*)(?:=(?P<quot>"|')(?P<value>.*?)(?P=quot))?''')
_SF_HL_LINES_RE = re.compile(r"^(?P<hl_lines>\d+(?:-\d+)?(?:[ \t]+\d+(?:-\d+)?)*)$")
_SF_LINENUMS_RE = re.compile(r"(?P<linestart>[\d]+)(?:[ \t]+(?P<linestep>[\d]+))?(?:[ \t]+(?P<linespecial>[\d]+))?")

#: markdown.extensions.fenced_code.FencedBlockPreprocessor.FENCED_BLOCK_RE's opening line
FENCED_CODE_OPEN_RE = re.compile(
    r"""(?P<fence>~{3,}|`{3,})[ ]*"""
    r"""((\{(?P<attrs>[^\n]*)\})|"""
    r"""(\.?(?P<lang>[\w#.+-]*)[ ]*)?"""
    r"""(hl_lines=(?P<quot>"|')(?P<hl_lines>.*?)(?P=quot)[ ]*)?)"""
)


class Block:
    """A fenced block (or a line of interest) of a page, as :func:`scan` found it.

    ``kind``:

    * ``"fence"``: another fence, closed; lines ``start`` to ``end`` (exclusive) are code.
    * ``"directive"``: a directive fence; ``closed`` says whether it was closed,
      ``end`` is past the last line it consumed, ``body`` its lines without the prefix.
    * ``"swallowed"``: a directive opening line inside a fence that was never closed
      (``opener`` is that fence's block): the engine shows it as text.
    * ``"unfenced"``: a directive opening line inside a fence the engine does not read
      (``FENCED_CODE``: an indented one; ``NO_FENCES``: any), which superfences would:
      not a directive, shown as text (``opener`` is that fence's block).
    * ``"colon"``: a ``:::`` colon fence naming the directive, outside code.
    * ``"verbatim"``: under superfences, a line inside what an unclosed directive
      consumed that would open a fence once the directive's opening line is gone;
      to be kept from doing so (the engine shows it as text).

    An unclosed directive's block is its opening line only: the engine leaves the
    lines of a fence it drops as they are.
    """

    __slots__ = ("body", "closed", "cont", "end", "fence", "info", "kind", "opener", "prefix", "start")

    def __init__(self, kind: str, start: int, end: int, prefix: str, cont: str, fence: str,
                 info: str, closed: bool = True) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.prefix = prefix  #: what precedes the fence characters on the opening line
        self.cont = cont  #: the prefix of the following lines (a list item marker becomes spaces)
        self.fence = fence
        self.info = info  #: the opening line after the fence characters
        self.closed = closed
        self.body: list[str] = []
        self.opener: Block | None = None

    def __repr__(self) -> str:
        return (f"Block({self.kind!r}, {self.start}-{self.end}, fence={self.fence!r}, "
                f"prefix={self.prefix!r}, closed={self.closed})")


# --------------------------------------------------------------------------- closing rules


def closes(content: str, fence: str) -> bool:
    """superfences' and fenced_code's closing line: the same fence string, then only spaces/tabs.

    ``content`` is the line without its container prefix; a longer or shorter run
    of the same character does not close the fence, nor does an indented one.
    """
    return content.startswith(fence) and not content[len(fence):].strip(" \t")


def commonmark_closes(line: str, fence: str, indent: int = 0) -> bool:
    """CommonMark's (markdown-it's, MyST's) closing fence, for a fence opened at ``indent`` columns.

    The same character, at least as many, then only spaces/tabs, indented at most 3
    columns more than the opener (the container is not tracked: its column is taken
    to be the opener's).
    """
    stripped = line.lstrip(" ")
    lead = len(line) - len(stripped)
    if lead > indent + 3 or not stripped.startswith(fence):
        return False
    rest = stripped.rstrip(" \t")
    return rest == fence[0] * len(rest)


# --------------------------------------------------------------------------- header rules


def superfences_header_ok(line: str, pos: int) -> bool:
    """superfences' verdict on the header at ``line[pos:]`` with its default configuration.

    Its default validator (``highlight_validator`` with Pygments on) accepts a
    language, ``{attributes}`` and the options ``hl_lines``, ``linenums``,
    ``title`` and ``title_mode``; any other option, or an unrecognized header,
    means the line is no fence (``relaxed_headers`` off).
    """
    m = SUPERFENCES_START_RE.match(line, pos)
    if m is None or m.group("unrecognized"):
        return False
    options = m.group("options")
    if m.group("attrs") is not None or not options:
        return True
    for option in _SF_OPTION_RE.finditer(options):
        key = option.group("key")
        value = option.group("value")
        value = key if value is None else value
        if key == "hl_lines":
            ok = _SF_HL_LINES_RE.match(value) is not None
        elif key == "linenums":
            ok = _SF_LINENUMS_RE.match(value) is not None
        else:
            ok = key in ("title", "title_mode")
        if not ok:
            return False
    return True


def fenced_code_header_ok(line: str) -> bool:
    """fenced_code's verdict on the column-0 ``line`` as an opening fence (attributes taken as valid)."""
    return FENCED_CODE_OPEN_RE.fullmatch(line) is not None


# --------------------------------------------------------------------------- the lexer


def _prefix_len(line: str) -> int:
    """Length of the leading run of ``>``, space and tab characters (superfences' ``parse_whitespace``)."""
    i = 0
    for c in line:
        if c not in _PREFIX_CHARS:
            break
        i += 1
    return i


class _Open:
    """A superfences fence being read (``SuperFencesBlockPreprocessor`` state)."""

    __slots__ = ("block", "empty_lines", "quote_level", "width")

    def __init__(self, block: Block) -> None:
        self.block = block
        self.width = len(block.cont)  #: ws_len == ws_virtual_len: tabs are expanded before the scan
        self.quote_level = block.cont.count(">")
        self.empty_lines = 0


def _superfences_step(state: _Open, line: str, strict_quotes: bool) -> str:
    """One line of an open fence: ``"content"``, ``"close"`` or ``"drop"`` (eval_fence / eval_quoted)."""
    width = state.width
    j = 0
    n = len(line)
    while j < width and j < n and line[j] in _PREFIX_CHARS:
        j += 1
    ws, content = line[:j], line[j:]
    quote_level = ws.count(">") if ">" in ws else 0
    if state.quote_level:
        if quote_level > state.quote_level or (strict_quotes and quote_level != state.quote_level):
            return "drop"
        if content == "":
            state.empty_lines += 1
            return "content"
        if j < width:
            return "drop"
        if state.empty_lines and quote_level < state.quote_level:
            return "drop"
        if closes(content, state.block.fence):
            return "close"
        state.empty_lines = 0
        return "content"
    if quote_level:
        return "drop"
    if not (ws + content).strip():
        state.empty_lines += 1
        return "content"
    if j != width and content != "":
        return "drop"
    if closes(content, state.block.fence):
        return "close"
    state.empty_lines = 0
    return "content"


def _body_line(line: str, width: int) -> str:
    """A content line without the fence's prefix (superfences' ``rebuild_block``)."""
    j = 0
    while j < width and j < len(line) and line[j] in _PREFIX_CHARS:
        j += 1
    return line[j:]


def scan(
    lines: Sequence[str],
    rules: str,
    directive: re.Pattern[str] | None = None,
    *,
    header_ok: Callable[[str, int], bool] | None = None,
    fenced_header_ok: Callable[[str], bool] | None = None,
    strict_quotes: bool | Callable[[], bool] = False,
    colon: re.Pattern[str] | None = None,
) -> list[Block]:
    """The fenced blocks of ``lines``, in order (see the module docstring for the rules).

    ``lines`` are normalized as Markdown does it first (no CR, tabs expanded).
    ``directive`` matches the text after the fence characters of a directive's
    opening line (``{name} argument``); ``colon`` the text after a ``:::`` fence
    that names it (reported as ``"colon"`` blocks when outside code).
    """
    if rules not in (SUPERFENCES, FENCED_CODE, NO_FENCES):
        raise ValueError(f"unknown fence rules {rules!r}")
    header_ok = header_ok or superfences_header_ok
    fenced_header_ok = fenced_header_ok or fenced_code_header_ok
    quotes_rule = strict_quotes

    def strict(cont: str) -> bool:  # asked only of fences in a block quote (the hook may cost)
        nonlocal quotes_rule
        if ">" not in cont:
            return False
        if callable(quotes_rule):
            quotes_rule = bool(quotes_rule())
        return quotes_rule

    blocks: list[Block] = []
    #: FENCED_CODE / NO_FENCES: a fence the engine does not read (indented, or no fence extension)
    #: but superfences would; directives inside it stay text ("unfenced"), as the author meant
    shadow: _Open | None = None
    # the lines that can matter outside a fence (most are prose: skipped without a look)
    interesting = [k for k, row in enumerate(lines) if "```" in row or "~~~" in row or ":::" in row]
    i, n = 0, len(lines)
    while i < n:
        if shadow is None:
            j = bisect_left(interesting, i)
            if j == len(interesting):
                break
            i = interesting[j]
        line = lines[i]
        if shadow is not None:
            step = _superfences_step(shadow, line, strict(shadow.block.cont))
            if step == "content":
                _swallowed_line(blocks, shadow.block, "unfenced", line, i, directive, colon)
            if step != "drop":
                shadow = shadow if step == "content" else None
                i += 1
                continue
            shadow = None  # a line that ends it is read as usual: the engine never saw that fence
        if "```" not in line and "~~~" not in line:
            if colon is not None and ":::" in line:
                _colon(blocks, colon, line, i)
            i += 1
            continue
        m = _OPENER_RE.match(line)
        if m is None:
            i += 1
            continue
        ws, item, fence, info = m["ws"], m["item"] or "", m["fence"], m["info"]
        if directive is not None and not (fence[0] == "`" and "`" in info) and directive.match(info):
            prefix = ws + item
            block = Block("directive", i, i + 1, prefix, ws + " " * len(item), fence, info)
            blocks.append(block)
            if rules == FENCED_CODE and not prefix:
                i = _fenced_code_block(block, lines, i)
                continue
            i = _superfences_block(block, lines, i, strict(block.cont), cut=rules == FENCED_CODE)
            if not block.closed:
                # a fence the engine drops stays text, line for line: only the opening line is the
                # directive's; under superfences nothing it consumed may open a fence afterwards
                block.end = block.start + 1
                if rules == SUPERFENCES:
                    for k in range(block.start + 1, i):
                        _swallowed_line(blocks, block, "swallowed", lines[k], k, directive, colon, header_ok)
            continue
        if item:
            i += 1
            continue
        if rules == FENCED_CODE and not ws:
            block = Block("fence", i, i + 1, "", "", fence, info)
            if fenced_header_ok(line) and _fenced_code_block(block, lines, i) and block.closed:
                blocks.append(block)
                i = block.end
            else:
                i += 1  # no fence: the lines after it are read as usual
            continue
        if not header_ok(line, len(ws)):
            i += 1
            continue
        block = Block("fence" if rules == SUPERFENCES else "shadow", i, i + 1, ws, ws, fence, info)
        if rules != SUPERFENCES:
            shadow = _Open(block)
            i += 1
            continue
        blocks.append(block)
        i = _superfences_block(block, lines, i, strict(block.cont), cut=False)
        if not block.closed:
            for k in range(block.start + 1, block.end):
                _swallowed_line(blocks, block, "swallowed", lines[k], k, directive, colon)
    return blocks


def _superfences_block(block: Block, lines: Sequence[str], start: int, strict_quotes: bool,
                       cut: bool) -> int:
    """Read a fence by superfences' rules; the index of the line after it.

    A dropped fence consumed the line that dropped it (superfences never looks at
    it again), unless ``cut``: then that line is left for the caller.
    """
    n = len(lines)
    if not block.cont:  # at column 0 nothing drops the fence: the first closing line ends it
        if _close_at_column_0(block, lines, start, " \t"):
            return block.end
        block.end = n
        block.body = list(lines[start + 1:])
        return n
    state = _Open(block)
    k = start + 1
    while k < n:
        step = _superfences_step(state, lines[k], strict_quotes)
        if step == "close":
            block.closed = True
            block.end = k + 1
            return k + 1
        if step == "drop":
            block.closed = False
            block.end = k if cut else k + 1
            return block.end
        block.body.append(_body_line(lines[k], state.width))
        k += 1
    block.closed = False
    block.end = n
    return n


def _fenced_code_block(block: Block, lines: Sequence[str], start: int) -> int:
    """Read a column-0 fence by fenced_code's rules; the index of the line after it.

    An opener with no closing line is no fence: the scan goes on at the next line.
    """
    if _close_at_column_0(block, lines, start, " "):
        return block.end
    block.end = start + 1
    return start + 1


def _close_at_column_0(block: Block, lines: Sequence[str], start: int, trailing: str) -> bool:
    """Close ``block`` at the first line after ``start`` that is its fence string followed only by
    ``trailing`` characters (superfences allows spaces and tabs, fenced_code spaces); ``False``
    (``block.closed`` too) when no line does."""
    fence = block.fence
    for k in range(start + 1, len(lines)):
        row = lines[k]
        if row.startswith(fence) and not row[len(fence):].strip(trailing):
            block.closed = True
            block.end = k + 1
            block.body = list(lines[start + 1:k])
            return True
    block.closed = False
    return False


def _swallowed_line(blocks: list[Block], fence: Block, kind: str, line: str, index: int,
                    directive: re.Pattern[str] | None, colon: re.Pattern[str] | None,
                    header_ok: Callable[[str, int], bool] | None = None) -> None:
    """A directive (or colon fence) line inside a fence the engine does not close or read: text.

    With ``header_ok`` (the lines an unclosed directive consumed), any other line that
    would open a fence is a ``"verbatim"`` block: the engine consumed it as content,
    so it must not open one once the directive's opening line is replaced.
    """
    if (directive is not None or header_ok is not None) and ("```" in line or "~~~" in line):
        m = _OPENER_RE.match(line)
        if m is None:
            return
        prefix = m["ws"] + (m["item"] or "")
        if (directive is not None and not (m["fence"][0] == "`" and "`" in m["info"])
                and directive.match(m["info"])):
            block = Block(kind, index, index + 1, prefix, prefix, m["fence"], m["info"], closed=False)
            block.opener = fence
            blocks.append(block)
        elif header_ok is not None and not m["item"] and header_ok(line, len(m["ws"])):
            blocks.append(Block("verbatim", index, index + 1, prefix, prefix, m["fence"], m["info"]))
    elif colon is not None and ":::" in line:
        _colon(blocks, colon, line, index)


def _colon(blocks: list[Block], colon: re.Pattern[str], line: str, index: int) -> None:
    m = _COLON_RE.match(line)
    if m is not None and colon.match(m["info"]):
        prefix = m["ws"] + (m["item"] or "")
        blocks.append(Block("colon", index, index + 1, prefix, prefix, m["fence"], m["info"], closed=False))
