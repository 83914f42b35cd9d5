"""The fault suite: every fault of the emulator x every ``on_error`` x MkDocs and Sphinx.

Each case is two real builds of one site against the emulator:

1. with the fault injected: the build ends as ``on_error`` says — ``fail``: a
   located error through the engine's own channel (MkDocs: PluginError, so the
   build aborts; Sphinx: our SphereBuildError), no traceback; ``placeholder`` /
   ``lazy``: every embed is a live workspace or that fallback;
2. with the fault gone: every embed gets a workspace.

After each build the emulator's list of workspaces is compared with the
ledger: every workspace is recorded, or (after build 1) covered by an intent of
a create that got no usable answer; after build 2 nothing is unrecorded and
there is exactly one workspace per embed (a workspace that a timed-out create
made is adopted, not duplicated).  The counts of each case are printed.

Faults (see ``sphere_docs.emulator.app``): latency on every call; 5xx, 429,
connection resets, hangs past the client's timeout and malformed bodies on the
creates (each as many times as a create may be tried, so at least one embed
fails whatever the retry policy); and an outage of the checks (``GET
/workspaces/{id}`` answering 503) on a rebuild, which keeps the recorded
workspaces with a warning.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, assert_no_leak
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort
from sphinx.errors import SphinxError
from sphinx_fixtures import copy_root, warnings_of

from sphere_docs.client import ContainersClient, Workspace
from sphere_docs.emulator import DEMO_PROJECT_ID, EmulatorServer
from sphere_docs.provision import WINDOW_SLACK, Ledger, parse_time

LAZY = "http://127.0.0.1:9/sphere/workspaces"
TIMEOUT = 0.5  #: the client's timeout: a hang of HANG seconds outlives it
HANG = 1.2
CREATES = ["POST /workspaces"]

#: name -> (fault plan, does it make a create fail)
FAULTS: dict[str, tuple[dict[str, Any], bool]] = {
    "latency": ({"latency": 0.15}, False),
    "5xx": ({"sequence": [500, 503], "routes": CREATES}, True),
    "429": ({"sequence": [429, 429], "retry_after": 0, "routes": CREATES}, True),
    "reset": ({"sequence": ["reset", "reset"], "routes": CREATES}, True),
    "hang": ({"sequence": ["hang", "hang"], "hang": HANG, "routes": CREATES}, True),
    "malformed": ({"sequence": ["malformed", "malformed"], "routes": CREATES}, True),
    "check outage": ({"rate": 1.0, "status": 503, "routes": ["GET /workspaces/{id}"]}, False),
}
POLICIES = ["fail", "placeholder", "lazy"]

MKDOCS_PAGES = {
    "index.md": "# Home\n\nNo workspace here.\n",
    "one.md": f"# One\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n```\n\n"
              f"```{{sphere-workspace}} {DEMO_PROJECT_ID}\n:name: second\n```\n",
    "two.md": f"# Two\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n:inactivity-timeout: 5\n```\n",
}
MKDOCS_EMBEDS = 3
SPHINX_EMBEDS = 4  # tests/roots/test-sphere-basic


# --------------------------------------------------------------------------- counting


@dataclass
class Count:
    workspaces: int  #: on the emulator, in any state
    recorded: int  #: of those, in the ledger
    covered: int  #: not recorded, but named by an intent (a create that got no usable answer)
    orphaned: int  #: neither: lost
    intents: int


def count(server: EmulatorServer, cache: Path) -> Count:
    data = Ledger(cache).read()
    with ContainersClient(server.url + "/api/v1", SECRET_TOKEN) as client:
        every = list(client.iter_workspaces())
    owned = {e["workspace_id"] for e in data["entries"].values()}
    loose = [w for w in every if w.id not in owned]
    named = [w for w in loose if _named(w, data["intents"].values())]
    return Count(len(every), len(every) - len(loose), len(named), len(loose) - len(named),
                 len(data["intents"]))


def _named(ws: Workspace, intents: Any) -> bool:
    created = parse_time(ws.created_at)
    return created is not None and any(
        i["project_id"] == ws.project_id
        and parse_time(i["started_at"]) - WINDOW_SLACK <= created <= parse_time(i["window_end"]) + WINDOW_SLACK
        for i in intents)


def settle(fault: str) -> None:
    """Let the emulator finish the creates whose client gave up (a hang answers HANG seconds after it began)."""
    if fault == "hang":
        time.sleep(HANG + 0.3)


def embeds_in(pages: dict[str, str]) -> dict[str, int]:
    text = "".join(pages.values())
    return {"live": len(re.findall(r'data-workspace="[0-9a-f]{32}"', text)),
            "placeholder": text.count('data-sphere-mode="unavailable"'),
            "lazy": text.count('data-sphere-mode="lazy"')}


# --------------------------------------------------------------------------- the engines


def mkdocs_site(root: Path, url: str, on_error: str) -> Path:
    for rel, text in MKDOCS_PAGES.items():
        (root / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / rel).write_text(text)
    plugin = {"endpoint": url, "lazy_endpoint": LAZY, "cache": ".cache", "on_error": on_error,
              "retries": 1, "timeout": TIMEOUT, "concurrency": 1}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(
        {"site_name": "faults", "plugins": [{"sphere-workspaces": plugin}]}, sort_keys=False))
    return root / ".cache"


def mkdocs_run(root: Path) -> tuple[str | None, dict[str, str]]:
    """One in-process ``mkdocs build``: (the error it stopped with, or None; the pages)."""
    try:
        mkdocs_build(load_config(str(root / "mkdocs.yml")))
    except Abort as exc:
        return str(exc), {}
    site = root / "site"
    return None, {p.relative_to(site).as_posix(): p.read_text() for p in site.rglob("*.html")}


def sphinx_run(make_app: Any, src: Path, url: str, on_error: str) -> tuple[str | None, dict[str, str], str]:
    app = make_app("html", srcdir=src, freshenv=True, confoverrides={  # fresh: every embed is checked
        "sphere_endpoint": url, "sphere_on_error": on_error, "sphere_retries": 1,
        "sphere_timeout": TIMEOUT, "sphere_concurrency": 1})
    error = None
    try:
        app.build()
    except SphinxError as exc:
        assert type(exc).__name__ == "SphereBuildError", exc
        error = str(exc)
    finally:
        app.cleanup()
    pages = {} if error else {p.name: p.read_text() for p in Path(app.outdir).glob("*.html")}
    return error, pages, warnings_of(app)


# --------------------------------------------------------------------------- the suite


@pytest.mark.parametrize("on_error", POLICIES)
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("engine", ["mkdocs", "sphinx"])
def test_fault(engine: str, fault: str, on_error: str, emulator: EmulatorServer, tmp_path: Path,
               make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    plan, fails = FAULTS[fault]
    total = MKDOCS_EMBEDS if engine == "mkdocs" else SPHINX_EMBEDS
    if engine == "mkdocs":
        cache = mkdocs_site(tmp_path, emulator.url, on_error)

        def run() -> tuple[str | None, dict[str, str], str]:
            error, pages = mkdocs_run(tmp_path)
            text = caplog.text
            caplog.clear()
            return error, pages, text
    else:
        src = copy_root("sphere-basic", tmp_path)
        cache = src / ".sphere-docs-cache"

        def run() -> tuple[str | None, dict[str, str], str]:
            return sphinx_run(make_app, src, emulator.url, on_error)

    builds = 0
    if fault == "check outage":  # a good build first: the outage hits the rebuild's checks
        error, pages, said = run()
        builds += 1
        assert error is None and embeds_in(pages)["live"] == total
    emulator.set_faults(**plan)
    error, pages, said = run()
    builds += 1
    settle(fault)
    first = count(emulator, cache)
    shown = embeds_in(pages)

    assert "Traceback" not in said + (error or "")
    assert first.orphaned == 0, first
    if fault == "check outage":
        assert error is None and shown["live"] == total and first.workspaces == total
        assert said.count("could not check workspace") == total
        assert "(GET /workspaces/" in said and "using the recorded workspace" in said
    elif not fails:
        assert error is None and shown["live"] == total
    elif on_error == "fail":
        assert error is not None
        if engine == "mkdocs":
            assert error == "Aborted with a BuildError!"
            assert re.search(r"ERROR .*sphere-workspaces: \w+\.md(:\d+)?: cannot create a workspace for project ", said)
        else:
            assert re.match(r"sphere-workspaces: \w+\.(rst|md):\d+: cannot create a workspace for project ", error)
            assert "ERROR: sphere-workspaces: " in said
    else:
        assert error is None
        assert shown[on_error] >= 1 and shown["live"] + shown[on_error] == total
        assert "unavailable (" in said and shown[on_error] == said.count("unavailable (")

    emulator.set_faults()
    error, pages, said = run()
    builds += 1
    final = count(emulator, cache)
    print(f"\n{engine} {fault} on_error={on_error}: builds {builds}, workspaces created {final.workspaces}, "
          f"recorded {final.recorded}, orphaned {final.orphaned} (after the faulty build: "
          f"{first.recorded} recorded, {first.covered} named by intents, {first.orphaned} orphaned)")
    assert error is None, error
    assert embeds_in(pages)["live"] == total
    assert final.orphaned == 0 and final.covered == 0
    assert final.workspaces == final.recorded == total  # nothing duplicated, nothing lost
    assert_no_leak([said], roots=[tmp_path])
