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

Faults (see ``sphere_docs.services.emulator.app``): latency on every call; 5xx, 429,
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

from sphere_docs.api.client import ContainersClient, Workspace
from sphere_docs.pipeline.provision import WINDOW_SLACK, Ledger, parse_time
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

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
        and (parse_time(i["started_at"]) or 0.0) - WINDOW_SLACK <= created
               <= (parse_time(i["window_end"]) or 0.0) + WINDOW_SLACK
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
              "retries": 1, "timeout": TIMEOUT, "concurrency": 1, "trust_checked": 0}
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
        "sphere_timeout": TIMEOUT, "sphere_concurrency": 1, "sphere_trust_checked": 0})
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


# --------------------------------------------------------------------------- Sphinx: an error, not a crash


@pytest.mark.parametrize("case", ["api down", "no token"])
def test_sphinx_build_failure_is_an_error_not_a_crash(access_token: str, tmp_path: Path, case: str) -> None:
    """``sphinx-build`` with ``sphere_on_error = 'fail'``: our located message, exit 2, no crash report or file."""
    import os
    import socket
    import subprocess
    import sys

    from conftest import TOKEN_ENV

    src = copy_root("sphere-basic", tmp_path)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    if case == "no token":
        env.pop(TOKEN_ENV, None)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-D", f"sphere_endpoint={dead}", "-D", "sphere_retries=0",
         "-D", "sphere_on_error=fail", str(src), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, check=False)
    expected = {"api down": r"ERROR: sphere-workspaces: \w+\.(rst|md):\d+: cannot create a workspace for project ",
                "no token": f"ERROR: sphere-workspaces: no access token: set the environment variable {TOKEN_ENV}"}
    assert result.returncode == 2
    assert re.search(expected[case], result.stderr), result.stderr
    for crash in ("Traceback", "sphinx-err-", "please open an issue", "report this", "Extension error"):
        assert crash not in result.stderr + result.stdout
    assert sorted(p.name for p in temp.iterdir()) == []  # no sphinx-err-*.log
    assert_no_leak([result.stderr, result.stdout], roots=[tmp_path])


# --------------------------------------------------------------------------- checks: outage vs answer


def _site(url: str, tmp_path: Path, **kw: Any) -> Any:
    from sphere_docs.core.settings import SiteSettings

    return SiteSettings.from_mapping({"endpoint": url, "cache": str(tmp_path / "cache"), "retries": 1,
                                      "timeout": 2.0, "trust_checked": 0, **kw})


def _embed(page: str = "a.md", **options: str) -> Any:
    from sphere_docs.core.options import parse_options
    from sphere_docs.pipeline.provision import EmbedRequest

    return EmbedRequest(page, parse_options(DEMO_PROJECT_ID, options).with_name("ws-a"), 4)


@pytest.mark.parametrize("outage", [502, 503, 429, "reset", "hang"])
def test_a_check_the_api_cannot_answer_keeps_the_recorded_workspace(
        emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, outage: Any) -> None:
    from sphere_docs.pipeline.provision import Provisioner

    settings = _site(emulator.url, tmp_path, on_error="fail", timeout=0.5)
    request = _embed()
    with Provisioner(settings) as prov:
        first = prov.resolve([request])[request.key]
    emulator.set_faults(sequence=[outage] * 2, retry_after=0, hang=1.0, routes=["GET /workspaces/{id}"])
    with Provisioner(settings) as prov:
        again = prov.resolve([request])[request.key]
    assert again.ok and again.workspace_id == first.workspace_id and not again.created
    assert emulator.count("POST /workspaces") == 1
    warning = next(r.getMessage() for r in caplog.records if "could not check" in r.getMessage())
    assert warning.startswith(f"sphere-workspaces: a.md:4: could not check workspace {first.workspace_id} "
                              f"(GET /workspaces/{first.workspace_id}): ")
    assert warning.endswith("; using the recorded workspace (it was live at the last build)")


@pytest.mark.parametrize("answer", ["404", "removed", "401"])
def test_a_definite_answer_is_acted_on(emulator: EmulatorServer, tmp_path: Path, answer: str) -> None:
    from sphere_docs.pipeline.provision import Provisioner, ProvisionError

    settings = _site(emulator.url, tmp_path, on_error="fail")
    request = _embed()
    with Provisioner(settings) as prov:
        first = prov.resolve([request])[request.key].workspace_id
    assert first is not None
    if answer == "removed":
        with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
            client.remove(first)
    elif answer == "404":
        emulator.set_faults(sequence=[404], routes=["GET /workspaces/{id}"])
    else:
        emulator.set_faults(sequence=[401], routes=["GET /workspaces/{id}"])
    with Provisioner(settings) as prov:
        if answer == "401":
            with pytest.raises(ProvisionError) as info:
                prov.resolve([request])
            assert str(info.value) == (
                f"sphere-workspaces: a.md:4: cannot use the workspace of project {DEMO_PROJECT_ID}: could "
                f"not check workspace {first} (GET /workspaces/{first}): HTTP 401: emulated error 401")
            return
        again = prov.resolve([request])[request.key]
    assert again.created and again.workspace_id != first


# --------------------------------------------------------------------------- creates without an answer


def test_a_timed_out_create_is_adopted_by_the_next_build(emulator: EmulatorServer, tmp_path: Path) -> None:
    """(Was: 4 workspaces for 3 embeds after one hang.)"""
    from sphere_docs.pipeline.provision import Provisioner

    emulator.set_faults(sequence=["hang"], hang=1.0, routes=CREATES)
    settings = _site(emulator.url, tmp_path, on_error="placeholder", timeout=0.3)
    requests = [_embed(f"p{i}.md") for i in range(3)]
    with Provisioner(settings) as prov:
        first = prov.resolve(requests)
    assert sum(r.ok for r in first.values()) == 2
    intents = Ledger(settings.cache_dir).read()["intents"]
    assert [i["state"] for i in intents.values()] == ["unanswered"]
    time.sleep(1.3)  # the hung create lands
    with Provisioner(settings) as prov:
        second = prov.resolve(requests)
    assert all(r.ok for r in second.values()) and not any(r.created for r in second.values())
    assert emulator.count("POST /workspaces") == 3 and emulator.stats()["workspaces"]["total"] == 3
    data = Ledger(settings.cache_dir).read()
    assert data["intents"] == {} and len(data["entries"]) == 3


def _intent(started: float, **kw: Any) -> dict[str, Any]:
    from sphere_docs.pipeline.provision import _stamp

    return {"endpoint": "x", "project_id": DEMO_PROJECT_ID, "creation_key": "k", "fields": {},
            "ledger_key": "x|k|a.md#ws-a", "page": "a.md", "name": "ws-a", "state": "unanswered",
            "started_at": _stamp(started), "ended_at": _stamp(started + 1), "window_end": _stamp(started + 2),
            **kw}


def _ws(wid: str, created: float, **raw: Any) -> Workspace:
    from sphere_docs.pipeline.provision import _stamp

    data = {"id": wid, "project": {"id": DEMO_PROJECT_ID}, "state": {"code": 2},
            "created_at": _stamp(created), "last_usage": None, "workspace_token": "t", **raw}
    return Workspace.from_api(data)


def test_adoption_is_conservative() -> None:
    """Only a never-entered, unowned workspace with the same options in the window, and only unambiguously."""
    from sphere_docs.pipeline.provision import match_intents

    t = 1_800_000_000.0
    one = {"i1": _intent(t)}
    ws = _ws("a" * 32, t + 1)
    assert match_intents(one, {DEMO_PROJECT_ID: [ws]}, {}, now=t + 100).adopt == {"i1": ws}
    # owned by a ledger entry / entered by a reader / other options / outside the window: not ours
    assert match_intents(one, {DEMO_PROJECT_ID: [ws]}, {"k": {"workspace_id": ws.id}}, now=t + 100).adopt == {}
    assert match_intents(one, {DEMO_PROJECT_ID: [_ws("b" * 32, t + 1, last_usage="2027-01-01 00:00:00 +0000")]},
                         {}, now=t + 100).nothing == ["i1"]
    other = {"i1": _intent(t, fields={"inactivity_timeout": "5"})}
    assert match_intents(other, {DEMO_PROJECT_ID: [_ws("c" * 32, t + 1, inactivity_timeout=15)]}, {},
                         now=t + 100).adopt == {}
    assert match_intents(one, {DEMO_PROJECT_ID: [_ws("d" * 32, t + 60)]}, {}, now=t + 100).nothing == ["i1"]
    # two candidates for one create: a guess, so neither is adopted
    two = [_ws("e" * 32, t + 1), _ws("f" * 32, t + 2)]
    found = match_intents(one, {DEMO_PROJECT_ID: two}, {}, now=t + 100)
    assert found.adopt == {} and [w.id for w in found.ambiguous["i1"]] == ["e" * 32, "f" * 32]
    # the window is still open: wait
    assert match_intents(one, {DEMO_PROJECT_ID: []}, {}, now=t + 3).waiting == ["i1"]
    # a create still running in a live build (this process, pid alive) is left alone
    import os
    import socket

    running = {"i1": _intent(t, state="in_flight", host=socket.gethostname(), pid=os.getppid(),
                             window_end=_intent(t + 500)["window_end"])}
    assert match_intents(running, {DEMO_PROJECT_ID: [ws]}, {}, now=t + 100).waiting == ["i1"]
