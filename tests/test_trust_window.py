"""Issue 16: don't re-ask what was just answered (the ``trust_checked`` window).

A ledger entry the API confirmed live (a check or a create) less than
``trust_checked`` seconds ago is used without a new ``GET``, in the same process
(``mkdocs serve``-style rebuilds, Sphinx rebuilds) and in the next one (the
confirmation is ``checked_at`` in the ledger).  0 checks every time.  Counted
on a real emulator.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, assert_no_leak
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config

from sphere_docs.core.errors import SettingsError
from sphere_docs.core.settings import SiteSettings
from sphere_docs.pipeline.provision import Ledger
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

GET = "GET /workspaces/{id}"
POST = "POST /workspaces"
EMBEDS = 4
IDS = re.compile(r'data-workspace="([0-9a-f]{32})"')


def mkdocs_site(root: Path, url: str, **plugin: Any) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for i in range(EMBEDS):
        (root / "docs" / f"p{i}.md").write_text(f"# P{i}\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n```\n")
    config = {"site_name": "trust", "plugins": [{"sphere-workspaces": {"endpoint": url, "cache": ".cache",
                                                                       **plugin}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / "mkdocs.yml"


def ids_of(site: Path) -> dict[str, str]:
    return {p.parent.name: IDS.findall(p.read_text())[0] for p in site.glob("p*/index.html")}


def test_in_process_rebuild_within_the_window_asks_nothing(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = mkdocs_site(tmp_path, emulator.url)  # default window
    mkdocs_build(load_config(str(config)))
    first = ids_of(tmp_path / "site")
    assert emulator.count(POST) == EMBEDS and len(set(first.values())) == EMBEDS
    for _ in range(2):  # what mkdocs serve does on each save
        emulator.reset_stats()
        mkdocs_build(load_config(str(config)))
        assert emulator.stats()["total_requests"] == 0  # no GET, no POST: 0 API calls
        assert ids_of(tmp_path / "site") == first
    entries = Ledger(tmp_path / ".cache").read()["entries"]
    assert all("checked_at" in e for e in entries.values())


def test_zero_window_checks_every_time(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = mkdocs_site(tmp_path, emulator.url, trust_checked=0)
    mkdocs_build(load_config(str(config)))
    emulator.reset_stats()
    mkdocs_build(load_config(str(config)))
    assert emulator.count(GET) == EMBEDS and emulator.count(POST) == 0


def test_the_window_holds_across_processes_and_ends(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = mkdocs_site(tmp_path, emulator.url)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}

    def build() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], cwd=tmp_path,
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert_no_leak([done.stdout, done.stderr], [tmp_path / "site"])
        return done

    build()
    first = ids_of(tmp_path / "site")
    emulator.reset_stats()
    said = build().stderr  # a new process: the ledger's checked_at is what it trusts
    assert emulator.stats()["total_requests"] == 0
    assert "4 confirmed live less than 300s ago: not asked again" in said
    assert ids_of(tmp_path / "site") == first

    # an older confirmation is checked again, and the check renews it
    ledger = Ledger(tmp_path / ".cache")
    ledger.update(lambda data: [e.update(checked_at="2000-01-01T00:00:00Z") for e in data["entries"].values()])
    emulator.reset_stats()
    build()
    assert emulator.count(GET) == EMBEDS and emulator.count(POST) == 0
    assert all(e["checked_at"] > "2001" for e in ledger.read()["entries"].values())
    emulator.reset_stats()
    build()
    assert emulator.stats()["total_requests"] == 0


HOOKS = """
import json, sys, threading
from mkdocs.plugins import event_priority

seen = {"threads": set(), "requests": False}

@event_priority(-100)  # after the plugin's own on_page_content, which hands the page's embeds over
def on_page_content(html, page, config, files):
    seen["threads"].update(t.name for t in threading.enumerate() if t is not threading.main_thread())
    return html

def on_post_build(config):
    seen["requests"] = "requests" in sys.modules
    with open(config["config_file_path"] + ".seen.json", "w") as fh:
        json.dump({"threads": sorted(seen["threads"]), "requests": seen["requests"]}, fh)
"""


def test_a_rebuild_the_ledger_answers_starts_no_thread_and_loads_no_http_stack(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """Inside the window the embeds are answered as their pages are read: no provisioning thread,
    no HTTP client (requests is not even imported), so the rebuild costs what rendering costs."""
    config = mkdocs_site(tmp_path, emulator.url)
    (tmp_path / "seen_hooks.py").write_text(HOOKS)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "hooks": ["seen_hooks.py"]}, sort_keys=False))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}

    def build() -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], cwd=tmp_path,
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(Path(str(config) + ".seen.json").read_text())

    first = build()
    assert any(t.startswith("sphere-provision") for t in first["threads"])  # (its HTTP calls: in its child)
    emulator.reset_stats()
    again = build()
    assert emulator.stats()["total_requests"] == 0
    assert again == {"threads": [], "requests": False}


def test_a_workspace_without_a_usable_token_is_never_trusted(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = mkdocs_site(tmp_path, emulator.url)
    mkdocs_build(load_config(str(config)))
    Ledger(tmp_path / ".cache").update(
        lambda data: [e.update(workspace_token=None) for e in data["entries"].values()])
    emulator.reset_stats()
    mkdocs_build(load_config(str(config)))
    assert emulator.count(GET) == EMBEDS  # asked again; the token comes from the answer
    assert SECRET_TOKEN not in json.dumps(Ledger(tmp_path / ".cache").read())


@pytest.mark.parametrize(("trust", "gets"), [(None, 0), (0, 2)])
def test_sphinx_fresh_rebuild_within_the_window(make_app: Any, emulator: EmulatorServer, tmp_path: Path,
                                                 trust: int | None, gets: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["sphere_docs.sphinx"]\nproject = "t"\n')
    (src / "index.rst").write_text("T\n=\n\n.. toctree::\n\n   a\n")
    (src / "a.rst").write_text(f"A\n=\n\n.. sphere-workspace:: {DEMO_PROJECT_ID}\n\n"
                               f".. sphere-workspace:: {DEMO_PROJECT_ID}\n   :height: 300px\n")
    over = {"sphere_endpoint": emulator.url, "sphere_cache": str(tmp_path / "cache")}
    if trust is not None:
        over["sphere_trust_checked"] = trust
    for run in range(2):
        emulator.reset_stats()
        app = make_app("html", srcdir=src, freshenv=True, confoverrides=over)  # every document re-read
        app.build()
        app.cleanup()
        if run:
            assert emulator.count(POST) == 0 and emulator.count(GET) == gets
            assert emulator.stats()["total_requests"] == gets


@pytest.mark.parametrize("value", [-1, "soon", True, float("nan")])
def test_the_setting_is_validated(value: object) -> None:
    with pytest.raises(SettingsError, match="trust_checked"):
        SiteSettings.from_mapping({"trust_checked": value})


def test_doctor_still_checks_everything(emulator: EmulatorServer, tmp_path: Path) -> None:
    from sphere_docs.tools.doctor import run_doctor

    config = mkdocs_site(tmp_path, emulator.url)
    mkdocs_build(load_config(str(config)))
    emulator.reset_stats()
    run_doctor(tmp_path, out=io.StringIO())
    assert emulator.count(GET) >= EMBEDS  # every ledger workspace, whatever the window
