"""A failed MkDocs build keeps the last good site (``sphere_docs.pipeline.keep_site``), in real builds.

MkDocs empties ``site_dir`` before the plugin provisions; these builds fail
after that point (the API down or answering 503 with ``on_error: fail``, a
``--strict`` abort, ``kill -9`` and Ctrl-C in the middle of provisioning) and
check that ``site/`` is byte for byte the previous site, pages without embeds
and hidden files included, and that no set-aside folder is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort
from test_mkdocs_builds import LAZY, P, make_site, run_build

from sphere_docs.services.emulator import EmulatorServer

NEW_PAGE = f"# New\n\n```{{sphere-workspace}} {P}\n:name: brand-new\n```\n"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``, hidden ones included."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".sphere-docs-" in p.name)


def first_good_build(emulator: EmulatorServer, root: Path, **plugin: object) -> tuple[Path, dict[str, bytes | None]]:
    config = make_site(root, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "retries": 0,
                              "timeout": 2, **plugin})
    run_build(config)
    site = root / "site"
    (site / ".git").mkdir()  # a gh-pages checkout: MkDocs never cleans hidden entries
    (site / ".git" / "HEAD").write_text("ref: refs/heads/gh-pages\n")
    before = snapshot(site)
    assert "index.html" in before and "lessons/one/index.html" in before and "sphere-workspaces.json" in before
    assert not leftovers(root)
    return config, before


def needs_a_create(root: Path) -> None:
    """A new embed: the next build must create a workspace (a ledger hit would need no API)."""
    (root / "docs" / "new.md").write_text(NEW_PAGE, encoding="utf-8")


@pytest.mark.parametrize("outage", ["api down", "503"])
def test_a_failed_build_keeps_the_previous_site_byte_for_byte(emulator: EmulatorServer, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture,
                                                               outage: str) -> None:
    config, before = first_good_build(emulator, tmp_path)
    needs_a_create(tmp_path)
    if outage == "api down":
        emulator.stop()
    else:
        emulator.set_faults(rate=1.0, status=503)
    with pytest.raises(Abort):
        run_build(config)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("sphere-workspaces: new.md:3: cannot create a workspace for project")
               for m in errors), errors
    assert snapshot(tmp_path / "site") == before
    assert not leftovers(tmp_path)
    assert_no_leak([caplog.text], [tmp_path])


def test_success_replaces_the_site_and_leaves_nothing_behind(emulator: EmulatorServer, tmp_path: Path) -> None:
    config, before = first_good_build(emulator, tmp_path)
    needs_a_create(tmp_path)
    (tmp_path / "docs" / "lessons" / "two.md").unlink()
    run_build(config)
    after = snapshot(tmp_path / "site")
    assert "new/index.html" in after and "lessons/two/index.html" not in after  # a real clean build
    assert after[".git/HEAD"] == before[".git/HEAD"]  # hidden entries stayed where they were
    assert after["index.html"] is not None
    assert not leftovers(tmp_path)


def test_a_strict_abort_keeps_the_previous_site(emulator: EmulatorServer, tmp_path: Path) -> None:
    """``--strict`` fails after ``post_build``, on the placeholder's warning: the old site stays."""
    config, before = first_good_build(emulator, tmp_path, on_error="placeholder")
    needs_a_create(tmp_path)
    emulator.set_faults(rate=1.0, status=503, routes=["POST /workspaces"])
    with pytest.raises(Abort, match="in strict mode"):
        build(load_config(str(config), strict=True))
    assert snapshot(tmp_path / "site") == before
    assert not leftovers(tmp_path)
    run_build(config)  # not strict: the placeholder build is a success and replaces the site
    assert "new/index.html" in snapshot(tmp_path / "site") and not leftovers(tmp_path)


def test_a_dirty_build_is_left_to_mkdocs(emulator: EmulatorServer, tmp_path: Path) -> None:
    """``--dirty`` cleans nothing, so nothing is set aside; a failed dirty build leaves the old pages."""
    config, before = first_good_build(emulator, tmp_path)
    needs_a_create(tmp_path)
    emulator.set_faults(rate=1.0, status=503)
    with pytest.raises(Abort):
        build(load_config(str(config)), dirty=True)
    after = snapshot(tmp_path / "site")
    assert {k: v for k, v in after.items() if k in before} == before
    assert not leftovers(tmp_path)


# --------------------------------------------------------------------------- interrupted builds


def start_cli_build(config: Path, root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "-f", str(config)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_provisioning(emulator: EmulatorServer, proc: subprocess.Popen[str]) -> None:
    """Until the build's create hangs in the emulator: past MkDocs' clean, writing pages."""
    while not emulator.stats()["faults_injected"].get("hang"):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_an_interrupted_build_gives_the_site_back(emulator: EmulatorServer, tmp_path: Path, how: str) -> None:
    config, before = first_good_build(emulator, tmp_path)
    needs_a_create(tmp_path)
    emulator.set_faults(sequence=["hang"], hang=30, routes=["POST /workspaces"])
    proc = start_cli_build(config, tmp_path)
    wait_until_provisioning(emulator, proc)
    site = tmp_path / "site"
    # the old site is set aside; the pages are being written, the one with the new embed waits for it
    assert "new/index.html" not in snapshot(site) and snapshot(site) != before
    assert leftovers(tmp_path) == [".site.sphere-docs-kept"]
    proc.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode != 0
    assert_no_leak([out, err])
    if how == "ctrl-c":  # the process put it back on its way out
        assert snapshot(site) == before and not leftovers(tmp_path)
        return
    assert leftovers(tmp_path) == [".site.sphere-docs-kept"]  # nothing ran after kill -9
    # The next build recovers the kept site first; with the API down it fails, and the
    # previous good site is what is left.
    emulator.set_faults(rate=1.0, status=503)
    with pytest.raises(Abort):
        run_build(config)
    assert snapshot(site) == before and not leftovers(tmp_path)
    # and a build that succeeds replaces it, leaving nothing behind
    emulator.set_faults()
    run_build(config)
    assert "new/index.html" in snapshot(site) and not leftovers(tmp_path)


def test_the_command_line_build_is_protected_too(emulator: EmulatorServer, tmp_path: Path) -> None:
    """``mkdocs build`` (the CLI path, which also runs ``on_startup``) keeps the site the same way."""
    config, before = first_good_build(emulator, tmp_path)
    needs_a_create(tmp_path)
    emulator.stop()
    proc = start_cli_build(config, tmp_path)
    out, err = proc.communicate()
    assert proc.returncode != 0
    assert "sphere-workspaces: new.md:3: cannot create a workspace" in err
    assert snapshot(tmp_path / "site") == before and not leftovers(tmp_path)
    assert_no_leak([out, err])


# --------------------------------------------------------------------------- every interrupted step


def old_site(site: Path) -> dict[str, bytes | None]:
    (site / "lessons").mkdir(parents=True)
    (site / "index.html").write_text("<p>old home</p>")
    (site / "lessons" / "one.html").write_text("<p>old lesson</p>")
    (site / "sphere-workspaces.json").write_text("{}")
    (site / ".nojekyll").write_text("")
    return snapshot(site)


@pytest.mark.parametrize("step", ["saving", "kept", "restoring", "trash"])
def test_recovery_from_an_interruption_at_each_step(tmp_path: Path, step: str) -> None:
    """Lay out on disk what an interruption at each step leaves; the next build's recover()
    brings back exactly the previous site (its hidden entries never moved)."""
    from sphere_docs.pipeline.keep_site import SiteKeeper

    site = tmp_path / "site"
    before = old_site(site)
    keeper = SiteKeeper(site, logging.getLogger("test"))
    folder = keeper.folder(step)
    folder.mkdir()
    if step == "saving":  # killed while setting aside: some entries moved, some not
        os.rename(site / "lessons", folder / "lessons")
    elif step in ("kept", "restoring"):
        for name in ("lessons", "index.html", "sphere-workspaces.json"):
            os.rename(site / name, folder / name)
        if step == "kept":  # killed while building: a partial new site
            (site / "index.html").write_text("<p>half a new home</p>")
            (site / "new").mkdir()
            (site / "new" / "index.html").write_text("partial")
        else:  # killed while moving back: one entry already back
            os.rename(folder / "index.html", site / "index.html")
    else:  # killed while dropping a kept site after a success: the new site is complete
        (folder / "old.html").write_text("old")
        before = snapshot(site)
    keeper.recover()
    assert snapshot(site) == before
    assert not leftovers(tmp_path)


def test_a_stale_keeper_restores_nothing_after_a_later_build_committed(tmp_path: Path) -> None:
    """A build interrupted in-process leaves its keeper's exit hook armed; if a later build of the
    same site recovered and succeeded meanwhile, that hook must not touch the new site."""
    from sphere_docs.pipeline.keep_site import SiteKeeper

    site = tmp_path / "site"
    old_site(site)
    stale = SiteKeeper(site, logging.getLogger("test"))
    assert stale.save() and stale.kept
    later = SiteKeeper(site, logging.getLogger("test"))
    assert later.save()  # recovers the stale keeper's folder, then sets it aside again
    (site / "index.html").write_text("<p>new home</p>")
    later.commit()
    after = snapshot(site)
    stale.restore()  # what its exit hook would do
    assert snapshot(site) == after and not leftovers(tmp_path)


def test_an_interrupted_first_build_leaves_no_pages_and_says_so(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A first build sets aside an empty site; killed while writing pages, the next build removes
    what it wrote and says that, not that it puts a previous site back (there was none)."""
    from sphere_docs.pipeline.keep_site import SiteKeeper

    site = tmp_path / "site"
    interrupted = SiteKeeper(site, logging.getLogger("test"))
    assert interrupted.save()  # no site yet: an empty one is kept
    (site / "lesson").mkdir(parents=True)
    (site / "lesson" / "index.html").write_text("<p>half a lesson</p>")  # then kill -9:
    interrupted._unregister()  # a killed process runs no exit hook
    with caplog.at_level(logging.INFO, logger="test"):
        SiteKeeper(site, logging.getLogger("test")).recover()
    assert snapshot(site) == {} and not leftovers(tmp_path)
    said = caplog.text
    assert "interrupted before it finished; removing the pages it wrote" in said
    assert "putting back" not in said
