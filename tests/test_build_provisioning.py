"""The provisioner and its ledger against the real emulator on a loopback port."""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.errors import SettingsError
from sphere_docs.core.manifest import ManifestError, read_manifest, write_manifest
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.pipeline.provision import (
    LEDGER_NAME,
    EmbedRequest,
    Ledger,
    LedgerError,
    Provisioner,
    ProvisionError,
    Resolution,
)
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

SECOND_PROJECT = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"
UNKNOWN_PROJECT = "f" * 32


# --------------------------------------------------------------------------- helpers


def site(url: str, tmp_path: Path, **kw) -> SiteSettings:
    # every recorded workspace is checked (the trust window is tested in test_trust_window.py)
    values = {"endpoint": url, "cache": str(tmp_path / "cache"), "retries": 2, "timeout": 3.0, "trust_checked": 0}
    if "lazy" in (kw.get("on_error"), kw.get("mode")):  # falling back to lazy needs the endpoint
        values["lazy_endpoint"] = "http://127.0.0.1:9/workspaces"
    values.update(kw)
    return SiteSettings.from_mapping(values, base_dir=tmp_path)


def embed(page: str, index: int = 0, project: str = DEMO_PROJECT_ID, line: int | None = None,
          **options: str) -> EmbedRequest:
    opts = {k.replace("_", "-"): v for k, v in options.items()}
    spec = parse_options(project, opts)
    spec = spec.with_name(default_name(page, spec, index))
    return EmbedRequest(page, spec, line)


def fast_client(url: str, session: requests.Session | None = None, **kw) -> ContainersClient:
    kw.setdefault("retries", 3)
    kw.setdefault("timeout", 3.0)
    return ContainersClient(url + "/api/v1", SECRET_TOKEN, backoff=0.01, session=session, **kw)


def ledger_of(settings: SiteSettings) -> dict:
    return json.loads((settings.cache_dir / LEDGER_NAME).read_text())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TimingSession(requests.Session):
    """A real session that notes when each request started and ended."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, float, float]] = []
        self._spans_lock = threading.Lock()

    def send(self, request, **kw):  # type: ignore[override]
        started = time.monotonic()
        try:
            return super().send(request, **kw)
        finally:
            with self._spans_lock:
                self.spans.append((request.method, started, time.monotonic()))


def max_overlap(spans: list[tuple[str, float, float]], method: str) -> int:
    events = sorted([(s, 1) for m, s, _ in spans if m == method]
                    + [(e, -1) for m, _, e in spans if m == method])
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


PAGES = [embed("index.md"), embed("lessons/one.md", 0, line=12), embed("lessons/one.md", 1, line=40)]


# --------------------------------------------------------------------------- reuse


def test_first_build_creates_and_second_reuses(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        first = prov.resolve(PAGES)
    assert emulator.count("POST /workspaces") == 3
    assert all(r.ok and r.created for r in first.values())
    assert set(first) == {r.key for r in PAGES}

    with Provisioner(settings) as prov:
        second = prov.resolve(PAGES)
    assert emulator.count("POST /workspaces") == 3  # zero new creates
    assert emulator.count("GET /workspaces/{id}") == 3  # each checked once
    assert {k: (r.workspace_id, r.workspace_token) for k, r in second.items()} == \
        {k: (r.workspace_id, r.workspace_token) for k, r in first.items()}
    assert not any(r.created for r in second.values())

    data = ledger_of(settings)
    assert data["version"] == 1 and len(data["entries"]) == 3
    entry = next(iter(data["entries"].values()))
    assert set(entry) >= {"endpoint", "project_id", "creation_key", "page", "name", "workspace_id",
                          "workspace_token", "created_at", "last_used_build"}
    assert_no_leak(roots=[settings.cache_dir])


def test_display_changes_reuse_and_a_creation_change_creates_one(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        before = prov.resolve(PAGES)
    # height / class / caption / line changes (prose edits move lines) are display-only
    edited = [embed("index.md", 0, line=99, height="400px", **{"class": "wide"}), *PAGES[1:]]
    with Provisioner(settings) as prov:
        after = prov.resolve(edited)
    assert emulator.count("POST /workspaces") == 3
    assert after[PAGES[0].key].workspace_id == before[PAGES[0].key].workspace_id
    # a creation option changes: exactly one new workspace
    changed = [embed("index.md", 0, inactivity_timeout="30"), *PAGES[1:]]
    with Provisioner(settings) as prov:
        third = prov.resolve(changed)
    assert emulator.count("POST /workspaces") == 4
    assert third[changed[0].key].created
    assert third[changed[0].key].workspace_id != before[PAGES[0].key].workspace_id
    assert emulator.app.workspace(third[changed[0].key].workspace_id)["inactivity_timeout"] == 30
    # the same with an author's name, which stays: still exactly one new workspace
    named = [EmbedRequest("index.md", changed[0].spec.with_name("mine"), 3), *PAGES[1:]]
    with Provisioner(settings) as prov:
        prov.resolve(named)
    renamed = [EmbedRequest("index.md", embed("index.md", 0, inactivity_timeout="45").spec.with_name("mine"), 3),
               *PAGES[1:]]
    with Provisioner(settings) as prov:
        fourth = prov.resolve(renamed)
    assert emulator.count("POST /workspaces") == 6 and fourth[renamed[0].key].created


def test_removed_workspace_is_recreated(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        first = prov.resolve(PAGES)
    gone = first[PAGES[1].key].workspace_id
    with fast_client(emulator.url) as client:
        client.remove(gone)
    with Provisioner(settings) as prov:
        second = prov.resolve(PAGES)
    assert emulator.count("POST /workspaces") == 4
    assert second[PAGES[1].key].created and second[PAGES[1].key].workspace_id != gone
    assert ledger_of(settings)["entries"][next(
        k for k in ledger_of(settings)["entries"] if k.endswith(PAGES[1].key))]["workspace_id"] \
        == second[PAGES[1].key].workspace_id


def test_stopped_without_auto_resume_is_replaced_and_removed(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    request = embed("index.md", auto_resume="false")
    with Provisioner(settings) as prov:
        old = prov.resolve([request])[request.key].workspace_id
    with fast_client(emulator.url) as client:
        client.stop(old)
    with Provisioner(settings) as prov:
        new = prov.resolve([request])[request.key]
    assert new.created and new.workspace_id != old
    assert emulator.app.workspace(old)["state"]["name"] == "removed"  # no stopped leftover


def test_stopped_with_auto_resume_is_reused(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        old = prov.resolve(PAGES[:1])[PAGES[0].key].workspace_id
    with fast_client(emulator.url) as client:
        client.stop(old)
    with Provisioner(settings) as prov:
        again = prov.resolve(PAGES[:1])[PAGES[0].key]
    assert again.workspace_id == old and not again.created
    assert emulator.count("POST /workspaces") == 1


def test_duplicates_in_one_build_resolve_once(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        result = prov.resolve([PAGES[0], PAGES[0], PAGES[1]])
    assert emulator.count("POST /workspaces") == 2
    assert len(result) == 2


def test_lazy_specs_need_no_api_and_no_token(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = site(f"http://127.0.0.1:{closed_port()}", tmp_path)
    lazy = embed("index.md", mode="lazy")
    with Provisioner(settings) as prov:
        result = prov.resolve([lazy])
        assert result[lazy.key] == Resolution(lazy, fallback="lazy", reason="lazy mode")
        with pytest.raises(SettingsError, match=TOKEN_ENV):
            prov.resolve([embed("index.md")])
    assert not (settings.cache_dir / LEDGER_NAME).exists()


def test_unnamed_spec_is_rejected(emulator, tmp_path):
    spec = parse_options(DEMO_PROJECT_ID, {})
    with Provisioner(site(emulator.url, tmp_path)) as prov, pytest.raises(ValueError, match="no name"):
        prov.resolve([EmbedRequest("index.md", spec, 3)])


# --------------------------------------------------------------------------- concurrency


def test_creates_overlap_up_to_the_concurrency(emulator, tmp_path):
    emulator.set_faults(latency=0.05)
    requests_ = [embed(f"page{i}.md") for i in range(20)]

    def peak(concurrency: int, cache: str) -> int:
        session = TimingSession()
        settings = site(emulator.url, tmp_path, concurrency=concurrency, cache=cache)
        with Provisioner(settings, client=fast_client(emulator.url, session, pool_size=concurrency)) as prov:
            result = prov.resolve(requests_)
        assert all(r.ok for r in result.values())
        assert len([s for s in session.spans if s[0] == "POST"]) == 20
        return max_overlap(session.spans, "POST")

    assert peak(1, "cache-seq") == 1
    parallel = peak(10, "cache-par")
    assert 3 <= parallel <= 10
    assert emulator.count("POST /workspaces") == 40


def test_checks_of_a_warm_ledger_overlap(emulator, tmp_path):
    settings = site(emulator.url, tmp_path, concurrency=8)
    requests_ = [embed(f"page{i}.md") for i in range(16)]
    with Provisioner(settings) as prov:
        prov.resolve(requests_)
    emulator.set_faults(latency=0.05)
    session = TimingSession()
    with Provisioner(settings, client=fast_client(emulator.url, session)) as prov:
        prov.resolve(requests_)
    assert emulator.count("POST /workspaces") == 16
    assert max_overlap(session.spans, "GET") >= 3


def test_progress_is_reported(emulator, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sphere_docs.pipeline.provision")
    seen: list[tuple[int, int]] = []
    requests_ = [embed(f"p{i}.md") for i in range(12)]
    with Provisioner(site(emulator.url, tmp_path), progress=lambda d, t: seen.append((d, t))) as prov:
        prov.resolve(requests_)
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert "sphere-workspaces: provisioning 12/12" in caplog.text
    assert "12 workspace(s) ready: 0 reused, 12 created" in caplog.text


WORKER = r"""
import json, sys, time
from pathlib import Path
from sphere_docs.core.options import parse_options
from sphere_docs.core.naming import default_name
from sphere_docs.pipeline.provision import EmbedRequest, Provisioner
from sphere_docs.core.settings import SiteSettings

url, cache, go, who = sys.argv[1:5]
pages = [f"shared{i}.md" for i in range(10)] + [f"{who}{i}.md" for i in range(5)]
reqs = [EmbedRequest(p, (s := parse_options("eef024c1d14f46319517a65edafb5ee3", {})).with_name(default_name(p, s)))
        for p in pages]
settings = SiteSettings.from_mapping({"endpoint": url, "cache": cache, "concurrency": 4})
while not Path(go).exists():
    time.sleep(0.005)
with Provisioner(settings, scope=who) as prov:
    result = prov.resolve(reqs)
print(json.dumps({k: r.workspace_id for k, r in result.items()}))
"""


def test_two_processes_on_one_ledger(emulator, tmp_path):
    emulator.set_faults(latency=0.03, jitter=0.03)
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, emulator.url, str(cache), str(go), who],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for who in ("alpha", "beta")]
    time.sleep(0.5)  # both interpreters up and waiting
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))

    data = json.loads((cache / LEDGER_NAME).read_text())
    by_key = {k.rsplit("|", 1)[1]: v["workspace_id"] for k, v in data["entries"].items()}
    assert len(data["entries"]) == 20  # 10 shared + 5 + 5: complete
    for output in outputs:  # both builds embed exactly what the ledger says
        assert output == {k: by_key[k] for k in output}
    # duplicates created in the race were removed: every live workspace is in the ledger
    with fast_client(emulator.url) as client:
        live = {w.id for w in client.iter_workspaces(states=[1, 2])}
    assert live == set(by_key.values())
    assert {b.split("|")[-1] for b in data["builds"]} == {"alpha", "beta"}
    assert emulator.count("POST /workspaces") >= 20  # (30 when both raced for every shared key)


LOOPER = r"""
import sys
from sphere_docs.core.options import parse_options
from sphere_docs.core.naming import default_name
from sphere_docs.pipeline.provision import EmbedRequest, Provisioner
from sphere_docs.core.settings import SiteSettings

url, cache = sys.argv[1:3]
settings = SiteSettings.from_mapping({"endpoint": url, "cache": cache})
n = 0
while True:
    reqs = [EmbedRequest(f"p{i}.md", parse_options("eef024c1d14f46319517a65edafb5ee3",
            {"inactivity-timeout": str(10 + (n + i) % 3)}).with_name(f"ws-p{i}"))
            for i in range(5)]
    with Provisioner(settings) as prov:
        prov.resolve(reqs)
    n += 1
    print(n, flush=True)
"""


def test_ledger_is_never_half_written(emulator, tmp_path):
    """A reader polling the ledger while builds write it (and one is killed) only sees whole files."""
    cache = tmp_path / "cache"
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN}
    procs = [subprocess.Popen([sys.executable, "-c", LOOPER, emulator.url, str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    try:
        ledger = cache / LEDGER_NAME
        versions: set[str] = set()
        for _ in range(2_000_000):  # until the writers have replaced the file many times
            try:
                text = ledger.read_text()
            except FileNotFoundError:
                continue
            data = json.loads(text)  # raises on a half-written file
            assert data["version"] == 1 and isinstance(data["entries"], dict)
            versions.add(text)
            if len(versions) >= 30:
                break
        assert len(versions) >= 30
        procs[0].send_signal(signal.SIGKILL)  # killed mid-way through whatever it was doing
        procs[0].wait(timeout=30)
        for _ in range(50):
            json.loads(ledger.read_text())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
    data = Ledger(cache).read()
    assert len(data["entries"]) >= 5
    assert all(len(e["workspace_id"]) == 32 for e in data["entries"].values())


def test_a_corrupt_ledger_stops_the_build_and_is_kept(emulator, tmp_path, caplog):
    """(Was: replaced with a fresh one, orphaning its workspaces.)  Now: a located error, nothing created."""
    settings = site(emulator.url, tmp_path)
    settings.cache_dir.mkdir(parents=True)
    damaged = b'{"version": 1, "entries": {'
    (settings.cache_dir / LEDGER_NAME).write_bytes(damaged)
    with Provisioner(settings) as prov, pytest.raises(LedgerError) as info:
        prov.resolve(PAGES[:1])
    message = str(info.value)
    assert message.startswith(f"sphere-workspaces: the ledger {settings.cache_dir / LEDGER_NAME} is damaged: "
                              "line 1, column 28: ")
    assert "move it aside to start a new ledger" in message
    assert "the workspaces it lists stay on your account until you remove them" in message
    assert emulator.count("POST /workspaces") == 0
    assert (settings.cache_dir / LEDGER_NAME).read_bytes() == damaged


# --------------------------------------------------------------------------- faults and on_error


def test_transient_503_and_429_are_survived(emulator, tmp_path):
    emulator.set_faults(sequence=[503, 429, 503, 429, 503], retry_after=0)
    settings = site(emulator.url, tmp_path, on_error="fail", concurrency=2)
    requests_ = [embed(f"p{i}.md") for i in range(5)]
    with Provisioner(settings, client=fast_client(emulator.url)) as prov:
        result = prov.resolve(requests_)
    assert all(r.ok for r in result.values())
    assert emulator.stats()["workspaces"]["total"] == 5  # retries created no duplicates
    assert emulator.count("POST /workspaces") == 10


def test_transient_faults_on_checks_are_survived(emulator, tmp_path):
    settings = site(emulator.url, tmp_path, on_error="fail")
    with Provisioner(settings, client=fast_client(emulator.url)) as prov:
        first = prov.resolve(PAGES)
    emulator.set_faults(sequence=[503, "reset", 502, 429], retry_after=0,
                        routes=["GET /workspaces/{id}"])
    session = requests.Session()
    session.headers["Connection"] = "close"
    with Provisioner(settings, client=fast_client(emulator.url, session)) as prov:
        second = prov.resolve(PAGES)
    assert {k: r.workspace_id for k, r in second.items()} == {k: r.workspace_id for k, r in first.items()}
    assert emulator.count("POST /workspaces") == 3


DEAD = {
    "refused": lambda em: f"http://127.0.0.1:{closed_port()}",
    "always 503": lambda em: (em.set_faults(rate=1.0, status=503), em.url)[1],
}


@pytest.mark.parametrize("dead", list(DEAD))
def test_dead_api_with_on_error_fail(emulator, tmp_path, dead, caplog):
    url = DEAD[dead](emulator)
    settings = site(url, tmp_path, on_error="fail")
    with Provisioner(settings, client=fast_client(url, retries=1)) as prov, \
            pytest.raises(ProvisionError) as info:
        prov.resolve(PAGES)
    message = str(info.value)
    first = info.value.request
    assert first is not None
    assert message.startswith(f"sphere-workspaces: {first.where}: cannot create a workspace for "
                              f"project {DEMO_PROJECT_ID}: ")
    assert ("could not connect" in message) if dead == "refused" else ("HTTP 503" in message)
    assert_no_leak([message, repr(info.value), caplog.text])
    ledger = settings.cache_dir / LEDGER_NAME
    assert not ledger.exists() or Ledger(settings.cache_dir).read()["entries"] == {}


@pytest.mark.parametrize("dead", list(DEAD))
@pytest.mark.parametrize("policy", ["placeholder", "lazy"])
def test_dead_api_with_fallbacks(emulator, tmp_path, dead, policy, caplog):
    url = DEAD[dead](emulator)
    settings = site(url, tmp_path, on_error=policy)
    with Provisioner(settings, client=fast_client(url, retries=1)) as prov:
        result = prov.resolve(PAGES)
    assert {r.fallback for r in result.values()} == {policy}
    assert all(r.workspace_id is None and r.reason for r in result.values())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "sphere_docs.pipeline.provision"]
    assert len(warnings) == 3
    assert any(w.startswith("sphere-workspaces: lessons/one.md:12: workspace for project "
                            f"{DEMO_PROJECT_ID} unavailable (") for w in warnings)
    what = "falling back to a lazy embed" if policy == "lazy" else "showing a placeholder"
    assert all(w.endswith(what) for w in warnings)
    assert_no_leak([caplog.text, *(r.reason or "" for r in result.values())])


def test_fail_records_what_was_created_before_failing(emulator, tmp_path):
    settings = site(emulator.url, tmp_path, on_error="fail")
    bad = embed("broken.md", project=UNKNOWN_PROJECT, line=7)
    with Provisioner(settings) as prov, pytest.raises(ProvisionError) as info:
        prov.resolve([*PAGES, bad])
    assert str(info.value) == (f"sphere-workspaces: broken.md:7: cannot create a workspace for "
                               f"project {UNKNOWN_PROJECT}: HTTP 404: project not found")
    assert len(ledger_of(settings)["entries"]) == 3  # the good ones are kept for the next build
    with Provisioner(settings) as prov:
        prov.resolve(PAGES)
    assert emulator.count("POST /workspaces") == 4  # 3 good + 1 bad, nothing recreated


def test_ambiguous_create_is_reported_not_repeated(emulator, tmp_path):
    emulator.set_faults(sequence=["hang"], hang=2, routes=["POST /workspaces"])
    settings = site(emulator.url, tmp_path, on_error="placeholder")
    with Provisioner(settings, client=fast_client(emulator.url, timeout=0.3)) as prov:
        result = prov.resolve(PAGES[:1])
    res = result[PAGES[0].key]
    assert res.fallback == "placeholder"
    assert "may have created a workspace that was not recorded" in (res.reason or "")
    assert emulator.stats()["faults_injected"] == {"hang": 1}


# --------------------------------------------------------------------------- manifest


def test_manifest_roundtrip_and_no_token(tmp_path):
    embeds = [(r.page, r.spec) for r in PAGES] + [("lazy.md", embed("lazy.md", mode="lazy").spec),
                                                   ("other.md", embed("other.md", project=SECOND_PROJECT).spec)]
    path = tmp_path / "site" / "sphere-workspaces.json"
    ws_id = "0123456789abcdef0123456789abcdef"
    write_manifest(path, embeds, workspaces={PAGES[0].key: ws_id})  # the others: no workspace (placeholders)
    data = read_manifest(str(path))
    key = PAGES[0].spec.creation_key()
    other = embed("other.md", project=SECOND_PROJECT).spec
    assert data == {
        "version": 1,
        "pages": {
            "index.md": [{"project_id": DEMO_PROJECT_ID, "mode": "build", "name": PAGES[0].spec.name,
                          "creation_key": key, "workspace_id": ws_id}],
            "lazy.md": [{"project_id": DEMO_PROJECT_ID, "mode": "lazy", "name": embed("lazy.md", mode="lazy").spec.name}],
            "lessons/one.md": [
                {"project_id": DEMO_PROJECT_ID, "mode": "build", "name": PAGES[1].spec.name, "creation_key": key},
                {"project_id": DEMO_PROJECT_ID, "mode": "build", "name": PAGES[2].spec.name, "creation_key": key},
            ],
            "other.md": [{"project_id": SECOND_PROJECT, "mode": "build", "name": other.name,
                          "creation_key": other.creation_key()}],
        },
        "projects": sorted([DEMO_PROJECT_ID, SECOND_PROJECT]),
    }
    assert "token" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["sphere-workspaces.json"]  # no temp left


def test_read_manifest_over_http(tmp_path):
    write_manifest(tmp_path / "sphere-workspaces.json", [(r.page, r.spec) for r in PAGES])
    (tmp_path / "bad.json").write_text('{"version": 2}')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert read_manifest(base + "/sphere-workspaces.json")["projects"] == [DEMO_PROJECT_ID]
        with pytest.raises(ManifestError, match="HTTP 404"):
            read_manifest(base + "/missing.json")
        with pytest.raises(ManifestError, match="not a sphere-workspaces manifest"):
            read_manifest(base + "/bad.json")
    finally:
        server.shutdown()
        server.server_close()


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        read_manifest(str(tmp_path / "nope.json"))
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(ManifestError, match="not JSON"):
        read_manifest(str(tmp_path / "x.json"))
    (tmp_path / "y.json").write_text('{"version": 1, "pages": {"a.md": [{}]}, "projects": []}')
    with pytest.raises(ManifestError, match=r"page 'a\.md'"):
        read_manifest(str(tmp_path / "y.json"))
    (tmp_path / "z.json").write_text('{"version": 1, "pages": {"a.md": [{"project_id": "p", "name": "n", '
                                     '"workspace_id": "../remove"}]}, "projects": ["p"]}')
    with pytest.raises(ManifestError, match=r"page 'a\.md', embed 1 \('n'\): 'workspace_id' must be 32 hex"):
        read_manifest(str(tmp_path / "z.json"))


def test_cache_dir_gets_a_gitignore(emulator, tmp_path):
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        prov.resolve(PAGES[:1])
    assert (settings.cache_dir / ".gitignore").read_text().strip().endswith("*")


def test_emulator_server_fixture_is_separate(tmp_path, access_token):
    """Two endpoints in one cache: entries are keyed by endpoint, never mixed up."""
    with EmulatorServer(token=access_token, start_delay=0) as a, \
            EmulatorServer(token=access_token, start_delay=0) as b:
        for server in (a, b):
            with Provisioner(site(server.url, tmp_path)) as prov:
                prov.resolve(PAGES[:1])
        assert a.count("POST /workspaces") == b.count("POST /workspaces") == 1
        data = Ledger(tmp_path / "cache").read()
        assert {e["endpoint"] for e in data["entries"].values()} == {a.url + "/api/v1", b.url + "/api/v1"}


def test_fail_stops_early(emulator, tmp_path):
    emulator.set_faults(rate=1.0, status=503)
    settings = site(emulator.url, tmp_path, on_error="fail", concurrency=1)
    with Provisioner(settings, client=fast_client(emulator.url, retries=1)) as prov, \
            pytest.raises(ProvisionError, match=r"\(and 4 more embed\(s\) not provisioned\)$"):
        prov.resolve([embed(f"p{i}.md") for i in range(5)])
    assert emulator.count("POST /workspaces") == 2  # one embed tried (with its retry), then stop


def test_two_embeds_with_one_name_warn(emulator, tmp_path, caplog):
    first = embed("index.md", 0, line=3)
    clash = EmbedRequest("index.md", embed("index.md", 0, inactivity_timeout="5").spec.with_name(first.spec.name), 9)
    with Provisioner(site(emulator.url, tmp_path)) as prov:
        result = prov.resolve([first, clash])
    assert "sphere-workspaces: index.md:9: two embeds named" in caplog.text
    assert list(result) == [first.key]


def test_file_permissions_ledger_private_manifest_published(emulator, tmp_path):
    """The ledger holds workspace tokens: only the builder reads it; the manifest is published."""
    settings = site(emulator.url, tmp_path)
    with Provisioner(settings) as prov:
        prov.resolve(PAGES)
    assert (settings.cache_dir / LEDGER_NAME).stat().st_mode & 0o777 == 0o600
    manifest = tmp_path / "site" / "sphere-workspaces.json"
    write_manifest(manifest, [(r.page, r.spec) for r in PAGES])
    assert manifest.stat().st_mode & 0o777 == 0o644
