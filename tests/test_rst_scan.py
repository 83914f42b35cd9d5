"""reStructuredText read by docutils itself (:mod:`sphere_docs.syntax.rst`, used by ``check``).

The pages here are where a hand-written scanner and docutils disagree; each test
pins docutils' answer (what a Sphinx build does), and the line of each option.
"""

from __future__ import annotations

import io

from docutils.core import publish_doctree
from docutils.parsers.rst import directives, roles

from sphere_docs.syntax import rst
from sphere_docs.tools.check import scan_rst

P = "eef024c1d14f46319517a65edafb5ee3"
CSS = "a CSS length such as 600px, 70vh, 40em or 100%"


def found(text: str) -> list[tuple[int, str | None]]:
    """``(line, name)`` of each valid embed."""
    return [(e.line, e.spec.name) for e in scan_rst(text, "p.rst").embeds]


def problems(text: str, **kwargs: int) -> list[str]:
    return [p.text for p in scan_rst(text, "p.rst", **kwargs).problems]


def grid_table(*rows: str) -> str:
    width = max(map(len, rows)) + 2
    rule = "+" + "-" * width + "+\n"
    return rule + "".join(f"| {row.ljust(width - 2)} |\n" for row in rows) + rule


# --------------------------------------------------------------------------- docutils' answer


def test_a_quoted_literal_block_after_double_colon_is_not_an_embed() -> None:
    # not indented, but every line starts with the same punctuation: a quoted literal block
    assert found(f"Paragraph::\n\n.. sphere-workspace:: {P}\n.. sphere-workspace:: {P}\n") == []
    # after an ordinary paragraph the same lines are two embeds
    text = f"Paragraph.\n\n.. sphere-workspace:: {P}\n   :name: a\n.. sphere-workspace:: {P}\n   :name: b\n"
    assert found(text) == [(3, "a"), (5, "b")]


def test_a_directive_line_inside_a_paragraph_is_text() -> None:
    text = f"Some text\n.. sphere-workspace:: {P}\n   :height: wrong\n\nMore text.\n"
    assert (found(text), problems(text)) == ([], [])


def test_embeds_in_table_cells_are_read_at_their_lines() -> None:
    grid = "A table:\n\n" + grid_table(
        "Intro", "", f".. sphere-workspace:: {P}", "   :name: grid", "   :height: 1",
    )
    # docutils' own `lineno` is one line off in a table cell: the source line is reported (the option's)
    assert problems(grid) == [f"p.rst:8: sphere-workspace: invalid value '1' for option 'height'; expected {CSS}"]
    (directive,) = rst.find_directives(grid)
    assert (directive.line, directive.option_lines) == (6, {"name": 7, "height": 8})
    simple = f"""\
=====  ===================================================
a      b
=====  ===================================================
x      .. sphere-workspace:: {P}
          :name: simple
=====  ===================================================
"""
    assert found(simple) == [(4, "simple")]


def test_definition_lists_and_nested_containers() -> None:
    text = f"""\
term
   .. sphere-workspace:: {P}
      :name: defined

- item

  .. note::

     .. sphere-workspace:: {P}
        :name: noted
"""
    assert found(text) == [(2, "defined"), (9, "noted")]


def test_substitution_definitions() -> None:
    # the indented line continues the image directive's argument (its file name)
    assert found(f".. |logo| image:: logo.png\n   .. sphere-workspace:: {P}\n") == []
    # a substitution ends at its block: the directive after it is an embed
    assert found(f".. |name| replace:: text\n.. sphere-workspace:: {P}\n   :name: after\n") == [(2, "after")]


def test_option_names_are_read_as_docutils_reads_them() -> None:
    # docutils lower-cases option names: ':Height:' is the height option
    assert problems(f".. sphere-workspace:: {P}\n   :Height: 1\n") == [
        f"p.rst:2: sphere-workspace: invalid value '1' for option 'height'; expected {CSS}"]
    assert problems(f".. sphere-workspace:: {P}\n   :two words: 1\n") == [
        "p.rst:1: sphere-workspace: invalid option block (invalid option data: extension option "
        "field name may not contain multiple words); expected ':name: value' lines, then a blank "
        "line before the caption"]


def test_unknown_directives_are_containers_and_literal_ones_are_skipped() -> None:
    text = f"""\
.. tab:: Python
   :sync: py

   .. sphere-workspace:: {P}
      :name: tab

.. only:: html

   .. sphere-workspace:: {P}
      :name: only

.. seealso::
   .. sphere-workspace:: {P}
      :name: seealso

.. code-block:: rst

   .. sphere-workspace:: {P}

.. literalinclude:: example.rst

   .. sphere-workspace:: {P}

.. math::

   .. sphere-workspace:: {P}
"""
    assert found(text) == [(4, "tab"), (9, "only"), (13, "seealso")]


# --------------------------------------------------------------------------- each option's line


def test_each_option_has_its_own_line() -> None:
    text = f"""\
Intro.

.. sphere-workspace:: {P}
   :class: one
      two
   :height:
      300px
   :token-required:

   Caption line 1
   line 2
"""
    (directive,) = rst.find_directives(text)
    assert directive.line == 3
    assert directive.argument == P
    assert directive.options == {"class": "one\ntwo", "height": "300px", "token-required": None}
    assert list(directive.option_lines.items()) == [("class", 4), ("height", 6), ("token-required", 8)]
    assert directive.caption == "Caption line 1\nline 2"
    # an eval-rst block inside a Markdown page: every line shifts
    (shifted,) = rst.find_directives(text, line_offset=40)
    assert (shifted.line, shifted.option_lines["height"]) == (43, 46)
    # an option on the directive line itself (docutils reads it as the option block)
    (inline,) = rst.find_directives(".. sphere-workspace:: :height: 1px\n")
    assert (inline.argument, inline.options, inline.option_lines) == (None, {"height": "1px"}, {"height": 1})


def test_invalid_option_blocks_name_the_line_docutils_stopped_at() -> None:
    text = f".. sphere-workspace:: {P}\n   :height: 300px\n      continued\n   Caption, no blank line.\n"
    assert problems(text) == [
        "p.rst:1: sphere-workspace: invalid option block at 'Caption, no blank line.'; expected "
        "':name: value' lines, then a blank line before the caption"]
    (twice,) = scan_rst(f".. sphere-workspace:: {P}\n   :height: 1px\n   :height: 2px\n", "p.rst").problems
    assert (twice.line, twice.option, twice.value) == (1, "height", "2px")
    assert twice.message == "sphere-workspace: option 'height' is given twice; give each option once"


# --------------------------------------------------------------------------- docutils left as it was


def test_nothing_is_left_registered_in_docutils() -> None:
    lookup = directives.directive
    page = f".. role:: custom\n\n:custom:`x`\n\n.. default-role:: custom\n\n.. tab:: T\n\n   .. sphere-workspace:: {P}\n"
    assert [line for line, _ in found(page)] == [9]
    assert directives.directive is lookup
    assert "custom" not in roles._roles  # type: ignore[attr-defined]
    tree = publish_doctree(".. tab:: T\n\n.. sphere-workspace:: x\n",
                           settings_overrides={"report_level": 5, "warning_stream": io.StringIO()})
    errors = [m.astext() for m in tree.findall(lambda n: n.tagname == "system_message")]
    assert any('Unknown directive type "tab"' in e for e in errors)
    assert any('Unknown directive type "sphere-workspace"' in e for e in errors)


def test_other_documents_get_docutils_answer_while_a_scan_runs() -> None:
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.parsers.rst.languages import en
    from docutils.utils import new_document

    other = new_document("other.rst", get_default_settings(Parser))
    with rst._scoped():
        assert directives.directive is not rst._saved["directive"]
        assert directives.directive("tab", en, other)[0] is None
        assert directives.directive("sphere-workspace", en, other)[0] is None
        assert directives.directive("note", en, other)[0].__module__.startswith("docutils.")
