"""``sphere-docs check``: every embed of a docs tree found and validated without building.

The fixture tree ``tests/data/check_tree`` holds an MkDocs site (``mkdocs.yml``
+ ``docs/``: ``:opt:`` fences, MyST ``---`` YAML blocks, nesting, examples that
must stay text) and a Sphinx project (``sphinx/``: rST directives and a MyST
page with nested and colon-fence embeds), plus folders that must be skipped.
The text output is pinned; two tests build the same pages with the real
engines and check that they report the same problems at the same lines.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN_ENV

from sphere_docs.tools.check import check_paths, scan_rst
from sphere_docs.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
TREE = Path(__file__).resolve().parent / "data" / "check_tree"
OPTIONS = ("mode, height, width, features, launch, token-required, inactivity-timeout, "
           "retention-stopped, retention-total, auto-resume, name, class")
CSS = "a CSS length such as 600px, 70vh, 40em or 100%"
PROJECT = "a project id of 32 hexadecimal characters"
MINUTES = "a whole number of minutes between 0 and 525600"
YAML_BLOCK = "expected 'name: value' lines between the --- lines"

#: ``sphere-docs check`` run in tests/data/check_tree, exactly
PINNED = f"""\
docs/lessons/bad.md:4: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {OPTIONS}
docs/lessons/bad.md:8: sphere-workspace: invalid value '600' for option 'height'; expected {CSS}
docs/lessons/bad.md:11: sphere-workspace: missing project id; expected {PROJECT}
docs/lessons/bad.md:15: sphere-workspace: invalid project id 'eef024c1d14f46319517a65edafb5ee'; expected {PROJECT}
docs/lessons/bad.md:23: sphere-workspace: duplicate value 'twice' for option 'name'; expected a name not used by another embed on this page (line 18)
docs/lessons/bad.md:27: sphere-workspace: invalid value 'later' for option 'mode'; expected build | lazy
docs/lessons/bad.md:34: sphere-workspace: option 'height' is given twice; give each option once
docs/lessons/bad.md:37: warning: sphere-workspace: a ':::' colon fence is MyST syntax; write ```{{sphere-workspace}} ... ``` instead
docs/lessons/bad.md:40: sphere-workspace: the fence opened here is never closed; expected a closing ``` line at the same indentation
docs/lessons/yaml.md:19: sphere-workspace: invalid value 'never' for option 'launch'; expected click | visible | load
docs/lessons/yaml.md:23: sphere-workspace: invalid YAML in the option block (line 25, column 15): expected ',' or ']', but got '<stream end>'; {YAML_BLOCK}
docs/lessons/yaml.md:29: sphere-workspace: the YAML option block is a list, not a mapping; {YAML_BLOCK}
docs/lessons/yaml.md:37: sphere-workspace: invalid value '-5' for option 'retention-total'; expected {MINUTES}
sphinx/bad.rst:5: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {OPTIONS}
sphinx/bad.rst:8: sphere-workspace: invalid value 'wide' for option 'width'; expected {CSS}
sphinx/bad.rst:10: sphere-workspace: missing project id; expected {PROJECT}
sphinx/bad.rst:13: sphere-workspace: invalid project id 'eef024c1d14f46319517a65edafb5ee3 extra words'; expected {PROJECT}
sphinx/bad.rst:19: sphere-workspace: duplicate value 'twice' for option 'name'; expected a name not used by another embed on this page (line 15)
sphinx/bad.rst:21: sphere-workspace: option 'height' is given twice; give each option once
sphinx/bad.rst:25: sphere-workspace: invalid option block at 'A caption without the blank line.'; expected ':name: value' lines, then a blank line before the caption
sphinx/bad.rst:30: sphere-workspace: invalid value 'fullscreen, sparkles' for option 'features'; expected a comma-separated list of: fullscreen
sphinx/myst.md:21: sphere-workspace: invalid value 'soon' for option 'retention-stopped'; expected {MINUTES}
sphinx/myst.md:27: sphere-workspace: invalid value 'hover' for option 'launch'; expected click | visible | load
sphinx/myst.md:36: sphere-workspace: invalid value 'maybe' for option 'auto-resume'; expected true | false
33 embeds in 6 files, 23 errors, 1 warning
"""

#: the valid embeds of the tree: (file, line, project, mode, name)
VALID = [
    ("docs/index.md", 3, "eef024c1d14f46319517a65edafb5ee3", "build", None),
    ("docs/index.md", 11, "eef024c1d14f46319517a65edafb5ee3", "lazy", None),
    ("docs/index.md", 18, "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b", "build", "tab-one"),
    ("docs/lessons/bad.md", 18, "eef024c1d14f46319517a65edafb5ee3", "build", "twice"),
    ("docs/lessons/yaml.md", 6, "eef024c1d14f46319517a65edafb5ee3", "build", "yaml-good"),
    ("sphinx/index.rst", 4, "eef024c1d14f46319517a65edafb5ee3", "build", None),
    ("sphinx/index.rst", 14, "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b", "build", "nested"),
    ("sphinx/index.rst", 21, "eef024c1d14f46319517a65edafb5ee3", "lazy", None),
    ("sphinx/bad.rst", 15, "eef024c1d14f46319517a65edafb5ee3", "build", "twice"),
    ("sphinx/myst.md", 9, "eef024c1d14f46319517a65edafb5ee3", "build", "in-note"),
]


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pinned_text_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TREE)
    code, out, err = run_check(capsys)  # default PATH: the current folder
    assert out == PINNED
    assert err == ""
    assert code == 1


def test_valid_embeds_are_found_with_their_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TREE)
    result = check_paths(["."])
    # Markdown embeds get their default name (ws-...) from the extension; rST ones have none yet
    found = [(e.page, e.line, e.spec.project_id, e.spec.mode,
              None if (e.spec.name or "ws-").startswith("ws-") else e.spec.name)
             for e in result.embeds]
    assert sorted(found) == sorted(VALID)
    by_place = {(e.page, e.line): e.spec for e in result.embeds}
    yaml_spec = by_place[("docs/lessons/yaml.md", 6)]
    assert (yaml_spec.height, yaml_spec.auto_resume, yaml_spec.inactivity_timeout, yaml_spec.classes) == (
        "420px", True, 30, ("compact", "wide"))
    assert yaml_spec.caption == "A caption after the YAML block."
    assert by_place[("sphinx/index.rst", 4)].caption == "Warm-up: print ``Hello, world!``."
    assert by_place[("sphinx/index.rst", 4)].features == ("fullscreen",)
    assert by_place[("sphinx/index.rst", 14)].inactivity_timeout == 20
    assert by_place[("docs/index.md", 11)].launch == "visible"


def test_github_output_annotates_each_problem(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TREE)
    code, out, _ = run_check(capsys, "--format", "github", "docs")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        "::error file=docs/lessons/bad.md,line=4,title=sphere-docs check::sphere-workspace: unknown option "
        f"'heigth' (did you mean 'height'?); valid options: {OPTIONS}")
    assert all(line.startswith(("::error file=", "::warning file=")) for line in lines[:-1])
    assert any(line.startswith("::warning file=docs/lessons/bad.md,line=37,") for line in lines)
    assert lines[-1].endswith("errors, 1 warning")


def test_pre_commit_hook_runs_check() -> None:
    import yaml

    (hook,) = yaml.safe_load((Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "sphere-docs-check" and hook["entry"] == "sphere-docs check"
    assert hook["pass_filenames"] is True


def test_json_output_for_ci_annotations(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TREE)
    code, out, err = run_check(capsys, "--format", "json", "docs", "sphinx/myst.md")
    assert code == 1
    items = json.loads(out)
    assert err == "21 embeds in 4 files, 15 errors, 1 warning\n"  # (a ':::' fence is no embed: a warning)
    assert {tuple(sorted(item)) for item in items} == {
        ("file", "line", "message", "option", "severity", "valid", "value")}
    assert items[0] == {
        "file": "docs/lessons/bad.md", "line": 4, "option": "heigth", "value": "600px",
        "valid": OPTIONS, "severity": "error",
        "message": f"sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {OPTIONS}",
    }
    assert items[2] == {
        "file": "docs/lessons/bad.md", "line": 11, "option": "project", "value": None,
        "valid": PROJECT, "severity": "error",
        "message": f"sphere-workspace: missing project id; expected {PROJECT}",
    }
    warning = [i for i in items if i["severity"] == "warning"]
    assert [(w["file"], w["line"], w["option"]) for w in warning] == [("docs/lessons/bad.md", 37, None)]
    assert items[-1] == {
        "file": "sphinx/myst.md", "line": 36, "option": "auto-resume", "value": "maybe",
        "valid": "true | false", "severity": "error",
        "message": "sphere-workspace: invalid value 'maybe' for option 'auto-resume'; expected true | false",
    }
    # the same problems, the same texts as the text format
    code, text, _ = run_check(capsys, "docs", "sphinx/myst.md")
    lines = text.splitlines()[:-1]
    assert [f"{i['file']}:{i['line']}: " + ("warning: " if i["severity"] == "warning" else "") + i["message"]
            for i in items] == lines


def test_clean_tree_exits_zero(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run_check(capsys, "mkdocs_demo", "sphinx_demo")
    assert (code, out) == (0, "18 embeds in 10 files, 0 errors\n")
    code, out, _ = run_check(capsys, "--format", "json", "mkdocs_demo")
    assert (code, json.loads(out)) == (0, [])


def test_the_real_command(tmp_path: Path) -> None:
    """The installed entry point, in a child process: exit codes and output streams."""
    command = [sys.executable, "-m", "sphere_docs", "check"]
    bad = subprocess.run([*command, "sphinx"], cwd=TREE, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (
        f"sphinx/bad.rst:5: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {OPTIONS}")
    assert bad.stdout.splitlines()[-1] == "16 embeds in 3 files, 11 errors"
    good = subprocess.run([*command, "docs/index.md"], cwd=TREE, capture_output=True, text=True, check=False)
    assert (good.returncode, good.stdout, good.stderr) == (0, "3 embeds in 1 file, 0 errors\n", "")
    missing = subprocess.run([*command, "nowhere"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "sphere-docs check: no such file or folder: nowhere\n"
    empty = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (empty.returncode, empty.stdout) == (0, "0 embeds in 0 files, 0 errors\n")


def test_skipped_folders_are_checked_when_named(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TREE)
    code, out, _ = run_check(capsys, "site/index.md", ".hidden/notes.md")
    assert code == 1
    assert out.splitlines() == [
        f"site/index.md:3: sphere-workspace: invalid project id 'nope'; expected {PROJECT}",
        f".hidden/notes.md:3: sphere-workspace: invalid project id 'nope'; expected {PROJECT}",
        "2 embeds in 2 files, 2 errors",
    ]


# --------------------------------------------------------------------------- the engines agree


def test_sphinx_reports_the_same_problems(emulator, access_token: str, tmp_path: Path) -> None:
    """A real sphinx-build of the fixture project warns at exactly the lines check reports."""
    source = tmp_path / "sphinx"
    shutil.copytree(TREE / "sphinx", source, ignore=shutil.ignore_patterns("_build"))
    env = {**os.environ, TOKEN_ENV: access_token}
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "--no-color", "-q", "-E", "-b", "html",
         "-D", f"sphere_endpoint={emulator.url}", "-D", f"sphere_cache={tmp_path / 'cache'}",
         "-d", str(tmp_path / "doctrees"), str(source), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path,
    )
    reported: dict[tuple[str, int], str] = {}
    for m in re.finditer(r"^(?P<path>\S+?):(?P<line>\d+): (?P<level>WARNING|ERROR): (?P<text>.*?)"
                         r"(?: \[(?P<type>[\w.]+)\])?$", build.stderr, re.MULTILINE):
        reported[(Path(m["path"]).name, int(m["line"]))] = m["text"]
    result = check_paths([source])
    ours = {(Path(p.file).name, p.line): p.message for p in result.errors}
    assert set(reported) == set(ours), build.stderr
    # docutils words two of them itself (its own option-block parser runs first)
    differ = {key for key in ours if reported[key] != ours[key]}
    assert differ == {("bad.rst", 21), ("bad.rst", 25)}
    assert reported[("bad.rst", 21)].startswith('Error in "sphere-workspace" directive:')


def test_mkdocs_reports_the_same_problems(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real MkDocs build of the fixture site fails with exactly check's Markdown errors."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    site = tmp_path / "site-src"
    shutil.copytree(TREE, site, ignore=shutil.ignore_patterns("sphinx", "site", ".hidden", "node_modules"))
    caplog.set_level(logging.ERROR)
    config = load_config(config_file=str(site / "mkdocs.yml"), site_dir=str(tmp_path / "out"))
    config.plugins.on_startup(command="build", dirty=False)
    try:
        with pytest.raises(Abort):
            build(config)
    finally:
        config.plugins.on_shutdown()
    logged = [r.getMessage() for r in caplog.records if r.name == "mkdocs.plugins.sphere_workspaces"]
    result = check_paths([site / "docs"])
    prefix = (site / "docs").as_posix() + "/"
    ours = [p.text.replace(prefix, "") for p in result.errors]
    assert len(logged) == 12
    assert sorted(logged) == sorted(ours)  # check lists them by line; the build as it met them


# --------------------------------------------------------------------------- scanner details


def problems(text: str) -> list[str]:
    return [p.text for p in scan_rst(text, "p.rst").problems]


def embeds(text: str) -> list[int]:
    return [e.line for e in scan_rst(text, "p.rst").embeds]


def test_rst_literal_contexts_are_not_embeds() -> None:
    text = """\
Paragraph::

    .. sphere-workspace:: nope

- item::

      .. sphere-workspace:: nope

  .. sphere-workspace:: eef024c1d14f46319517a65edafb5ee3

.. code:: rst

  .. sphere-workspace:: nope

.. |sub| replace:: text
.. _target: https://example.org
.. [1] A footnote.

..
   A comment holds its indented block:

   .. sphere-workspace:: nope

..

   .. sphere-workspace:: EMPTY-COMMENT

Text

\t.. sphere-workspace:: eef024c1d14f46319517a65edafb5ee3
"""
    # an empty comment consumes nothing: the block quote after it holds a real directive
    assert problems(text) == [
        f"p.rst:26: sphere-workspace: invalid project id 'EMPTY-COMMENT'; expected {PROJECT}"]
    assert embeds(text) == [9, 30]


def test_rst_directive_block_is_split_like_docutils() -> None:
    # a caption right after the directive line (blank first) is the argument, as in docutils
    assert problems(".. sphere-workspace::\n\n   Caption\n") == [
        f"p.rst:1: sphere-workspace: invalid project id 'Caption'; expected {PROJECT}"]
    # multi-line option values, bare flags, content after a blank line
    result = scan_rst(
        ".. sphere-workspace:: EEF024C1D14F46319517A65EDAFB5EE3\n"
        "   :class: one\n      two\n   :token-required:\n\n   Caption line 1\n   line 2\n", "p.rst")
    (embed,) = result.embeds
    assert embed.spec.project_id == "eef024c1d14f46319517a65edafb5ee3"
    assert embed.spec.classes == ("one", "two")
    assert embed.spec.token_required is True
    assert embed.spec.caption == "Caption line 1\nline 2"
    # line offsets (eval-rst blocks) shift every line
    assert scan_rst(".. sphere-workspace::\n", "p.md", line_offset=40).problems[0].line == 41


def test_myst_containers_and_code_blocks(tmp_path: Path) -> None:
    (tmp_path / "conf.py").write_text("extensions = ['myst_parser']\n")
    (tmp_path / "page.md").write_text("""\
`````{tab-set}
````{tab-item} One
```{sphere-workspace} eef024c1d14f46319517a65edafb5ee3
:name: deep
```
````
`````

::::{sphere-workspace} eef024c1d14f46319517a65edafb5ee3
:name: colon
Caption with code:
```python
print("hi")
```
::::

~~~{code-block}
```{sphere-workspace} nope
```
~~~

    ```{sphere-workspace} nope
    ```
""")
    result = check_paths([tmp_path])
    assert result.problems == []
    assert [(e.line, e.spec.name) for e in result.embeds] == [(3, "deep"), (9, "colon")]
    assert "print" in result.embeds[1].spec.caption


def test_mkdocs_site_extensions_decide_what_is_an_embed(tmp_path: Path) -> None:
    """Without `admonition`, MkDocs shows an indented embed as code: check agrees."""
    page = '!!! note\n\n    ```{sphere-workspace} eef024c1d14f46319517a65edafb5ee3\n    :height: 1\n    ```\n'
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page)
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n")
    assert check_paths([tmp_path]).total == 0
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nmarkdown_extensions: [admonition]\n")
    result = check_paths([tmp_path])
    assert [p.line for p in result.errors] == [4]  # the option's line


def test_unloadable_mkdocs_yml_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("```{sphere-workspace} eef024c1d14f46319517a65edafb5ee3\n```\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nplugins:\n  - no-such-plugin\n")
    monkeypatch.chdir(tmp_path)
    result = check_paths(["."])
    assert result.total == 1 and not result.errors
    (warning,) = result.warnings
    assert warning.file == "mkdocs.yml"
    assert warning.message.startswith("sphere-workspace: cannot load mkdocs.yml (")
    assert warning.message.endswith("its pages were checked with the default Markdown extensions")
    assert "no-such-plugin" in warning.message
