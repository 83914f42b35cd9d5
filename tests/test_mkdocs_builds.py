"""The ``sphere-workspaces`` plugin in real ``mkdocs build`` runs against the emulator.

Builds go through MkDocs' own API (``load_config`` + ``commands.build.build``)
or its CLI in a subprocess (``--strict``, two builds at once, ``mkdocs serve``);
the Containers API is the emulator on a loopback port.  Nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import WorkspaceSpec
from sphere_docs.services.emulator import EmulatorServer

P = "eef024c1d14f46319517a65edafb5ee3"
LAZY = "http://127.0.0.1:8124/workspaces"
DEMO = Path(__file__).resolve().parent.parent / "mkdocs_demo"
LOADER = '<script id="sphere-docs-loader">'
PLUGIN_LOGGER = "mkdocs.plugins.sphere_workspaces"

PAGES = {
    "index.md": "# Home\n\nNo workspace on this page.\n",
    "lessons/one.md": (
        "---\ntitle: One\n---\n# Lesson one\n\nProse.\n\n"
        f"```{{sphere-workspace}} {P}\n:height: 400px\n\nFirst *exercise*.\n```\n\n"
        f"!!! note\n    ```{{sphere-workspace}} {P}\n    :name: in-note\n    ```\n"
    ),
    "lessons/two.md": (
        "# Lesson two\n\n"
        f'=== "Tab"\n\n    ```{{sphere-workspace}} {P}\n    :features: fullscreen\n    ```\n\n'
        f"```{{sphere-workspace}} {P}\n:mode: lazy\n:name: later\n```\n"
    ),
    "examples.md": (
        "# Syntax examples only\n\n"
        f"````md\n```{{sphere-workspace}} {P}\n:height: 400px\n```\n````\n\n"
        f"    ```{{sphere-workspace}} {P}\n    ```\n\n"
        f"Inline: `` ```{{sphere-workspace}} {P}``` ``\n\n"
        f"<!--\n```{{sphere-workspace}} {P}\n```\n-->\n"
    ),
}
EMBED_PAGES = {"lessons/one.md": "lessons/one/index.html", "lessons/two.md": "lessons/two/index.html"}
BUILD_EMBEDS = 3  # one.md: 2, two.md: 1 (its second embed is lazy)


# --------------------------------------------------------------------------- helpers


def make_site(
    root: Path,
    plugin: dict[str, Any],
    pages: dict[str, str] | None = None,
    *,
    theme: str = "mkdocs",
    name: str = "mkdocs.yml",
    site_dir: str = "site",
) -> Path:
    for rel, text in (PAGES if pages is None else pages).items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = {
        "site_name": "Test course",
        "theme": {"name": theme},
        "docs_dir": "docs",
        "site_dir": site_dir,
        "markdown_extensions": ["admonition", "pymdownx.superfences", {"pymdownx.tabbed": {"alternate_style": True}}],
        "plugins": ["search", {"sphere-workspaces": {"cache": ".cache", **plugin}}],
    }
    path = root / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_build(config_file: Path, **overrides: Any) -> None:
    build(load_config(str(config_file), **overrides))


def html_files(site: Path) -> dict[str, str]:
    return {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8") for p in site.rglob("*.html")}


def loader_right_after_body(page: str) -> bool:
    m = re.search(r"<body\b[^>]*>", page)
    return m is not None and page[m.end():].startswith(LOADER)


def workspace_ids(page: str) -> list[str]:
    return re.findall(r'data-workspace="([0-9a-f]{32})"', page)


def live(emulator: EmulatorServer, ids: list[str]) -> bool:
    client = ContainersClient(f"{emulator.url}/api/v1", SECRET_TOKEN)
    try:
        return all(client.get_workspace(i).is_live for i in ids)
    finally:
        client.close()


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


@pytest.fixture
def dead_endpoint(access_token: str) -> str:
    """A loopback URL where nothing listens any more."""
    with EmulatorServer(token=access_token, start_delay=0) as server:
        url = server.url
    return url


# --------------------------------------------------------------------------- a real build


def test_build_mode_site(emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY})
    run_build(config)
    site = tmp_path / "site"
    pages = html_files(site)

    for rel, page in pages.items():
        if rel in EMBED_PAGES.values():
            assert page.count(LOADER) == 1, rel
            assert loader_right_after_body(page), rel
        else:
            assert LOADER not in page and "sphere-docs-css" not in page, rel

    one, two = pages["lessons/one/index.html"], pages["lessons/two/index.html"]
    ids = workspace_ids(one) + workspace_ids(two)
    assert len(ids) == BUILD_EMBEDS == len(set(ids))
    assert live(emulator, ids)
    assert emulator.count("POST /workspaces") == BUILD_EMBEDS
    assert '<div class="sphere-workspace__caption"><p>First <em>exercise</em>.</p></div>' in one
    assert f'data-id="{default_name("lessons/one.md", WorkspaceSpec(P))}"' in one
    assert 'data-id="in-note"' in one and 'data-features="fullscreenmode"' in two

    # the lazy embed: no workspace id, the activation script only where needed
    lazy = re.search(r'<div class="sphere-workspace sphere-workspace--lazy"[^>]*>', two)
    assert lazy is not None and "data-workspace" not in lazy.group(0)
    assert 'data-page="lessons/two.md"' in lazy.group(0) and 'data-name="later"' in lazy.group(0)
    assert '<script id="sphere-docs-lazy-js">' in two and "sphere-docs-lazy-js" not in one

    # syntax examples stay examples
    examples = pages["examples/index.html"]
    assert "sphere-workspace__frame" not in examples and examples.count("{sphere-workspace}") == 4

    manifest = json.loads((site / "sphere-workspaces.json").read_text())
    key = WorkspaceSpec(P).creation_key()  # height and features are display options
    assert manifest == {
        "version": 1,
        "pages": {
            "lessons/one.md": [
                {"project_id": P, "mode": "build", "name": default_name("lessons/one.md", WorkspaceSpec(P)),
                 "creation_key": key, "workspace_id": ids[0]},
                {"project_id": P, "mode": "build", "name": "in-note", "creation_key": key, "workspace_id": ids[1]},
            ],
            "lessons/two.md": [
                {"project_id": P, "mode": "build", "name": default_name("lessons/two.md", WorkspaceSpec(P)),
                 "creation_key": key, "workspace_id": ids[2]},
                {"project_id": P, "mode": "lazy", "name": "later"},
            ],
        },
        "projects": [P],
    }
    assert_no_leak(messages(caplog), [tmp_path])


def test_lazy_only_site_needs_no_token(emulator: EmulatorServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "mode": "lazy"})
    run_build(config)
    pages = html_files(tmp_path / "site")
    assert all(not workspace_ids(p) for p in pages.values())
    assert pages["lessons/one/index.html"].count('data-sphere-mode="lazy"') == 2
    assert emulator.stats()["total_requests"] == 0


def test_lazy_only_site_needs_no_endpoint_only_an_sdk_host(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    config = make_site(tmp_path, {"sdk_host": "12345678.containers.sphere-engine.com",
                                  "lazy_endpoint": LAZY, "mode": "lazy"})
    run_build(config, strict=True)
    page = html_files(tmp_path / "site")["lessons/one/index.html"]
    assert page.count('data-sphere-mode="lazy"') == 2 and loader_right_after_body(page)
    assert "12345678.containers.sphere-engine.com" in page


def test_lazy_only_site_without_an_sdk_host_names_the_fix(tmp_path: Path, monkeypatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    config = make_site(tmp_path, {"lazy_endpoint": LAZY, "mode": "lazy"})
    with pytest.raises(Abort):
        run_build(config)
    assert ("sphere-workspaces: missing setting 'sdk_host'; expected the host the Sphere Engine SDK "
            "loader comes from (your customer host, such as 12345678.containers.sphere-engine.com), "
            "or set 'endpoint' and the SDK host follows it") in messages(caplog, logging.ERROR)


# --------------------------------------------------------------------------- the ledger across rebuilds


def test_rebuilds_reuse_workspaces(emulator: EmulatorServer, tmp_path: Path) -> None:
    # trust_checked 0: every rebuild checks (the trust window is tested in test_trust_window.py)
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "trust_checked": 0})
    run_build(config)
    first = workspace_ids((tmp_path / "site/lessons/one/index.html").read_text())
    assert emulator.count("POST /workspaces") == BUILD_EMBEDS

    emulator.reset_stats()
    run_build(config)  # warm ledger: every workspace is checked, none created
    assert emulator.count("POST /workspaces") == 0
    assert emulator.count("GET /workspaces/{id}") == BUILD_EMBEDS
    assert workspace_ids((tmp_path / "site/lessons/one/index.html").read_text()) == first

    one = tmp_path / "docs/lessons/one.md"
    one.write_text(one.read_text().replace("Prose.", "Much longer prose.\n\nAnd a second paragraph."))
    emulator.reset_stats()
    run_build(config)  # prose edit (and the embed moved down a few lines)
    assert emulator.count("POST /workspaces") == 0
    assert workspace_ids((tmp_path / "site/lessons/one/index.html").read_text()) == first

    one.write_text(one.read_text().replace(":height: 400px", ":height: 500px"))
    emulator.reset_stats()
    run_build(config)  # a display option: same workspace
    assert emulator.count("POST /workspaces") == 0

    one.write_text(one.read_text().replace(":height: 500px", ":height: 500px\n:inactivity-timeout: 30"))
    emulator.reset_stats()
    run_build(config)  # a creation option: exactly one new workspace
    assert emulator.count("POST /workspaces") == 1
    now = workspace_ids((tmp_path / "site/lessons/one/index.html").read_text())
    assert now[0] != first[0] and now[1] == first[1]


def test_dirty_build_keeps_the_manifest_of_pages_it_did_not_render(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY})
    run_build(config)
    manifest = tmp_path / "site/sphere-workspaces.json"
    before = json.loads(manifest.read_text())
    two = tmp_path / "docs/lessons/two.md"
    time.sleep(0.01)  # a newer mtime than the built page: MkDocs' "modified" test
    two.write_text(two.read_text().replace(":name: later", ":name: later-renamed"))
    os.utime(two, None)
    emulator.reset_stats()
    build(load_config(str(config)), dirty=True)
    after = json.loads(manifest.read_text())
    assert after["pages"]["lessons/one.md"] == before["pages"]["lessons/one.md"]  # not re-rendered, kept
    assert [e["name"] for e in after["pages"]["lessons/two.md"]] == [default_name("lessons/two.md", WorkspaceSpec(P)), "later-renamed"]
    assert emulator.count("POST /workspaces") == 0


def test_two_builds_at_once_share_one_ledger(emulator: EmulatorServer, tmp_path: Path) -> None:
    plugin = {"endpoint": emulator.url, "lazy_endpoint": LAZY}
    configs = [make_site(tmp_path, plugin, name=f"mkdocs-{n}.yml", site_dir=f"site-{n}") for n in "ab"]
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN, "NO_MKDOCS_2_WARNING": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(c)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in configs
    ]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    ledger = json.loads((tmp_path / ".cache/ledger.json").read_text())
    entries = ledger["entries"]
    keys = {f"{e['page']}#{e['name']}" for e in entries.values()}
    assert keys == {
        f"lessons/one.md#{default_name('lessons/one.md', WorkspaceSpec(P))}", "lessons/one.md#in-note",
        f"lessons/two.md#{default_name('lessons/two.md', WorkspaceSpec(P))}",
    }
    recorded = sorted(e["workspace_id"] for e in entries.values())
    for n in "ab":
        site = tmp_path / f"site-{n}"
        built = sorted(workspace_ids((site / "lessons/one/index.html").read_text())
                       + workspace_ids((site / "lessons/two/index.html").read_text()))
        assert built == recorded, n
    assert live(emulator, recorded)
    assert_no_leak([o for pair in outputs for o in pair], [tmp_path])


# --------------------------------------------------------------------------- faults


def test_transient_faults_are_survived(emulator: EmulatorServer, tmp_path: Path) -> None:
    emulator.set_faults(sequence=[503, 429], retry_after=0)
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "concurrency": 1})
    run_build(config)
    ids = workspace_ids((tmp_path / "site/lessons/one/index.html").read_text())
    assert len(ids) == 2 and live(emulator, ids)
    assert emulator.stats()["faults_injected"]  # the faults really happened
    assert emulator.count("POST /workspaces") == BUILD_EMBEDS + 2


def test_dead_api_with_on_error_fail(dead_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_site(tmp_path, {"endpoint": dead_endpoint, "lazy_endpoint": LAZY, "retries": 0, "timeout": 2})
    with pytest.raises(Abort):
        run_build(config)
    errors = messages(caplog, logging.ERROR)
    # provisioning is concurrent: whichever embed fails first is named, with its page and line
    expected = re.compile(
        r"sphere-workspaces: (lessons/one\.md:8|lessons/one\.md:15|lessons/two\.md:5): cannot create a "
        rf"workspace for project {P}: could not connect: Connection refused "
        r"\(and 2 more embed\(s\) not provisioned\)"
    )
    assert len([m for m in errors if expected.fullmatch(m)]) == 1, errors  # said once, by MkDocs
    site = tmp_path / "site"
    assert not site.exists() or not list(site.rglob("*.html"))  # no page written at all
    ledger = tmp_path / ".cache/ledger.json"
    assert not ledger.exists() or json.loads(ledger.read_text())["entries"] == {}  # nothing half-written
    assert_no_leak(messages(caplog), [tmp_path])


def test_dead_api_with_on_error_placeholder(dead_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_site(tmp_path, {"endpoint": dead_endpoint, "lazy_endpoint": LAZY, "retries": 0,
                                  "timeout": 2, "on_error": "placeholder"})
    run_build(config)
    one = (tmp_path / "site/lessons/one/index.html").read_text()
    assert one.count('data-sphere-mode="unavailable"') == 2 and not workspace_ids(one)
    assert "<p>First <em>exercise</em>.</p>" in one  # the caption stays
    assert loader_right_after_body(one)
    warnings = [r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == BUILD_EMBEDS
    assert any(w.startswith("sphere-workspaces: lessons/one.md:8: workspace for project") for w in warnings)
    assert_no_leak(messages(caplog), [tmp_path])


def test_dead_api_with_on_error_lazy(dead_endpoint: str, tmp_path: Path) -> None:
    config = make_site(tmp_path, {"endpoint": dead_endpoint, "lazy_endpoint": LAZY, "retries": 0,
                                  "timeout": 2, "on_error": "lazy"})
    run_build(config)
    one = (tmp_path / "site/lessons/one/index.html").read_text()
    assert one.count('data-sphere-mode="lazy"') == 2 and not workspace_ids(one)
    assert '<script id="sphere-docs-lazy-js">' in one and loader_right_after_body(one)


def test_strict_build_fails_on_placeholder_warnings(dead_endpoint: str, tmp_path: Path) -> None:
    config = make_site(tmp_path, {"endpoint": dead_endpoint, "lazy_endpoint": LAZY, "retries": 0,
                                  "timeout": 2, "on_error": "placeholder"})
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    strict = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert strict.returncode != 0
    assert f"Aborted with {BUILD_EMBEDS} warnings in strict mode!" in strict.stdout + strict.stderr
    relaxed = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config)],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert relaxed.returncode == 0, relaxed.stderr
    assert_no_leak([strict.stderr, strict.stdout, relaxed.stderr])


# --------------------------------------------------------------------------- bad input and bad settings


def test_bad_directives_fail_the_build_with_every_message(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pages = {
        "index.md": "# Home\n",
        "a.md": f"---\ntitle: A\n---\n\n# A\n\n```{{sphere-workspace}} {P}\n:heigth: 600px\n```\n",
        "b.md": "# B\n\n- item\n\n    ```{sphere-workspace} 1234\n    ```\n",
    }
    config = make_site(tmp_path, {"endpoint": emulator.url}, pages)
    with pytest.raises(Abort):
        run_build(config)
    a = ("a.md:8: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: mode, height, width, features, "
         "launch, token-required, inactivity-timeout, retention-stopped, retention-total, auto-resume, name, class")
    b = "b.md:5: sphere-workspace: invalid project id '1234'; expected a project id of 32 hexadecimal characters"
    ours = [r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER and r.levelno == logging.ERROR]
    assert ours == [a, b]
    # then MkDocs logs the PluginError's text as the build's error: a count, not the list again
    build_errors = [r.getMessage() for r in caplog.records if r.name == "mkdocs.commands.build"]
    assert build_errors == ["sphere-workspaces: 2 problems in embeds (listed above); nothing was provisioned"]
    assert emulator.stats()["total_requests"] == 0  # nothing provisioned for a broken build
    assert not (tmp_path / "site/a/index.html").exists()


@pytest.mark.parametrize(("front", "newline", "bom"), [
    ("", "\n", b""),
    ("", "\r\n", b""),
    ("", "\n", b"\xef\xbb\xbf"),
    ("---\ntitle: Ünïcode\n---\n", "\n", b""),
    ("---\ntitle: Ünïcode\n---\n", "\r\n", b""),
    ("---\ntitle: Ünïcode\n---\n", "\r\n", b"\xef\xbb\xbf"),
])
def test_error_lines_count_front_matter_whatever_the_file_encoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, front: str, newline: str, bom: bytes
) -> None:
    body = f"# Ünïcode lesson\n\nSome text.\n\n```{{sphere-workspace}} {P}\n:heigth: 600px\n```\n"
    config = make_site(tmp_path, {"mode": "lazy", "lazy_endpoint": "https://lazy.example.org/w"}, {"index.md": "x"})
    (tmp_path / "docs/index.md").write_bytes(bom + (front + body).replace("\n", newline).encode("utf-8"))
    with pytest.raises(Abort):
        run_build(config)
    line = 6 + front.count("\n")  # the option's own line
    ours = [r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER and r.levelno == logging.ERROR]
    assert [m.split(": sphere-workspace:")[0] for m in ours] == [f"index.md:{line}"]


def test_missing_token_names_the_variable(emulator: EmulatorServer, tmp_path: Path, monkeypatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY, "token_env": "MY_SE_TOKEN"})
    with pytest.raises(Abort):
        run_build(config)
    expected = (
        "sphere-workspaces: no access token: set the environment variable MY_SE_TOKEN "
        "(export MY_SE_TOKEN=...) to your Sphere Engine API token; build-mode embeds need it"
    )
    assert expected in messages(caplog, logging.ERROR)


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ({"mode": "fast"}, "sphere-workspaces: invalid value 'fast' for setting 'mode'; expected build | lazy"),
        ({"concurrency": 0}, "sphere-workspaces: invalid value 0 for setting 'concurrency'; expected a whole number from 1 to 64"),
        ({"on_error": "lazy"}, "sphere-workspaces: missing setting 'lazy_endpoint'; expected the URL of the lazy "
                               "endpoint, because 'on_error' is 'lazy' (e.g. https://docs.example.com/sphere/workspaces)"),
        ({"endpoint": "ftp://x"}, "sphere-workspaces: invalid value 'ftp://x' for setting 'endpoint'; expected a "
                                  "customer host such as 12345678.containers.sphere-engine.com or a URL such as "
                                  "http://127.0.0.1:8123"),
    ],
    ids=["mode", "concurrency", "on_error-lazy", "endpoint"],
)
def test_bad_settings_are_configuration_errors(tmp_path: Path, plugin: dict[str, Any], message: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    config = make_site(tmp_path, plugin, {"index.md": "# Home\n"})
    with pytest.raises(Abort):
        run_build(config)
    assert any(message in m for m in messages(caplog, logging.ERROR)), messages(caplog)


def test_build_embeds_without_endpoint(tmp_path: Path, access_token: str, caplog: pytest.LogCaptureFixture) -> None:
    config = make_site(tmp_path, {"lazy_endpoint": LAZY})
    with pytest.raises(Abort):
        run_build(config)
    assert ("sphere-workspaces: missing setting 'endpoint'; expected a customer host such as "
            "12345678.containers.sphere-engine.com") in messages(caplog, logging.ERROR)


# --------------------------------------------------------------------------- mkdocs serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def wait_for(predicate, proc: subprocess.Popen[str], what: str, patience: float = 120.0) -> Any:
    """Poll until ``predicate()`` is truthy; a generous deadline only guards against a hung server."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"mkdocs serve exited while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"mkdocs serve: gave up waiting for {what}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", "serve", "-a", f"127.0.0.1:{port}", "-f", str(config)],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )
        procs.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_mkdocs_serve_rebuilds_reuse_workspaces(emulator: EmulatorServer, tmp_path: Path, serve) -> None:
    config = make_site(tmp_path, {"endpoint": emulator.url, "lazy_endpoint": LAZY})
    proc, url = serve(config)
    page = wait_for(lambda: fetch(f"{url}/lessons/one/"), proc, "the first build")
    first = workspace_ids(page)
    assert len(first) == 2 and loader_right_after_body(page)
    assert emulator.count("POST /workspaces") == BUILD_EMBEDS

    one = tmp_path / "docs/lessons/one.md"
    one.write_text(one.read_text().replace("Prose.", "Edited prose, served again."))
    page = wait_for(lambda: (p := fetch(f"{url}/lessons/one/")) and "Edited prose" in p and p, proc, "the rebuild")
    assert workspace_ids(page) == first
    assert emulator.count("POST /workspaces") == BUILD_EMBEDS  # the rebuild created nothing


# --------------------------------------------------------------------------- the demo site


@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["mkdocs.yml", "mkdocs-material.yml"])
def test_demo_builds_strict_against_the_emulator(emulator: EmulatorServer, tmp_path: Path, config_name: str) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "SPHERE_DEMO_ENDPOINT": emulator.url, "SPHERE_DEMO_CACHE": str(tmp_path / "cache"),
           "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DEMO / config_name), "-d", str(site)],
        env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    pages = html_files(site)
    with_embeds = {rel for rel, page in pages.items() if "sphere-workspace__frame" in page}
    assert with_embeds == {
        "lessons/01-first-workspace/index.html", "lessons/02-lazy/index.html",
        "lessons/03-sizes-fullscreen/index.html", "lessons/04-two-workspaces/index.html",
        "lessons/05-admonitions-tabs/index.html", "reference/options/index.html",
    }
    for rel, page in pages.items():
        assert page.count(LOADER) == (1 if rel in with_embeds else 0), rel
        if rel in with_embeds:
            assert loader_right_after_body(page), rel
    ids = [i for page in pages.values() for i in workspace_ids(page)]
    assert ids and live(emulator, ids)
    assert 'data-features="fullscreenmode"' in pages["lessons/03-sizes-fullscreen/index.html"]
    assert workspace_ids(pages["lessons/04-two-workspaces/index.html"]).__len__() == 2
    assert "data-sphere-lazy" in pages["lessons/02-lazy/index.html"]
    assert LOADER not in pages["index.html"]
    reference = pages["reference/options/index.html"] + pages["reference/settings/index.html"]
    from sphere_docs.core.options import OPTIONS
    from sphere_docs.core.settings import SETTINGS

    for name in [*OPTIONS, *SETTINGS]:
        assert f"<code>{name}</code>" in reference, name
    assert_no_leak([result.stdout, result.stderr], [site])


# --------------------------------------------------------------------------- the loader injection shortcut


# --------------------------------------------------------------------------- in a real browser


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["mkdocs.yml", "mkdocs-material.yml"])
def test_demo_workspaces_render_in_chromium(emulator: EmulatorServer, tmp_path: Path, browser, artifacts_dir: Path,
                                            config_name: str) -> None:
    """The built demo, opened in Chromium: the loader fetches the emulated SDK, which fills every div."""
    site = tmp_path / "site"
    env = {**os.environ, "SPHERE_DEMO_ENDPOINT": emulator.url, "SPHERE_DEMO_CACHE": str(tmp_path / "cache"),
           "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(DEMO / config_name), "-d", str(site)],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        for lesson, expected in (("04-two-workspaces", 2), ("05-admonitions-tabs", 2)):
            page.goto((site / "lessons" / lesson / "index.html").as_uri())
            frames = page.locator('.se-workspace[data-se-state="ready"] iframe')
            frames.first.wait_for(state="attached")
            page.wait_for_function(f"document.querySelectorAll('.se-workspace[data-se-state=\"ready\"]').length >= {expected}")
            assert page.locator('[data-se-state="refused"]').count() == 0
            assert page.evaluate("document.querySelectorAll('#sphere-docs-loader').length") == 1
            page.screenshot(path=str(artifacts_dir / f"mkdocs-{config_name.split('.')[0]}-{lesson}.png"), full_page=True)
    finally:
        page.close()
