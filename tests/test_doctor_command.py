"""``sphere-docs doctor`` against the emulator: pinned reports for a good token, a bad
token and a project the account lacks, plus the settings sources (mkdocs.yml through
MkDocs' loader with ``!ENV``, conf.py executed like Sphinx does) and the ledger.

The emulator's port is random: reports are compared after replacing its URL with
``http://127.0.0.1:PORT`` and workspace ids with the ids the build created.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import WorkspaceSpec
from sphere_docs.pipeline.provision import Ledger
from sphere_docs.services.emulator import DEMO_PROJECT_ID
from sphere_docs.tools.cli import main

PYTHON_PROJECT = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"
MISSING_PROJECT = "0123456789abcdef0123456789abcdef"
URL = "http://127.0.0.1:PORT"
FIX_TOKEN = ("  fix: export SPHERE_ENGINE_ACCESS_TOKEN=<an API access token of your Sphere Engine "
             "account (client panel: API Tokens)>")

MKDOCS_YML = """\
site_name: doctor test
plugins:
  - sphere-workspaces:
      endpoint: !ENV [DOCTOR_ENDPOINT, "http://127.0.0.1:9"]
      lazy_endpoint: https://docs.example.org/sphere/workspaces
"""

INDEX = f"""\
# Course

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:height: 400px
```

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:mode: lazy
```
"""

LESSON = f"""\
# Lesson

Text first.

```{{sphere-workspace}} {PYTHON_PROJECT}
```
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator) -> Path:
    """An MkDocs site whose endpoint (``!ENV DOCTOR_ENDPOINT``) is the emulator; cwd is its folder."""
    (tmp_path / "docs" / "lessons").mkdir(parents=True)
    (tmp_path / "mkdocs.yml").write_text(MKDOCS_YML)
    (tmp_path / "docs" / "index.md").write_text(INDEX)
    (tmp_path / "docs" / "lessons" / "b.md").write_text(LESSON)
    monkeypatch.setenv("DOCTOR_ENDPOINT", emulator.url)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def doctor(capsys: pytest.CaptureFixture[str], emulator, *argv: str) -> tuple[int, str]:
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    assert captured.err == ""
    assert_no_leak([captured.out])
    return code, captured.out.replace(emulator.url, URL)


def build(site: Path) -> None:
    """A real MkDocs build: creates the build-mode workspaces and the ledger."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    config = load_config(config_file=str(site / "mkdocs.yml"), site_dir=str(site / "site"))
    config.plugins.on_startup(command="build", dirty=False)
    try:
        mkdocs_build(config)
    finally:
        config.plugins.on_shutdown()


def ledger_ids(site: Path) -> dict[str, str]:
    """page -> workspace id, from the ledger the build wrote."""
    entries = Ledger(site / ".sphere-docs-cache").read()["entries"].values()
    return {e["page"]: e["workspace_id"] for e in entries}


def test_good_token(site: Path, emulator, capsys: pytest.CaptureFixture[str]) -> None:
    build(site)
    ids = ledger_ids(site)
    assert set(ids) == {"index.md", "lessons/b.md"}
    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
        client.remove(ids["lessons/b.md"])  # one dead workspace for the report
    code, out = doctor(capsys, emulator)
    assert out == f"""\
sphere-docs doctor: mkdocs.yml (MkDocs, pages in docs)
embeds: 3 in 2 pages (2 build, 1 lazy, 0 invalid)
lifecycle: 2 build embeds: stopped after 15 minutes without a reader, resumed when one opens it, removed after 30 days without one: the deployed site stays usable while each is opened at least once every 30 days
endpoint: {URL}/api/v1
token: $SPHERE_ENGINE_ACCESS_TOKEN (set, not shown)
ok: the API accepts the token (GET /test)
ok: project {DEMO_PROJECT_ID} (EXAMPLE): 2 embeds
ok: project {PYTHON_PROJECT} (PYTHON): 1 embed
ledger: .sphere-docs-cache/ledger.json: 2 workspaces: 1 live, 1 dead
    dead: {ids["lessons/b.md"]} (lessons/b.md {default_name("lessons/b.md", WorkspaceSpec(PYTHON_PROJECT))}): removed
    the next build replaces dead workspaces
sphere-docs doctor: no problems
"""
    assert code == 0


def test_bad_token(site: Path, emulator, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "wrong-token-0123456789abcdef"
    monkeypatch.setenv(TOKEN_ENV, bad)
    code, out = doctor(capsys, emulator)
    assert out == f"""\
sphere-docs doctor: mkdocs.yml (MkDocs, pages in docs)
embeds: 3 in 2 pages (2 build, 1 lazy, 0 invalid)
lifecycle: 2 build embeds: stopped after 15 minutes without a reader, resumed when one opens it, removed after 30 days without one: the deployed site stays usable while each is opened at least once every 30 days
endpoint: {URL}/api/v1
token: $SPHERE_ENGINE_ACCESS_TOKEN (set, not shown)
problem: the API rejects the token in $SPHERE_ENGINE_ACCESS_TOKEN (HTTP 401: unauthorized access)
{FIX_TOKEN}
skipped: the projects and the ledger's workspaces (they need a working token)
ledger: .sphere-docs-cache/ledger.json: no workspaces yet (the first build creates it)
sphere-docs doctor: 1 problem
"""
    assert code == 1
    assert bad not in out


def test_missing_project(site: Path, emulator, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "docs" / "lessons" / "c.md").write_text(textwrap.dedent(f"""\
        # Lesson 3

        ```{{sphere-workspace}} {MISSING_PROJECT}
        :name: missing
        ```

        ```{{sphere-workspace}} {MISSING_PROJECT.upper()}
        ```
        """))
    code, out = doctor(capsys, emulator)
    assert out == f"""\
sphere-docs doctor: mkdocs.yml (MkDocs, pages in docs)
embeds: 5 in 3 pages (4 build, 1 lazy, 0 invalid)
lifecycle: 4 build embeds: stopped after 15 minutes without a reader, resumed when one opens it, removed after 30 days without one: the deployed site stays usable while each is opened at least once every 30 days
endpoint: {URL}/api/v1
token: $SPHERE_ENGINE_ACCESS_TOKEN (set, not shown)
ok: the API accepts the token (GET /test)
ok: project {DEMO_PROJECT_ID} (EXAMPLE): 2 embeds
ok: project {PYTHON_PROJECT} (PYTHON): 1 embed
problem: project {MISSING_PROJECT} is not in your account: 2 embeds
  fix: check the id in docs/lessons/c.md:3 (and 1 other embed); your account has {DEMO_PROJECT_ID} (EXAMPLE), {PYTHON_PROJECT} (PYTHON)
ledger: .sphere-docs-cache/ledger.json: no workspaces yet (the first build creates it)
sphere-docs doctor: 1 problem
"""
    assert code == 1


def test_no_token(site: Path, emulator, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    build(site)
    monkeypatch.delenv(TOKEN_ENV)
    code, out = doctor(capsys, emulator)
    assert out.splitlines()[4:] == [
        "token: $SPHERE_ENGINE_ACCESS_TOKEN is not set",
        "problem: no access token: the environment variable SPHERE_ENGINE_ACCESS_TOKEN is empty or not set",
        FIX_TOKEN,
        "ledger: .sphere-docs-cache/ledger.json: 2 workspaces (not checked)",
        "sphere-docs doctor: 1 problem",
    ]
    assert code == 1


def test_token_env_and_endpoint_options(site: Path, emulator, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    monkeypatch.setenv("MY_SE_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("DOCTOR_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, out = doctor(capsys, emulator, ".", "--endpoint", emulator.url, "--token-env", "MY_SE_TOKEN")
    assert "token: $MY_SE_TOKEN (set, not shown)" in out.splitlines()
    assert out.endswith("sphere-docs doctor: no problems\n")
    assert code == 0


def test_unreachable_endpoint(site: Path, emulator, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DOCTOR_ENDPOINT", f"http://127.0.0.1:{port}")
    code, out = doctor(capsys, emulator)
    lines = out.splitlines()
    problem = next(line for line in lines if line.startswith("problem: "))
    assert problem.startswith(f"problem: cannot reach http://127.0.0.1:{port}/api/v1: could not connect")
    assert lines[lines.index(problem) + 1] == (
        "  fix: check the endpoint setting and your network (the customer host, "
        "e.g. 12345678.containers.sphere-engine.com)")
    assert code == 1


def test_sphinx_conf_py(tmp_path: Path, emulator, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """conf.py is executed in its own folder, with ``tags``, and may import its neighbours."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "_settings.py").write_text(f"ENDPOINT = {emulator.url!r}\n")
    (docs / "conf.py").write_text(textwrap.dedent("""\
        import os, sys
        sys.path.insert(0, os.path.abspath("."))
        from _settings import ENDPOINT
        extensions = ["sphere_docs.sphinx"] + ([] if tags.has("nomyst") else ["myst_parser"])
        sphere_endpoint = ENDPOINT
        sphere_cache = "_cache"
        """))
    (docs / "index.rst").write_text(f".. sphere-workspace:: {DEMO_PROJECT_ID}\n   :mode: lazy\n")
    (docs / "page.md").write_text(f"```{{sphere-workspace}} {MISSING_PROJECT}\n```\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    code, out = doctor(capsys, emulator, "docs")
    assert sys.path == path_before
    assert out == f"""\
sphere-docs doctor: docs/conf.py (Sphinx, pages in docs)
embeds: 2 in 2 pages (1 build, 1 lazy, 0 invalid)
lifecycle: 1 build embed: stopped after 15 minutes without a reader, resumed when one opens it, removed after 30 days without one: the deployed site stays usable while each is opened at least once every 30 days
problem: 1 lazy embed (first at docs/index.rst:1) but no lazy endpoint is set
  fix: set sphere_lazy_endpoint in conf.py to the URL of your lazy endpoint (see `sphere-docs endpoint --help`)
endpoint: {URL}/api/v1
token: $SPHERE_ENGINE_ACCESS_TOKEN (set, not shown)
ok: the API accepts the token (GET /test)
ok: project {DEMO_PROJECT_ID} (EXAMPLE): 1 embed
problem: project {MISSING_PROJECT} is not in your account: 1 embed
  fix: check the id in docs/page.md:1; your account has {DEMO_PROJECT_ID} (EXAMPLE), {PYTHON_PROJECT} (PYTHON)
ledger: docs/_cache/ledger.json: no workspaces yet (the first build creates it)
sphere-docs doctor: 2 problems
"""
    assert code == 1


def test_bad_settings_and_disabled_plugin(tmp_path: Path, emulator, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(INDEX)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: t\nplugins:\n  - sphere-workspaces:\n      on_error: explode\n")
    code, out = doctor(capsys, emulator)
    assert out.splitlines() == [
        "sphere-docs doctor: mkdocs.yml (MkDocs, pages in docs)",
        "problem: mkdocs.yml cannot be loaded",
        "    Config value 'plugins': Plugin 'sphere-workspaces' option 'on_error': sphere-workspaces: "
        "invalid value 'explode' for setting 'on_error'; expected fail | placeholder | lazy",
        "  fix: correct mkdocs.yml",
        "sphere-docs doctor: 1 problem",
    ]
    assert code == 1
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n")
    code, out = doctor(capsys, emulator)
    lines = out.splitlines()
    assert lines[1:6] == [
        "embeds: 2 in 1 page (1 build, 1 lazy, 0 invalid)",
        "lifecycle: 1 build embed: stopped after 15 minutes without a reader, resumed when one opens it, removed after 30 days without one: the deployed site stays usable while each is opened at least once every 30 days",
        "problem: 2 embeds but mkdocs.yml does not enable the sphere-workspaces plugin",
        "  fix: add `- sphere-workspaces` under `plugins:` in mkdocs.yml",
        "problem: 1 lazy embed (first at docs/index.md:7) but no lazy endpoint is set",
    ]
    assert "problem: no endpoint is set, so nothing can be checked against the API" in lines
    assert code == 1


def test_the_real_command(site: Path, emulator, caplog: pytest.LogCaptureFixture) -> None:
    """The entry point in a child process: exit status, and the token nowhere in its output."""
    caplog.set_level(logging.DEBUG)
    env = {"PATH": "/usr/bin:/bin", TOKEN_ENV: SECRET_TOKEN, "DOCTOR_ENDPOINT": emulator.url}
    good = subprocess.run([sys.executable, "-m", "sphere_docs", "doctor"], cwd=site, env=env,
                          capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.endswith("sphere-docs doctor: no problems\n")
    assert_no_leak([good.stdout, good.stderr])
    missing = subprocess.run([sys.executable, "-m", "sphere_docs", "doctor", "nowhere"], cwd=site,
                             env=env, capture_output=True, text=True, check=False)
    assert (missing.returncode, missing.stderr) == (2, "sphere-docs doctor: no such file or folder: nowhere\n")


@pytest.mark.parametrize(("plugins", "enabled", "values", "errors"), [
    ("  - search\n  - sphere-workspaces\n", True, {}, []),
    ("  search: {}\n  sphere-workspaces: {endpoint: h.example.com}\n", True, {"endpoint": "h.example.com"}, []),
    ("  - sphere-workspaces: oops\n", True, {},
     ["mkdocs.yml: the sphere-workspaces plugin's settings are a str; expected 'name: value' lines"]),
])
def test_mkdocs_yml_read_without_mkdocs(tmp_path: Path, plugins: str, enabled: bool,
                                        values: dict[str, str], errors: list[str]) -> None:
    """Without MkDocs installed the YAML is read directly: list or mapping `plugins:`, no traceback."""
    from sphere_docs.site import DocsSite, _mkdocs_site_without_mkdocs

    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: x\nplugins:\n{plugins}", encoding="utf-8")
    site = _mkdocs_site_without_mkdocs(DocsSite("mkdocs", config, tmp_path / "docs"))
    assert (site.enabled, site.values, site.errors) == (enabled, values, errors)


# -- the ledger: damaged, and creates of interrupted builds ---------------------------------


def test_a_damaged_ledger_is_a_problem_and_is_kept(site: Path, emulator, capsys: pytest.CaptureFixture[str]) -> None:
    cache = site / ".sphere-docs-cache"
    cache.mkdir()
    damaged = b'{"version": 1, "entries": {'
    (cache / "ledger.json").write_bytes(damaged)
    code, out = doctor(capsys, emulator)
    assert code == 1
    assert out.splitlines()[-3:] == [
        "problem: the ledger .sphere-docs-cache/ledger.json is damaged: line 1, column 28: Expecting property "
        "name enclosed in double quotes (not valid JSON; cut short?)",
        "  fix: move it aside to start a new ledger (e.g. rename it to ledger.json.damaged); the workspaces it "
        "lists stay on your account until you remove them (client panel)",
        "sphere-docs doctor: 1 problem",
    ]
    assert (cache / "ledger.json").read_bytes() == damaged


def test_creates_of_interrupted_builds_are_named(site: Path, emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A create that got no answer: doctor names its project, page, name and window, and what the API lists."""
    import time

    from sphere_docs.pipeline.provision import _stamp

    build(site)
    now = time.time()
    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:  # what the lost answer made
        made = client.create_workspace({"project_id": DEMO_PROJECT_ID})
    intent = {"endpoint": emulator.url + "/api/v1", "project_id": DEMO_PROJECT_ID, "creation_key": "k",
              "fields": {}, "ledger_key": f"{emulator.url}/api/v1|{DEMO_PROJECT_ID}|k|new.md#ws-new",
              "page": "new.md", "name": "ws-new", "state": "unanswered", "started_at": _stamp(now - 2),
              "ended_at": _stamp(now - 1), "window_end": _stamp(now + 1), "reason": "no answer within 10s"}
    path = site / ".sphere-docs-cache" / "ledger.json"
    data = Ledger(site / ".sphere-docs-cache").read()
    data["intents"]["abc"] = intent
    path.write_text(__import__("json").dumps(data))
    code, out = doctor(capsys, emulator)
    assert code == 1
    lines = out.splitlines()
    assert lines[-4:] == [
        "problem: 1 create of interrupted builds may have made workspaces the ledger does not list",
        f"    project {DEMO_PROJECT_ID}, new.md ws-new: created between {intent['started_at']} and "
        f"{intent['window_end']} (UTC) if at all (no usable answer: no answer within 10s); the API lists "
        f"workspace {made.id} (created {made.created_at}): the next build adopts it",
        "  fix: build again: the build adopts each such workspace the API lists (and forgets a create that "
        "made none); or find them in the client panel (project and time above) and remove them",
        "sphere-docs doctor: 1 problem",
    ]
