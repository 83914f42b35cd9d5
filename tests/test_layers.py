"""The package's layers, and what each may import (read from the source, every import counted).

==========  ===================================================================  ==========================
layer       modules                                                              may import
==========  ===================================================================  ==========================
core        options, catalog, naming, settings, errors, redact, fileio, html,    core
            manifest (the sphere-workspaces.json format)
syntax      fences, rst (docutils), site (mkdocs.yml / conf.py)                  core, syntax
api         client                                                               core
pipeline    pipeline, provision, ledger, keep_site                               core, syntax, api, pipeline
engines     markdown, mkdocs_, sphinx.*                                          everything below tools
tools       check, doctor, demo, cli, commands.*, __main__                       everything but engines
services    endpoint.*, emulator.*                                               core, api, services
==========  ===================================================================  ==========================

A module not listed fails the test: a new module must say which layer it is in.
:data:`KNOWN_CROSSINGS` lists the imports that still cross a line, each with why;
the list may only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sphere_docs"

LAYERS: dict[str, set[str]] = {
    "core": {"options", "catalog", "naming", "settings", "errors", "redact", "fileio", "html", "manifest",
             "embed", "__init__", "__version__"},
    "syntax": {"fences", "rst", "site", "syntax"},
    "api": {"client"},
    "pipeline": {"pipeline", "provision", "ledger", "keep_site"},
    "engines": {"markdown", "mkdocs_", "sphinx", "engines"},
    "tools": {"check", "doctor", "demo", "cli", "commands", "__main__"},
    "services": {"endpoint", "emulator", "endpoint_gunicorn.conf"},
}
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},
    "syntax": {"core", "syntax"},
    "api": {"core", "api"},
    "pipeline": {"core", "syntax", "api", "pipeline"},
    "engines": {"core", "syntax", "api", "pipeline", "engines"},
    "tools": {"core", "syntax", "api", "pipeline", "tools", "services"},
    "services": {"core", "api", "services"},
}
#: (importer, imported) -> why it is still there
KNOWN_CROSSINGS: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    top = module.split(".")[0]
    for layer, names in LAYERS.items():
        if top in names or module in names:
            return layer
    raise AssertionError(f"sphere_docs.{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def imports_of(path: Path) -> set[str]:
    """The sphere_docs modules ``path`` imports (relative imports resolved), as dotted names."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # "from . import x" in a/b.py and in a/__init__.py both mean package a
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                if not node.module:  # "from . import a, b"
                    found.update(".".join([*target, alias.name]) for alias in node.names)
                    continue
                found.add(".".join(target))
            elif node.module and node.module.startswith("sphere_docs."):
                found.add(node.module.removeprefix("sphere_docs."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("sphere_docs.") for a in node.names if a.name.startswith("sphere_docs."))
    return {f for f in found if f and f != "__init__"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_the_layers_below(path: Path) -> None:
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = layer_of(module)
    crossings = []
    for imported in sorted(imports_of(path)):
        if not imported or imported.split(".")[0] == module.split(".")[0]:
            continue  # within one package (sphinx.*, endpoint.*)
        theirs = layer_of(imported)
        key = (module.split(".")[0], imported.split(".")[0])
        if theirs not in MAY_IMPORT[own] and key not in KNOWN_CROSSINGS:
            crossings.append(f"{module} ({own}) imports {imported} ({theirs})")
    assert not crossings


def test_known_crossings_still_exist() -> None:
    """A crossing that was removed must leave the list too (the list only shrinks)."""
    actual = {(".".join(p.relative_to(PACKAGE).with_suffix("").parts).split(".")[0], i.split(".")[0])
              for p in modules() for i in imports_of(p)}
    stale = [pair for pair, why in KNOWN_CROSSINGS.items() if why and pair not in actual]
    assert not stale
