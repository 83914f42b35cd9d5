"""Shared fixtures: a real emulator on a loopback port, the secret token, leak scans.

Every test that needs the Containers API talks to ``sphere_docs.services.emulator``
served on 127.0.0.1 with port 0; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

# sphinx.testing's make_app / app fixtures for the Sphinx tests.
pytest_plugins = ["sphinx.testing.fixtures"]

#: A token nobody would type by accident, so a scan for it cannot false-positive.
SECRET_TOKEN = "se-test-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0-DO-NOT-LEAK"
TOKEN_ENV = "SPHERE_ENGINE_ACCESS_TOKEN"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def _secrets_registered_by_this_test_only() -> Iterator[None]:
    """Secrets a test registers (``redact.register_secret``) end with it.

    The registry is process-wide on purpose (one token per build or endpoint process),
    and fragments of 8+ characters of a registered secret are masked: a test's
    ``wrong-token-0123456789abcdef`` must not mask project ids in later tests.
    """
    from sphere_docs.core import redact

    saved = set(redact._secrets)
    yield
    redact._secrets.clear()
    redact._secrets.update(saved)


@pytest.fixture
def make_app(make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``sphinx.testing``'s ``make_app``, alike on every Sphinx we support.

    * ``app.logged``: every warning and error the app emitted, as data
      (``sphinx_fixtures.Logged``: location, level, sentence, type, subtype), so tests
      need not read Sphinx's printed form, which differs between versions.
    * ``app.status`` / ``app.warning`` (the captured streams) exist from Sphinx 7.3;
      on 7.2 they are ``_status`` / ``_warning``, so they are given both names.
    * ``app.cleanup()`` runs at most once per app. ``build()`` cleans up right after
      building and the fixture cleans up every app again at teardown; on Sphinx 7.2 a
      second cleanup restores a registry dict that later apps registered into, so the
      next test's apps would warn "directive ... is already registered".
    """

    import sphinx.util.logging
    from sphinx_fixtures import capturing

    monkeypatch.setattr(sphinx.util.logging, "setup", capturing(sphinx.util.logging.setup))

    def make(*args: Any, **kwargs: Any) -> Any:
        app = make_app(*args, **kwargs)
        if not hasattr(app, "warning"):
            app.status, app.warning = app._status, app._warning
        cleanup, done = app.cleanup, []

        def cleanup_once(*a: Any, **kw: Any) -> None:
            if not done:
                done.append(True)
                cleanup(*a, **kw)

        app.cleanup = cleanup_once
        return app

    return make


@pytest.fixture
def access_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret token, exported the only way the package reads it: the environment."""
    monkeypatch.setenv(TOKEN_ENV, SECRET_TOKEN)
    return SECRET_TOKEN


@pytest.fixture
def emulator(access_token: str) -> Iterator:
    """A fresh emulator on a free loopback port, accepting only ``access_token``.

    Workspaces become running immediately (``start_delay=0``) so builds and
    browsers see a usable workspace without waiting.
    """
    from sphere_docs.services.emulator import EmulatorServer

    with EmulatorServer(token=access_token, start_delay=0.0) as server:
        yield server


#: seconds on the ``emulator_clocked`` fixture's clock from starting to running
START_DELAY = 5.0


@pytest.fixture
def clock() -> Any:
    """A clock the test moves by hand (``advance``), for the emulator's workspace lifecycle."""
    from sphere_docs.services.emulator import ManualClock

    return ManualClock()


@pytest.fixture
def emulator_clocked(access_token: str, clock: Any) -> Iterator:
    """An emulator on the test's clock, where a (re)started workspace runs START_DELAY seconds later."""
    from sphere_docs.services.emulator import EmulatorServer

    with EmulatorServer(token=access_token, start_delay=START_DELAY, clock=clock) as server:
        yield server


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    raw = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


def assert_no_leak(texts: Iterable[str] = (), roots: Iterable[Path] = (), token: str = SECRET_TOKEN) -> None:
    """Fail if the token appears in any of ``texts`` or any file under ``roots``."""
    for text in texts:
        assert token not in text, "access token leaked into output text"
    for root in roots:
        leaked = files_containing(Path(root), token)
        assert not leaked, f"access token leaked into {leaked}"


#: What every real Zensical release requires of the Markdown stack it shares with us.
ZENSICAL_NEEDS = {"markdown": (3, 7), "pymdown-extensions": (10, 15)}


def zensical_command() -> str:
    """The ``zensical`` command (a test dependency), or a skip where it cannot be installed.

    That is the oldest CI environment: the floors of Markdown and pymdown-extensions are
    below what Zensical requires, so pip can only install its empty placeholder release
    there; Zensical runs in the newest environment and the developer's.
    """
    import sysconfig
    from importlib.metadata import version

    # this interpreter's own, not one found first on PATH (e.g. pyenv's shim of another Python)
    exe = shutil.which("zensical", path=sysconfig.get_path("scripts"))
    if exe is None:
        old = {name: version(name) for name, need in ZENSICAL_NEEDS.items()
               if tuple(int(p) for p in version(name).split(".")[:2]) < need}
        if old:
            pytest.skip("no Zensical release installs with " + ", ".join(f"{n} {v}" for n, v in old.items()))
    assert exe is not None, "zensical is a test dependency"
    return exe


def chromium_path() -> str:
    return os.environ.get("SPHERE_DOCS_CHROMIUM", "/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's Chromium driven by Playwright (its own browser download cannot work here)."""
    if not Path(chromium_path()).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {chromium_path()}: .ci/setup installs it")
        pytest.skip(f"Chromium not found at {chromium_path()} (run .ci/setup)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save screenshots for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
