"""``sphere-docs demo`` as a reader runs it: a real child process, real builds, real HTTP.

The serving test starts ``sphere-docs demo --port 0``, waits for its "Serving
... at URL" line, fetches the index and a page of every site, checks that the
workspace ids in the built pages are workspaces the emulator knows (through
the API on the same address, with the token given to the child through
``SPHERE_DEMO_TOKEN``), then presses Ctrl-C (SIGINT) and checks the exit
status, the freed port and that no process of the demo is left.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import assert_no_leak

from sphere_docs.services.emulator import DEMO_PROJECTS
from sphere_docs.tools.demo import SITES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: one page with build-mode embeds per site (path under the site's prefix)
PAGES = {
    "mkdocs": "lessons/04-two-workspaces/",
    "mkdocs-material": "lessons/03-sizes-fullscreen/",
    "sphinx": "lessons/build-mode.html",
    "sphinx-alabaster": "index.html",
    "sphinx-rtd": "lessons/print.html",
}
#: generous bounds so a broken demo fails instead of hanging the suite (not speed checks)
START_BOUND = 600.0
STOP_BOUND = 60.0
WORKSPACE_RE = re.compile(r'data-workspace="([0-9a-f]{32})"')
SERVING_RE = re.compile(r"^Serving the sphere-docs demo at (?P<url>http://127\.0\.0\.1:\d+)/")


@dataclass
class Child:
    """A child process whose stdout and stderr lines are collected by two threads."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[tuple[str, str | None]] = field(default_factory=queue.Queue)
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, stream, sink in (("out", self.proc.stdout, self.out), ("err", self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(name, stream, sink), daemon=True).start()

    def _pump(self, name: str, stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)
            self.lines.put((name, line))
        self.lines.put((name, None))

    def wait_for(self, pattern: re.Pattern[str], bound: float) -> re.Match[str]:
        """The first stdout line matching ``pattern``; fails if the child exits first."""
        closed = 0
        while True:
            try:
                name, line = self.lines.get(timeout=bound)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern.pattern!r} within {bound:.0f}s; "
                            f"stderr so far: {''.join(self.err)}")
            if line is None:
                closed += 1
                if closed == 2:
                    pytest.fail(f"the demo exited ({self.proc.wait()}) before serving: {''.join(self.err)}")
                continue
            if name == "out" and (m := pattern.match(line)):
                return m


def start(*args: str, token: str) -> Child:
    env = {**os.environ, "SPHERE_DEMO_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphere_docs", "demo", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: SIGINT reaches only the demo
    )
    return Child(proc)


@pytest.fixture
def demo_token() -> str:
    return "demo-test-" + secrets.token_hex(16)


@pytest.fixture
def child_cleanup() -> Iterator[list[Child]]:
    """Whatever a failed test leaves running is killed (its whole process group)."""
    children: list[Child] = []
    yield children
    for child in children:
        if child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_demo_serves_every_site_and_stops_on_ctrl_c(demo_token: str, child_cleanup: list[Child]) -> None:
    child = start("--port", "0", token=demo_token)
    child_cleanup.append(child)
    base = child.wait_for(SERVING_RE, START_BOUND)["url"]
    port = int(base.rsplit(":", 1)[1])

    status, index = get(base + "/")
    assert status == 200
    for site in SITES:
        assert f'href="{site.slug}/"' in index

    seen: set[str] = set()
    for site in SITES:
        status, home = get(f"{base}/{site.slug}/")
        assert status == 200, site.slug
        status, page = get(f"{base}/{site.slug}/{PAGES[site.slug]}")
        assert status == 200, (site.slug, PAGES[site.slug])
        assert "sphere-engine-jssdk" in page  # the SDK loader
        ids = WORKSPACE_RE.findall(page)
        assert ids, f"no build-mode workspace in {site.slug}/{PAGES[site.slug]}"
        seen.update(ids)
        assert demo_token not in home + page

    for workspace_id in sorted(seen):  # the emulator behind the same address knows each one
        status, body = get(f"{base}/api/v1/workspaces/{workspace_id}?access_token={demo_token}")
        assert status == 200, body
        workspace = json.loads(body)
        assert workspace["id"] == workspace_id
        assert workspace["project"]["id"] in DEMO_PROJECTS
        assert workspace["state"]["name"] in ("starting", "running")
    status, body = get(f"{base}/_emulator/stats")
    stats = json.loads(body)
    assert stats["workspaces"]["total"] >= len(seen)
    assert stats["requests"]["POST /workspaces"]["total"] >= len(seen)
    assert get(f"{base}/lazy/healthz")[0] == 200
    assert get(f"{base}/no-such-site/")[0] == 404

    child.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert child.proc.wait(timeout=STOP_BOUND) == 0, "".join(child.err)
    assert port_is_free(port)
    assert group_is_gone(child.proc.pid), "the demo left processes behind"
    assert "sphere-docs demo: stopping\n" in child.err
    assert_no_leak(["".join(child.out), "".join(child.err)], token=demo_token)


def test_demo_build_only(tmp_path: Path, demo_token: str, child_cleanup: list[Child]) -> None:
    out = tmp_path / "built"
    child = start("--port", "0", "--build-only", str(out), token=demo_token)
    child_cleanup.append(child)
    assert child.proc.wait(timeout=START_BOUND) == 0, "".join(child.err)
    assert group_is_gone(child.proc.pid)
    errors = "".join(child.err)
    for number, site in enumerate(SITES, 1):
        assert f"sphere-docs demo: [{number}/{len(SITES)}] building {site.title} …" in errors
        assert (out / site.slug / "index.html").is_file()
        page = out / site.slug / PAGES[site.slug]
        page = page / "index.html" if page.is_dir() else page
        assert WORKSPACE_RE.search(page.read_text(encoding="utf-8")), page
    assert f"sphere-docs demo: built into {out}\n" in child.err
    assert (out / "index.html").is_file()
    assert "".join(child.out) == ""  # nothing is served
    port = int(re.search(r"at http://127\.0\.0\.1:(\d+)", errors)[1])  # type: ignore[index]
    assert port_is_free(port)
    assert_no_leak(roots=[out], token=demo_token)
