"""``sphere-docs doctor --site``: the scheduled check of a deployed site's workspaces.

A real ``mkdocs build`` in build mode against the emulator writes the site and its
``sphere-workspaces.json``; the site is served from a loopback HTTP server as a web
host would.  The check reads the deployed manifest (URL or path), asks the API for
each workspace it lists and answers 0 when all are usable (running, or stopped and
resumed when a reader opens them), 1 naming page and name when any is dead, 2 when
it could not check.  The emulator's clock is moved: 30 days without a reader remove
every workspace, the check says so, and a rebuild makes the site usable again.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SECRET_TOKEN, START_DELAY, TOKEN_ENV, assert_no_leak
from test_lifecycle import StaticSite, make_site, mkdocs_build

from sphere_docs.api.client import ContainersClient
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer, ManualClock
from sphere_docs.tools.doctor import SITE_DEAD, SITE_OK, SITE_UNCHECKED, run_site_doctor

P = DEMO_PROJECT_ID
PAGES = {
    "index.md": "# Home\n",
    "lessons/one.md": (f"# One\n\n```{{sphere-workspace}} {P}\n:name: first\n```\n\n"
                       f"```{{sphere-workspace}} {P}\n:name: second\n:height: 300px\n```\n"),
    "lessons/two.md": (f"# Two\n\n```{{sphere-workspace}} {P}\n:name: third\n```\n\n"
                       f"```{{sphere-workspace}} {P}\n:mode: lazy\n:name: mine\n```\n"),
}
DIV_RE = re.compile(r'data-id="([^"]+)" data-workspace="([0-9a-f]{32})"')


@pytest.fixture
def built(emulator_clocked: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The course built in build mode; the current folder is its root (where mkdocs.yml is)."""
    # trust_checked 0: the emulator's clock jumps days ahead while the builder's does not, so a
    # rebuild seconds later must not trust the ledger's "checked a moment ago" (on a real
    # schedule the window has long passed, or the CI machine has no ledger at all)
    config = make_site(tmp_path, emulator_clocked.url, PAGES,
                       lazy_endpoint="https://lazy.example.org/workspaces", trust_checked=0)  # type: ignore[arg-type]
    mkdocs_build(config)
    complete_manifest(tmp_path / "site")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def complete_manifest(site: Path) -> dict[str, Any]:
    """The deployed manifest, with each build-mode entry's ``workspace_id``.

    Builds write it (``sphere_docs.core.manifest``); where a build of this tree does not yet,
    the ids are taken from the built pages, as the manifest would carry them.
    """
    path = site / "sphere-workspaces.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    in_pages = {name: wid for page in site.rglob("*.html")
                for name, wid in DIV_RE.findall(page.read_text(encoding="utf-8"))}
    for embeds in data["pages"].values():
        for entry in embeds:
            if entry.get("mode") == "build" and not entry.get("workspace_id"):
                entry["workspace_id"] = in_pages[entry["name"]]
            if entry.get("mode") == "build":
                assert entry["workspace_id"] == in_pages[entry["name"]]
    path.write_text(json.dumps(data), encoding="utf-8")
    return data


def ids_by_name(site: Path) -> dict[str, str]:
    data = json.loads((site / "sphere-workspaces.json").read_text(encoding="utf-8"))
    return {e["name"]: e["workspace_id"] for embeds in data["pages"].values() for e in embeds
            if e.get("mode") == "build"}


def site_doctor(manifest: str, **kw: Any) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = run_site_doctor(manifest, ".", out=out, **kw)
    text = out.getvalue()
    assert_no_leak([text])
    return status, text.splitlines()


def test_all_usable_then_one_removed(built: Path, emulator_clocked: EmulatorServer, clock: ManualClock) -> None:
    emulator = emulator_clocked
    ids = ids_by_name(built / "site")
    assert sorted(ids) == ["first", "second", "third"]
    clock.advance(START_DELAY)
    status, lines = site_doctor("site/sphere-workspaces.json")
    assert status == SITE_OK, lines
    assert lines[0] == "sphere-docs doctor: deployed site site/sphere-workspaces.json"
    assert lines[1] == "manifest: 3 build-mode workspaces on 2 pages"
    assert "ok: 3 workspaces usable (3 running)" in lines
    assert lines[-1] == "sphere-docs doctor: no problems"

    # nobody reads for a day: stopped, still usable (a reader's page load resumes them)
    clock.advance(minutes=24 * 60)
    status, lines = site_doctor(str(built / "site"))  # the site folder names its manifest
    assert status == SITE_OK, lines
    assert "ok: 3 workspaces usable (3 stopped): stopped ones resume when a reader opens them" in lines
    first_to_go = next(line for line in lines if line.startswith("    first to go: "))
    assert "removed about 2023-12-" in first_to_go and first_to_go.endswith("unless a reader opens it before")

    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
        client.remove(ids["second"])
    status, lines = site_doctor("site/sphere-workspaces.json")
    assert status == SITE_DEAD, lines
    assert "ok: 2 workspaces usable (2 stopped): stopped ones resume when a reader opens them" in lines
    problem = lines.index("problem: 1 workspace of the deployed site is dead: readers see an embed "
                          "that does not work")
    assert lines[problem + 1].startswith(f"    lessons/one.md second: workspace {ids['second']} removed at ")
    assert lines[problem + 2] == (
        "  fix: rebuild and deploy the site: the build replaces dead workspaces (and reuses the usable "
        "ones); then `sphere-docs prune` removes what the new build no longer uses")
    assert lines[-1] == "sphere-docs doctor: 1 problem"


def test_the_command_over_http_on_a_schedule(built: Path, emulator_clocked: EmulatorServer,
                                             clock: ManualClock) -> None:
    """The recipe's command: the deployed manifest's URL; 30 days without readers, then a rebuild."""
    emulator = emulator_clocked
    web = StaticSite(built / "site")
    env = {"PATH": "/usr/bin:/bin", TOKEN_ENV: SECRET_TOKEN}

    def scheduled() -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "sphere_docs", "doctor", "--site", f"{web.url}/sphere-workspaces.json"],
            cwd=built, env=env, capture_output=True, text=True, check=False)
        assert_no_leak([result.stdout, result.stderr])
        return result

    try:
        clock.advance(START_DELAY)
        ok = scheduled()
        assert ok.returncode == SITE_OK, ok.stdout + ok.stderr
        assert f"endpoint: {emulator.url}/api/v1" in ok.stdout.splitlines()  # from mkdocs.yml

        # a term break: 30 days and the inactivity timeout without a reader remove every workspace
        clock.advance(minutes=15 + 30 * 24 * 60)
        dead = scheduled()
        assert dead.returncode == SITE_DEAD, dead.stdout + dead.stderr
        out = dead.stdout.splitlines()
        assert "problem: 3 workspaces of the deployed site are dead: readers see an embed that does not work" in out
        assert [line.split(": workspace ")[0] for line in out if line.startswith("    lessons/")] == [
            "    lessons/one.md first", "    lessons/one.md second", "    lessons/two.md third"]

        # the scheduled job rebuilds and deploys: usable again
        creates = emulator.count("POST /workspaces")
        mkdocs_build(built / "mkdocs.yml")
        complete_manifest(built / "site")
        assert emulator.count("POST /workspaces") == creates + 3
        again = scheduled()
        assert again.returncode == SITE_OK, again.stdout + again.stderr
    finally:
        web.close()


def test_what_cannot_be_checked_is_exit_2(built: Path, emulator_clocked: EmulatorServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    status, lines = site_doctor("nowhere/sphere-workspaces.json")
    assert status == SITE_UNCHECKED
    assert lines[1].startswith("problem: cannot read the manifest nowhere/sphere-workspaces.json")
    monkeypatch.delenv(TOKEN_ENV)
    status, lines = site_doctor("site")
    assert status == SITE_UNCHECKED
    assert "problem: no access token: the environment variable SPHERE_ENGINE_ACCESS_TOKEN is empty or not set" in lines
    # an API outage: not a dead workspace (a rebuild would not help), but not all is well either
    monkeypatch.setenv(TOKEN_ENV, SECRET_TOKEN)
    emulator_clocked.app.set_faults(sequence=[503] * 20, routes=["GET /workspaces/{id}"])
    status, lines = site_doctor("site")
    assert status == SITE_UNCHECKED, lines
    assert "problem: 3 workspaces could not be checked" in lines


def test_a_manifest_without_workspace_ids_checks_nothing(tmp_path: Path, emulator: EmulatorServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest of an older sphere-docs (no ids): said, and nothing to fail on."""
    manifest = tmp_path / "sphere-workspaces.json"
    manifest.write_text(json.dumps({"version": 1, "projects": [P], "pages": {
        "a.md": [{"project_id": P, "mode": "build", "name": "x"}]}}))
    monkeypatch.chdir(tmp_path)
    status, lines = site_doctor(str(manifest), endpoint=emulator.url)
    assert status == SITE_OK
    assert lines[1] == ("manifest: 0 build-mode workspaces on 0 pages (1 build embed without a workspace "
                        "id: a placeholder, or a manifest of an older sphere-docs; not checked)")
