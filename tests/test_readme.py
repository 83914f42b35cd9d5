"""README.md is the front door: every example and table in it is checked against the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import markdown
import pytest
import yaml
from sphinx_fixtures import build, warnings_of

from sphere_docs.core.options import OPTIONS
from sphere_docs.core.settings import SETTINGS, SiteSettings, settings_table
from sphere_docs.services.endpoint.config import ENV_VARS, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of one language (```` fences for the Markdown examples)."""
    if language == "md":
        return re.findall(r"^````md\n(.*?)^````$", README, flags=re.M | re.S)
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.M | re.S)


def table_names(header: str) -> list[str]:
    """First-column names (in backticks) of the table whose header row starts with ``header``."""
    start = README.index(header)
    rows = README[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


def test_the_two_commands_come_first_and_ci_runs_the_test_one() -> None:
    first = blocks("bash")[0].splitlines()
    demo, tests, quick = (line.split("#")[0].strip() for line in first)
    assert README.index("```bash") < README.index("## ")  # before any section
    assert "sphere_docs demo" in demo
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), "README's test command must be what .ci/run runs"
    assert tests == "bash .ci/test" and '-m pytest' in (ROOT / ".ci" / "test").read_text()
    assert shlex.split(quick)[-3:] == ["python3", "-m", "pytest"]  # the quick run, this environment


def test_options_table_lists_every_option_in_order() -> None:
    assert table_names("| option | values | meaning |") == list(OPTIONS)


def test_settings_table_lists_every_setting_with_its_conf_py_name() -> None:
    assert table_names("| `mkdocs.yml` | `conf.py` |") == list(SETTINGS)
    for name in SETTINGS:
        assert f"| `{name}` | `sphere_{name}` |" in README


def test_settings_table_is_the_declared_one() -> None:
    """Names, defaults and meanings come from the declarations; regenerate the table with
    ``python3 -c 'from sphere_docs.core.settings import settings_table; print(settings_table())'``."""
    start = README.index("| `mkdocs.yml` | `conf.py` |")
    assert README[start:].split("\n\n", 1)[0] == settings_table()


def test_endpoint_table_is_generated_from_the_settings() -> None:
    """The deployer's table is ``markdown_table()``: every variable, its flag (none for a secret), its help."""
    assert markdown_table() in README, "paste markdown_table() of sphere_docs.services.endpoint.config into the README"
    for field, (var, _doc) in ENV_VARS.items():
        assert f"| `{var.removeprefix('SPHERE_ENDPOINT_')}` |" in markdown_table(), field


def test_error_example_is_the_real_message() -> None:
    """The README's three problems are what the extension reports for that embed at line 12."""
    from sphere_docs.core.settings import SiteSettings
    from sphere_docs.markdown import SphereWorkspaceExtension

    shown = re.findall(r"^docs/lessons/intro\.md:1\d: .*$", README, flags=re.M)
    ext = SphereWorkspaceExtension(settings=SiteSettings(), deferred=True)
    md = markdown.Markdown(extensions=[ext])
    ext.begin_page("docs/lessons/intro.md")
    md.convert("\n" * 11 + "```{sphere-workspace} eef024c1d14f46319517a65edafb5ee3\n"
               ":heigth: 300px\n:height: tall\n:mode: lazzy\n```\n")
    assert [str(err) for err in ext.finish_page()[1]] == shown
    assert len(shown) == 3


@pytest.mark.parametrize("example", blocks("md"), ids=["options-lines", "yaml-block"])
def test_markdown_examples_render_with_python_markdown(example: str) -> None:
    out = markdown.markdown(
        example, extensions=["sphere_workspaces"],
        extension_configs={"sphere_workspaces": {"mode": "lazy", "page": "readme.md",
                                                 "endpoint": "12345678.containers.sphere-engine.com",
                                                 "lazy_endpoint": "https://docs.example.org/ws"}},
    )
    assert out.count('data-sphere-mode="lazy"') == 1
    assert "sphere-workspace}" not in out  # the fence became an embed, not code


def test_rst_and_myst_examples_build_in_sphinx(make_app, emulator, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["myst_parser", "sphere_docs.sphinx"]\nproject = "readme"\n')
    (src / "index.rst").write_text("README\n======\n\n" + blocks("rst")[0] + "\n.. toctree::\n\n   myst\n")
    (src / "myst.md").write_text("# MyST\n\n" + blocks("md")[0])
    app = build(make_app, src, emulator=emulator)
    assert warnings_of(app) == ""
    for page in ("index.html", "myst.html"):
        assert 'data-workspace="' in (Path(app.outdir) / page).read_text()


def test_site_settings_examples_are_valid() -> None:
    mkdocs_yml = yaml.safe_load(blocks("yaml")[0])
    plugin = next(p for p in mkdocs_yml["plugins"] if isinstance(p, dict))["sphere-workspaces"]
    SiteSettings.from_mapping(plugin)
    conf: dict[str, object] = {}
    exec(blocks("python")[0], conf)  # the README's conf.py sample
    SiteSettings.from_mapping({k.removeprefix("sphere_"): v for k, v in conf.items() if k.startswith("sphere_")})
    assert conf["extensions"] == ["myst_parser", "sphere_docs.sphinx"]
