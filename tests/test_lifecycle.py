"""Build-mode workspaces outlive the build: stopped when idle, resumed by the reader's page load.

End to end against the emulator (a real HTTP server whose clock the test moves):
a real ``mkdocs build`` in build mode with default options creates the shared
workspace with the build-mode lifecycle defaults; the clock passes the inactivity
timeout and a day more (the deployed page's Tuesday): the workspace is *stopped*,
not removed; a reader opens the built page in headless Chromium and the emulated
SDK's workspace page resumes it (auto-resume): starting, then running, shown in the
embed.  Also: the defaults go to the API only for build-mode embeds, an author's
own ``retention-stopped: 0`` still means removal, and ``doctor`` says how long the
deployed site stays usable.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, START_DELAY, assert_no_leak

from sphere_docs.core.options import BUILD_LIFECYCLE_DEFAULTS
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer, ManualClock
from sphere_docs.tools.doctor import run_doctor

P = DEMO_PROJECT_ID
WAIT_MS = 30_000  # bound of each browser wait (not a speed check)




def make_site(root: Path, endpoint: str, pages: dict[str, str], **settings: str) -> Path:
    for rel, text in pages.items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = {
        "site_name": "Course",
        "theme": {"name": "mkdocs"},
        "docs_dir": "docs",
        "site_dir": "site",
        "markdown_extensions": ["pymdownx.superfences"],
        "plugins": [{"sphere-workspaces": {"endpoint": endpoint, "cache": ".cache", **settings}}],
    }
    path = root / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def mkdocs_build(config: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build`` as an author runs it: a process of its own, the token only in its environment."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config)],
                            cwd=config.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert_no_leak([result.stdout, result.stderr], [config.parent / "site"])
    return result


def only_workspace(emulator: EmulatorServer) -> dict[str, Any]:
    listed = [ws for ws in (emulator.app.workspace(i) for i in emulator.app._workspaces) if ws]
    assert len(listed) == 1, listed
    return listed[0]


class StaticSite:
    """The built site served from its folder on a loopback port, as a web host serves it."""

    def __init__(self, folder: Path):
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(Quiet, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


LESSON = f"# Lesson\n\n```{{sphere-workspace}} {P}\n\nMake the tests pass.\n```\n"


@pytest.mark.browser
def test_default_build_workspace_is_stopped_when_idle_and_resumed_by_a_reader(
        emulator_clocked: EmulatorServer, clock: ManualClock, tmp_path: Path, browser: Any) -> None:
    emulator = emulator_clocked
    config = make_site(tmp_path, emulator.url, {"index.md": "# Home\n", "lesson.md": LESSON})
    mkdocs_build(config)
    ws = only_workspace(emulator)
    wid = ws["id"]
    # created with the build-mode defaults (the author set none of them)
    assert (ws["inactivity_timeout"], ws["retention_time_stopped"], ws["retention_time_total"],
            ws["auto_resume"]) == (15, 43200, 0, True)
    assert dict(BUILD_LIFECYCLE_DEFAULTS) == {"inactivity_timeout": 15, "retention_stopped": 43200,
                                              "auto_resume": True}
    page_html = (tmp_path / "site" / "lesson" / "index.html").read_text(encoding="utf-8")
    assert f'data-workspace="{wid}"' in page_html

    # nobody opens the page: past the inactivity timeout it is stopped, not removed ...
    clock.advance(START_DELAY)
    assert emulator.app.workspace(wid)["state"]["name"] == "running"
    clock.advance(minutes=15, seconds=1)
    assert emulator.app.workspace(wid)["state"]["name"] == "stopped"
    # ... and a day later (the deployed page's Tuesday) it is still there, stopped
    clock.advance(minutes=24 * 60)
    stopped = emulator.app.workspace(wid)
    assert stopped["state"]["name"] == "stopped" and stopped["terminated_at"] is None
    assert stopped["last_usage"] is None

    # a reader opens the deployed page in Chromium: the embed's workspace page resumes it
    site = StaticSite(tmp_path / "site")
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        from playwright.sync_api import expect

        page = context.new_page()
        page.goto(f"{site.url}/lesson/")
        frame_el = page.locator(f'[data-workspace="{wid}"] iframe')
        frame_el.wait_for(timeout=WAIT_MS)
        frame = page.frame_locator(f'[data-workspace="{wid}"] iframe')
        badge = frame.locator("#state")
        badge.wait_for(timeout=WAIT_MS)
        assert badge.get_attribute("data-state") == "starting"  # resumed by the reader's page load
        resumed = emulator.app.workspace(wid)
        assert resumed["state"]["name"] == "starting" and resumed["last_usage"] is not None
        # START_DELAY later it runs; the workspace page (refreshing while starting) shows it
        clock.advance(START_DELAY)
        assert emulator.app.workspace(wid)["state"]["name"] == "running"
        expect(badge).to_have_attribute("data-state", "running", timeout=WAIT_MS)
        assert frame.locator("#workspace-id").inner_text() == wid
        assert frame.locator("#project").inner_text() == "EXAMPLE"
    finally:
        context.close()
        site.close()
    # the workspace page was loaded from the emulator once the SDK had checked it
    assert emulator.count("GET /workspace/{id}") >= 1

    # the next build reuses it (stopped-and-resumable counts as live): nothing created
    creates = emulator.count("POST /workspaces")
    mkdocs_build(config)
    assert emulator.count("POST /workspaces") == creates
    assert f'data-workspace="{wid}"' in (tmp_path / "site" / "lesson" / "index.html").read_text()


def test_an_authors_own_lifecycle_wins_and_lazy_embeds_get_no_defaults(
        emulator_clocked: EmulatorServer, clock: ManualClock, tmp_path: Path) -> None:
    emulator = emulator_clocked
    pages = {"lesson.md": (
        f"```{{sphere-workspace}} {P}\n:name: gone-when-idle\n:retention-stopped: 0\n```\n\n"
        f"```{{sphere-workspace}} {P}\n:name: short-idle\n:inactivity-timeout: 5\n```\n")}
    config = make_site(tmp_path, emulator.url, pages)
    mkdocs_build(config)
    by_stop = {ws["retention_time_stopped"]: ws for ws in
               (emulator.app.workspace(i) for i in list(emulator.app._workspaces))}
    assert set(by_stop) == {0, 43200}
    assert (by_stop[0]["inactivity_timeout"], by_stop[43200]["inactivity_timeout"]) == (15, 5)
    clock.advance(START_DELAY)
    clock.advance(minutes=15, seconds=1)
    assert emulator.app.workspace(by_stop[0]["id"])["state"]["name"] == "removed"  # the author's choice
    assert emulator.app.workspace(by_stop[43200]["id"])["state"]["name"] == "stopped"


def test_doctor_warns_about_build_embeds_that_die_between_builds(
        emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {
        "ok.md": f"```{{sphere-workspace}} {P}\n```\n",
        "gone.md": f"```{{sphere-workspace}} {P}\n:retention-stopped: 0\n```\n",
        "capped.md": f"```{{sphere-workspace}} {P}\n:retention-total: 10080\n```\n",
        "manual.md": f"```{{sphere-workspace}} {P}\n:auto-resume: false\n```\n",
        "never.md": f"```{{sphere-workspace}} {P}\n:inactivity-timeout: 0\n```\n",
        "reader.md": f"```{{sphere-workspace}} {P}\n:mode: lazy\n:retention-stopped: 0\n```\n",
    }
    make_site(tmp_path, emulator.url, pages, lazy_endpoint="https://lazy.example.org/workspaces")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    status = run_doctor(".", out=out)
    text = out.getvalue()
    assert_no_leak([text])
    lines = text.splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: 1 build embed (first at docs/capped.md:1): removed 7 days after the build that "
        "created it, however much it is used (retention-total; rebuilds reuse it, they do not renew "
        "it): the deployed site stays usable for at most 7 days",
        "warning: 1 build embed (first at docs/gone.md:1): removed after 15 minutes without a reader "
        "(retention-stopped 0 turns stop/resume off): the deployed page shows a dead embed soon "
        "after each build",
        "warning: 1 build embed (first at docs/manual.md:1): stopped after 15 minutes without a "
        "reader and auto-resume is off: readers see a stopped workspace until the next build replaces it",
    ], text
    assert lines[lines.index(warnings[1]) + 1] == (
        "  fix: leave retention-stopped out (build mode keeps an idle workspace stopped for 30 days) "
        "or set it to the minutes an idle workspace must be kept")
    # how long the deployed site stays usable, for the embeds that keep their workspace
    assert [line for line in lines if line.startswith("lifecycle:")] == [
        "lifecycle: 1 build embed: never stopped for inactivity: usable until removed, holding a "
        "workspace slot all the time",
        "lifecycle: 1 build embed: stopped after 15 minutes without a reader, resumed when one opens "
        "it, removed after 30 days without one: the deployed site stays usable while each is "
        "opened at least once every 30 days",
    ]
    assert not any("reader.md" in line for line in lines)  # lazy: per reader, no lifecycle to judge
    assert status == 0  # warnings, not problems: the author may want short-lived workspaces
    assert lines[-1] == "sphere-docs doctor: no problems (3 warnings)"


def test_each_visit_restarts_the_stopped_retention(emulator_clocked: EmulatorServer,
                                                    clock: ManualClock) -> None:
    """The emulator's reading of the reference: the stop retention counts from the latest stop."""
    import requests

    from sphere_docs.api.client import ContainersClient

    with ContainersClient(emulator_clocked.url + "/api/v1", SECRET_TOKEN) as client:
        ws = client.create_workspace({"project_id": P, "inactivity_timeout": "15",
                                      "retention_time_stopped": "60", "auto_resume": "true"})
    state = lambda: emulator_clocked.app.workspace(ws.id)["state"]["name"]  # noqa: E731
    clock.advance(START_DELAY + 15 * 60 + 50 * 60)  # stopped 50 minutes ago
    assert state() == "stopped"
    check = requests.get(f"{emulator_clocked.url}/workspace/{ws.id}/check",
                         params={"token": ws.workspace_token}, timeout=10)
    assert check.json()["state"] == "stopped" and state() == "stopped"  # asking is not a visit
    page = requests.get(f"{emulator_clocked.url}/workspace/{ws.id}",
                        params={"token": ws.workspace_token}, timeout=10)
    assert page.status_code == 200 and state() == "starting"
    clock.advance(START_DELAY + 15 * 60)
    assert state() == "stopped"
    clock.advance(59 * 60)  # 59 minutes after the new stop (the old one would be 2 hours ago)
    assert state() == "stopped"
    clock.advance(60)
    assert state() == "removed"


def test_the_lazy_endpoint_creates_without_the_build_defaults() -> None:
    """Lazy workspaces are per reader: the endpoint sends only what its operator configured."""
    import json

    from sphere_docs.services.endpoint.config import EndpointConfig

    config = EndpointConfig.from_env({}, api="http://127.0.0.1:9", allow_projects=P,
                                     allow_origins="https://docs.example.org",
                                     create_options=json.dumps({"*": {"inactivity-timeout": 5}}))
    assert config.create_fields(P) == {"project_id": P, "workspace_token_required": "true",
                                       "inactivity_timeout": "5"}
