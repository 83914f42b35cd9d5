"""Issue 16: API work runs while the pages are read, and no page ever carries a wrong id.

The emulator delays every answer by a random amount (so answers come back in
another order than asked) and fails some of them (retried, or final) while
MkDocs and Sphinx read and render the pages.  Every page must then carry
exactly the workspace the ledger records for that page and embed name, never
another page's, and a page whose create failed shows the ``on_error``
fallback.  With ``on_error: fail`` the build stops before the previous site is
touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

from sphere_docs.pipeline.provision import Ledger
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

PAGES = 24
DIV = re.compile(r'data-id="([^"]+)" data-workspace="([0-9a-f]{32})"')
#: per create: retried (503, 429, reset before sending is not: reset after is final), final (500, 502)
FAULTS = [503, "ok", 500, 429, "ok", 502, "ok", "ok", 500] + ["ok"] * 40


def site(root: Path, url: str, pages: int = PAGES, **plugin: Any) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for i in range(pages):
        (docs / f"p{i:02}.md").write_text(
            f"# Page {i}\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n```\n\nText.\n\n"
            f"```{{sphere-workspace}} {DEMO_PROJECT_ID}\n:inactivity-timeout: {20 + i}\n```\n")
    config = {"site_name": "critical", "plugins": [{"sphere-workspaces": {
        "endpoint": url, "cache": ".cache", "retries": 1, "timeout": 5, "concurrency": 4,
        "lazy_endpoint": "http://127.0.0.1:9/workspaces", **plugin}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / "mkdocs.yml"


def embedded(site_dir: Path) -> dict[str, str]:
    """``"<page>#<name>" -> workspace id`` as the written pages carry them."""
    found: dict[str, str] = {}
    for html in site_dir.glob("p*/index.html"):
        for name, ws in DIV.findall(html.read_text()):
            found[f"{html.parent.name}.md#{name}"] = ws
    return found


def recorded(cache: Path) -> dict[str, str]:
    entries = Ledger(cache).read()["entries"]
    return {f"{e['page']}#{e['name']}": e["workspace_id"] for k, e in entries.items() if "|unused:" not in k}


def test_mkdocs_delayed_failed_reordered_answers_never_give_a_page_a_wrong_id(
        emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    emulator.set_faults(latency=0.01, jitter=0.12, sequence=FAULTS, routes=["POST /workspaces"], seed=7)
    config = site(tmp_path, emulator.url, on_error="placeholder")
    mkdocs_build(load_config(str(config)))
    pages, ledger = embedded(tmp_path / "site"), recorded(tmp_path / ".cache")
    failed = sum(f in (500, 502) for f in FAULTS[: 2 * PAGES + 6])
    assert len(pages) == 2 * PAGES - failed  # the rest show placeholders
    assert all(ledger[key] == ws for key, ws in pages.items())  # each page: its own workspace
    assert len(set(pages.values())) == len(pages)
    html = "".join(p.read_text() for p in (tmp_path / "site").glob("p*/index.html"))
    assert html.count('data-sphere-mode="unavailable"') == failed
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == failed
    assert_no_leak([caplog.text], [tmp_path / "site"])

    # answers again, in another order: the failed ones get workspaces, no page's id moves
    emulator.set_faults(latency=0.01, jitter=0.12, seed=8)
    mkdocs_build(load_config(str(config)))
    again = embedded(tmp_path / "site")
    assert len(again) == 2 * PAGES
    assert all(again[key] == ws for key, ws in pages.items())
    assert again == recorded(tmp_path / ".cache")


def test_mkdocs_answers_from_the_provisioning_process_never_give_a_page_a_wrong_id(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """The same in a ``mkdocs build`` process, whose creates run in its forked child (process_pool)."""
    emulator.set_faults(latency=0.01, jitter=0.12, sequence=FAULTS, routes=["POST /workspaces"], seed=11)
    config = site(tmp_path, emulator.url, on_error="placeholder")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], cwd=tmp_path,
                          env={**os.environ, TOKEN_ENV: SECRET_TOKEN, "NO_MKDOCS_2_WARNING": "1"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    pages, ledger = embedded(tmp_path / "site"), recorded(tmp_path / ".cache")
    failed = sum(f in (500, 502) for f in FAULTS[: 2 * PAGES + 6])
    assert len(pages) == 2 * PAGES - failed
    assert all(ledger[key] == ws for key, ws in pages.items())
    assert len(set(pages.values())) == len(pages)
    assert done.stderr.count("showing a placeholder") == failed
    left = Ledger(tmp_path / ".cache").read()["intents"].values()  # the 5xx creates: the API may have made one
    assert len(left) == failed and all(i["state"] == "unanswered" for i in left)
    assert_no_leak([done.stdout, done.stderr], [tmp_path / "site"])


#: a MkDocs hooks file: as each page is written, is this build already recorded in the ledger, and
#: which provisioning threads and processes are still alive?
RECORDED_HOOKS = """
import json, os, threading
from pathlib import Path
from mkdocs.plugins import event_priority
from sphere_docs.pipeline.ledger import Ledger
seen = []

@event_priority(-100)
def on_post_page(output, page, config):
    builds = Ledger(Path(config.config_file_path).parent / ".cache").read().get("builds") or {}
    threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("sphere-provision"))
    seen.append({"page": page.file.src_uri, "recorded": bool(builds), "threads": threads})
    return output

def on_post_build(config):
    Path(config.config_file_path + ".seen.json").write_text(json.dumps(seen))
"""


def test_mkdocs_ends_the_resolve_once_every_call_answered_not_after_the_last_page(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """The first page has the site's only embed; once its create answered, the build is recorded
    and the provisioning workers stop while the other pages are still being written (a first
    build no longer keeps them, and the build record, waiting until the last page)."""
    config = site(tmp_path, emulator.url, pages=1)
    for i in range(40):
        (tmp_path / "docs" / f"z{i:02}.md").write_text(f"# Plain {i}\n\nNo workspace here.\n")
    (tmp_path / "hooks.py").write_text(RECORDED_HOOKS)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "hooks": ["hooks.py"]}, sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], cwd=tmp_path,
                          env={**os.environ, TOKEN_ENV: SECRET_TOKEN, "NO_MKDOCS_2_WARNING": "1"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(Path(str(config) + ".seen.json").read_text())
    assert [s["page"] for s in seen][:1] == ["p00.md"] and len(seen) == 41
    assert seen[-1] == {"page": "z39.md", "recorded": True, "threads": []}
    assert emulator.count("POST /workspaces") == 2 and len(set(embedded(tmp_path / "site").values())) == 2


def test_mkdocs_failure_stops_before_the_previous_site_is_touched(emulator: EmulatorServer,
                                                                   tmp_path: Path) -> None:
    config = site(tmp_path, emulator.url, pages=6)
    mkdocs_build(load_config(str(config)))
    good = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}

    # more pages; one of their creates fails for good while the others answer late, out of order
    site(tmp_path, emulator.url, pages=PAGES)
    emulator.set_faults(latency=0.02, jitter=0.1, sequence=["ok"] * 5 + [500], routes=["POST /workspaces"])
    with pytest.raises(Abort):
        mkdocs_build(load_config(str(config)))
    now = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    assert now == good  # the last good site, as it was
    # what was created before the failure is recorded: the next build reuses it
    made = recorded(tmp_path / ".cache")
    emulator.set_faults()
    mkdocs_build(load_config(str(config)))
    final = embedded(tmp_path / "site")
    assert len(final) == 2 * PAGES
    assert all(final[key] == ws for key, ws in made.items())


def test_sphinx_delayed_failed_reordered_answers_never_give_a_page_a_wrong_id(
        make_app: Any, emulator: EmulatorServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["sphere_docs.sphinx"]\nproject = "c"\n')
    names = [f"d{i:02}" for i in range(PAGES)]
    (src / "index.rst").write_text("C\n=\n\n.. toctree::\n\n" + "".join(f"   {n}\n" for n in names))
    for n in names:
        (src / f"{n}.rst").write_text(f"{n}\n===\n\n.. sphere-workspace:: {DEMO_PROJECT_ID}\n\ntext\n\n"
                                      f".. sphere-workspace:: {DEMO_PROJECT_ID}\n   :height: 300px\n   "
                                      f":inactivity-timeout: 30\n")
    emulator.set_faults(latency=0.01, jitter=0.12, sequence=FAULTS, routes=["POST /workspaces"], seed=3)
    cache = tmp_path / "cache"
    app = make_app("html", srcdir=src, freshenv=True, confoverrides={
        "sphere_endpoint": emulator.url, "sphere_cache": str(cache), "sphere_on_error": "placeholder",
        "sphere_retries": 1, "sphere_concurrency": 4})
    app.build()
    app.cleanup()
    ledger = recorded(cache)
    found: dict[str, str] = {}
    for n in names:
        for name, ws in DIV.findall((Path(app.outdir) / f"{n}.html").read_text()):
            found[f"{n}.rst#{name}"] = ws
    failed = sum(f in (500, 502) for f in FAULTS[: 2 * PAGES + 6])
    assert len(found) == 2 * PAGES - failed
    assert all(ledger[key] == ws for key, ws in found.items())
    assert len(set(found.values())) == len(found)
