"""The ```` ```{sphere-workspace} ```` fence's syntax for Python-Markdown: find, claim, name.

:class:`DirectiveExtension` finds the directives of a document, reports their
problems and names the valid ones; what HTML each becomes is its engine
adapter's (:mod:`sphere_docs.engines.markdown`, the ``sphere_workspaces``
extension authors list, and through it the MkDocs plugin), and ``sphere-docs
check`` runs it with no adapter at all.  Layer: syntax (imports only the core).

How the directive is found, and why it survives nesting
-------------------------------------------------------
Fences are a line-level construct, so (like ``pymdownx.superfences``) a
preprocessor reads the source line by line *before* ``fenced_code`` /
``superfences`` / ``html_block`` see it.  What is code is decided by
:mod:`sphere_docs.syntax.fences`, with the rules of the fence extension this
``Markdown`` instance runs (superfences', fenced_code's, or none), so the scan
and the renderer agree on every other fence; the directive's own fence follows
superfences' rules in every mode (and may also start on a list item's line).
Each directive becomes one marker line at the fence's prefix: to the fence
preprocessor after us, that line is exactly what the directive's fence was, a
line that opens no fence, so every other fence stays where the engine finds it
(``tests/test_fence_differential.py`` checks this against the engines).  With
fenced_code the marker gets blank lines around it, as fenced_code's own
placeholder does.

The marker is a line of text where the renderer would have had the fence's
placeholder, so the block parser and the inline processor carry it exactly
where they would have carried the fence: through lists, admonitions,
``pymdownx.details``, ``pymdownx.tabbed``, block quotes, ``md_in_html``, into a
paragraph, into an indented code block, into an inline HTML comment.  After
the inline processor, :class:`_ClaimTreeprocessor` *claims* every live marker
the tree shows (a paragraph holding one is cut around it) and renders the
caption as Markdown in its slot.  Only claimed directives become embeds.
Markers in a code block go back to source text, escaped; markers the inline
processor hid in a comment go back inside it (``_EmbedPostprocessor``).
Errors of a directive are raised only when it is claimed, so a broken example
shown as code is just text.

Directive text that is no fence for the renderer (a ``:::`` colon fence, a
directive inside a fence never closed, or inside a fence the engine does not
read, one that superfences puts back as text after an indented code block, a
directive fence that is never closed) also gets a marker, one that is never
claimed: :class:`_TextTreeprocessor` puts its text back before the inline
processor (which must see the text the renderer would) with a tracker after
it.  Where the page shows it (not in a code block nor a comment), a
:class:`DirectiveWarning` with file and line says why (for a fence never
closed, its error); ``finish_page(warnings)`` hands them to the MkDocs plugin,
which logs them, so ``--strict`` fails.

Processors (name, priority):

* preprocessor ``sphere_workspace`` (31.08): find directives, parse options,
  replace with markers.  Runs before every fence preprocessor, including
  superfences' ``preserve_tabs`` one (31.05), so a directive's closing fence is
  never mistaken for an opening one; it does Markdown's whitespace
  normalization itself first, and its SOH/EOT markers survive
  ``normalize_whitespace`` (30), which strips STX/ETX.
* preprocessor ``sphere_workspace_markers`` (29.95): markers become STX/ETX.
* block processor ``sphere_workspace_code_revert`` (80.5, pages with a
  directive only): superfences' code block processor puts back the fences of
  a block it takes as indented code; so do we, just before it.
* treeprocessor ``sphere_workspace_text`` (25, pages with a directive only):
  directive text that is no fence goes back to text, before ``inline`` (20).
* treeprocessor ``sphere_workspace`` (19): claim markers, after ``inline``.
* postprocessor ``sphere_workspace`` (25): after ``raw_html`` (30) restored
  the caption's raw HTML, swap each claimed slot for the embed's HTML; markers
  left in raw HTML go back to source text (a warning where it is shown).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import xml.etree.ElementTree as etree
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from markdown import Markdown
from markdown.blockprocessors import BlockProcessor, CodeBlockProcessor
from markdown.extensions import Extension
from markdown.postprocessors import Postprocessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString, code_escape

from ..core import catalog, html
from ..core.catalog import Code, Problem
from ..core.embed import Embed, name_embed, read_embed
from ..core.errors import SettingsError, SphereDocsError
from ..core.naming import PageNamer
from ..core.options import OptionError, WorkspaceSpec
from ..core.settings import SETTINGS, SiteSettings
from . import fences

__all__ = [
    "DIRECTIVE",
    "DIRECTIVE_MARK",
    "DirectiveError",
    "DirectiveExtension",
    "DirectiveWarning",
    "Embed",
]

log = logging.getLogger("sphere_docs.markdown")

DIRECTIVE = "sphere-workspace"
#: how a directive starts in the source (the fence info): a page without it has no embed
DIRECTIVE_MARK = "{" + DIRECTIVE + "}"
#: how a ``markdown_extensions`` list can name this extension (entry point, module)
EXTENSION_NAMES = ("sphere_workspaces", "sphere_docs.markdown")

#: the text after the fence characters of a directive's opening line (see sphere_docs.syntax.fences)
_DIRECTIVE_INFO_RE = re.compile(r"^[ \t]*\{" + DIRECTIVE + r"\}(?P<arg>(?:[ \t].*)?)$")
#: the text after a ``:::`` colon fence naming the directive (MyST syntax: text in Python-Markdown)
_COLON_INFO_RE = re.compile(r"^[ \t]*\{" + DIRECTIVE + r"\}")
#: the sentence for a colon fence, in the build and in ``sphere-docs check``
COLON_FENCE_MESSAGE = catalog.colon_fence()
#: a ``:name: value`` option line (value optional: a bare flag)
_OPTION_RE = re.compile(r"^:(?P<name>[^:\s][^:]*):(?P<value>.*)$")
_YAML_KEY_RE = re.compile(r"^[ \t]*[\"']?(?P<name>[^:\s\"']+)[\"']?[ \t]*:")
#: what the scan leaves in place of a directive: SOH/EOT survive whitespace normalization
#: (which strips STX/ETX); _MarkerPreprocessor turns them into STX/ETX afterwards
_RAW_MARKER = "\x01sphere-workspace:{}\x04"
_RAW_MARKER_RE = re.compile("\x01sphere-workspace:(\\d+)\x04")
#: a claimed directive after serialization: its slot, the caption HTML, the end marker
_SLOT_RE = re.compile(
    r'<div data-sphere-slot="(?P<nonce>[0-9a-f]+)-(?P<number>\d+)">(?P<caption>.*?)'
    r'<span data-sphere-slot-end="(?P=nonce)-(?P=number)"></span>\s*</div>',
    re.DOTALL,
)
_MARKER = "\x02sphere-workspace:"  #: the start of a marker after _MarkerPreprocessor
#: directive text put back before the inline processor runs, where the page shows it: a tracker
#: after it finds out whether inline code or an inline comment holds it (then it is no warning)
_TRACKER = "\x02sphere-workspace-text:{}\x03"
_ANY_MARK = "\x02sphere-workspace"  #: the start of a marker or a tracker
_LEAD_MARKER_RE = re.compile("(?P<lead>[ \t]*)\x02sphere-workspace(?P<track>-text)?:(?P<number>\\d+)\x03")
#: a marker, and the spaces after it on its line
_MARKER_RE = re.compile("\x02sphere-workspace:(?P<number>\\d+)\x03[ \t]*")
#: elements of the final HTML whose text is code, not prose
_CODE_TAGS = ("pre", "code", "textarea", "script", "style")
#: preprocessors that give block structure to Markdown and must see captions too
_CAPTION_PREPROCESSORS = ("fenced_code_block", "html_block")
#: settings that are not SiteSettings fields but extension-only knobs
_EXTENSION_ONLY = ("page",)


class DirectiveError(SphereDocsError, ValueError):
    """A directive that cannot become an embed.

    ``str(err)`` is the whole located sentence, e.g.
    ``lessons/intro.md:12: sphere-workspace: unknown option 'heigth'; valid options: ...``.
    ``page`` and ``line`` say where (``page`` is ``None`` when unknown);
    ``option_error`` is the underlying :class:`OptionError` when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        page: str | None,
        line: int | None,
        option_error: OptionError | None = None,
        code: Code = Code.OPTION,
    ):
        self.page = page
        self.line = line
        self.option_error = option_error
        self.message = message
        self.code = code  #: the catalog code (Sphinx's warning subtype)
        #: the line of the directive's fence (``line`` is the option's): one directive, however many
        #: problems, is one invalid embed
        self.directive_line = line
        super().__init__(_locate(page, line, message))

    @classmethod
    def from_problem(cls, problem: Problem) -> DirectiveError:
        return cls(problem.sentence, page=problem.page, line=problem.line,
                   option_error=problem.error, code=problem.code)


class DirectiveWarning(DirectiveError):
    """Directive text the page shows as text, not as an embed (never raised: a located warning).

    Collected per page (``finish_page(warnings)``); the MkDocs plugin logs each one
    as a warning, so ``mkdocs build --strict`` fails.
    """

    def __init__(self, message: str, *, page: str | None, line: int | None):
        super().__init__(message, page=page, line=line, code=Code.TEXT)


def _of_directive(directive: _Directive, problems: Sequence[Problem]) -> list[DirectiveError]:
    """The directive's problems as errors, each knowing the directive it belongs to."""
    errors = [DirectiveError.from_problem(p) for p in problems]
    for err in errors:
        err.directive_line = directive.line
    return errors


def _locate(page: str | None, line: int | None, message: str) -> str:
    return Problem(Code.OPTION, message, page, line).located()


# The records below are plain classes with __slots__, not dataclasses: this module is imported
# by every MkDocs build, and each dataclass costs about 0.5 ms to define on CPython 3.11.


class _Directive:
    __slots__ = ("caption", "claimed", "cont", "errors", "kind", "line", "nested", "note", "number",
                 "option_lines", "prefix", "raw", "reported", "spec")

    def __init__(self, number: int, line: int, prefix: str, cont: str, raw: list[str],
                 kind: str = "live", note: str = "") -> None:
        self.number = number
        #: "live": a directive fence.  The others are text for the renderer and never claimed: their
        #: marker only finds out whether the page shows them (then: a warning, or for "unclosed", a
        #: directive fence never closed, its error) — "swallowed" (inside a fence never closed),
        #: "unfenced" (inside a fence the engine does not read), "colon" (a ':::' fence),
        #: "reverted" (put back by superfences' code block rule), "verbatim" (a line to keep as is)
        self.kind = kind
        self.note = note  #: the warning when the page shows it as text (non-live kinds)
        self.reported = False
        self.nested: list[int] = []  #: page lines of directive text inside its caption (shown as text)
        self.line = line  #: 1-based, in the page source
        self.prefix = prefix  #: what precedes the opening fence on its line
        self.cont = cont  #: what precedes the following lines (a list marker becomes spaces)
        self.raw = raw
        self.spec: WorkspaceSpec | None = None
        self.option_lines: dict[str, int] = {}  #: option name as written -> its page line
        self.caption = ""
        self.errors: list[DirectiveError] = []  #: every problem of the directive, in line order
        self.claimed = False


class _Document:
    """Per-conversion state; replaced at the start of every conversion."""

    __slots__ = (
        "claimed",
        "directives",
        "embeds",
        "errors",
        "has_lazy",
        "line_offset",
        "nonce",
        "page",
        "rendered",
        "warnings",
    )

    def __init__(self, page: str, line_offset: int, nonce: str) -> None:
        self.page = page
        self.line_offset = line_offset
        self.nonce = nonce  #: tells our slots from look-alike markup an author wrote
        self.directives: dict[int, _Directive] = {}
        self.claimed: list[int] = []
        self.embeds: list[Embed] = []
        self.errors: list[DirectiveError] = []
        self.warnings: list[DirectiveError] = []  #: directive text shown as text (DirectiveWarning)
        self.has_lazy = False  #: a lazy embed or a lazy fallback: the page needs the activation script
        self.rendered: dict[int, str] | None = None  #: HTML per claimed directive, once rendered


# --------------------------------------------------------------------------- scanning


def _normalize(lines: list[str], text: str, tab_length: int) -> list[str]:
    """Markdown's whitespace normalization (``NormalizeWhitespace``), done first: ``text`` is ``lines`` joined.

    CR LF and lone CR end lines, tabs are expanded, lines of spaces are empty, STX/ETX
    are dropped, and look-alikes of our raw marker are defused.  The scan runs before
    Markdown's own normalization (see the module docstring) and must see the lines
    the fence preprocessors will see.
    """
    if "\r" not in text and "\t" not in text and "\x01" not in text and "\x02" not in text and "\x03" not in text:
        return [row if row.strip(" ") else "" for row in lines]  # the usual page
    text = text.replace("\x02", "").replace("\x03", "").replace("\r\n", "\n").replace("\r", "\n")
    text = text.expandtabs(tab_length).replace("\x01sphere-workspace:", "sphere-workspace:")
    return [row if row.strip(" ") else "" for row in text.split("\n")]


def _strip_prefix(line: str, prefix: str) -> str | None:
    """``line`` without the directive's indentation/quote prefix; ``None`` if it left the container."""
    if not line.strip():
        return ""
    if line.startswith(prefix):
        return line[len(prefix):]
    if ">" in prefix:
        bare = prefix.rstrip()
        if line.rstrip() == bare:
            return ""
        # tolerate "> " vs ">" differences inside block quotes
        if line.replace(" ", "").startswith(bare.replace(" ", "")):
            return re.sub(r"^(?:[ \t]*>){" + str(bare.count(">")) + r"}[ \t]?", "", line)
    return None


def _inside_comment(text: str, pos: int) -> bool:
    """Whether ``pos`` of ``text`` is inside an HTML comment (``<!--`` before it, ``-->`` after it)."""
    start = text.rfind("<!--", 0, pos)
    if start < 0 or text.find("-->", start + 4, pos) >= 0:
        return False
    end = text.find("-->", pos)
    return end >= 0 and text.find("<!--", pos, end) < 0


def _inside_code_html(text: str, pos: int) -> bool:
    """Whether ``pos`` of the page's HTML is inside a comment or a code element (``<pre>``...)."""
    if _inside_comment(text, pos):
        return True
    before = text[:pos].lower()
    return any(len(re.findall(f"<{tag}[\\s>]", before)) > before.count(f"</{tag}") for tag in _CODE_TAGS)


def _fence_rules(md: Markdown) -> tuple[str, dict[str, Any]]:
    """The fence rules of ``md`` (what its ``fenced_code_block`` preprocessor is) and the hooks
    that let :func:`sphere_docs.syntax.fences.scan` ask the live preprocessor what its configuration
    decides (asked only when needed: this runs for every page with a directive)."""
    if "fenced_code_block" not in md.preprocessors:
        return fences.NO_FENCES, {}
    pre = md.preprocessors["fenced_code_block"]
    if type(pre).__module__ == "markdown.extensions.fenced_code":
        return fences.FENCED_CODE, {"fenced_header_ok": _fenced_code_header(pre)}
    # pymdownx.superfences, or a look-alike: superfences' rules
    hooks: dict[str, Any] = {"header_ok": _superfences_header(pre)}
    quotes = getattr(pre, "is_pymdownx_quotes_logic", None)
    if callable(quotes):
        hooks["strict_quotes"] = lambda: _safe_call(quotes)
    return fences.SUPERFENCES, hooks


def _safe_call(method: Callable[[], Any]) -> bool:
    try:
        return bool(method())
    except Exception:  # an internal of another package: its default then
        return False


def _superfences_header(pre: Any) -> Callable[[str, int], bool]:
    """superfences' own verdict on a header (its validators, custom fences and settings decide).

    A bare fence or a language alone, with no custom fence of that name (nor a ``*``
    one), passes the default validator whatever the settings: no need to ask.  When
    the preprocessor is not superfences' (or its internals changed), the verdict is
    :func:`sphere_docs.syntax.fences.superfences_header_ok` (superfences' defaults).
    """
    live: list[Any] = []  # [start pattern, custom fence names, methods...] once asked

    def resolve() -> bool:
        start_re = getattr(sys.modules.get(type(pre).__module__), "RE_NESTED_FENCE_START", None)
        names = ("get_hl_settings", "clear", "handle_unrecognized", "handle_attrs", "parse_options")
        methods: list[Any] = [getattr(pre, name, None) for name in names]
        entries = getattr(getattr(pre, "extension", None), "superfences", None)
        if start_re is None or not all(callable(m) for m in methods) or not isinstance(entries, list):
            return False
        custom = {entry.get("name") for entry in entries[1:] if isinstance(entry, dict)}
        if entries and isinstance(entries[0], dict) and entries[0].get("name") != "superfences":
            custom.add("*")  # the default entry was replaced: ask about every header
        live.extend([start_re, custom, *methods])
        return True

    def header_ok(line: str, pos: int) -> bool:
        if not live and not resolve():
            return fences.superfences_header_ok(line, pos)
        start_re, custom, get_hl_settings, clear, unrecognized, attrs, options = live
        m = start_re.match(line, pos)
        if m is None:
            return False
        if not (m.group("unrecognized") or m.group("attrs") or m.group("options")) and not (
                "*" in custom or m.group("lang") in custom):
            return True
        try:  # as SuperFencesBlockPreprocessor.search_nested does; its run() starts with clear()
            get_hl_settings()
            clear()
            if m.group("unrecognized"):
                return bool(unrecognized(m))
            if m.group("attrs"):
                return bool(attrs(m))
            return bool(options(m))
        except Exception:  # a validator that fails: superfences then fails the page itself
            return False
        finally:
            clear()

    return header_ok


def _fenced_code_header(pre: Any) -> Callable[[str], bool]:
    """fenced_code's verdict on a column-0 opening line: its own pattern, and its attribute check."""
    block_re = getattr(type(pre), "FENCED_BLOCK_RE", None)
    from markdown.extensions import attr_list

    # (older Markdown: fenced_code did not check what follows the braces)
    get_attrs_and_remainder: Callable[[str], Any] | None = getattr(attr_list, "get_attrs_and_remainder", None)

    def header_ok(line: str) -> bool:
        if block_re is None:
            return fences.fenced_code_header_ok(line)
        fence = line[: len(line) - len(line.lstrip(line[0]))]
        m = block_re.match(f"{line}\n{fence}")  # the opening line, closed at once
        if m is None:
            return False
        attrs = m.groupdict().get("attrs")
        return not (attrs and get_attrs_and_remainder is not None and get_attrs_and_remainder(attrs)[1])

    return header_ok


def _unread_note(block: fences.Block, rules: str, line_offset: int) -> str:
    """The warning for directive text inside a fence that is never closed, or that is not read."""
    opener = block.opener
    assert opener is not None
    fence, line = opener.fence, opener.start + 1 + line_offset
    shown = f"{DIRECTIVE}: this directive is shown as text, not as an embed: "
    if block.kind == "swallowed":
        return (f"{shown}the {fence} fence opened at line {line} is never closed at its indentation, "
                f"so the lines after it are not read as fences; expected a closing {fence} line "
                "indented like its opening line")
    if rules == fences.FENCED_CODE:
        return (f"{shown}it is inside the {fence} fence opened at line {line}, which fenced_code does "
                "not read (it reads fences at column 0 only); expected pymdownx.superfences in the "
                "Markdown extensions, or that fence at column 0")
    return (f"{shown}it is inside the {fence} fence opened at line {line}, which is text: no fenced "
            "code extension is enabled; expected pymdownx.superfences or fenced_code in the Markdown "
            "extensions")


def _yaml_value(name: str, value: Any) -> str | bool | None:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        sep = " " if name.strip().lower() == "class" else ","
        return sep.join(str(v) for v in value)
    raise OptionError(name, value, "a single value (text, number or true/false)")


class _DirectivePreprocessor(Preprocessor):
    def __init__(self, md: Markdown, ext: DirectiveExtension):
        super().__init__(md)
        self.ext = ext
        self._rules: tuple[str, dict[str, Any]] | None = None

    def run(self, lines: list[str]) -> list[str]:
        self.ext._doc = None
        text = "\n".join(lines)
        if DIRECTIVE_MARK not in text:
            return lines  # most pages: nothing to scan for, and no per-document state to set up
        doc = self.ext._start_document(self.md)
        lines = _normalize(lines, text, self.md.tab_length)
        if self._rules is None:  # the fence preprocessors are registered by now
            self._rules = _fence_rules(self.md)
            # what only a page with directives needs (the block parser and the treeprocessors have
            # not started: they see these; pages without a directive never pay for them)
            self.md.parser.blockprocessors.register(
                _CodeRevertProcessor(self.md.parser, self.ext), "sphere_workspace_code_revert", 80.5)
            self.md.treeprocessors.register(_TextTreeprocessor(self.md, self.ext), "sphere_workspace_text", 25)
        rules, hooks = self._rules
        # every directive becomes one marker line at its prefix: to the fence preprocessors that
        # run after us, that line is what the directive's fence was, a line that is no fence
        # (sphere_docs.syntax.fences), so every other fence stays where the engine finds it
        out: list[str] = []
        done = 0
        for block in fences.scan(lines, rules, _DIRECTIVE_INFO_RE, colon=_COLON_INFO_RE, **hooks):
            if block.kind == "fence":
                continue
            out += lines[done:block.start]
            done = block.end
            number = len(doc.directives)
            line_no = block.start + 1 + doc.line_offset
            kind = block.kind if block.kind != "directive" else "live" if block.closed else "unclosed"
            directive = _Directive(number, line_no, block.prefix, block.cont, lines[block.start:block.end],
                                   kind=kind)
            doc.directives[number] = directive
            marker = block.prefix + _RAW_MARKER.format(number)
            if rules == fences.FENCED_CODE and block.closed and not block.prefix:
                out += ["", marker, ""]  # as fenced_code leaves its placeholder: a block of its own
            else:
                out.append(marker)  # as superfences does: one line at the fence's prefix
            if block.kind == "directive":
                self._directive(doc, directive, block)
            elif block.kind == "verbatim":
                directive.reported = True  # a line of text, to be put back as it was
            elif block.kind == "colon":
                directive.note = COLON_FENCE_MESSAGE
            else:
                directive.note = _unread_note(block, rules, doc.line_offset)
        out += lines[done:]
        return out

    def _directive(self, doc: _Document, directive: _Directive, block: fences.Block) -> None:
        if not block.closed:
            directive.errors = [DirectiveError(catalog.unclosed_fence(block.fence), page=doc.page or None,
                                               line=directive.line, code=Code.FENCE)]
            return
        m = _DIRECTIVE_INFO_RE.match(block.info)
        assert m is not None
        try:
            self._parse(doc, directive, m["arg"], block.body)
        except DirectiveError as err:
            err.directive_line = directive.line
            directive.errors = [err]
        if any(DIRECTIVE_MARK in row for row in block.body):  # a directive whose fence this one swallowed
            rules, hooks = self._rules or (fences.NO_FENCES, {})
            for inner in fences.scan(block.body, rules, _DIRECTIVE_INFO_RE, **hooks):
                if inner.kind != "fence":
                    directive.nested.append(directive.line + 1 + inner.start)

    def _parse(self, doc: _Document, directive: _Directive, arg: str, body: list[str]) -> None:
        """Options and caption into a spec; every problem becomes an error at its option's line."""
        page, line_no = doc.page or None, directive.line
        options: dict[str, Any] = {}
        lines = directive.option_lines  # body[k] is page line line_no + 1 + k
        rest = body
        try:
            if body and body[0].strip() == "---":
                close = next((k for k in range(1, len(body)) if body[k].strip() == "---"), None)
                if close is None:
                    raise DirectiveError(
                        f"{DIRECTIVE}: the YAML option block is never closed; "
                        "expected a line with --- after the options",
                        page=page, line=line_no,
                    )
                for k in range(1, close):
                    key = _YAML_KEY_RE.match(body[k])
                    if key:
                        lines.setdefault(key["name"], line_no + 1 + k)
                options = self._yaml(body[1:close], page, line_no)
                rest = body[close + 1:]
            else:
                k = 0
                while k < len(body) and (m := _OPTION_RE.match(body[k])):
                    name, value = m["name"].strip(), m["value"].strip()
                    if name in options:
                        raise DirectiveError(catalog.option_given_twice(name), page=page, line=line_no + 1 + k)
                    options[name] = value or None
                    lines[name] = line_no + 1 + k
                    k += 1
                rest = body[k:]
        except OptionError as err:  # a YAML value of the wrong shape
            raise DirectiveError(err.describe(), page=page, line=lines.get(err.option, line_no),
                                 option_error=err) from None
        caption = _dedent(rest)
        spec, problems = read_embed(page, line_no, arg.strip() or None, options, caption=caption,
                                    default_mode=self.ext.settings.mode, option_lines=lines)
        if spec is None:
            directive.errors = _of_directive(directive, problems)
            return
        directive.spec = spec
        directive.caption = self._caption_source(caption)

    def _yaml(self, block: list[str], page: str | None, line_no: int) -> dict[str, Any]:
        text = "\n".join(block)
        try:
            data = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            problem = getattr(err, "problem", None) or "not valid YAML"
            where = ""
            if mark is not None:
                where = f" (line {line_no + 2 + mark.line}, column {mark.column + 1})"
            raise DirectiveError(
                f"{DIRECTIVE}: invalid YAML in the option block{where}: {problem}; "
                "expected 'name: value' lines between the --- lines",
                page=page, line=line_no,
            ) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise DirectiveError(
                f"{DIRECTIVE}: the YAML option block is a {type(data).__name__}, not a mapping; "
                "expected 'name: value' lines between the --- lines",
                page=page, line=line_no,
            )
        return {str(k): _yaml_value(str(k), v) for k, v in data.items()}

    def _caption_source(self, text: str) -> str:
        """The caption's Markdown (dedented), run through the structural preprocessors that follow ours."""
        if not text.strip():
            return ""
        caption_lines = text.split("\n")
        if not any(mark in text for mark in ("```", "~~~", "<")):
            return text  # nothing for the structural preprocessors to do
        for name in _CAPTION_PREPROCESSORS:
            if name in self.md.preprocessors:
                caption_lines = self.md.preprocessors[name].run(caption_lines)
        return "\n".join(caption_lines)


class _MarkerPreprocessor(Preprocessor):
    """After whitespace normalization: our SOH/EOT markers become STX/ETX ones."""

    def __init__(self, md: Markdown, ext: DirectiveExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, lines: list[str]) -> list[str]:
        if self.ext._doc is None:
            return lines  # the scan found no directive: no marker to convert
        return [_RAW_MARKER_RE.sub(_marker_from_raw, row) if "\x01" in row else row for row in lines]


def _marker_from_raw(m: re.Match[str]) -> str:
    return f"{_MARKER}{m.group(1)}\x03"


def _dedent(lines: Sequence[str]) -> str:
    """Strip blank edges and the common indentation."""
    rows = list(lines)
    while rows and not rows[0].strip():
        rows.pop(0)
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        return ""
    indent = min(len(r) - len(r.lstrip()) for r in rows if r.strip())
    return "\n".join(r[indent:] if r.strip() else "" for r in rows)


# --------------------------------------------------------------------------- block level


class _CodeRevertProcessor(BlockProcessor):
    """superfences' indented-code rule, for our markers: the code processor is next.

    ``pymdownx.superfences``' code block processor puts every fence of a block it
    takes back as source text (``revert_greedy_fences``): a fence in the same block
    as an indented code block (no blank line between) is text, whether it lands in
    the code or after it.  The renderer would do that to the directive's fence;
    we turn its marker into one that is never claimed, and let the code processor
    run (``run`` returns False).  With fenced_code the fence has a block of its own.
    """

    def __init__(self, parser: Any, ext: DirectiveExtension):
        super().__init__(parser)
        self.ext = ext

    def test(self, parent: etree.Element, block: str) -> bool:
        if _MARKER not in block or self.ext._doc is None:
            return False
        processors = self.parser.blockprocessors
        code = processors["code"] if "code" in processors else None  # noqa: SIM401  (a Registry: no .get)
        if code is None or not callable(getattr(code, "revert_greedy_fences", None)):
            return False  # not superfences': fences are never put back
        if getattr(code, "config", {}).get("disable_indented_code_blocks", False):
            return False
        return bool(CodeBlockProcessor.test(code, parent, block))

    def run(self, parent: etree.Element, blocks: list[str]) -> bool:
        doc = self.ext._doc
        assert doc is not None
        for m in _LEAD_MARKER_RE.finditer(blocks[0]):
            directive = doc.directives.get(int(m["number"]))
            if directive is not None and directive.kind == "live" and not directive.claimed:
                directive.kind = "reverted"
                directive.note = (
                    f"{DIRECTIVE}: this directive is shown as text, not as an embed: it follows an "
                    "indented code block with no blank line between, and superfences then puts the fence "
                    "back as text; expected a blank line before the directive"
                )
        return False


def _restore(text: str, doc: _Document, *, escape: bool | Callable[[str, int], bool],
             dead_only: bool = False, track: bool = False) -> str:
    """Put the original source back for every marker in ``text``, and drop the trackers.

    ``escape``: whether to HTML-escape it (in code), or a test of the marker's position
    (inside an HTML comment, so that a ``-->`` of the source does not end it early).
    ``dead_only``: only the markers of directive text that is no fence (before the inline
    processor: it must see the text the renderer would), each followed by a tracker if
    ``track``; live markers and trackers stay.
    """

    def original(m: re.Match[str]) -> str:
        if m["track"]:
            return m.group(0) if dead_only else m["lead"]
        directive = doc.directives.get(int(m.group("number")))
        if directive is None or (dead_only and directive.kind == "live"):
            return m.group(0)
        lead = m.group("lead")
        rows = [directive.raw[0][len(directive.prefix):]]
        if track and directive.kind != "verbatim":
            rows[0] += _TRACKER.format(directive.number)
        for row in directive.raw[1:]:
            inner = _strip_prefix(row, directive.cont)
            rows.append(lead + (inner if inner is not None else row.lstrip()))
        source = "\n".join(rows)
        if escape if isinstance(escape, bool) else escape(text, m.start()):
            source = code_escape(source)
        return lead + source

    return _LEAD_MARKER_RE.sub(original, text)


class _TextTreeprocessor(Treeprocessor):
    """Before the inline processor: directive text that is no fence goes back to source text.

    Markers of swallowed directives, colon fences and the like are text for the
    renderer, so the inline processor must see their text (it may make code
    spans or comments of it); a tracker after each (none in code) tells
    ``_ClaimTreeprocessor`` and ``_EmbedPostprocessor`` where it ended up.
    """

    def __init__(self, md: Markdown, ext: DirectiveExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, root: etree.Element) -> None:
        doc = self.ext._doc
        if doc is None or all(d.kind == "live" for d in doc.directives.values()):
            return
        stack: list[tuple[etree.Element, bool]] = [(root, False)]
        while stack:
            el, in_code = stack.pop()
            code = in_code or el.tag in ("pre", "code")
            if el.text and _MARKER in el.text:
                text_code = code or isinstance(el.text, AtomicString)
                el.text = _like(el.text, _restore(el.text, doc, escape=text_code, dead_only=True,
                                                  track=not text_code))
            if el.tail and _MARKER in el.tail:
                el.tail = _restore(el.tail, doc, escape=in_code, dead_only=True, track=not in_code)
            stack.extend((child, code) for child in reversed(el))


class _ClaimTreeprocessor(Treeprocessor):
    """Claim each directive whose marker the page shows; put every other marker back.

    The marker is text where the renderer would have put the fence's own
    placeholder, so the block parser and the inline processor place it exactly
    where they would have placed that: in a paragraph, a list item, a heading, an
    indented code block, an inline HTML comment (then it is in the HTML stash, and
    ``_EmbedPostprocessor`` puts it back).  Running after the inline processor,
    a live marker wherever the tree shows it becomes the directive's slot (its
    caption parsed as Markdown inside it), a paragraph holding one is cut in two
    around it; markers in a code block go back to source text silently, markers
    of directive text that is no fence go back with a warning.
    """

    def __init__(self, md: Markdown, ext: DirectiveExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, root: etree.Element) -> None:
        doc = self.ext._doc
        if doc is None or not doc.directives:
            return
        # once every directive is live and claimed, no marker is left to look for (the
        # postprocessor still puts back a copy another extension may have made)
        all_live = all(d.kind == "live" for d in doc.directives.values())
        stack: list[tuple[etree.Element, etree.Element | None, bool]] = [(root, None, False)]
        while stack:
            if all_live and len(doc.claimed) == len(doc.directives):
                return
            el, parent, in_pre = stack.pop()
            pre = in_pre or el.tag == "pre"
            marked = bool(el.text and _ANY_MARK in el.text) or any(
                c.tail and _ANY_MARK in c.tail for c in el)
            if marked:
                made = None if pre else self._claim(doc, el, parent)
                if made is not None:  # a paragraph cut in two: visit its parts instead
                    stack.extend((p, parent, in_pre) for p in reversed(made) if p.tag == "p")
                    continue
                for where, holder in (("text", el), *(("tail", child) for child in el)):
                    text = holder.text if where == "text" else holder.tail
                    if text and _ANY_MARK in text:
                        self._put_back(doc, holder, where, pre)
            stack.extend((child, el, pre) for child in reversed(el) if "data-sphere-slot" not in child.attrib)

    def _claim(self, doc: _Document, el: etree.Element, parent: etree.Element | None) -> list[etree.Element] | None:
        """Slots for the live markers of ``el``'s own text runs (its text, its children's tails).

        Returns the paragraphs that replace ``el`` when it is a paragraph that was cut.
        """
        items: list[Any] = [el.text or ""]  # text, child, tail, child, tail...
        for child in el:
            items += [child, child.tail or ""]
        content: list[Any] = []  # the same, cut at claimed markers (_Directive between the parts)
        claimed = False
        for item in items:
            if not isinstance(item, str) or _MARKER not in item:
                content.append(item)
                continue
            pos = 0
            for m in _MARKER_RE.finditer(item):
                directive = doc.directives.get(int(m["number"]))
                if directive is None or directive.kind != "live":
                    continue
                if directive.claimed:  # a copy (another extension duplicated the line): left as text
                    continue
                content += [_like(item, item[pos:m.start()]), directive]
                pos = m.end()
                claimed = True
            content.append(_like(item, item[pos:]))
        if not claimed:
            return None
        tail = el.tail
        el.text = None
        for child in list(el):
            el.remove(child)
        parts: list[list[Any]] = [[]]  # runs of content between the slots
        slots: list[etree.Element] = []
        for piece in content:
            if isinstance(piece, _Directive):
                slots.append(self._slot(doc, piece))
                parts.append([])
            else:
                parts[-1].append(piece)
        if el.tag == "p" and parent is not None:
            index = list(parent).index(el)
            parent.remove(el)
            made: list[etree.Element] = []
            for k, part in enumerate(parts):
                if k:
                    made.append(slots[k - 1])
                if any(not isinstance(x, str) or x.strip() for x in part):
                    para = etree.Element("p", dict(el.attrib) if k == 0 else {})
                    _fill(para, part, strip=True)
                    made.append(para)
            made[-1].tail = tail
            for new in made:
                parent.insert(index, new)
                index += 1
            return made
        _fill(el, parts[0], strip=False)
        for slot, part in zip(slots, parts[1:], strict=True):
            el.append(slot)
            _fill(el, part, strip=False, after=slot)
        el.tail = tail
        return None

    def _slot(self, doc: _Document, directive: _Directive) -> etree.Element:
        directive.claimed = True
        doc.claimed.append(directive.number)
        for err in directive.errors:
            self.ext._directive_error(err)
        for line in directive.nested:
            self.ext._directive_warning(doc, DirectiveWarning(
                catalog.inside_caption(directive.line), page=doc.page or None, line=line))
        slot = etree.Element("div", {"data-sphere-slot": f"{doc.nonce}-{directive.number}"})
        if directive.caption:
            self.md.parser.parseChunk(slot, directive.caption)
            if "inline" in self.md.treeprocessors:  # it ran on the page already: now on the caption
                self.md.treeprocessors["inline"].run(slot)
        # an element, not a comment: the inline processor cannot walk comments
        etree.SubElement(slot, "span", {"data-sphere-slot-end": f"{doc.nonce}-{directive.number}"})
        return slot

    def _put_back(self, doc: _Document, holder: etree.Element, where: str, pre: bool) -> None:
        """The source text of the markers left in a text run, no trackers; a warning unless in a code block.

        Inline code counts as shown: directive text lands in a code span when its own
        backticks pair up with others, which is no example the author wrote.
        """
        text = holder.text if where == "text" else holder.tail
        assert text is not None
        if not pre:
            self.ext._report_text(doc, text, _never)
        restored = _like(text, _restore(text, doc, escape=pre or isinstance(text, AtomicString)))
        if where == "text":
            holder.text = restored
        else:
            holder.tail = restored


def _never(text: str, pos: int) -> bool:
    return False


def _like(model: str, text: str) -> str:
    """``text``, an AtomicString (not to be processed again) when ``model`` is one."""
    return AtomicString(text) if isinstance(model, AtomicString) else text


def _fill(el: etree.Element, part: list[Any], *, strip: bool, after: etree.Element | None = None) -> None:
    """Append a run of content (text, child, text, ...) to ``el``, its first text after ``after``."""
    last = after
    for piece in part:
        if isinstance(piece, str):
            if strip:
                piece = _like(piece, piece.strip("\n"))
            if not piece:
                continue
            if last is None:
                el.text = _like(piece, (el.text or "") + piece)
            else:
                last.tail = _like(piece, (last.tail or "") + piece)
        else:
            el.append(piece)
            last = piece


class _EmbedPostprocessor(Postprocessor):
    def __init__(self, md: Markdown, ext: DirectiveExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, text: str) -> str:
        doc = self.ext._doc
        if doc is None or not doc.directives:
            return text
        if _ANY_MARK in text:  # markers left inside raw HTML: shown unless in a comment or <pre>
            self.ext._report_text(doc, text, _inside_code_html)
            text = _restore(text, doc, escape=_inside_code_html)
        if "data-sphere-slot" not in text:  # toc runs postprocessors on every heading too
            return text
        if not doc.claimed:
            return text
        captions: dict[int, str] = {
            int(m["number"]): m["caption"].strip() for m in _SLOT_RE.finditer(text) if m["nonce"] == doc.nonce
        }
        if not captions or doc.rendered is not None:
            # toc and MkDocs run the postprocessors on heading text too: only the document counts
            return text
        for number in doc.claimed:
            if number not in captions:
                self.ext._directive_error(_lost(doc, number))
        rendered = doc.rendered = self.ext._render_document(doc, captions)
        first = [True]

        def substitute(m: re.Match[str]) -> str:
            if m["nonce"] != doc.nonce:
                return m.group(0)
            out = rendered.get(int(m["number"]), "")
            if first[0] and out:
                out = self.ext.before_first_embed(doc) + out
            first[0] = False
            return out

        return _SLOT_RE.sub(substitute, text)


# --------------------------------------------------------------------------- extension


class DirectiveExtension(Extension):
    """The ``{sphere-workspace}`` directive's syntax for Python-Markdown: find, claim, name.

    It finds every directive of a document, reports every problem (located,
    with the catalog's sentences), names the valid ones (page order, the
    duplicate rule) and puts HTML where each stood.  *What* HTML is the
    engine's: :meth:`render_embeds` (here: nothing, which is all ``check``
    needs), :meth:`before_first_embed` and :meth:`current_page` are the hooks an
    engine adapter overrides (``sphere_docs.engines.markdown``).

    Configuration (all optional): the site settings of
    :data:`sphere_docs.core.settings.SETTINGS` plus ``page``, the document's path.
    ``deferred=True``: problems are collected per page (:meth:`finish_page`)
    instead of raised, as a whole-site engine or ``check`` wants.
    """

    def __init__(self, *, settings: SiteSettings | None = None, deferred: bool = False, **kwargs: Any):
        self.config: dict[str, list[Any]] = {
            name: [setting.default, setting.doc] for name, setting in SETTINGS.items()
        }
        self.config["page"] = ["", "path of the document (stable embed names, lazy endpoint requests)"]
        super().__init__(**kwargs)
        self._settings = settings
        self.deferred = deferred
        self._page: str | None = None
        self._line_offset = 0
        self._doc: _Document | None = None
        self._md: Markdown | None = None
        self._nonce_base = os.urandom(4).hex()  # (not `secrets`: one import less per build)
        self._documents = 0

    def setConfig(self, key: str, value: Any) -> None:
        # Values go to SiteSettings unchanged: it owns the rules and the messages
        # (the base class would coerce strings to booleans where the default is None).
        if key not in self.config:
            raise SettingsError(key, value, ", ".join(self.config), problem="unknown setting")
        self.config[key][0] = value

    @property
    def settings(self) -> SiteSettings:
        if self._settings is None:
            values = {k: v for k, v in self.getConfigs().items() if k not in _EXTENSION_ONLY}
            self._settings = SiteSettings.from_mapping(values, base_dir=Path.cwd())
        return self._settings

    def extendMarkdown(self, md: Markdown) -> None:
        """Register the processors (see the module docstring for the order)."""
        md.registerExtension(self)
        self._md = md
        _ = self.settings  # a bad setting fails here, not in the middle of a page
        md.preprocessors.register(_DirectivePreprocessor(md, self), "sphere_workspace", 31.08)
        md.preprocessors.register(_MarkerPreprocessor(md, self), "sphere_workspace_markers", 29.95)
        # (_CodeRevertProcessor and _TextTreeprocessor: registered by the scan, on pages with a directive)
        md.treeprocessors.register(_ClaimTreeprocessor(md, self), "sphere_workspace", 19)
        md.postprocessors.register(_EmbedPostprocessor(md, self), "sphere_workspace", 25)

    def reset(self) -> None:
        self._doc = None

    # -- the plugin's side

    def begin_page(self, page: str, line_offset: int = 0) -> None:
        """Name the next document (source path relative to the docs root) and its line offset."""
        self._page = page
        self._line_offset = line_offset
        self._doc = None

    def finish_page(self, warnings: list[DirectiveError] | None = None) -> tuple[list[Embed], list[DirectiveError]]:
        """The embeds and errors of the last converted document, then forget them.

        ``warnings``, when given, receives the document's :class:`DirectiveWarning` s:
        directive text the page shows as text (a colon fence, a directive inside a
        fence never closed, one Markdown did not read as a block), each located.
        """
        doc, self._doc = self._doc, None
        self._page, self._line_offset = None, 0
        if doc is None:
            return [], []
        if doc.claimed and doc.rendered is None:  # another extension dropped every slot
            doc.errors.extend(_lost(doc, number) for number in doc.claimed)
        if warnings is not None:
            warnings.extend(doc.warnings)
        return doc.embeds, doc.errors

    # -- internals

    def _start_document(self, md: Markdown) -> _Document:
        page = self._page or self.getConfig("page") or self.current_page(md) or ""
        self._documents += 1  # a random part per extension and a counter: unguessable, and cheap per page
        self._doc = _Document(page=page, line_offset=self._line_offset,
                              nonce=f"{self._nonce_base}{self._documents:x}")
        return self._doc

    def _directive_error(self, err: DirectiveError) -> None:
        self.report(err)

    def _report_text(self, doc: _Document, text: str, hidden: Callable[[str, int], bool]) -> None:
        """A warning for each directive whose marker ``text`` shows as text (``hidden`` says where not)."""
        for m in _LEAD_MARKER_RE.finditer(text):
            directive = doc.directives.get(int(m["number"]))
            if directive is None or directive.reported or directive.claimed or hidden(text, m.start()):
                continue
            directive.reported = True
            if directive.kind == "unclosed" and directive.errors:
                for err in directive.errors:
                    self._directive_error(err)
                continue
            message = directive.note or catalog.shown_as_text()
            self._directive_warning(doc, DirectiveWarning(message, page=doc.page or None, line=directive.line))

    def _directive_warning(self, doc: _Document, warning: DirectiveWarning) -> None:
        doc.warnings.append(warning)
        if not self.deferred:  # used alone: nobody collects the page's warnings, so log them
            log.warning("%s", warning)

    def _name_specs(self, doc: _Document) -> dict[int, WorkspaceSpec]:
        ordered = sorted(doc.claimed, key=lambda n: doc.directives[n].line)
        namer = PageNamer(doc.page)
        named: dict[int, WorkspaceSpec] = {}
        for number in ordered:
            directive = doc.directives[number]
            if directive.spec is None:
                continue
            spec, problems = name_embed(namer, directive.spec, directive.line,
                                                 option_lines=directive.option_lines)
            if spec is not None:
                named[number] = spec
            directive.errors = _of_directive(directive, problems)
            for err in directive.errors:
                self._directive_error(err)
        return named

    def _render_document(self, doc: _Document, captions: Mapping[int, str]) -> dict[int, str]:
        """HTML for every claimed directive, keyed by its number: an invalid one's notice, or the engine's."""
        named = self._name_specs(doc)
        out: dict[int, str] = {}
        valid: list[tuple[int, Embed]] = []
        for number in doc.claimed:
            directive = doc.directives[number]
            spec = named.get(number)
            if spec is None:
                out[number] = html.error_box([err.message for err in directive.errors])
                continue
            valid.append((number, Embed(doc.page, spec, directive.line, caption_html=captions.get(number) or None)))
        rendered = self.render_embeds(doc, valid)
        for number, embed in valid:
            doc.embeds.append(rendered.get(number, (embed, ""))[0])
            out[number] = rendered.get(number, (embed, ""))[1]
        return out

    # -- the engine's hooks

    def render_embeds(self, doc: _Document, embeds: list[tuple[int, Embed]]) -> dict[int, tuple[Embed, str]]:
        """``{number: (embed as kept, its HTML)}`` for the document's valid embeds.  Here: no HTML."""
        return {}

    def before_first_embed(self, doc: _Document) -> str:
        """HTML to put before the document's first embed (the SDK loader, for an engine used alone)."""
        return ""

    def current_page(self, md: Markdown) -> str | None:
        """The page being converted, when the host says so (Zensical does)."""
        return None

    def report(self, err: DirectiveError) -> None:
        """A problem of the page: collected (deferred), else raised."""
        if not self.deferred:
            raise err
        assert self._doc is not None
        self._doc.errors.append(err)


def _lost(doc: _Document, number: int) -> DirectiveError:
    return DirectiveError(catalog.embed_lost(), page=doc.page or None, line=doc.directives[number].line,
                          code=Code.LOST)
