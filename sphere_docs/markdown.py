"""Python-Markdown extension: the ```` ```{sphere-workspace} ```` fence.

Usage, alone (plain Python-Markdown, Zensical, any engine that runs Markdown
extensions)::

    markdown.markdown(text, extensions=["sphere_workspaces"],
                      extension_configs={"sphere_workspaces": {"endpoint": "...", "page": "intro.md"}})

or, under MkDocs/ProperDocs, through the ``sphere-workspaces`` plugin, which
appends a configured *instance* of :class:`SphereWorkspaceExtension` and
resolves every build-mode embed of the build at once (``sphere_docs.mkdocs_``).

How the directive is found, and why it survives nesting
-------------------------------------------------------
Fences are a line-level construct, so (like ``pymdownx.superfences``) a
preprocessor scans the source line by line *before* ``fenced_code`` /
``superfences`` / ``html_block`` see it.  It skips the content of every other
fence (any length, backticks or tildes, any indentation) and of HTML comments,
and replaces each directive with one marker line at the directive's own
indentation (and ``>`` prefix).  Being a single line, the marker travels
through every container the block parser knows — lists, admonitions,
``pymdownx.details``, ``pymdownx.tabbed``, block quotes, ``md_in_html`` — and
is *claimed* by :class:`_DirectiveBlockProcessor` wherever it ends up as a
line of its own.  Only claimed directives become embeds.

The scan is deliberately greedy, so a marker can also land where Markdown says
the text is content: an indented code block (the ``code`` processor runs
before ours), a paragraph continuation line, or a raw HTML block.  Those
markers are never claimed; :class:`_RevertTreeprocessor` and the final
postprocessor put the author's original text back, escaped as the context
requires.  Errors of a directive are raised only when it is claimed, so a
broken example shown in a code block is just text.

Processors (name, priority):

* preprocessor ``sphere_workspace`` (31.08): find directives, parse options,
  replace with markers.  Runs before every fence preprocessor, including
  superfences' ``preserve_tabs`` one (31.05), so a directive's closing fence is
  never mistaken for an opening one; it does the line-preserving part of
  whitespace normalization itself, and its SOH/EOT markers survive
  ``normalize_whitespace`` (30), which strips STX/ETX.
* preprocessor ``sphere_workspace_markers`` (29.95): markers become STX/ETX.
* block processor ``sphere_workspace`` (76): claim a marker line, render the
  caption as Markdown in place.  Below ``code`` (80) so indented code wins.
* treeprocessor ``sphere_workspace_revert`` (25): unclaimed markers in text
  and code go back to source text, before ``inline`` (20).
* postprocessor ``sphere_workspace`` (25): after ``raw_html`` (30) restored
  the caption's raw HTML, swap each claimed slot for the embed's HTML.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import xml.etree.ElementTree as etree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from markdown import Markdown
from markdown.blockprocessors import BlockProcessor
from markdown.extensions import Extension
from markdown.postprocessors import Postprocessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString, code_escape

from . import html
from .errors import SettingsError, SphereDocsError
from .messages import unclosed_fence
from .naming import PageNamer
from .options import OptionError, WorkspaceSpec, parse_options
from .settings import SETTINGS, SiteSettings

__all__ = [
    "DIRECTIVE",
    "DIRECTIVE_MARK",
    "DirectiveError",
    "Embed",
    "SphereWorkspaceExtension",
    "makeExtension",
]

log = logging.getLogger("sphere_docs.markdown")

DIRECTIVE = "sphere-workspace"
#: how a directive starts in the source (the fence info): a page without it has no embed
DIRECTIVE_MARK = "{" + DIRECTIVE + "}"
#: how a ``markdown_extensions`` list can name this extension (entry point, module)
EXTENSION_NAMES = ("sphere_workspaces", "sphere_docs.markdown")

#: a fence line: indentation / block-quote prefix and maybe a list marker, 3+ backticks or tildes, info
_FENCE_RE = re.compile(
    r"^(?P<prefix>(?:[ \t]*>)*[ \t]*(?P<item>(?:[-*+]|\d{1,9}[.)])[ \t]+)?)"
    r"(?P<fence>`{3,}|~{3,})(?P<info>.*)$"
)
_DIRECTIVE_INFO_RE = re.compile(r"^[ \t]*\{" + DIRECTIVE + r"\}(?P<arg>(?:[ \t].*)?)$")
#: a ``:name: value`` option line (value optional: a bare flag)
_OPTION_RE = re.compile(r"^:(?P<name>[^:\s][^:]*):(?P<value>.*)$")
_CODE_SPAN_RE = re.compile(r"(`+)(?:(?!\1).)+?\1")
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
_LEAD_MARKER_RE = re.compile("(?P<lead>[ \t]*)\x02sphere-workspace:(?P<number>\\d+)\x03")
_MARKER_LINE_RE = re.compile("^\x02sphere-workspace:(\\d+)\x03[ \t]*$", re.MULTILINE)
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
    ):
        self.page = page
        self.line = line
        self.option_error = option_error
        self.message = message
        super().__init__(_locate(page, line, message))


def _locate(page: str | None, line: int | None, message: str) -> str:
    if not page:
        return f"line {line}: {message}" if line else message
    return f"{page}:{line}: {message}" if line else f"{page}: {message}"


# The records below are plain classes with __slots__, not dataclasses: this module is imported
# by every MkDocs build, and each dataclass costs about 0.5 ms to define on CPython 3.11.


class Embed:
    """One embed of a document, as the extension rendered it.

    ``marker`` is set for build-mode embeds whose workspace the plugin resolves
    later: the document HTML then holds ``marker`` where the div belongs.
    """

    __slots__ = ("caption_html", "line", "marker", "page", "spec")

    def __init__(self, page: str, line: int, spec: WorkspaceSpec, caption_html: str | None = None,
                 marker: str | None = None) -> None:
        self.page = page
        self.line = line
        self.spec = spec
        self.caption_html = caption_html
        self.marker = marker

    def __repr__(self) -> str:
        return f"Embed(page={self.page!r}, line={self.line}, name={self.spec.name!r}, mode={self.spec.mode!r})"


class _Directive:
    __slots__ = ("caption", "claimed", "cont", "error", "line", "number", "prefix", "raw", "spec")

    def __init__(self, number: int, line: int, prefix: str, cont: str, raw: list[str]) -> None:
        self.number = number
        self.line = line  #: 1-based, in the page source
        self.prefix = prefix  #: what precedes the opening fence on its line
        self.cont = cont  #: what precedes the following lines (a list marker becomes spaces)
        self.raw = raw
        self.spec: WorkspaceSpec | None = None
        self.caption = ""
        self.error: DirectiveError | None = None
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
        "stray_markers",
    )

    def __init__(self, page: str, line_offset: int, nonce: str) -> None:
        self.page = page
        self.line_offset = line_offset
        self.nonce = nonce  #: tells our slots from look-alike markup an author wrote
        self.directives: dict[int, _Directive] = {}
        self.claimed: list[int] = []
        self.stray_markers = False  #: a marker was left as text after its directive was claimed
        self.embeds: list[Embed] = []
        self.errors: list[DirectiveError] = []
        self.has_lazy = False  #: a lazy embed or a lazy fallback: the page needs the activation script
        self.rendered: dict[int, str] | None = None  #: HTML per claimed directive, once rendered


# --------------------------------------------------------------------------- scanning


def _normalize(lines: list[str], text: str, tab_length: int) -> list[str]:
    """The line-preserving part of Markdown's whitespace normalization: no CR, tabs expanded,
    blank lines empty, and no look-alike of our raw marker.  ``text`` is ``lines`` joined.

    The scan runs before Markdown's own normalization (see the module docstring), so it
    does this part itself.
    """
    if "\r" not in text and "\t" not in text and "\x01" not in text:
        return [row if not row or row.strip() else "" for row in lines]  # the usual page
    return [
        (row.rstrip("\r").expandtabs(tab_length) if row.strip() else "").replace("\x01sphere-workspace:", "sphere-workspace:")
        for row in lines
    ]


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


def closes_fence(text: str, fence: str) -> bool:
    """Whether ``text`` closes a fence opened with ``fence`` (the same character, at least as many)."""
    stripped = text.strip()
    return (
        len(stripped) >= len(fence)
        and stripped[0] == fence[0]
        and stripped == stripped[0] * len(stripped)
    )


def _comment_state(line: str, in_comment: bool) -> bool:
    """Whether an HTML comment is still open after ``line`` (code spans ignored)."""
    if "<!--" not in line and (not in_comment or "-->" not in line):
        return in_comment
    text = line if in_comment else _CODE_SPAN_RE.sub("", line)
    pos = 0
    while True:
        if in_comment:
            end = text.find("-->", pos)
            if end < 0:
                return True
            in_comment, pos = False, end + 3
        else:
            start = text.find("<!--", pos)
            if start < 0:
                return False
            in_comment, pos = True, start + 4


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
    def __init__(self, md: Markdown, ext: SphereWorkspaceExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, lines: list[str]) -> list[str]:
        self.ext._doc = None
        text = "\n".join(lines)
        if DIRECTIVE_MARK not in text:
            return lines  # most pages: nothing to scan for, and no per-document state to set up
        doc = self.ext._start_document(self.md)
        lines = _normalize(lines, text, self.md.tab_length)
        out: list[str] = []
        in_comment = False
        i, n = 0, len(lines)
        while i < n:
            line = lines[i]
            if in_comment:
                in_comment = _comment_state(line, True)
                out.append(line)
                i += 1
                continue
            # (substring tests first: most lines are prose, and this runs on every line of the page)
            m = _FENCE_RE.match(line) if "```" in line or "~~~" in line else None
            if m and not (m["fence"][0] == "`" and "`" in m["info"]):
                prefix, fence = m["prefix"], m["fence"]
                # the lines of a fence opened on a list item line are indented like its text
                cont = prefix[: len(prefix) - len(m["item"] or "")] + " " * len(m["item"] or "")
                directive = _DIRECTIVE_INFO_RE.match(m["info"])
                if directive:
                    i = self._directive(doc, lines, i, prefix, cont, fence, directive["arg"], out)
                    continue
                # another fence: copy it through untouched, up to its closing line or container end
                out.append(line)
                i += 1
                while i < n:
                    inner = _strip_prefix(lines[i], cont)
                    if inner is None:
                        break
                    out.append(lines[i])
                    i += 1
                    if closes_fence(inner, fence):
                        break
                continue
            if "<!--" in line:
                in_comment = _comment_state(line, False)
            out.append(line)
            i += 1
        return out

    def _directive(
        self,
        doc: _Document,
        lines: list[str],
        start: int,
        prefix: str,
        cont: str,
        fence: str,
        arg: str,
        out: list[str],
    ) -> int:
        line_no = start + 1 + doc.line_offset
        body: list[str] = []
        end = start + 1
        closed = False
        while end < len(lines):
            inner = _strip_prefix(lines[end], cont)
            if inner is None:
                break
            end += 1
            if closes_fence(inner, fence):
                closed = True
                break
            body.append(inner)
        number = len(doc.directives)
        directive = _Directive(number, line_no, prefix, cont, lines[start:end])
        doc.directives[number] = directive
        if not closed:
            directive.error = DirectiveError(unclosed_fence(fence), page=doc.page or None, line=line_no)
        else:
            try:
                self._parse(doc, directive, arg, body)
            except DirectiveError as err:
                directive.error = err
        out.append(prefix + _RAW_MARKER.format(number))
        return end

    def _parse(self, doc: _Document, directive: _Directive, arg: str, body: list[str]) -> None:
        page, line_no = doc.page or None, directive.line
        options: dict[str, Any] = {}
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
                options = self._yaml(body[1:close], page, line_no)
                rest = body[close + 1:]
            else:
                k = 0
                while k < len(body) and (m := _OPTION_RE.match(body[k])):
                    name, value = m["name"].strip(), m["value"].strip()
                    if name in options:
                        raise DirectiveError(
                            f"{DIRECTIVE}: option {name!r} is given twice; give each option once",
                            page=page, line=line_no,
                        )
                    options[name] = value or None
                    k += 1
                rest = body[k:]
            caption = _dedent(rest)
            spec = parse_options(
                arg.strip() or None,
                options,
                caption=caption,
                default_mode=self.ext.settings.mode,
            )
        except OptionError as err:
            raise DirectiveError(err.describe(), page=page, line=line_no, option_error=err) from None
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

    def __init__(self, md: Markdown, ext: SphereWorkspaceExtension):
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


class _DirectiveBlockProcessor(BlockProcessor):
    def __init__(self, parser: Any, ext: SphereWorkspaceExtension):
        super().__init__(parser)
        self.ext = ext

    def test(self, parent: etree.Element, block: str) -> bool:
        # asked of every block of every page: a substring test first, the regex only on a hit
        return _MARKER in block and _MARKER_LINE_RE.search(block) is not None

    def run(self, parent: etree.Element, blocks: list[str]) -> None:
        block = blocks.pop(0)
        m = _MARKER_LINE_RE.search(block)
        assert m is not None
        before, after = block[: m.start()], block[m.end():].lstrip("\n")
        if before.strip():
            self.parser.parseBlocks(parent, [before.rstrip("\n")])
        if after.strip():
            blocks.insert(0, after)
        doc = self.ext._doc
        directive = doc.directives.get(int(m.group(1))) if doc else None
        if doc is None or directive is None or directive.claimed:
            # not ours (cannot happen unless another extension copies markers); keep as text
            etree.SubElement(parent, "p").text = m.group(0)
            if doc is not None:
                doc.stray_markers = True
            return
        directive.claimed = True
        doc.claimed.append(directive.number)
        if directive.error is not None:
            self.ext._directive_error(directive.error)
        slot = etree.SubElement(parent, "div", {"data-sphere-slot": f"{doc.nonce}-{directive.number}"})
        if directive.caption:
            # a state of our own: in a tight list, paragraphs would otherwise lose their <p>
            self.parser.state.set("sphere-workspace")
            try:
                self.parser.parseChunk(slot, directive.caption)
            finally:
                self.parser.state.reset()
        # an element, not a comment: the inline processor cannot walk comments
        etree.SubElement(slot, "span", {"data-sphere-slot-end": f"{doc.nonce}-{directive.number}"})


def _restore(text: str, doc: _Document, *, escape: bool) -> str:
    """Put the original source back for every marker in ``text``."""

    def original(m: re.Match[str]) -> str:
        directive = doc.directives.get(int(m.group("number")))
        if directive is None:
            return m.group(0)
        lead = m.group("lead")
        rows = [directive.raw[0][len(directive.prefix):]]
        for row in directive.raw[1:]:
            inner = _strip_prefix(row, directive.cont)
            rows.append(lead + (inner if inner is not None else row.lstrip()))
        source = "\n".join(rows)
        return lead + (code_escape(source) if escape else source)

    return _LEAD_MARKER_RE.sub(original, text)


class _RevertTreeprocessor(Treeprocessor):
    def __init__(self, md: Markdown, ext: SphereWorkspaceExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, root: etree.Element) -> None:
        doc = self.ext._doc
        if doc is None or (len(doc.claimed) == len(doc.directives) and not doc.stray_markers):
            return  # every marker was claimed: none is left in the text to put back
        for el in root.iter():
            if el.text and _MARKER in el.text:
                code = el.tag == "code" or isinstance(el.text, AtomicString)
                restored = _restore(el.text, doc, escape=code)
                el.text = AtomicString(restored) if isinstance(el.text, AtomicString) else restored
            if el.tail and _MARKER in el.tail:
                el.tail = _restore(el.tail, doc, escape=False)


class _EmbedPostprocessor(Postprocessor):
    def __init__(self, md: Markdown, ext: SphereWorkspaceExtension):
        super().__init__(md)
        self.ext = ext

    def run(self, text: str) -> str:
        doc = self.ext._doc
        if doc is None or not doc.directives:
            return text
        if _MARKER in text:
            text = _restore(text, doc, escape=False)  # markers left inside raw HTML blocks
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
            if first[0] and out and not self.ext.deferred:
                out = self.ext._assets(doc) + out
            first[0] = False
            return out

        return _SLOT_RE.sub(substitute, text)


# --------------------------------------------------------------------------- extension


class SphereWorkspaceExtension(Extension):
    """The ``{sphere-workspace}`` directive for Python-Markdown.

    Configuration (all optional) — the site settings of
    :data:`sphere_docs.settings.SETTINGS` (``endpoint``, ``mode``,
    ``lazy_endpoint``, ``on_error``, ``concurrency``, ``timeout``, ``retries``,
    ``cache``, ``token_env``, ``sdk_host``, ``sdk_https``) plus ``page``: the
    document's path, used for stable embed names and the lazy endpoint (under
    Zensical the page being rendered is found automatically).

    Alone, build-mode embeds are provisioned synchronously per document and
    the loader is emitted before the first embed.  The MkDocs plugin instead
    constructs it with ``settings=`` and ``deferred=True``, calls
    :meth:`begin_page` before each page, and collects :meth:`finish_page`.
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
        try:
            _ = self.settings  # a bad setting fails here, not in the middle of a page
        except SettingsError as err:
            _stop_zensical_build(md, str(err))
            raise
        md.preprocessors.register(_DirectivePreprocessor(md, self), "sphere_workspace", 31.08)
        md.preprocessors.register(_MarkerPreprocessor(md, self), "sphere_workspace_markers", 29.95)
        md.parser.blockprocessors.register(
            _DirectiveBlockProcessor(md.parser, self), "sphere_workspace", 76
        )
        md.treeprocessors.register(_RevertTreeprocessor(md, self), "sphere_workspace_revert", 25)
        md.postprocessors.register(_EmbedPostprocessor(md, self), "sphere_workspace", 25)

    def reset(self) -> None:
        self._doc = None

    # -- the plugin's side

    def begin_page(self, page: str, line_offset: int = 0) -> None:
        """Name the next document (source path relative to the docs root) and its line offset."""
        self._page = page
        self._line_offset = line_offset
        self._doc = None

    def finish_page(self) -> tuple[list[Embed], list[DirectiveError]]:
        """The embeds and errors of the last converted document, then forget them."""
        doc, self._doc = self._doc, None
        self._page, self._line_offset = None, 0
        if doc is None:
            return [], []
        if doc.claimed and doc.rendered is None:  # another extension dropped every slot
            doc.errors.extend(_lost(doc, number) for number in doc.claimed)
        return doc.embeds, doc.errors

    # -- internals

    def _start_document(self, md: Markdown) -> _Document:
        page = self._page or self.getConfig("page") or _zensical_page(md) or ""
        self._documents += 1  # a random part per extension and a counter: unguessable, and cheap per page
        self._doc = _Document(page=page, line_offset=self._line_offset,
                              nonce=f"{self._nonce_base}{self._documents:x}")
        return self._doc

    def _directive_error(self, err: DirectiveError) -> None:
        if not self.deferred:
            if self._md is not None:
                _stop_zensical_build(self._md, str(err))
            raise err
        assert self._doc is not None
        self._doc.errors.append(err)

    def _name_specs(self, doc: _Document) -> dict[int, WorkspaceSpec]:
        ordered = sorted(doc.claimed, key=lambda n: doc.directives[n].line)
        namer = PageNamer(doc.page)
        named: dict[int, WorkspaceSpec] = {}
        for number in ordered:
            directive = doc.directives[number]
            if directive.spec is None:
                continue
            try:
                named[number] = namer.name(directive.spec, directive.line)
            except OptionError as err:
                directive.error = DirectiveError(err.describe(), page=doc.page or None,
                                                 line=directive.line, option_error=err)
                self._directive_error(directive.error)
        return named

    def _render_document(self, doc: _Document, captions: Mapping[int, str]) -> dict[int, str]:
        """HTML for every claimed directive, keyed by its number."""
        named = self._name_specs(doc)
        out: dict[int, str] = {}
        build: list[tuple[int, Embed]] = []
        for number in doc.claimed:
            directive = doc.directives[number]
            spec = named.get(number)
            if spec is None:
                err = directive.error
                out[number] = html.error_box(str(err) if err else "invalid embed")
                continue
            caption = captions.get(number) or None
            embed = Embed(doc.page, directive.line, spec, caption)
            if spec.mode == "lazy":
                endpoint = self.settings.lazy_endpoint
                if not endpoint:
                    self._directive_error(DirectiveError(
                        f"{DIRECTIVE}: lazy mode needs the lazy_endpoint setting "
                        "(the URL of your lazy endpoint); expected lazy_endpoint in the site settings",
                        page=doc.page or None, line=directive.line,
                    ))
                    out[number] = html.error_box("lazy mode needs the lazy_endpoint setting")
                    continue
                out[number] = html.lazy_placeholder(
                    spec, page=doc.page, lazy_endpoint=endpoint, caption_html=caption
                )
                doc.has_lazy = True
            elif self.deferred:
                embed.marker = f'<div data-sphere-pending="{doc.nonce}-{number}"></div>'
                out[number] = embed.marker
            else:
                build.append((number, embed))
            doc.embeds.append(embed)
        if build:
            out.update(self._provision_alone(doc, build))
        return out

    def _provision_alone(self, doc: _Document, build: list[tuple[int, Embed]]) -> dict[int, str]:
        """Used alone: create/reuse this document's build-mode workspaces right now."""
        from .provision import EmbedRequest, Provisioner  # the client stack only when needed

        settings = self.settings
        settings.token()  # SettingsError naming the variable, before any request
        requests = [EmbedRequest(page=doc.page, spec=e.spec, line=e.line) for _, e in build]
        with Provisioner(settings, logger=log) as provisioner:
            resolved = provisioner.resolve(requests)
        out: dict[int, str] = {}
        for (number, embed), request in zip(build, requests, strict=True):
            resolution = resolved[request.key]
            out[number] = render_resolution(embed, resolution, settings)
            doc.has_lazy = doc.has_lazy or (resolution.fallback == "lazy" and bool(settings.lazy_endpoint))
        return out

    def _assets(self, doc: _Document) -> str:
        return html.after_body(*self.settings.sdk, lazy=doc.has_lazy)


def render_resolution(embed: Embed, resolution: Any, settings: SiteSettings) -> str:
    """The HTML of a build-mode embed once its :class:`~sphere_docs.provision.Resolution` is known."""
    spec, caption = embed.spec, embed.caption_html
    if resolution.fallback is None and resolution.workspace_id:
        return html.workspace_div(
            spec, resolution.workspace_id, resolution.workspace_token, caption_html=caption
        )
    if resolution.fallback == "lazy" and settings.lazy_endpoint:
        return html.lazy_placeholder(
            spec, page=embed.page, lazy_endpoint=settings.lazy_endpoint, caption_html=caption
        )
    reason = resolution.reason or "the workspace could not be created when this page was built"
    return html.unavailable_placeholder(spec, reason, caption_html=caption)


def _lost(doc: _Document, number: int) -> DirectiveError:
    return DirectiveError(
        f"{DIRECTIVE}: the embed was lost while the page was rendered "
        "(another extension removed it); expected it in the page",
        page=doc.page or None, line=doc.directives[number].line,
    )


def _stop_zensical_build(md: Markdown, message: str) -> None:
    """Under ``zensical build``, end the build with our one located line and exit status 1.

    Zensical (0.0.x) gives Markdown extensions no error channel: an exception
    raised while a page converts crosses into its Rust runtime and comes back
    as a ``RuntimeError`` printed with two tracebacks after "No issues found".
    For a failed build the process exits anyway, so we say the sentence and
    exit first.  ``zensical serve`` keeps the exception (it reports and waits
    for the next edit), as do all other hosts.
    """
    if _zensical_page(md) is None or "build" not in sys.argv[1:2]:
        return
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    os._exit(1)  # sys.exit would become a Rust-side RuntimeError like any other exception


def _zensical_page(md: Markdown) -> str | None:
    """Zensical registers a context preprocessor carrying the page being rendered."""
    for processor in md.preprocessors:
        page = getattr(processor, "page", None)
        path = getattr(page, "path", None)
        if isinstance(path, str) and path:
            return path.replace("\\", "/")
    return None


def makeExtension(**kwargs: Any) -> SphereWorkspaceExtension:
    return SphereWorkspaceExtension(**kwargs)
