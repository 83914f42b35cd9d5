"""One row of the CI versions table: the engines an environment runs the suite with.

``python .ci/versions.py NAME`` prints the row for the interpreter running it;
``--header`` prints the table's header instead.
"""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

COLUMNS = {
    "Sphinx": "sphinx",
    "docutils": "docutils",
    "MyST-Parser": "myst-parser",
    "MkDocs": "mkdocs",
    "Markdown": "markdown",
    "pymdown-extensions": "pymdown-extensions",
    "Material": "mkdocs-material",
}
WIDTH = {"env": 8, "Python": 8, **{title: max(len(title), 8) for title in COLUMNS}}


def installed(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def row(cells: list[str]) -> str:
    return " | ".join(cell.ljust(width) for cell, width in zip(cells, WIDTH.values(), strict=True)).rstrip()


def main(argv: list[str]) -> None:
    if argv == ["--header"]:
        print(row(list(WIDTH)))
        return
    name = argv[0] if argv else "current"
    print(row([name, platform.python_version(), *(installed(dist) for dist in COLUMNS.values())]))


if __name__ == "__main__":
    main(sys.argv[1:])
