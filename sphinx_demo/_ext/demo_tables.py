"""Demo-only directives: the option and setting tables, generated from the shared schema.

``.. sphere-options-table::`` and ``.. sphere-settings-table::`` render
:data:`sphere_docs.core.options.OPTIONS` and :data:`sphere_docs.core.settings.SETTINGS`,
so the reference page can never drift from what the code accepts.
"""

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

from sphere_docs.core.options import OPTIONS
from sphere_docs.core.settings import SETTINGS


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


class _Table(SphinxDirective):
    header = ("",)

    def rows(self):
        return []

    def run(self):
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: auto", ""]
        for row in [self.header, *self.rows()]:
            lines.append(f"   * - {_cell(row[0])}")
            lines.extend(f"     - {_cell(cell)}" for cell in row[1:])
        box = nodes.container()
        self.state.nested_parse(StringList(lines, source="(generated)"), self.content_offset, box)
        return box.children


class OptionsTable(_Table):
    header = ("option", "values", "meaning")

    def rows(self):
        return [(f"``:{o.name}:``", o.valid, o.doc) for o in OPTIONS.values()]


class SettingsTable(_Table):
    header = ("conf.py", "values", "default", "meaning")

    def rows(self):
        return [
            (f"``sphere_{s.name}``", s.valid, f"``{s.default!r}``", s.doc)
            for s in SETTINGS.values()
        ]


def setup(app):
    app.add_directive("sphere-options-table", OptionsTable)
    app.add_directive("sphere-settings-table", SettingsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
