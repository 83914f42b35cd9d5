"""The package's layers are its folders; what each may import is read from the source (every import).

==========  ========================================================  ==================================
folder      what                                                      may import
==========  ========================================================  ==================================
core        options, catalog, embed, naming, settings, errors,        core
            redact, fileio, html, manifest
syntax      the directive in a page: fences, Markdown, rST (docutils)  core, syntax
site        find and load mkdocs.yml / conf.py                        core, site
api         the Containers API client                                 core, api
pipeline    decisions, provisioning, ledger, keeping the last site    core, syntax, api, pipeline
engines     Python-Markdown, MkDocs, Sphinx adapters                  core, syntax, api, pipeline, engines
tools       check, doctor, prune, demo, the CLI                       all but engines
services    the lazy endpoint and the emulator                        core, api, services
(public)    sphere_docs.markdown / .sphinx / .endpoint, __main__      their one layer
==========  ========================================================  ==================================

A module outside these folders fails the test: a new module must say which layer it is in.
:data:`KNOWN_CROSSINGS` lists imports that still cross a line, each with why; it may only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sphere_docs"

LAYERS = ("core", "syntax", "site", "api", "pipeline", "engines", "tools", "services")
#: the names users type (extension lists, gunicorn, ``python -m``): one line each, onto one layer
PUBLIC = {"markdown": "engines", "sphinx": "engines", "endpoint": "services", "__main__": "tools",
          "__init__": "core", "__version__": "core"}
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},
    "syntax": {"core", "syntax"},
    "site": {"core", "site"},
    "api": {"core", "api"},
    "pipeline": {"core", "syntax", "api", "pipeline"},
    "engines": {"core", "syntax", "api", "pipeline", "engines"},
    "tools": {"core", "syntax", "site", "api", "pipeline", "tools", "services"},
    "services": {"core", "api", "services"},
}
#: (importer, imported) -> why it is still there
KNOWN_CROSSINGS: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    top = module.split(".")[0]
    if top in LAYERS:
        return top
    if module in PUBLIC:
        return f"public:{PUBLIC[module]}"
    raise AssertionError(f"sphere_docs.{module} is in no layer: put it in one of the folders {LAYERS}")


def allowed(own: str, theirs: str) -> bool:
    if own.startswith("public:"):  # a public name is one line onto its layer
        return theirs == own.removeprefix("public:") or theirs == "public:core"
    theirs = theirs.removeprefix("public:")
    return theirs in MAY_IMPORT[own]


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
        if not imported:
            continue
        theirs = layer_of(imported)
        key = (module.split(".")[0], imported.split(".")[0])
        if not allowed(own, theirs) and key not in KNOWN_CROSSINGS:
            crossings.append(f"{module} ({own}) imports {imported} ({theirs})")
    assert not crossings


def test_known_crossings_still_exist() -> None:
    """A crossing that was removed must leave the list too (the list only shrinks)."""
    actual = {(".".join(p.relative_to(PACKAGE).with_suffix("").parts).split(".")[0], i.split(".")[0])
              for p in modules() for i in imports_of(p)}
    stale = [pair for pair, why in KNOWN_CROSSINGS.items() if why and pair not in actual]
    assert not stale
