"""A damaged ledger is never silently replaced, and never a traceback.

The ledger (``<cache>/ledger.json``) is the only record of which paid workspaces
the builds of a site hold.  Whatever is wrong with it — cut short, wrongly
shaped at any key, not UTF-8, a folder, unreadable — a build stops with a
located message *before anything is created*, ``doctor`` reports a problem
(exit 1), ``prune`` refuses with the same sentence (exit 2), and the bytes on
disk stay as they were.  A hypothesis fuzz checks that for the in-process entry
points; a few real ``mkdocs build --strict`` / ``sphinx-build -W`` runs check
the command lines.  Nothing is mocked: the API is the emulator on loopback.

``SPHERE_DOCS_LEDGER_FUZZ`` sets the number of fuzz examples (default 100).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.options import parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.pipeline.provision import (
    LEDGER_NAME,
    EmbedRequest,
    Ledger,
    LedgerError,
    Provisioner,
    prune,
    validate_ledger,
)
from sphere_docs.services.emulator import DEMO_PROJECT_ID
from sphere_docs.tools.cli import main
from sphere_docs.tools.doctor import run_doctor

FUZZ_EXAMPLES = int(os.environ.get("SPHERE_DOCS_LEDGER_FUZZ", "100"))
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
FIX = "move it aside to start a new ledger"
KEPT = "the workspaces it lists stay on your account until you remove them"


# --------------------------------------------------------------------------- a site and its ledger


def request(page: str = "index.md") -> EmbedRequest:
    return EmbedRequest(page, parse_options(DEMO_PROJECT_ID, {}).with_name("ws-main"), 3)


def make_site(root: Path, url: str) -> Path:
    """An MkDocs site with one build-mode embed; its cache is ``root/.cache``."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "index.md").write_text(f"# Home\n\n```{{sphere-workspace}} {DEMO_PROJECT_ID}\n```\n")
    config = {"site_name": "ledger safety",
              "plugins": [{"sphere-workspaces": {"endpoint": url, "cache": ".cache", "retries": 0}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / ".cache"


def site_settings(url: str, cache: Path) -> SiteSettings:
    return SiteSettings.from_mapping({"endpoint": url, "cache": str(cache), "retries": 0})


def snapshot(path: Path) -> Any:
    """What is on disk at ``path`` (bytes, or a folder's listing and bytes)."""
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


class Outcome:
    """What each entry point did with a damaged ledger."""

    def __init__(self) -> None:
        self.tracebacks = 0
        self.replaced = 0
        self.checked = 0


def every_entry_point(emulator: Any, site: Path, cache: Path, counts: Outcome) -> list[str]:
    """Build, doctor and prune against the ledger in ``cache``; return the messages they gave.

    Each must refuse with a LedgerError (build, prune function), exit 1 with a problem
    (doctor) or exit 2 with the sentence (prune command), create nothing, and leave
    the ledger as it was.
    """
    path = cache / LEDGER_NAME
    before = snapshot(path)
    posts = emulator.count("POST /workspaces")
    said: list[str] = []
    try:
        with Provisioner(site_settings(emulator.url, cache)) as prov, pytest.raises(LedgerError) as info:
            prov.resolve([request()])
        said.append(str(info.value))
        with pytest.raises(LedgerError) as info:
            prune(cache, client_factory=lambda base: ContainersClient(base, SECRET_TOKEN))
        said.append(str(info.value))
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["prune", "--cache", str(cache)])
        assert code == 2 and out.getvalue() == ""
        said.append(err.getvalue())
        report = io.StringIO()
        assert run_doctor(site, out=report) == 1
        said.append(report.getvalue())
    except (AssertionError, pytest.fail.Exception):
        raise
    except BaseException:
        counts.tracebacks += 1
        raise
    finally:
        if snapshot(path) != before:
            counts.replaced += 1
    counts.checked += 1
    assert emulator.count("POST /workspaces") == posts, "a workspace was created despite the damaged ledger"
    assert snapshot(path) == before, "the damaged ledger was changed"
    ledger_line = next(line for line in said[3].splitlines() if line.startswith("problem: the ledger"))
    assert said[3].splitlines()[said[3].splitlines().index(ledger_line) + 1].startswith("  fix: ")
    for text in said:
        assert "Traceback" not in text
        assert "the ledger" in text and str(LEDGER_NAME) in text
    assert said[2].startswith(f"sphere-docs prune: the ledger {path} ")
    assert_no_leak(said)
    return said


@pytest.fixture
def site(emulator: Any, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    cache = make_site(tmp_path, emulator.url)
    cache.mkdir()
    yield tmp_path, cache


# --------------------------------------------------------------------------- the schema, by hand


GOOD = {
    "version": 1,
    "entries": {"http://x/api/v1|p|k|a.md#n": {
        "endpoint": "http://x/api/v1", "project_id": "p", "creation_key": "k", "page": "a.md", "name": "n",
        "workspace_id": "0" * 32, "workspace_token": None, "created_at": "2025-01-01T00:00:00Z",
        "last_used_build": "b", "last_used_at": "2025-01-01T00:00:00Z"}},
    "builds": {"http://x/api/v1|default": {"build_id": "b", "updated_at": "2025-01-01T00:00:00Z",
                                           "keys": ["http://x/api/v1|p|k|a.md#n"]}},
    "intents": {"i1": {"endpoint": "http://x/api/v1", "project_id": "p", "creation_key": "k",
                       "fields": {"inactivity_timeout": "5"}, "ledger_key": "http://x/api/v1|p|k|b.md#n",
                       "page": "b.md", "name": "n", "build_id": "b", "host": "h", "pid": 1,
                       "state": "in_flight", "started_at": "2025-01-01T00:00:00Z",
                       "window_end": "2025-01-01T00:04:00Z"}},
}


@pytest.mark.parametrize(("text", "located"), [
    (b"", "is empty"),
    (b'{"version": 1, "entries": {', "is damaged: line 1, column 28: "),
    (json.dumps({**GOOD, "builds": {"x": {"build_id": "b", "keys": 5}}}).encode(),
     'is damaged: at builds["x"].keys: expected a list of ledger keys, found 5'),
    (json.dumps({**GOOD, "entries": {"k": {"workspace_id": 7}}}).encode(),
     'is damaged: at entries["k"].workspace_id: expected a string, found 7'),
    (json.dumps({**GOOD, "entries": []}).encode(), "is damaged: at entries: expected an object, found a list"),
    (json.dumps({**GOOD, "version": True}).encode(), "is damaged: at version: expected the number 1, found true"),
    (json.dumps({"entries": {}}).encode(), 'is damaged: at the top level: the key "version" is missing'),
    (b'{"version": 1,\n "entries": {"k": {"workspace_id": "caf\xe9"}}}', "is damaged: byte 54 (line 2) is not UTF-8"),
    (b"[" * 100_000, "is damaged: nested too deeply"),
    (json.dumps({**GOOD, "version": 7}).encode(), "was written by a newer sphere-docs (ledger version 7)"),
    (json.dumps({**GOOD, "intents": {"i": {**GOOD["intents"]["i1"], "started_at": "yesterday"}}}).encode(),
     'is damaged: at intents["i"].started_at: expected a time'),
])
def test_each_damage_is_located(tmp_path: Path, text: bytes, located: str) -> None:
    (tmp_path / LEDGER_NAME).write_bytes(text)
    with pytest.raises(LedgerError) as info:
        Ledger(tmp_path).read()
    assert str(info.value).startswith(f"sphere-workspaces: the ledger {tmp_path / LEDGER_NAME} {located}")
    assert (tmp_path / LEDGER_NAME).read_bytes() == text


def test_old_ledgers_still_read(emulator: Any, tmp_path: Path) -> None:
    """A ledger of sphere-docs 0.1 (no intents; an entry without endpoint) is read and reused."""
    cache = tmp_path / "cache"
    settings = site_settings(emulator.url, cache)
    with Provisioner(settings) as prov:
        first = prov.resolve([request()])
    data = json.loads((cache / LEDGER_NAME).read_text())
    del data["intents"]
    for entry in data["entries"].values():
        del entry["endpoint"], entry["last_used_at"]
    (cache / LEDGER_NAME).write_text(json.dumps(data))
    validate_ledger(data)
    with Provisioner(settings) as prov:
        again = prov.resolve([request()])
    assert again[request().key].workspace_id == first[request().key].workspace_id
    assert emulator.count("POST /workspaces") == 1


def test_a_ledger_that_is_a_folder(emulator: Any, site: tuple[Path, Path]) -> None:
    root, cache = site
    (cache / LEDGER_NAME).mkdir()
    (cache / LEDGER_NAME / "keep.txt").write_text("mine")
    said = every_entry_point(emulator, root, cache, Outcome())
    assert "is a folder, not a file" in said[0] and FIX in said[0] and KEPT in said[0]


@pytest.mark.skipif(ROOT, reason="root reads every file whatever its mode")
def test_an_unreadable_ledger(emulator: Any, site: tuple[Path, Path]) -> None:
    root, cache = site
    path = cache / LEDGER_NAME
    path.write_text(json.dumps(GOOD))
    path.chmod(0)
    try:
        said = every_entry_point(emulator, root, cache, Outcome())
    finally:
        path.chmod(0o600)
    assert "cannot be read: permission denied" in said[0] and "chmod u+rw" in said[0]


# --------------------------------------------------------------------------- the fuzz


def _text() -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


STAMP = st.sampled_from(["2025-01-01T00:00:00Z", "2025-06-30T23:59:59Z", "2026-12-01T11:22:17Z"])
ENTRY = st.fixed_dictionaries(
    {"workspace_id": st.text("0123456789abcdef", min_size=32, max_size=32),
     "workspace_token": st.one_of(st.none(), st.uuids().map(str))},
    optional={name: _text() for name in ("endpoint", "project_id", "creation_key", "page", "name",
                                         "created_at", "last_used_build", "last_used_at", "note")})
BUILD = st.fixed_dictionaries({"build_id": _text(), "keys": st.lists(_text(), max_size=3)},
                              optional={"updated_at": _text()})
INTENT = st.fixed_dictionaries(
    {"endpoint": _text(), "project_id": _text(), "creation_key": _text(), "ledger_key": _text(),
     "state": st.sampled_from(["in_flight", "unanswered"]), "started_at": STAMP, "window_end": STAMP},
    optional={"page": _text(), "name": _text(), "build_id": _text(), "host": _text(),
              "ended_at": STAMP, "reason": _text(), "pid": st.integers(1, 2**22),
              "fields": st.dictionaries(_text(), _text(), max_size=2)})
LEDGERS = st.fixed_dictionaries(
    {"version": st.just(1), "entries": st.dictionaries(_text(), ENTRY, min_size=1, max_size=3)},
    optional={"builds": st.dictionaries(_text(), BUILD, max_size=2),
              "intents": st.dictionaries(_text(), INTENT, max_size=2)})

#: the JSON types each place of the format allows (the ledger's documented shape, kept apart from
#: the code's schema on purpose); a place not listed is a free-form value
ALLOWED: dict[tuple[str, ...], set[type]] = {
    (): {dict}, ("version",): set(),  # only the number 1
    ("entries",): {dict}, ("entries", "*"): {dict}, ("entries", "*", "workspace_id"): {str},
    ("entries", "*", "workspace_token"): {str, type(None)},
    ("builds",): {dict}, ("builds", "*"): {dict}, ("builds", "*", "keys"): {list},
    ("builds", "*", "keys", "*"): {str},
    ("intents",): {dict}, ("intents", "*"): {dict}, ("intents", "*", "pid"): {int},
    ("intents", "*", "fields"): {dict}, ("intents", "*", "fields", "*"): {str},
    ("intents", "*", "state"): set(), ("intents", "*", "started_at"): set(),
    ("intents", "*", "window_end"): set(), ("intents", "*", "ended_at"): set(),
}
for _name in ("endpoint", "project_id", "creation_key", "page", "name", "created_at", "last_used_build",
              "last_used_at", "note"):
    ALLOWED[("entries", "*", _name)] = {str}
ALLOWED[("builds", "*", "build_id")] = ALLOWED[("builds", "*", "updated_at")] = {str}
for _name in ("endpoint", "project_id", "creation_key", "ledger_key", "page", "name", "build_id", "host",
              "reason"):
    ALLOWED[("intents", "*", _name)] = {str}
REQUIRED = {("version",), ("entries",), ("entries", "*", "workspace_id"), ("builds", "*", "build_id"),
            ("builds", "*", "keys"), *((("intents", "*", n)) for n in (
                "endpoint", "project_id", "creation_key", "ledger_key", "state", "started_at",
                "window_end"))}


def places(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from places(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from places(value, (*path, i))


def _schema_place(path: tuple[Any, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for i, part in enumerate(path):
        section = path[0] if path else None
        wildcard = (i == 1 and section in ("entries", "builds", "intents")) or isinstance(part, int) \
            or (i == 3 and path[2] == "fields")
        out.append("*" if wildcard else str(part))
    return tuple(out)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
                        _text(), st.lists(st.integers(0, 3), max_size=2),
                        st.dictionaries(st.sampled_from("ab"), st.integers(0, 3), max_size=2))


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    get(doc, path[:-1])[path[-1]] = value
    return doc


KINDS = ["truncate", "wrong type", "missing key", "bad byte", "re-encoded"]


@st.composite
def damaged(draw: st.DrawFn, kind: str) -> tuple[str, bytes]:
    """(what was done, the damaged bytes) from a valid ledger, damaged the ``kind`` way."""
    doc = draw(LEDGERS)
    raw = json.dumps(doc, indent=1, sort_keys=True).encode()
    if kind == "truncate":
        return kind, raw[: draw(st.integers(0, len(raw) - 2))]  # (the last byte is a newline)
    if kind == "bad byte":
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xfe", b"\xc3(", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80"]))
        return kind, raw[:at] + bad + raw[at:]
    if kind == "re-encoded":
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp1252"]))
        text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False)
        try:
            return f"{kind} {codec}", text.encode(codec)
        except UnicodeEncodeError:
            return f"{kind} {codec}", text.encode(codec, errors="replace")
    if kind == "missing key":
        required = [p for p in places(doc) if _schema_place(p) in REQUIRED]
        path = draw(st.sampled_from(required))
        del get(doc, path[:-1])[path[-1]]
        return f"{kind} {path}", json.dumps(doc).encode()
    choices = [p for p in places(doc) if _schema_place(p) in ALLOWED]
    path = draw(st.sampled_from(choices))
    allowed = ALLOWED[_schema_place(path)]
    value = draw(JSON_VALUES.filter(lambda v: type(v) not in allowed))
    if _schema_place(path) == ("version",):
        assume(value != 1 or type(value) is not int)
    doc = put(doc, path, value)
    return f"{kind} at {path}: {value!r}", json.dumps(doc).encode()


def still_a_ledger(raw: bytes) -> bool:
    try:
        validate_ledger(json.loads(raw.decode("utf-8")))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


def test_wrong_types_at_every_key(tmp_path: Path) -> None:
    """Exhaustive: each place of a complete ledger, given a value of each wrong JSON type."""
    values = [None, True, 0, 2, 1.5, "", "x", [], ["x"], {}, {"a": 1}]
    checked = 0
    for place in places(GOOD):
        allowed = ALLOWED.get(_schema_place(place))
        if allowed is None:
            continue
        for value in values:
            if type(value) in allowed and not (value == "" and place[-1:] == ("workspace_id",)):
                continue
            doc = put(json.loads(json.dumps(GOOD)), place, value)
            raw = json.dumps(doc).encode()
            (tmp_path / LEDGER_NAME).write_bytes(raw)
            with pytest.raises(LedgerError, match=r"is damaged: at |newer sphere-docs"):
                Ledger(tmp_path).read()
            assert (tmp_path / LEDGER_NAME).read_bytes() == raw
            checked += 1
    print(f"\nwrong types: {checked} ledgers, each refused with its place named")
    assert checked > 100


@pytest.mark.parametrize("kind", KINDS)
def test_ledger_fuzz_no_traceback_no_replacement(emulator: Any, site: tuple[Path, Path], kind: str) -> None:
    root, cache = site
    counts = Outcome()

    @settings(max_examples=max(6, FUZZ_EXAMPLES // len(KINDS)), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(damaged(kind))
    def check(case: tuple[str, bytes]) -> None:
        what, raw = case
        assume(not still_a_ledger(raw))  # (a re-encoding of pure ASCII is the same ledger)
        (cache / LEDGER_NAME).write_bytes(raw)
        said = every_entry_point(emulator, root, cache, counts)
        assert FIX in said[0] or "newer sphere-docs" in said[0], what

    check()
    print(f"\nledger fuzz ({kind}): {counts.checked} damaged ledgers x (build, prune, prune command, "
          f"doctor): {counts.tracebacks} tracebacks, {counts.replaced} replaced")
    assert counts.tracebacks == 0 and counts.replaced == 0
    assert counts.checked >= 3


# --------------------------------------------------------------------------- the real command lines


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


TRUNCATED = json.dumps(GOOD, indent=1).encode()[:150]
WRONG_TYPE = json.dumps({**GOOD, "builds": {"x": {"build_id": "b", "keys": 5}}}).encode()


@pytest.mark.parametrize("damage", ["truncated", "wrong type", "folder"])
def test_mkdocs_build_strict_stops_before_creating(emulator: Any, site: tuple[Path, Path], damage: str) -> None:
    root, cache = site
    path = cache / LEDGER_NAME
    if damage == "folder":
        path.mkdir()
    else:
        path.write_bytes(TRUNCATED if damage == "truncated" else WRONG_TYPE)
    before = snapshot(path)
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("the last good site")
    result = run([sys.executable, "-m", "mkdocs", "build", "--strict"], root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"the ledger {path} " in result.stderr and FIX in result.stderr
    assert {"truncated": "is damaged: line ", "wrong type": 'at builds["x"].keys',
            "folder": "is a folder"}[damage] in result.stderr
    assert snapshot(path) == before
    assert emulator.count("POST /workspaces") == 0
    assert_no_leak([result.stderr, result.stdout], roots=[root])


def test_sphinx_build_W_stops_before_creating(emulator: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).parent / "roots" / "test-sphere-basic", src)
    cache = src / ".sphere-docs-cache"
    cache.mkdir()
    (cache / LEDGER_NAME).write_bytes(TRUNCATED)
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, TOKEN_ENV: SECRET_TOKEN, "TMPDIR": str(temp)}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-D", f"sphere_endpoint={emulator.url}",
         str(src), str(tmp_path / "out")], env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    # (Sphinx 8.1+ prints "ERROR: <ours>"; before, -W stops at the first one as
    # "Warning, treated as error:" and then our sentence on the next line)
    assert f"sphere-workspaces: the ledger {cache / LEDGER_NAME} is damaged: line " in result.stderr
    assert "ERROR: sphere-workspaces: the ledger" in result.stderr or "treated as error" in result.stderr
    assert "Traceback" not in result.stderr and "sphinx-err" not in result.stderr
    assert list(temp.iterdir()) == []  # no crash file
    assert (cache / LEDGER_NAME).read_bytes() == TRUNCATED
    assert emulator.count("POST /workspaces") == 0
