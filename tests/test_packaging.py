"""The package's shape: a deliberate public surface, and a core that needs no MkDocs or Sphinx."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import sphere_docs

CORE = [
    "sphere_docs", "sphere_docs.options", "sphere_docs.settings", "sphere_docs.errors",
    "sphere_docs.html", "sphere_docs.client", "sphere_docs.provision", "sphere_docs.manifest",
    "sphere_docs.markdown", "sphere_docs.endpoint", "sphere_docs.emulator", "sphere_docs.check",
    "sphere_docs.site", "sphere_docs.rst", "sphere_docs.doctor",
    "sphere_docs.cli",
]


@pytest.mark.parametrize("name", [*CORE, "sphere_docs.mkdocs_", "sphere_docs.sphinx"])
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
