"""A build's creates run in a child process (issue 16, ``sphere_docs.pipeline.process_pool``).

In a ``mkdocs build`` process (one thread, Linux) the provisioner's workers are
a forked child, so their Python never competes with page rendering for the GIL.
Shown on real builds against the emulator: the intents in flight carry the
child's pid, not the build's; ``SPHERE_DOCS_PROVISION_PROCESS=0`` keeps them on
threads; failures cross back with the build's own sentences (``on_error``
``fail`` and ``placeholder``, ``--strict``) and the workspaces made before a
failure are recorded.  ``tests/test_interrupts.py`` covers signals and
``kill -9`` with the child.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak

from sphere_docs.api.client import ContainersClient
from sphere_docs.api.errors import ServerError
from sphere_docs.core.options import parse_options
from sphere_docs.pipeline.ledger import Ledger, LedgerError
from sphere_docs.pipeline.process_pool import ENV_SWITCH, _portable_outcome
from sphere_docs.pipeline.provision import EmbedRequest, _Outcome
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is a fork (Linux)")

EMBEDS = 6


def make_site(root: Path, url: str, **plugin: Any) -> Path:
    (root / "docs").mkdir(parents=True)
    for i in range(EMBEDS):
        (root / "docs" / f"p{i}.md").write_text(f"# Page {i}\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n```\n")
    config = {"site_name": "child", "plugins": [{"sphere-workspaces": {
        "endpoint": url, "cache": ".cache", "concurrency": 2, "timeout": 10, **plugin}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / ".cache"


def build(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mkdocs", "build", *args], cwd=root,
                            env={**os.environ, TOKEN_ENV: SECRET_TOKEN, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pids_of_intents(ledger: Ledger, proc: subprocess.Popen[str]) -> set[int]:
    """The pids named by the intents seen while the build runs (the emulator answers slowly)."""
    pids: set[int] = set()
    while proc.poll() is None:
        with contextlib.suppress(LedgerError):  # a read racing a compaction: read again
            pids.update(i["pid"] for i in ledger.read()["intents"].values())
        time.sleep(0.01)
    return pids


@pytest.mark.parametrize("switch", [None, "0"], ids=["child process", "threads"])
def test_creates_run_in_a_child_of_the_build_unless_switched_off(access_token: str, tmp_path: Path,
                                                                 switch: str | None) -> None:
    with EmulatorServer(token=access_token, start_delay=0.0) as server:
        server.set_faults(latency=0.3, routes=["POST /workspaces"])
        cache = make_site(tmp_path, server.url)
        proc = build(tmp_path, **({ENV_SWITCH: switch} if switch else {}))
        pids = pids_of_intents(Ledger(cache), proc)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert pids, "no intent was seen in flight"
        if switch is None:
            assert proc.pid not in pids  # the child's pid: the creates ran there
        else:
            assert pids == {proc.pid}
        assert "6 workspace(s) ready: 0 reused, 6 created" in err
        data = Ledger(cache).read()
        assert len(data["entries"]) == EMBEDS and data["intents"] == {}
        assert_no_leak([out, err], roots=[tmp_path])


def test_a_failed_create_in_the_child_fails_the_build_with_its_sentence(access_token: str,
                                                                         tmp_path: Path) -> None:
    with EmulatorServer(token=access_token, start_delay=0.0) as server:
        cache = make_site(tmp_path, server.url, retries=0)
        server.set_faults(sequence=[None, None, 500], routes=["POST /workspaces"])
        proc = build(tmp_path)
        out, err = proc.communicate()
        assert proc.returncode == 1
        assert "cannot create a workspace for project" in err and "Traceback" not in err
        recorded = Ledger(cache).read()["entries"]
        assert len(recorded) == server.count("POST /workspaces") - 1  # every workspace made is recorded
        assert_no_leak([out, err], roots=[tmp_path])


def test_placeholder_fallbacks_from_the_child_are_warnings_that_strict_fails(access_token: str,
                                                                            tmp_path: Path) -> None:
    with EmulatorServer(token=access_token, start_delay=0.0) as server:
        make_site(tmp_path, server.url, retries=0, on_error="placeholder")
        server.set_faults(rate=1.0, status=500, routes=["POST /workspaces"])
        proc = build(tmp_path)
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        assert err.count("showing a placeholder") == EMBEDS
        strict = build(tmp_path, "--strict")
        strict.communicate()
        assert strict.returncode == 1


def test_an_outcome_crosses_the_pipe_with_its_errors() -> None:
    spec = parse_options(DEMO_PROJECT_ID, {"name": "w"})
    outcome = _Outcome("k", EmbedRequest("p.md", spec, 3))
    outcome.error = ServerError("the API said 500", status=500, method="POST")
    outcome.fatal = LedgerError("/tmp/cache/ledger.json", "cannot be written: disk full", fix="make room")
    back = pickle.loads(pickle.dumps(_portable_outcome(outcome)))
    assert str(back.fatal) == str(outcome.fatal) and back.fatal.fix == "make room"
    assert isinstance(back.error, ServerError) and back.error.status == 500
    assert back.request == outcome.request and back.request.line == 3


def test_a_killed_provisioning_process_fails_the_build_cleanly_and_loses_nothing(access_token: str,
                                                                                 tmp_path: Path) -> None:
    """The child dies (``kill -9``) with creates in flight: the build stops with our sentence, no
    traceback; the intents name what was in flight, and the next build adopts or creates the rest."""
    with EmulatorServer(token=access_token, start_delay=0.0) as server:
        server.set_faults(latency=0.4, routes=["POST /workspaces"])
        cache = make_site(tmp_path, server.url)
        ledger = Ledger(cache)
        proc = build(tmp_path)
        child = None
        while child is None:
            assert proc.poll() is None, proc.communicate()
            with contextlib.suppress(LedgerError):
                child = next((i["pid"] for i in ledger.read()["intents"].values() if i["pid"] != proc.pid), None)
            time.sleep(0.005)
        os.kill(child, signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == 1
        assert "the provisioning process ended without answering" in err and "Traceback" not in err
        time.sleep(0.6)  # the creates the child had sent finish on the emulator
        rebuild = build(tmp_path, "-q")
        _, rebuilt = rebuild.communicate()
        assert rebuild.returncode == 0, rebuilt
        data = ledger.read()
        owned = {e["workspace_id"] for e in data["entries"].values()}
        with ContainersClient(server.url + "/api/v1", SECRET_TOKEN) as client:
            listed = {ws.id for ws in client.iter_workspaces()}
        print(f"\nchild killed: {len(listed)} workspaces, {len(owned)} recorded, intents left {len(data['intents'])}")
        assert len(owned) == EMBEDS and listed <= owned  # one per embed, none orphaned
        assert_no_leak([out, err], roots=[tmp_path])
