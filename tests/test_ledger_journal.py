"""The ledger's writes grow with what changed, not with the ledger (issue 16), and stay safe.

Each create used to rewrite the whole ledger twice (its intent, then its
workspace), O(M^2) bytes for a build that creates M workspaces.  Now each
change is one line of the journal (``ledger.journal``) and ``ledger.json`` is
written whole once per build.  Shown on real files by a real process: the
bytes a build process writes (``/proc/self/io``) per embed stay flat from 40
to 320 embeds, and ``ledger.json``'s ``serial`` (one more at each whole write)
counts the whole writes.  The journal's own failure modes (a line cut short, a
damaged line, a journal left over by a cut-short compaction, one ahead of its
``ledger.json``) are checked against the emulator: nothing is lost, nothing
damaged is overwritten, nothing is created on a damaged ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import SECRET_TOKEN, TOKEN_ENV

from sphere_docs.core.naming import default_name
from sphere_docs.core.options import parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.pipeline.ledger import JOURNAL_NAME, LEDGER_NAME, Ledger, LedgerError
from sphere_docs.pipeline.process_pool import ENV_SWITCH
from sphere_docs.pipeline.provision import EmbedRequest, Provisioner, _Outcome, ledger_key
from sphere_docs.services.emulator import DEMO_PROJECT_ID

WORKER = r"""
import json, sys
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import parse_options
from sphere_docs.pipeline.provision import EmbedRequest, Provisioner, _Outcome, ledger_key
from sphere_docs.core.settings import SiteSettings

url, cache, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = SiteSettings.from_mapping({"endpoint": url, "cache": cache, "concurrency": 8})
requests = []
for i in range(count):
    spec = parse_options("eef024c1d14f46319517a65edafb5ee3", {})
    requests.append(EmbedRequest(f"p{i:04}.md", spec.with_name(default_name(f"p{i:04}.md", spec, 0))))

def written():
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("wchar:")).split()[1])

with Provisioner(settings) as prov:
    prov.resolve(requests[:1])  # imports, connections and the first ledger write paid before counting
    before = written()
    answers = prov.resolve(requests)
    after = written()
print(json.dumps({"bytes": after - before, "ok": sum(r.ok for r in answers.values())}))
"""


def provision_in_a_process(url: str, cache: Path, count: int) -> dict[str, Any]:
    # the creates on threads of this one process, so /proc/self/io counts every byte they write
    # (in a build process they run in a forked child: sphere_docs.pipeline.process_pool)
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN, ENV_SWITCH: "0"}
    done = subprocess.run([sys.executable, "-c", WORKER, url, str(cache), str(count)], env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes through /proc/self/io (Linux)")
def test_ledger_writes_grow_linearly_with_the_creates(emulator: Any, tmp_path: Path) -> None:
    rows = {}
    for count in (40, 320):
        cache = tmp_path / f"cache-{count}"
        result = provision_in_a_process(emulator.url, cache, count)
        assert result["ok"] == count
        on_disk = json.loads((cache / LEDGER_NAME).read_text())
        # one whole write for the first resolve (1 embed), one for the measured one: no more
        assert on_disk["serial"] == 2
        assert len(on_disk["entries"]) == count and on_disk["intents"] == {}
        assert not (cache / JOURNAL_NAME).exists()  # folded into ledger.json at the end of the build
        rows[count] = result["bytes"] / count, (cache / LEDGER_NAME).stat().st_size / count
    print(f"\nbytes written by the build process per embed (its HTTP requests, journal lines, the final "
          f"ledger.json, log lines): 40 embeds {rows[40][0]:.0f}, 320 embeds {rows[320][0]:.0f}; ledger.json "
          f"per entry {rows[320][1]:.0f}")
    # linear: the same per embed at 8x the embeds (a rewrite per create would make it about 8x)
    assert rows[320][0] <= 1.5 * rows[40][0]
    # and small: a few times the entry itself (its request, its intent line, its result line, its entry)
    assert rows[320][0] <= 8 * rows[320][1]


# --------------------------------------------------------------------------- the journal's failure modes


def settings_for(url: str, cache: Path) -> SiteSettings:
    return SiteSettings.from_mapping({"endpoint": url, "cache": str(cache), "retries": 0, "trust_checked": 0})


def embed(page: str) -> EmbedRequest:
    spec = parse_options(DEMO_PROJECT_ID, {})
    return EmbedRequest(page, spec.with_name(default_name(page, spec, 0)))


def journal_with(cache: Path, url: str, pages: list[str]) -> Ledger:
    """A ledger whose last workspaces are only in the journal (as a killed build leaves it)."""
    ledger = Ledger(cache)
    settings = settings_for(url, cache)
    with Provisioner(settings) as prov:
        prov.resolve([embed(pages[0])])  # ledger.json, serial 1
        for page in pages[1:]:  # creates recorded by the journal alone (no end-of-build write)
            request = embed(page)
            prov._create(threading.Event(), prov.client,
                         _Outcome(ledger_key(settings.api.api_base, request), request))
    return ledger


def test_journal_lines_count_until_folded_in(emulator: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ledger = journal_with(cache, emulator.url, ["a.md", "b.md", "c.md"])
    on_disk = json.loads((cache / LEDGER_NAME).read_text())
    assert on_disk["serial"] == 1 and len(on_disk["entries"]) == 1
    lines = (cache / JOURNAL_NAME).read_text().splitlines()
    assert json.loads(lines[0]) == {"journal": 1, "serial": 1}
    assert len(lines) == 1 + 2 * 2  # an intent line and a result line per create
    assert oct((cache / JOURNAL_NAME).stat().st_mode & 0o777) == oct(0o600)
    assert sorted(e["page"] for e in ledger.read()["entries"].values()) == ["a.md", "b.md", "c.md"]
    assert ledger.read()["intents"] == {}
    # the next build folds the journal in: reuses all three, one whole write, no journal left
    with Provisioner(settings_for(emulator.url, cache)) as prov:
        answers = prov.resolve([embed(p) for p in ("a.md", "b.md", "c.md")])
    assert not any(r.created for r in answers.values())
    assert emulator.count("POST /workspaces") == 3
    on_disk = json.loads((cache / LEDGER_NAME).read_text())
    assert on_disk["serial"] == 2 and len(on_disk["entries"]) == 3
    assert not (cache / JOURNAL_NAME).exists()


def test_a_line_cut_short_is_ignored_and_cut_off(emulator: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ledger = journal_with(cache, emulator.url, ["a.md", "b.md"])
    whole = (cache / JOURNAL_NAME).read_bytes()
    with open(cache / JOURNAL_NAME, "ab") as fh:  # what a write cut short by a crash leaves
        fh.write(b'{"ops":[["intents","x",{"endpoint":"http://')
    assert len(ledger.read()["entries"]) == 2  # read as before the cut line
    with Provisioner(settings_for(emulator.url, cache)) as prov:
        prov.resolve([embed("a.md"), embed("b.md"), embed("c.md")])
    data = Ledger(cache).read()
    assert sorted(e["page"] for e in data["entries"].values()) == ["a.md", "b.md", "c.md"]
    assert emulator.count("POST /workspaces") == 3
    assert not (cache / JOURNAL_NAME).exists()
    assert whole  # (the whole lines were folded into ledger.json)


@pytest.mark.parametrize(("damage", "located"), [
    (b'{"ops": [["entries", "k", {"workspace_id": 7}]]}\n',
     'is damaged: line 6: at entries["k"].workspace_id: expected a string, found 7'),
    (b'{"ops": [["things", "k", {}]]}\n', "is damaged: line 6: at ops[0]: expected [section, key, value]"),
    (b'{"ops": [\n', "is damaged: line 6: column 10: "),
    (b"\xff\xfe\n", "is damaged: line 6: byte 0 is not UTF-8 text"),
])
def test_a_damaged_journal_stops_the_build_and_is_kept(emulator: Any, tmp_path: Path, damage: bytes,
                                                        located: str) -> None:
    cache = tmp_path / "cache"
    journal_with(cache, emulator.url, ["a.md", "b.md", "c.md"])
    with open(cache / JOURNAL_NAME, "ab") as fh:
        fh.write(damage)
    before = {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    posts = emulator.count("POST /workspaces")
    with Provisioner(settings_for(emulator.url, cache)) as prov, pytest.raises(LedgerError) as info:
        prov.resolve([embed("d.md")])
    assert str(info.value).startswith(f"sphere-workspaces: the ledger {cache / JOURNAL_NAME} {located}")
    assert f"rename it to {JOURNAL_NAME}.damaged" in str(info.value)
    assert emulator.count("POST /workspaces") == posts
    assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()} == before


def test_a_journal_left_by_a_cut_short_compaction_is_not_applied_twice(emulator: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ledger = journal_with(cache, emulator.url, ["a.md", "b.md"])
    stale = (cache / JOURNAL_NAME).read_bytes()
    ledger.update(lambda data: data["entries"].clear())  # a compaction that (say) prune made
    (cache / JOURNAL_NAME).write_bytes(stale)  # as if the build died before removing the journal
    assert json.loads((cache / LEDGER_NAME).read_text())["serial"] == 2
    assert Ledger(cache).read()["entries"] == {}  # serial 1 < 2: folded in already, ignored
    with Provisioner(settings_for(emulator.url, cache)) as prov:
        prov.resolve([embed("c.md")])
    assert [e["page"] for e in Ledger(cache).read()["entries"].values()] == ["c.md"]


def test_a_journal_ahead_of_its_ledger_is_an_error(emulator: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    journal_with(cache, emulator.url, ["a.md", "b.md"])
    older = json.loads((cache / LEDGER_NAME).read_text())
    older["serial"] = 0  # an older copy of ledger.json put back by hand
    (cache / LEDGER_NAME).write_text(json.dumps(older))
    before = {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    with Provisioner(settings_for(emulator.url, cache)) as prov, pytest.raises(LedgerError) as info:
        prov.resolve([embed("c.md")])
    assert "continues ledger.json with serial 1, but ledger.json next to it has serial 0" in str(info.value)
    assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()} == before
