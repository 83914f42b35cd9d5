"""``sphere-docs prune`` against the real emulator: removes what the last build no longer uses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.pipeline.provision import EmbedRequest, Ledger, Provisioner, prune
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer
from sphere_docs.tools.cli import main


def site(url: str, cache: Path) -> SiteSettings:
    return SiteSettings.from_mapping({"endpoint": url, "cache": str(cache), "retries": 1, "trust_checked": 0})


def embed(page: str, **options: str) -> EmbedRequest:
    spec = parse_options(DEMO_PROJECT_ID, options)
    spec = spec.with_name(default_name(page, spec))
    return EmbedRequest(page, spec)


A, B, C = embed("a.md"), embed("b.md"), embed("c.md")


def build(url: str, cache: Path, requests: list[EmbedRequest], scope: str = "default") -> dict:
    with Provisioner(site(url, cache), scope=scope) as prov:
        return prov.resolve(requests)


def state(server: EmulatorServer, workspace_id: str) -> str:
    ws = server.app.workspace(workspace_id)
    assert ws is not None
    return ws["state"]["name"]


def test_prune_removes_only_what_the_last_build_dropped(emulator, tmp_path, capsys):
    cache = tmp_path / "cache"
    first = build(emulator.url, cache, [A, B, C])
    build(emulator.url, cache, [A, B])  # c.md's embed was deleted
    c_id = first[C.key].workspace_id

    assert main(["prune", "--cache", str(cache), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {c_id} (c.md {C.spec.name}, project {DEMO_PROJECT_ID}" in out
    assert "would remove 1, kept 2 in use" in out
    assert emulator.count("PUT /workspaces/{id}/remove") == 0
    assert state(emulator, c_id) == "running"
    assert len(Ledger(cache).read()["entries"]) == 3

    assert main(["prune", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"removed {c_id}" in out and "removed 1, kept 2 in use" in out
    assert emulator.count("PUT /workspaces/{id}/remove") == 1
    assert state(emulator, c_id) == "removed"
    assert state(emulator, first[A.key].workspace_id) == "running"
    entries = Ledger(cache).read()["entries"]
    assert {e["page"] for e in entries.values()} == {"a.md", "b.md"}

    assert main(["prune", "--cache", str(cache)]) == 0
    assert "nothing to remove (2 workspace(s) in use by the last build)" in capsys.readouterr().out
    assert_no_leak([out], roots=[cache])


def test_changed_creation_options_leave_the_old_workspace_to_prune(emulator, tmp_path):
    cache = tmp_path / "cache"
    old = build(emulator.url, cache, [A])[A.key].workspace_id
    changed = embed("a.md", **{"inactivity-timeout": "30"})  # (a new default name too)
    new = build(emulator.url, cache, [changed])[changed.key].workspace_id
    assert new != old
    result = prune(cache, client_factory=lambda base: ContainersClient(base, SECRET_TOKEN))
    assert [e["workspace_id"] for e in result.removed] == [old] and result.kept == 1
    assert state(emulator, old) == "removed" and state(emulator, new) == "running"


def test_one_provisioner_is_one_build(emulator, tmp_path):
    """Several resolve calls of one build (e.g. one per page) add up; prune keeps all of them."""
    cache = tmp_path / "cache"
    with Provisioner(site(emulator.url, cache)) as prov:
        prov.resolve([A])
        prov.resolve([B])
    assert prune(cache, dry_run=True).removed == []


def test_scopes_sharing_a_cache_keep_each_others_workspaces(emulator, tmp_path):
    cache = tmp_path / "cache"
    build(emulator.url, cache, [A], scope="mkdocs")
    build(emulator.url, cache, [B], scope="sphinx")
    assert prune(cache, dry_run=True).removed == []


def test_already_gone_counts_as_removed(emulator, tmp_path, capsys):
    cache = tmp_path / "cache"
    first = build(emulator.url, cache, [A, B])
    build(emulator.url, cache, [A])
    # the account forgot every workspace (the emulator's reset with workspaces=1): remove → 404
    requests.post(emulator.url + "/_emulator/reset", params={"workspaces": "1"}, timeout=5)
    assert emulator.app.workspace(first[B.key].workspace_id) is None
    out = io.StringIO()
    result = prune(cache, client_factory=lambda base: ContainersClient(base, SECRET_TOKEN), out=out)
    assert len(result.removed) == 1 and not result.failed
    assert [e["page"] for e in Ledger(cache).read()["entries"].values()] == ["a.md"]
    assert "already gone" in out.getvalue()


def test_endpoint_filter(emulator, tmp_path, access_token, capsys):
    cache = tmp_path / "cache"
    with EmulatorServer(token=access_token, start_delay=0) as other:
        build(emulator.url, cache, [A])
        build(other.url, cache, [A])
        # both endpoints' last builds now use nothing: prune only the other one
        build(emulator.url, cache, [B])
        build(other.url, cache, [B])
        assert main(["prune", "--cache", str(cache), "--endpoint", other.url]) == 0
        assert other.count("PUT /workspaces/{id}/remove") == 1
        assert emulator.count("PUT /workspaces/{id}/remove") == 0
    entries = Ledger(cache).read()["entries"].values()
    assert sorted((e["endpoint"] == emulator.url + "/api/v1", e["page"]) for e in entries) == \
        [(False, "b.md"), (True, "a.md"), (True, "b.md")]


def test_failures_are_reported_and_kept(emulator, tmp_path, capsys):
    cache = tmp_path / "cache"
    build(emulator.url, cache, [A, B])
    build(emulator.url, cache, [A])
    emulator.set_faults(sequence=[503] * 10, routes=["PUT /workspaces/{id}/remove"])
    assert main(["prune", "--cache", str(cache), "--retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAILED to remove" in out and "HTTP 503" in out
    assert len(Ledger(cache).read()["entries"]) == 2  # kept for the next prune


def test_prune_needs_the_token_but_dry_run_does_not(emulator, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    build(emulator.url, cache, [A, B])
    build(emulator.url, cache, [A])
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["prune", "--cache", str(cache), "--dry-run"]) == 0
    assert main(["prune", "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert f"set the environment variable {TOKEN_ENV}" in err
    monkeypatch.setenv("MY_TOKEN", SECRET_TOKEN)
    assert main(["prune", "--cache", str(cache), "--token-env", "MY_TOKEN"]) == 0


def test_no_ledger(tmp_path, capsys):
    assert main(["prune", "--cache", str(tmp_path / "none")]) == 0
    assert "no ledger" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["prune", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "--dry-run" in capsys.readouterr().out


def test_incremental_build_marks_unchanged_embeds_used(emulator, tmp_path):
    """Sphinx re-reads only changed pages: resolve those, mark the rest, prune keeps both."""
    cache = tmp_path / "cache"
    build(emulator.url, cache, [A, B, C])
    with Provisioner(site(emulator.url, cache)) as prov:
        prov.resolve([A])  # only a.md changed
        prov.mark_used([B])  # b.md unchanged; c.md was deleted
    result = prune(cache, dry_run=True)
    assert [e["page"] for e in result.removed] == ["c.md"] and result.kept == 2
    assert emulator.count("GET /workspaces/{id}") == 1  # mark_used made no API call
