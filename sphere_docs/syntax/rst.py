"""reStructuredText read by docutils itself: every ``sphere-workspace`` directive of a text.

:func:`find_directives` parses a page with docutils' own rST parser (Sphinx is not
needed), so what is an embed is decided by the parser the build uses: literal
blocks (``::``), comments, tables, lists, block quotes and substitution
definitions are what docutils says they are, and the directive's argument,
option field list and content are split by docutils
(``Body.parse_directive_block``).  Directives plain docutils does not know (Sphinx
and its extensions': ``only``, ``tab``, ``versionadded``, ``toctree``...) are read
as containers whose body is rST, except the ones whose body is not rST
(:data:`LITERAL_DIRECTIVES`: ``code-block``, ``literalinclude``, ``raw``, ``math``...):
an embed in them is an example.

Nothing is left registered in docutils: the directive lookup is replaced only for
the documents this module parses (other documents get docutils' answer, even
while a scan runs), and docutils' role and directive tables are restored when the
last scan ends.  docutils' reports are kept quiet (``report_level`` 5, nothing
halts, nothing printed).
"""

from __future__ import annotations

import copy
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from docutils import nodes, utils
from docutils.parsers.rst import Directive, Parser, directives, roles
from docutils.parsers.rst.states import Body, MarkupError
from docutils.statemachine import StringList

__all__ = ["DIRECTIVE", "LITERAL_DIRECTIVES", "BlockError", "RstDirective", "find_directives"]

DIRECTIVE = "sphere-workspace"
#: directives whose body is not reStructuredText: an embed in them is an example, not an embed
LITERAL_DIRECTIVES = frozenset({
    "code-block", "code", "sourcecode", "literalinclude", "highlight", "parsed-literal", "raw",
    "math", "productionlist", "doctest", "testcode", "testoutput", "testsetup", "testcleanup",
    "code-cell", "jupyter-execute", "ipython", "mermaid", "graphviz", "graph", "digraph",
    "plantuml", "csv-table", "prompt", "program-output", "command-output", "exec",
})
_FIELD_MARKER_RE = re.compile(Body.patterns["field_marker"])


@dataclass(frozen=True)
class BlockError:
    """The directive block could not be split (docutils would print "Error in ... directive").

    ``kind``: ``"option block"`` (``text`` is the first line that is not an option),
    ``"duplicate option"`` (``option``, ``value``: its second value) or ``"option data"``
    (``text`` is docutils' detail; ``option``/``value`` when known).
    """

    kind: str
    text: str = ""
    option: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class RstDirective:
    """One ``sphere-workspace`` directive as docutils split it."""

    line: int  #: the directive's line (docutils' ``lineno``, as a line of the source)
    argument: str | None  #: None when there is none
    options: dict[str, str | None]  #: raw values, in written order (None: a bare flag)
    caption: str  #: the content, its lines joined
    #: each option's own line (its ``:name:`` field), the first one for a repeated name
    option_lines: dict[str, int] = field(default_factory=dict)
    error: BlockError | None = None  #: set when the block is invalid (then nothing else is known)


# --------------------------------------------------------------------------- directive classes


def _raw(argument: str | None) -> str | None:
    return argument


class _RawOptions(dict):  # type: ignore[type-arg]
    """An ``option_spec`` that takes every option, known or not, as its raw string (see
    :class:`sphere_docs.engines.sphinx.directive._RawOptions`): the option schema reports unknown ones."""

    def __missing__(self, key: str) -> Callable[[str | None], str | None]:
        return _raw

    def __bool__(self) -> bool:  # docutils reads options only when `if option_spec:`
        return True


class _Split(Directive):
    """The ``sphere-workspace`` directive's shape, as the Sphinx directive declares it."""

    required_arguments = 0
    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _RawOptions()


class _Whole(Directive):
    """A directive that takes its whole block as content (docutils splits nothing)."""

    required_arguments = 0
    optional_arguments = 0
    has_content = True
    option_spec = None

    def _scan(self) -> _Scan:
        return _SCANS[id(self.state.document)]


class _Embed(_Whole):
    """``sphere-workspace``: recorded, its block split by docutils (:func:`_split`)."""

    def run(self) -> list[nodes.Node]:
        scan = self._scan()
        scan.found.append(_split(self, scan.line_offset))
        return []


class _Literal(_Whole):
    """A directive whose body is not rST (:data:`LITERAL_DIRECTIVES`): nothing in it is read."""

    def run(self) -> list[nodes.Node]:
        return []


class _Container(_Whole):
    """A directive docutils does not know: its body is read as rST.

    The text after ``::`` on the directive line (an argument) and the option
    lines right after it are left out; the rest is parsed where it stands.
    """

    def run(self) -> list[nodes.Node]:
        lines = self.content
        first = self.block_text.split("\n", 1)[0]
        k = 1 if lines and first.partition("::")[2].strip() else 0
        while k < len(lines) and _FIELD_MARKER_RE.match(lines[k]):
            k += 1
            while k < len(lines) and lines[k][:1].isspace():
                k += 1
        node = nodes.container()
        if k < len(lines):
            self.state.nested_parse(lines[k:], self.content_offset + k, node)
        return [node]


# --------------------------------------------------------------------------- splitting a block


def _line_of(lines: StringList, index: int, line_offset: int) -> int:
    return int(lines.offset(index)) + 1 + line_offset


def _split(directive: Directive, line_offset: int) -> RstDirective:
    """docutils' own split of the directive's block (argument, options, content)."""
    # the source line of docutils' `lineno` (in a table cell, `lineno` itself is one line off)
    _, where = directive.state_machine.get_source_and_line(directive.lineno)
    line = (where or directive.lineno) + line_offset
    fields, bad = _option_fields(directive, line_offset)
    option_lines: dict[str, int] = {}
    for name, where, _ in fields:
        option_lines.setdefault(name, where)
    try:
        arguments, options, content, _ = directive.state.parse_directive_block(
            directive.content[:], directive.content_offset, _Split, {})
    except MarkupError as err:
        return RstDirective(line, None, {}, "", option_lines,
                            _block_error(" ".join(str(a) for a in err.args), fields, bad))
    return RstDirective(
        line,
        arguments[0] if arguments else None,
        dict(options),
        "\n".join(content),
        option_lines,
    )


def _option_fields(directive: Directive, line_offset: int
                   ) -> tuple[list[tuple[str, int, str | None]], str | None]:
    """``([(name, line, raw value)...], first line that is not an option)`` of the option block.

    The option block is found and parsed as ``parse_directive_block`` does: the
    lines before the first blank one, from the first field marker, read by
    docutils' ``ExtensionOptions`` state (no inline markup, nothing nested).
    """
    block = directive.content[:]
    end = next((i for i, text in enumerate(block) if not text.strip()), len(block))
    start = next((i for i in range(end) if _FIELD_MARKER_RE.match(block[i])), end)
    if start == end:
        return [], None
    opt_block = block[start:end]
    node = nodes.field_list()
    last, _ = directive.state.nested_list_parse(
        opt_block, 0, node, initial_state="ExtensionOptions", blank_finish=True)
    # a complete parse ends at len(opt_block); an incomplete one at the last line it took
    bad = opt_block[min(last + 1, len(opt_block) - 1)].strip() if last < len(opt_block) else None
    fields: list[tuple[str, int, str | None]] = []
    for item in node.findall(nodes.field) if hasattr(node, "findall") else node.traverse(nodes.field):
        name = item[0].astext().lower()
        body = item[1]
        value = (body[0].rawsource or body[0].astext()) if len(body) else None
        where = int(item.line) + line_offset if item.line else directive.lineno + line_offset
        fields.append((name, where, value))
    return fields, bad


def _block_error(detail: str, fields: list[tuple[str, int, str | None]], bad: str | None) -> BlockError:
    if detail.startswith("invalid option block") and bad is not None:
        return BlockError("option block", bad)
    duplicate = re.search(r'duplicate option "([^"]*)"', detail)
    if duplicate:
        seen: set[str] = set()
        for name, _, value in fields:
            if name in seen:
                return BlockError("duplicate option", option=name, value=value)
            seen.add(name)
    named = re.search(r'\(option "([^"]*)"\)', detail)
    option = named[1] if named else None
    value = next((v for n, _, v in fields if n == option), None)
    return BlockError("option data", " ".join(detail.split()), option, value)


# --------------------------------------------------------------------------- the parse


class _Discard:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


@dataclass
class _Scan:
    line_offset: int
    found: list[RstDirective] = field(default_factory=list)


_SCANS: dict[int, _Scan] = {}  #: id(document) -> its scan, while it is parsed
_lock = threading.Lock()
_active = 0
_saved: dict[str, Any] = {}
_settings: Any = None


def _lookup(name: str, language: Any, document: Any) -> tuple[Any, list[Any]]:
    """``directives.directive`` while a scan runs: ours for our documents, docutils' for others."""
    original = _saved.get("directive") or directives.directive  # restored meanwhile: docutils' own
    if id(document) not in _SCANS:
        return original(name, language, document)
    normal = name.lower()
    if normal == DIRECTIVE:
        return _Embed, []
    if normal in LITERAL_DIRECTIVES:
        return _Literal, []
    found, messages = original(name, language, document)
    if found is None or not getattr(found, "__module__", "").startswith("docutils."):
        return _Container, messages  # unknown to docutils (or registered by Sphinx: it needs its env)
    return found, messages


@contextmanager
def _scoped() -> Iterator[None]:
    """The lookup installed, and docutils' role/directive tables restored after the last scan."""
    global _active
    with _lock:
        if _active == 0:
            _saved.update(directive=directives.directive,
                          directives=dict(directives._directives),  # type: ignore[attr-defined]
                          roles=dict(roles._roles))  # type: ignore[attr-defined]
            directives.directive = _lookup
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                directives.directive = _saved["directive"]
                # a page's `.. role::` / `.. default-role::` registers in docutils' tables
                directives._directives.clear()  # type: ignore[attr-defined]
                directives._directives.update(_saved["directives"])  # type: ignore[attr-defined]
                roles._roles.clear()  # type: ignore[attr-defined]
                roles._roles.update(_saved["roles"])  # type: ignore[attr-defined]
                _saved.clear()


def _new_settings() -> Any:
    global _settings
    if _settings is None:
        try:
            from docutils.frontend import get_default_settings
        except ImportError:  # pragma: no cover - docutils before 0.19
            from docutils.frontend import OptionParser

            def get_default_settings(*components: Any) -> Any:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return OptionParser(components=components).get_default_values()

        settings = get_default_settings(Parser)
        settings.report_level = 5  # nothing reported ...
        settings.halt_level = 5  # ... nothing halts ...
        settings.warning_stream = _Discard()  # ... nothing printed
        settings.file_insertion_enabled = False  # `.. include::` reads no file
        settings.raw_enabled = False
        _settings = settings
    return copy.copy(_settings)


def find_directives(text: str, *, source: str = "<rst>", line_offset: int = 0) -> list[RstDirective]:
    """Every ``sphere-workspace`` directive of the rST ``text``, in the order docutils met them.

    Lines are the text's (1-based) plus ``line_offset``.  docutils' own failures
    (a bug) propagate.
    """
    document = utils.new_document(source, _new_settings())
    scan = _Scan(line_offset)
    with _scoped():
        _SCANS[id(document)] = scan
        try:
            Parser().parse(text, document)
        finally:
            del _SCANS[id(document)]
    return scan.found
