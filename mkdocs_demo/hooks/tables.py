"""MkDocs hook of the demo: the reference tables come from the shared schema.

A line ``<!-- sphere-docs: options table -->`` (or ``settings table``) in a page
is replaced by a Markdown table built from :data:`sphere_docs.core.options.OPTIONS`
(or :data:`sphere_docs.core.settings.SETTINGS`), so the docs cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from sphere_docs.core.options import OPTIONS
from sphere_docs.core.settings import SETTINGS


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def options_table() -> str:
    rows = ["| option | values | meaning |", "|---|---|---|"]
    rows += [f"| `{o.name}` | {_cell(o.valid)} | {_cell(o.doc)} |" for o in OPTIONS.values()]
    return "\n".join(rows)


def settings_table() -> str:
    rows = ["| setting | values | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS.values():
        default = "—" if s.default is None else f"`{s.default}`"
        rows.append(f"| `{s.name}` | {_cell(s.valid)} | {default} | {_cell(s.doc)} |")
    return "\n".join(rows)


TABLES = {
    "<!-- sphere-docs: options table -->": options_table,
    "<!-- sphere-docs: settings table -->": settings_table,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
