"""Compatibility: MkDocs 1.6 themes, ProperDocs as a drop-in, Zensical with the extension alone.

Every case builds a small real site (admonition, tabs, details, a page
without embeds) against the emulator and checks the output HTML.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak, zensical_command
from test_mkdocs_builds import LAZY, LOADER, live, loader_right_after_body, run_build, workspace_ids

from sphere_docs.core.naming import default_name
from sphere_docs.core.options import WorkspaceSpec
from sphere_docs.services.emulator import EmulatorServer

P = "eef024c1d14f46319517a65edafb5ee3"
PAGES = {
    "index.md": "# Home\n\nNo workspace here.\n",
    "lesson.md": (
        "# Lesson\n\n"
        f"```{{sphere-workspace}} {P}\n:height: 400px\n\nThe *exercise*.\n```\n\n"
        f"!!! tip\n    ```{{sphere-workspace}} {P}\n    :name: in-tip\n    ```\n\n"
        f'=== "First"\n\n    ```{{sphere-workspace}} {P}\n    :name: in-tab\n    ```\n\n'
        '=== "Second"\n\n    Nothing.\n\n'
        f'??? note "More"\n    ```{{sphere-workspace}} {P}\n    :name: in-details\n    :mode: lazy\n    ```\n'
    ),
}
EXTENSIONS: list[object] = [
    "admonition",
    "pymdownx.details",
    "pymdownx.superfences",
    {"pymdownx.tabbed": {"alternate_style": True}},
]
NAMES = [default_name("lesson.md", WorkspaceSpec(P)), "in-tip", "in-tab", "in-details"]


def write_site(root: Path, config: dict[str, object]) -> Path:
    for rel, text in PAGES.items():
        (root / "docs").mkdir(parents=True, exist_ok=True)
        (root / "docs" / rel).write_text(text, encoding="utf-8")
    path = root / "mkdocs.yml"
    path.write_text(yaml.safe_dump({"site_name": "Compat", "docs_dir": "docs", "site_dir": "site", **config},
                                   sort_keys=False), encoding="utf-8")
    return path


def plugin_site(root: Path, emulator: EmulatorServer, theme: str) -> Path:
    return write_site(root, {
        "theme": {"name": theme},
        "markdown_extensions": EXTENSIONS,
        "plugins": ["search", {"sphere-workspaces": {"endpoint": emulator.url, "lazy_endpoint": LAZY,
                                                     "cache": ".cache"}}],
    })


def check_plugin_output(site: Path, emulator: EmulatorServer) -> None:
    lesson = (site / "lesson/index.html").read_text()
    assert lesson.count(LOADER) == 1 and loader_right_after_body(lesson)
    assert all(f'"{n}"' in lesson for n in NAMES)
    ids = workspace_ids(lesson)
    assert len(ids) == 3 and live(emulator, ids)
    assert 'data-sphere-mode="lazy"' in lesson and '<script id="sphere-docs-lazy-js">' in lesson
    for other in site.rglob("*.html"):
        text = other.read_text()
        if other.name == "index.html" and other.parent.name == "lesson":
            continue
        assert LOADER not in text, other
    assert (site / "sphere-workspaces.json").is_file()


# --------------------------------------------------------------------------- MkDocs 1.6 themes


@pytest.mark.parametrize("theme", ["mkdocs", "readthedocs", "material"])
def test_mkdocs_themes(theme: str, emulator: EmulatorServer, tmp_path: Path) -> None:
    run_build(plugin_site(tmp_path, emulator, theme))
    check_plugin_output(tmp_path / "site", emulator)
    assert_no_leak(roots=[tmp_path])


# --------------------------------------------------------------------------- ProperDocs


def test_properdocs_finds_the_plugin_under_its_own_entry_point_group() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="properdocs.plugins")}
    assert names.get("sphere-workspaces") == "sphere_docs.engines.mkdocs:SphereWorkspacesPlugin"


def test_properdocs_drop_in(emulator: EmulatorServer, tmp_path: Path) -> None:
    # ProperDocs ships without the mkdocs/readthedocs themes (separate properdocs-theme-* packages);
    # Material works with it as with MkDocs.
    config = plugin_site(tmp_path, emulator, "material")
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "properdocs", "build", "--strict", "-f", str(config)],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "sphere-workspaces: 3 workspace(s) ready" in result.stderr  # our logger reached ProperDocs' log
    check_plugin_output(tmp_path / "site", emulator)
    assert_no_leak([result.stdout, result.stderr], [tmp_path])


# --------------------------------------------------------------------------- Zensical: the extension alone


def zensical(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = zensical_command()
    return subprocess.run([exe, "build", "--clean", "-f", str(root / "mkdocs.yml")], cwd=root,
                          env=env, capture_output=True, text=True)


def zensical_site(root: Path, ext_config: dict[str, object]) -> Path:
    return write_site(root, {"markdown_extensions": [*EXTENSIONS, {"sphere_workspaces": ext_config}]})


def check_alone_output(lesson: str, mode: str = "build") -> None:
    assert lesson.count(LOADER) == 1
    first_embed = lesson.index('<div class="sphere-workspace')
    assert lesson.index(LOADER) < first_embed  # inline, right before the first embed
    names = [default_name("lesson.md", WorkspaceSpec(P, mode=mode)), *NAMES[1:]]
    assert all(f'"{n}"' in lesson for n in names)
    assert 'data-page="lesson.md"' in lesson  # the page Zensical renders names the embeds


def test_zensical_lazy_mode(tmp_path: Path) -> None:
    zensical_site(tmp_path, {"mode": "lazy", "endpoint": "http://127.0.0.1:8123", "lazy_endpoint": LAZY})
    result = zensical(tmp_path, dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    lesson = (site / "lesson/index.html").read_text()
    check_alone_output(lesson, mode="lazy")
    assert not workspace_ids(lesson) and lesson.count('data-sphere-mode="lazy"') == 4
    assert LOADER not in (site / "index.html").read_text()


def test_zensical_build_mode_against_the_emulator(emulator: EmulatorServer, tmp_path: Path) -> None:
    zensical_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "cache": str(tmp_path / "cache")})
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN}
    result = zensical(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    lesson = (site / "lesson/index.html").read_text()
    check_alone_output(lesson)
    ids = workspace_ids(lesson)
    assert len(ids) == 3 and live(emulator, ids)
    assert LOADER not in (site / "index.html").read_text()
    creates = emulator.count("POST /workspaces")
    assert creates == 3
    again = zensical(tmp_path, env)  # the ledger works the same without a plugin
    assert again.returncode == 0
    assert workspace_ids((site / "lesson/index.html").read_text()) == ids
    assert emulator.count("POST /workspaces") == creates
    assert_no_leak([result.stdout, result.stderr, again.stdout, again.stderr], [tmp_path])


# --------------------------------------------------------------------------- MkDocs with the extension alone


def test_mkdocs_with_the_extension_alone(tmp_path: Path) -> None:
    """No plugin: the extension still makes working pages (loader inline, before the first embed)."""
    config = write_site(tmp_path, {
        "theme": {"name": "mkdocs"},
        "markdown_extensions": [*EXTENSIONS, {"sphere_workspaces": {
            "mode": "lazy", "endpoint": "http://127.0.0.1:8123", "lazy_endpoint": LAZY}}],
    })
    run_build(config)
    lesson = (tmp_path / "site/lesson/index.html").read_text()
    assert lesson.count(LOADER) == 1 and not loader_right_after_body(lesson)
    assert lesson.index(LOADER) < lesson.index('<div class="sphere-workspace')
    # alone, MkDocs does not tell the extension the page: names need the `page` setting or stay generic
    assert lesson.count('data-sphere-mode="lazy"') == 4
    assert not (tmp_path / "site/sphere-workspaces.json").exists()  # the manifest is the plugin's job


def test_extension_listed_next_to_the_plugin_is_taken_over(emulator: EmulatorServer, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    config = write_site(tmp_path, {
        "theme": {"name": "mkdocs"},
        "markdown_extensions": [*EXTENSIONS, {"sphere_workspaces": {"mode": "lazy", "lazy_endpoint": LAZY}}],
        "plugins": [{"sphere-workspaces": {"endpoint": emulator.url, "lazy_endpoint": LAZY, "cache": ".cache"}}],
    })
    with caplog.at_level("INFO"):
        run_build(config)
    check_plugin_output(tmp_path / "site", emulator)  # the plugin's settings won (build mode)
    assert any("its markdown_extensions entry is not needed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("page", "ext_config", "sentence"), [
    (f"# L\n\n```{{sphere-workspace}} {P}\n:heigth: 300px\n```\n", {"mode": "lazy", "lazy_endpoint": LAZY},
     "lesson.md:4: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: "),
    ("# L\n", {"mode": "lazzy", "lazy_endpoint": LAZY},
     "sphere-workspaces: invalid value 'lazzy' for setting 'mode'; expected build | lazy"),
])
def test_zensical_reports_a_mistake_in_one_located_line(tmp_path: Path, page: str, ext_config: dict[str, object],
                                                        sentence: str) -> None:
    zensical_site(tmp_path, {"sdk_host": "12345678.containers.sphere-engine.com", **ext_config})
    (tmp_path / "docs" / "lesson.md").write_text(page)
    result = zensical(tmp_path, dict(os.environ))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("Error: " + sentence), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
