"""The package's shape: a deliberate public surface, and a core that needs no MkDocs or Sphinx."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import sphere_docs

CORE = [
    "sphere_docs", "sphere_docs.core.options", "sphere_docs.core.settings", "sphere_docs.core.errors",
    "sphere_docs.core.html", "sphere_docs.api.client", "sphere_docs.pipeline.provision", "sphere_docs.core.manifest",
    "sphere_docs.markdown", "sphere_docs.endpoint", "sphere_docs.services.emulator", "sphere_docs.tools.check",
    "sphere_docs.site", "sphere_docs.syntax.rst", "sphere_docs.tools.doctor",
    "sphere_docs.tools.cli",
]


@pytest.mark.parametrize("name", [*CORE, "sphere_docs.engines.mkdocs", "sphere_docs.sphinx"])
def test_every_public_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} declares no __all__")
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_top_level_surface() -> None:
    assert sphere_docs.__all__ == ["OptionError", "WorkspaceSpec", "__version__", "parse_options"]


def test_core_and_markdown_extension_work_without_mkdocs_or_sphinx() -> None:
    """MkDocs and Sphinx are optional extras: block them and use the core and the extension."""
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mkdocs", "sphinx", "myst_parser"):
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
import importlib
for name in {CORE!r}:
    importlib.import_module(name)
import markdown
html = markdown.markdown(
    "```{{sphere-workspace}} eef024c1d14f46319517a65edafb5ee3\\n:mode: lazy\\n```\\n",
    extensions=["sphere_workspaces"],
    extension_configs={{"sphere_workspaces": {{"endpoint": "a.example.com", "page": "x.md",
                                              "lazy_endpoint": "https://a.example.com/ws"}}}},
)
assert 'data-sphere-mode="lazy"' in html, html
assert not any(m.split(".")[0] in ("mkdocs", "sphinx") for m in sys.modules)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_site_layer_knows_the_plugin_by_its_entry_point() -> None:
    """site.py recognises the MkDocs plugin without importing it: by the class pyproject names."""
    from importlib.metadata import entry_points

    from sphere_docs.site import MKDOCS_PLUGIN, MKDOCS_PLUGIN_CLASS

    (entry,) = [e for e in entry_points(group="mkdocs.plugins") if e.name == MKDOCS_PLUGIN]
    assert entry.value == MKDOCS_PLUGIN_CLASS
