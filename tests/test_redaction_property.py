"""Redaction that cannot be outrun: the token, echoed by the API in any encoding at any offset.

The emulator's token-echo fault (``{"echo": encoding, "offset", "size",
"status", "format"}``) puts the access token the request carried, encoded, at a
chosen offset of an error body; the real :class:`ContainersClient` turns that
answer into an exception, which reaches log lines, MkDocs pages, Sphinx's
environment pickle and build output.  Nowhere may a run of 8 or more characters
of the token appear, in any of its encodings (:func:`fragments`): not whole,
not cut at the 200-character limit of a quoted body, not percent-encoded,
form-encoded, JSON-escaped, HTML-escaped or base64-encoded.

* ``test_every_offset_*``: each encoding, the token at *every* offset of a
  40-character body, and at every offset where it crosses the 200-character
  cut (and at the start and the end) of 260- and 5000-character bodies
  (about 2400 answers);
* ``test_any_echo_property``: hypothesis over encoding x body size (short,
  ~200, 5000 and anything up to 400) x offset x format (text, JSON envelope,
  HTML page, status-line reason) x status x method;
* ``test_mkdocs_build_*`` / ``test_sphinx_build_*``: real builds with
  ``on_error: placeholder`` in which every create meets a different echo;
  every file of the project folder (pages, manifest, the ledger under the
  cache folder, doctrees and ``environment.pickle``) and the build output are
  scanned.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sphinx_fixtures import build as sphinx_build
from sphinx_fixtures import copy_root
from test_mkdocs_builds import LAZY, P, make_site

from sphere_docs.api.client import MESSAGE_MAX, ContainersClient, SphereEngineError
from sphere_docs.core.redact import MIN_SECRET_LEN, WITHHELD, clean_snippet, redact
from sphere_docs.services.emulator import EmulatorServer
from sphere_docs.services.emulator.app import ECHO_ENCODINGS, ECHO_FORMATS

#: Runs of 8 alphanumerics between characters that every encoding rewrites, so a leak
#: through any escaping is still caught by the raw scan, and each encoding changes something.
TOKEN = 'Zq7Lm2Xp+Wv9/Kt4Rs8=Ny6Hb3Jd Fg5Qc1Ue"Ta0\\Ok-9Wx'
TOKEN_ENV = "SPHERE_ENGINE_ACCESS_TOKEN"
RUN = MIN_SECRET_LEN


def encodings(token: str) -> dict[str, str]:
    """The token in every form a server or our own output could give it (written independently
    of ``sphere_docs.core.redact``, which must mask all of these)."""
    special = [c for c in token if not c.isalnum()]
    raw = token.encode()
    forms = {
        "raw": token,
        "percent": quote(token, safe=""),
        "percent-lower": "".join(f"%{b:02x}" if chr(b) in special else chr(b) for b in raw),
        "percent-path": quote(token),
        "form": quote_plus(token, safe=""),
        "percent-twice": quote(quote(token, safe=""), safe=""),
        "json": json.dumps(token)[1:-1],
        "json-slash": json.dumps(token)[1:-1].replace("/", "\\/"),
        "json-unicode": "".join(f"\\u{ord(c):04x}" if c in special else c for c in token),
        "json-unicode-upper": "".join(f"\\u{ord(c):04X}" if c in special else c for c in token),
        "html": html.escape(token),
        "html-numeric": "".join(f"&#{ord(c)};" if c in special else c for c in token),
        "python-repr": repr(token)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return forms


FORMS = encodings(TOKEN)


def fragments(forms: Iterable[str] = FORMS.values()) -> frozenset[str]:
    """Every run of RUN characters of every form."""
    return frozenset(f[i:i + RUN] for f in forms for i in range(len(f) - RUN + 1))


FRAGMENTS = fragments()
FRAGMENT_BYTES = frozenset(f.encode() for f in FRAGMENTS)


def leaks(text: str) -> list[str]:
    return sorted({text[i:i + RUN] for i in range(len(text) - RUN + 1)} & FRAGMENTS)


def file_leaks(root: Path) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [f for f in FRAGMENT_BYTES if f in data]
            if hits:
                found[path.relative_to(root).as_posix()] = hits
    return found


def exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)),
             repr(pickle.loads(pickle.dumps(exc)))]
    if isinstance(exc, SphereEngineError):
        texts += [exc.reason, exc.message, repr(vars(exc))]
    return texts


class _Records(logging.Handler):
    """Every record any logger emits, formatted as a handler would print it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(token=TOKEN, start_delay=0.0) as server:
        yield server


@pytest.fixture(scope="module")
def client(echo_server: EmulatorServer) -> Iterator[ContainersClient]:
    with ContainersClient(echo_server.url + "/api/v1", TOKEN, timeout=10, retries=0) as c:
        yield c


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def echo_through_client(server: EmulatorServer, client: ContainersClient, records: _Records,
                        method: str = "GET", **echo: Any) -> list[str]:
    """One request answered with the echo; every text it produced."""
    route = "POST /workspaces" if method == "POST" else "GET /test"
    server.set_faults(sequence=[echo], routes=[route])
    records.lines.clear()
    texts: list[str] = []
    try:
        if method == "POST":
            client.create_workspace({"project_id": P})
        else:
            client.test()
    except SphereEngineError as exc:
        texts += exception_texts(exc)
    return texts + records.lines


def assert_clean(texts: list[str], **context: Any) -> None:
    for text in texts:
        found = leaks(text)
        assert not found, (context, found, text[:400])


# --------------------------------------------------------------------------- the client, exhaustively


def test_the_forms_are_what_the_emulator_echoes() -> None:
    from sphere_docs.services.emulator.app import encode_token

    for name in ECHO_ENCODINGS:
        assert encode_token(TOKEN, name) in FORMS.values(), name
    assert all(redact(f"<{f}>", (TOKEN,)) == "<***>" for f in FORMS.values())


def straddling(encoding: str) -> range:
    """Every offset at which the encoded token crosses the MESSAGE_MAX cut of the quoted body
    (with some slack: the client flattens the filler's whitespace runs before it cuts)."""
    width = len(FORMS[encoding])
    return range(max(0, MESSAGE_MAX - width - 12), MESSAGE_MAX + 12)


@pytest.mark.parametrize("encoding", ECHO_ENCODINGS)
def test_every_offset_of_a_short_body(echo_server: EmulatorServer, client: ContainersClient,
                                      records: _Records, encoding: str) -> None:
    size = 40  # shorter than most encoded tokens: the body is the token plus a little filler
    for offset in range(size + 1):
        texts = echo_through_client(echo_server, client, records, echo=encoding, offset=offset,
                                    size=size, status=500, format="text")
        assert texts and "(HTTP 500)" in texts[0] and "***" in texts[0], (encoding, offset, texts[:1])
        assert_clean(texts, encoding=encoding, size=size, offset=offset)


@pytest.mark.parametrize("size", [MESSAGE_MAX + 60, 5000])
@pytest.mark.parametrize("encoding", ECHO_ENCODINGS)
def test_every_offset_across_the_cut(echo_server: EmulatorServer, client: ContainersClient,
                                     records: _Records, encoding: str, size: int) -> None:
    """The dangerous offsets: the token half before and half after the 200-character cut
    (where the old code kept the first half), and the end of the body."""
    offsets = [*straddling(encoding), *range(size - 10, size + 1), 0]
    for offset in offsets:
        texts = echo_through_client(echo_server, client, records, echo=encoding, offset=offset,
                                    size=size, status=502, format="text")
        assert texts and "(HTTP 502)" in texts[0], (encoding, size, offset, texts[:1])
        assert_clean(texts, encoding=encoding, size=size, offset=offset)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    encoding=st.sampled_from(ECHO_ENCODINGS),
    size=st.one_of(st.sampled_from([0, 10, 40, MESSAGE_MAX - 1, MESSAGE_MAX, MESSAGE_MAX + 1, 5000]),
                   st.integers(0, 400)),
    offset=st.integers(0, 5100),
    fmt=st.sampled_from(ECHO_FORMATS),
    status=st.sampled_from([200, 400, 401, 404, 429, 500, 502, 503]),
    method=st.sampled_from(["GET", "POST"]),
)
def test_any_echo_property(echo_server: EmulatorServer, client: ContainersClient, records: _Records,
                           encoding: str, size: int, offset: int, fmt: str, status: int, method: str) -> None:
    texts = echo_through_client(echo_server, client, records, method, echo=encoding, offset=offset,
                                size=size, status=status, format=fmt)
    assert_clean(texts, encoding=encoding, size=size, offset=offset, fmt=fmt, status=status, method=method)


# --------------------------------------------------------------------------- redact itself


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(st.characters(codec="ascii"), max_size=300),
    after=st.text(st.characters(codec="ascii"), max_size=300),
    form=st.sampled_from(sorted(FORMS)),
    limit=st.integers(0, 400),
)
def test_clean_snippet_never_leaves_a_run_of_the_token(before: str, after: str, form: str, limit: int) -> None:
    """Mask, cut, mask: whatever surrounds the token and wherever the cut falls."""
    text = before + FORMS[form] + after
    assert not leaks(clean_snippet(text, (TOKEN,), limit))
    assert not leaks(redact(text, (TOKEN,)))


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, len(TOKEN) - RUN), length=st.integers(RUN, len(TOKEN)),
       form=st.sampled_from(["raw", "percent", "json", "base64"]), pad=st.text(max_size=50))
def test_a_server_cut_fragment_of_the_token_is_masked_too(start: int, length: int, form: str, pad: str) -> None:
    """A body the server itself cut off may hold part of the token: a run of 8 is still masked."""
    piece = TOKEN[start:start + length]
    shown = encodings(piece)[form] if form != "base64" else FORMS["base64"][start:start + length]
    assert not [f for f in fragments([shown]) if f in redact(pad + shown + pad, (TOKEN,))]


def test_short_secrets_are_never_masked_and_never_quoted() -> None:
    text = "The Tiny Test of Tokens: T"
    assert redact(text, ("T",)) == text  # the emulator's example token masks no letter
    assert redact("access_token=T&x=1", ("T",)) == "access_token=***&x=1"  # in a URL it is masked
    assert clean_snippet("upstream said: T", ("T",)) == WITHHELD  # a server text quoting it is withheld
    assert clean_snippet("upstream said: %54", ("T",)) == WITHHELD
    assert clean_snippet("upstream said: nothing", ("T",)) == "upstream said: nothing"
    assert redact("a 1234567 b", ("1234567",)) == "a 1234567 b"
    assert redact("a 12345678 b", ("12345678",)) == "a *** b"


# --------------------------------------------------------------------------- real builds

#: (encoding, size, offset, format) of each embed's create answer: straddling the cut, at the
#: start, deep in a long body, and short bodies, in every format.
def build_echoes(count: int) -> list[dict[str, Any]]:
    echoes = []
    shapes = [(MESSAGE_MAX, None), (5000, 0), (5000, 4990), (40, 7), (MESSAGE_MAX + 30, MESSAGE_MAX - 20)]
    for i in range(count):
        encoding = ECHO_ENCODINGS[i % len(ECHO_ENCODINGS)]
        size, offset = shapes[(i // len(ECHO_ENCODINGS) + i) % len(shapes)]
        if offset is None:  # the token straddles the 200-character cut
            offset = MESSAGE_MAX - len(FORMS.get(encoding, TOKEN)) // 2
        echoes.append({"echo": encoding, "size": size, "offset": offset, "status": 500 + (i % 4),
                       "format": ECHO_FORMATS[i % len(ECHO_FORMATS)]})
    return echoes


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


def test_mkdocs_build_with_placeholders_publishes_no_part_of_the_token(token_env: str, tmp_path: Path) -> None:
    embeds = 30
    page = "# Echoes\n\n" + "".join(f"```{{sphere-workspace}} {P}\n:name: e{i}\n```\n\n" for i in range(embeds))
    with EmulatorServer(token=TOKEN, start_delay=0.0) as server:
        server.set_faults(sequence=build_echoes(embeds), routes=["POST /workspaces"])
        config = make_site(tmp_path, {"endpoint": server.url, "lazy_endpoint": LAZY, "retries": 0,
                                      "concurrency": 1, "on_error": "placeholder"},
                           {"index.md": "# Home\n", "echoes.md": page})
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--verbose", "-f", str(config)],
                                cwd=tmp_path, env=env, capture_output=True, text=True)
        injected = server.stats()["faults_injected"].get("echo", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert injected == embeds  # every create met an echo
    output = result.stdout + result.stderr
    assert output.count("unavailable") >= embeds and output.count("***") >= embeds // 2
    assert_clean([output])
    pages = (tmp_path / "site" / "echoes" / "index.html").read_text()
    assert pages.count('data-sphere-mode="unavailable"') == embeds and "***" in pages
    assert (tmp_path / "site" / "sphere-workspaces.json").is_file() and (tmp_path / ".cache").is_dir()
    assert file_leaks(tmp_path) == {}  # pages, manifest, the ledger under .cache, search index


def test_sphinx_build_with_placeholders_keeps_the_token_out_of_every_output(
        make_app: Any, token_env: str, tmp_path: Path) -> None:
    src = copy_root("sphere-basic", tmp_path)
    with EmulatorServer(token=TOKEN, start_delay=0.0) as server:
        server.set_faults(sequence=build_echoes(4)[::-1] + build_echoes(8)[4:], routes=["POST /workspaces"])
        app = sphinx_build(make_app, src, emulator=server, sphere_retries=0, sphere_concurrency=1,
                           sphere_on_error="placeholder")
        assert server.stats()["faults_injected"].get("echo", 0) == 4
    output = app.status.getvalue() + app.warning.getvalue()
    assert output.count("unavailable (") == 4
    assert_clean([output])
    assert (Path(app.doctreedir) / "environment.pickle").is_file()
    assert file_leaks(tmp_path) == {}  # html, doctrees, environment.pickle, the ledger
    assert file_leaks(Path(app.doctreedir)) == {} and file_leaks(Path(app.outdir)) == {}


def test_requests_itself_sends_the_token_encoded() -> None:
    """The echo is realistic: the token leaves as a form-encoded query value (what a server echoes)."""
    prepared = requests.Request("GET", "http://h/api/v1/test", params={"access_token": TOKEN}).prepare()
    assert FORMS["form"] in (prepared.url or "")
