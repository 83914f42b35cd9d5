"""The emulator's WSGI application: the Containers API, the SDK, faults and stats.

Routes (everything the real service offers that sphere-docs uses, as the
reference ``shared/reference/sphere-engine-containers.md`` describes it)::

    GET  /api/v1/test                       {"message": "You can use Sphere Engine Containers API"}
    GET  /api/v1/workspaces                 {"items": [...], "paging": {"next_page_token": ...}}
    POST /api/v1/workspaces                 {"message": "Workspace has been created", "workspace": {...}}
    GET  /api/v1/workspaces/{id}            the bare workspace object
    PUT  /api/v1/workspaces/{id}/stop       {"message": ..., "workspace": {...}}
    PUT  /api/v1/workspaces/{id}/resume     (same)
    PUT  /api/v1/workspaces/{id}/remove     (same)
    GET  /api/v1/projects                   {"items": [{"id", "name"}], "paging": {...}}
    GET  /static/sdk/sdk.min.js             the emulated JavaScript SDK (also /static/sdk/sdk.js)
    GET  /workspace/{id}?token=T            the page the SDK shows in its iframe
    GET  /workspace/{id}/check?token=T      JSON the SDK asks before rendering (CORS: *)
    GET  /_emulator/stats   POST /_emulator/reset   GET|POST /_emulator/faults

Authentication: ``access_token`` query parameter or ``Authorization: Bearer``.
With ``token=None`` any non-empty token is accepted.  ``/test`` needs a token
like every API call; ``/_emulator/*``, the SDK and the workspace page need none.

Bodies of ``POST /workspaces``: ``application/x-www-form-urlencoded``,
``multipart/form-data`` or ``application/json`` (JSON ``null`` = default).
Booleans: ``true/false/1/0/yes/no/on/off`` (or JSON booleans); integers are
non-negative minutes.  ``retention_time_stopped`` may also be spelled
``max_inactivity_storage_time`` / ``max_inactive_storage_time`` and
``retention_time_total`` ``max_storage_time`` (the older "freezing" names).

Choices for what the reference marks [inferred] or unknown:

* ``POST /workspaces`` answers **201 Created** (as API v4 create calls do);
  every other success is 200.
* Error envelope ``{"error_code": int, "message": str}``; error codes:

  ====  ======  ==============================================================
  HTTP  code    meaning
  ====  ======  ==============================================================
  401   1       unauthorized access (missing or wrong token)
  400   10      invalid request data (bad field, ``limit`` outside 1-30, bad
                ``states``, bad ``page_token``, malformed body)
  404   20      workspace not found
  404   21      project not found (create with an unknown ``project_id``)
  400   30      invalid state transition (stop/resume a removed workspace)
  400   40      no free workspace slots (only with ``slots=``)
  404   0       no such route;  405 / 0 wrong method
  429   50      too many requests (only injected by faults; ``Retry-After``)
  5xx   90      server error (only injected by faults)
  ====  ======  ==============================================================

* States: 1 starting, 2 running, 3 stopped, 4 removed, 5 error (never
  entered by the emulator itself).  A new workspace is *starting* and becomes
  *running* ``start_delay`` seconds later (0 = at once).
* ``stop`` on starting/running → stopped; on stopped → 200, unchanged
  (idempotent); on removed → 400/30.  Manual stop works whatever the
  retention settings; a stopped workspace with ``retention_time_stopped`` 0
  is kept until ``retention_time_total`` (if any).
* ``resume`` on stopped → starting (→ running after ``start_delay``); on
  starting/running → 200 unchanged; on removed → 400/30.
* ``remove`` on anything → removed with ``terminated_at``; on removed → 200,
  unchanged.  Removed workspaces stay listable and readable.
* Inactivity: ``inactivity_timeout`` minutes (default 15, 0 = never) after the
  later of "became running" and ``last_usage``, a running workspace becomes
  stopped when ``retention_time_stopped`` > 0 (stop/resume enabled), else
  removed.  A stopped workspace is removed ``retention_time_stopped`` minutes
  after it stopped; any workspace is removed ``retention_time_total`` minutes
  after creation (0 = never).  Time comes from the injectable ``clock``
  (seconds, like :func:`time.time`); transitions are applied lazily, at their
  exact due time, whenever state is read.
* ``last_usage`` is null until the workspace page is opened; each visit sets
  it (activity) and auto-resumes a stopped workspace when ``auto_resume``
  (stopped → starting → running after ``start_delay``, as a ``resume`` call).
  Only the workspace page — what the SDK's iframe opens — is a visit;
  ``/workspace/<id>/check`` reads the state and changes nothing.  The stop
  retention counts from the latest stop, so each visit to a stopped workspace
  starts its cycle again (running, stopped after the inactivity timeout, removed
  ``retention_time_stopped`` later); ``retention_time_total`` counts from
  creation whatever the visits.  This is how build-mode embeds (created with
  ``retention_time_stopped`` > 0 and ``auto_resume``) outlive the build.
* Lists are in creation order; ``page_token`` is opaque (an encoded offset);
  ``states[]`` and ``states`` (repeated or comma-separated) filter by code.
* ``workspace_url`` is ``<emulator>/workspace/<id>``; ``config`` is the
  project's configuration as a JSON string; ``permissions`` is always
  ``{"enter": true, "remove": false, "stop": false}`` as in the example.
* The workspace page checks ``?token=`` itself (403 refusal page), and the SDK
  asks ``/workspace/<id>/check`` first so it can show the refusal inside the
  embedding div.

Faults (:class:`FaultPlan`) apply to ``/api/v1`` routes only, optionally only
to some ``routes`` (labels like ``"POST /workspaces"``).  Each matching
request takes the next item of ``sequence`` — an HTTP status (``503``, ``429``
with ``Retry-After``…), ``"reset"`` (connection closed with RST, no response),
``"hang"`` (sleep ``hang`` seconds, at most 30, then answer normally — as a
server that got the request but answered too late), ``"malformed"`` (200 with
a truncated JSON body; the request is not processed) or ``"ok"``/``None``.
When the sequence is used up, ``rate`` (0-1) injects ``status`` at random.
``latency`` + uniform ``[0, jitter]`` seconds delay every matching request.

A fault may also be a *token echo*, as a misbehaving server or proxy that quotes
the request back: a mapping ``{"echo": ENCODING, "offset": N, "size": N,
"status": N, "format": F}`` (all but ``echo`` optional; as a ``sequence`` item or
as ``status``).  The access token the request carried, encoded as ENCODING (one
of :data:`ECHO_ENCODINGS`: ``raw``, ``percent``, ``percent-lower``, ``form``,
``percent-twice``, ``json``, ``json-unicode``, ``html``, ``base64``,
``base64url``), is put ``offset`` characters into ``size`` characters of filler
text (the body is longer when the encoded token does not fit), and answered with
``status`` (default 500; the request is not processed) as ``format``: ``text``
(text/plain), ``json`` (the error envelope, the text as its ``message``),
``html`` (the text in a ``<pre>`` of an HTML page) or ``reason`` (an empty body,
the text as the status line's reason phrase).

A request body that cannot be decoded — not JSON, not UTF-8, or nested deeper
than the parser goes — is answered 400/10 like any other invalid data, and an
unexpected failure of the emulator itself 500/90, always in the error envelope.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import random
import socket
import string
import struct
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

__all__ = [
    "DEMO_PROJECTS",
    "DEMO_PROJECT_ID",
    "ERROR_CODES",
    "STATE_NAMES",
    "EmulatorApp",
    "FaultPlan",
    "ManualClock",
    "create_app",
]

DEMO_PROJECT_ID = "eef024c1d14f46319517a65edafb5ee3"
SECOND_PROJECT_ID = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"
#: Default projects: id -> name.
DEMO_PROJECTS: Mapping[str, str] = {DEMO_PROJECT_ID: "EXAMPLE", SECOND_PROJECT_ID: "PYTHON"}

STARTING, RUNNING, STOPPED, REMOVED, ERROR = 1, 2, 3, 4, 5
STATE_NAMES = {STARTING: "starting", RUNNING: "running", STOPPED: "stopped",
               REMOVED: "removed", ERROR: "error"}
ALIVE = (STARTING, RUNNING)

ERR_UNAUTHORIZED = 1
ERR_INVALID = 10
ERR_WORKSPACE_NOT_FOUND = 20
ERR_PROJECT_NOT_FOUND = 21
ERR_STATE = 30
ERR_NO_SLOTS = 40
ERR_RATE_LIMITED = 50
ERR_SERVER = 90
ERROR_CODES = {
    ERR_UNAUTHORIZED: "unauthorized access",
    ERR_INVALID: "invalid request data",
    ERR_WORKSPACE_NOT_FOUND: "workspace not found",
    ERR_PROJECT_NOT_FOUND: "project not found",
    ERR_STATE: "invalid state transition",
    ERR_NO_SLOTS: "no free workspace slots",
    ERR_RATE_LIMITED: "too many requests",
    ERR_SERVER: "server error",
}

TEST_MESSAGE = "You can use Sphere Engine Containers API"
DEFAULT_INACTIVITY_TIMEOUT = 15
MAX_HANG = 30.0
DEFAULT_LIMIT = 10
MAX_LIMIT = 30

# route label -> (method, werkzeug rule, endpoint)
API_ROUTES: dict[str, tuple[str, str, str]] = {
    "GET /test": ("GET", "/api/v1/test", "test"),
    "GET /workspaces": ("GET", "/api/v1/workspaces", "list_workspaces"),
    "POST /workspaces": ("POST", "/api/v1/workspaces", "create_workspace"),
    "GET /workspaces/{id}": ("GET", "/api/v1/workspaces/<wid>", "get_workspace"),
    "PUT /workspaces/{id}/stop": ("PUT", "/api/v1/workspaces/<wid>/stop", "stop"),
    "PUT /workspaces/{id}/resume": ("PUT", "/api/v1/workspaces/<wid>/resume", "resume"),
    "PUT /workspaces/{id}/remove": ("PUT", "/api/v1/workspaces/<wid>/remove", "remove"),
    "GET /projects": ("GET", "/api/v1/projects", "list_projects"),
}
OTHER_ROUTES: dict[str, tuple[str, str, str]] = {
    "GET /static/sdk/sdk.min.js": ("GET", "/static/sdk/sdk.min.js", "sdk"),
    "GET /static/sdk/sdk.js": ("GET", "/static/sdk/sdk.js", "sdk"),
    "GET /workspace/{id}": ("GET", "/workspace/<wid>", "page"),
    "GET /workspace/{id}/check": ("GET", "/workspace/<wid>/check", "check"),
    "GET /_emulator/stats": ("GET", "/_emulator/stats", "stats"),
    "POST /_emulator/reset": ("POST", "/_emulator/reset", "reset"),
    "GET /_emulator/faults": ("GET", "/_emulator/faults", "get_faults"),
    "POST /_emulator/faults": ("POST", "/_emulator/faults", "post_faults"),
}
UNCOUNTED = {"stats", "reset", "get_faults", "post_faults"}
FAULT_KINDS = ("reset", "hang", "malformed", "ok")
ECHO_ENCODINGS = ("raw", "percent", "percent-lower", "form", "percent-twice", "json",
                  "json-unicode", "html", "base64", "base64url")
ECHO_FORMATS = ("text", "json", "html", "reason")
_ECHO_FIELDS = {"echo", "offset", "size", "status", "format"}
#: the filler an echoed token is put into (whitespace runs on purpose: clients flatten them)
_ECHO_FILLER = "upstream request failed;  the gateway\n\tsaid: service unavailable, retry later. "


def encode_token(token: str, encoding: str) -> str:
    """``token`` as a server would echo it in ``encoding`` (one of :data:`ECHO_ENCODINGS`)."""
    from urllib.parse import quote, quote_plus

    special = [c for c in token if not c.isalnum()]
    if encoding == "raw":
        return token
    if encoding == "percent":
        return quote(token, safe="")
    if encoding == "percent-lower":
        return "".join(f"%{b:02x}" if chr(b) in special or b > 127 else chr(b) for b in token.encode())
    if encoding == "form":
        return quote_plus(token, safe="")
    if encoding == "percent-twice":
        return quote(quote(token, safe=""), safe="")
    if encoding == "json":
        return json.dumps(token)[1:-1].replace("/", "\\/")
    if encoding == "json-unicode":
        return "".join(f"\\u{ord(c):04x}" if c in special else c for c in token)
    if encoding == "html":
        return "".join(f"&#{ord(c)};" if c in special else c for c in token)
    if encoding == "base64":
        return base64.b64encode(token.encode()).decode()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    raise ValueError(f"unknown echo encoding {encoding!r}; valid: {list(ECHO_ENCODINGS)}")


class ManualClock:
    """A clock for tests: ``clock()`` returns the time, ``advance()`` moves it."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> float:
        with self._lock:
            self._now += seconds + 60.0 * minutes
            return self._now


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong, and where; see the module docstring.  ``FaultPlan()`` = nothing."""

    latency: float = 0.0
    jitter: float = 0.0
    sequence: tuple[int | str | Mapping[str, Any] | None, ...] = ()
    rate: float = 0.0
    status: int | str | Mapping[str, Any] = 503
    retry_after: int = 1
    hang: float = MAX_HANG
    routes: tuple[str, ...] = ()
    seed: int | None = None

    @classmethod
    def build(cls, **kw: Any) -> FaultPlan:
        """Validate keyword arguments (as ``set_faults`` and the JSON endpoint get them)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - names)
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; valid: {sorted(names)}")
        kw = {k: v for k, v in kw.items() if v is not None or k == "seed"}
        plan = cls(**kw)
        for name in ("latency", "jitter", "hang"):
            value = getattr(plan, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"fault {name} must be a number of seconds >= 0, not {value!r}")
        if isinstance(plan.rate, bool) or not isinstance(plan.rate, (int, float)) \
                or not 0 <= plan.rate <= 1:
            raise ValueError(f"fault rate must be between 0 and 1, not {plan.rate!r}")
        if isinstance(plan.retry_after, bool) or not isinstance(plan.retry_after, int) \
                or plan.retry_after < 0:
            raise ValueError(f"retry_after must be whole seconds >= 0, not {plan.retry_after!r}")
        if isinstance(plan.sequence, (str, bytes)) or not isinstance(plan.sequence, Iterable):
            raise ValueError("fault sequence must be a list")
        if isinstance(plan.routes, str) or not isinstance(plan.routes, Iterable):
            raise ValueError("fault routes must be a list of labels like 'POST /workspaces'")
        plan = replace(plan, sequence=tuple(plan.sequence), routes=tuple(plan.routes),
                       hang=min(float(plan.hang), MAX_HANG))
        for item in (*plan.sequence, plan.status):
            _check_fault_item(item)
        bad = [r for r in plan.routes if r not in API_ROUTES]
        if bad:
            raise ValueError(f"unknown fault route(s) {bad}; valid: {sorted(API_ROUTES)}")
        return plan

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


def _check_fault_item(item: object) -> None:
    if isinstance(item, Mapping):
        _check_echo(item)
        return
    if item is None or item in FAULT_KINDS:
        return
    if isinstance(item, int) and not isinstance(item, bool) and (item == 200 or 400 <= item <= 599):
        return
    raise ValueError(
        f"invalid fault {item!r}: expected an HTTP status 400-599 (e.g. 500, 502, 503, 429), "
        f"one of {list(FAULT_KINDS)}, a token echo {{\"echo\": encoding, ...}} or null"
    )


def _check_echo(item: Mapping[str, Any]) -> None:
    unknown = sorted(set(item) - _ECHO_FIELDS)
    if unknown or "echo" not in item:
        raise ValueError(f"invalid token echo {dict(item)!r}: expected the keys {sorted(_ECHO_FIELDS)} "
                         "with 'echo' required")
    if item["echo"] not in ECHO_ENCODINGS:
        raise ValueError(f"unknown echo encoding {item['echo']!r}; valid: {list(ECHO_ENCODINGS)}")
    if item.get("format", "text") not in ECHO_FORMATS:
        raise ValueError(f"unknown echo format {item['format']!r}; valid: {list(ECHO_FORMATS)}")
    for key in ("offset", "size"):
        value = item.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise ValueError(f"echo {key} must be a whole number from 0 to 1000000, not {value!r}")
    status = item.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"echo status must be an HTTP status from 200 to 599, not {status!r}")


class ApiError(Exception):
    """An API error answered as ``{"error_code", "message"}``."""

    def __init__(self, status: int, error_code: int, message: str,
                 headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class _Workspace:
    id: str
    project_id: str
    seq: int
    created: float
    ready_at: float
    token: str
    token_required: bool
    auto_resume: bool
    inactivity_timeout: int
    retention_stopped: int
    retention_total: int
    state: int = STARTING
    active_since: float = 0.0  # inactivity counts from here (running since / last usage)
    stopped_at: float | None = None
    terminated_at: float | None = None
    last_usage: float | None = None


def _ts(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(t))


def _project_config(name: str) -> str:
    config = {
        "version": 2.1,
        "project": name,
        "scenarios": {
            "run": {
                "default": True,
                "stages": {
                    "build": {"command": "echo build", "timeout": 60},
                    "run": {"command": "python3 main.py", "redirect_streams_to": "console"},
                },
                "output": {"type": "console"},
            }
        },
        "files": {"read_only": []},
    }
    return json.dumps(config, separators=(",", ":"))


# The emulated API's own reading of a boolean form field (what the vendor's API accepts is inferred:
# see the module docstring), deliberately not the package's reader: it is the other side of the wire.
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _bool_field(data: Mapping[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ApiError(400, ERR_INVALID, f"invalid request data: {name} must be true or false")


def _int_field(data: Mapping[str, Any], names: tuple[str, ...], default: int) -> int:
    """The first of ``names`` present (the others are older spellings), as minutes >= 0."""
    for name in names:
        value = data.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        else:
            raise ApiError(400, ERR_INVALID,
                           f"invalid request data: {name} must be a whole number of minutes >= 0")
        if number < 0:
            raise ApiError(400, ERR_INVALID, f"invalid request data: {name} must be >= 0")
        return number
    return default


def _encode_page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"p:{offset}".encode()).decode().rstrip("=")


def _decode_page(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if raw.startswith("p:") and raw[2:].isdigit():
            return int(raw[2:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(400, ERR_INVALID, "invalid request data: page_token")


def _limit(request: Request) -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, ERR_INVALID,
                       f"invalid request data: limit must be between 1 and {MAX_LIMIT}")
    return int(raw)


def _paged(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    limit = _limit(request)
    offset = _decode_page(request.args.get("page_token"))
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    return {"items": page, "paging": {"next_page_token": _encode_page(offset + limit) if more else None}}


def _esc(value: object) -> str:
    return html.escape(str(value))  # quotes too: safe in attributes


@functools.cache
def _resource(name: str) -> str:
    return (resources.files(__package__ or "sphere_docs.services.emulator")
            .joinpath(name).read_text(encoding="utf-8"))


_UNDECODABLE: Any = object()


def _loads(raw: bytes) -> Any:
    """``raw`` as JSON, or :data:`_UNDECODABLE` (bad JSON, not UTF-8, or too deeply nested)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: ``[[[[...]]]]`` a thousand deep exhausts the parser's stack
        return _UNDECODABLE


class _Reset(ConnectionResetError):
    """Raised to drop the connection without a response (an emulated reset)."""


class EmulatorApp:
    """The emulator as a WSGI application (thread-safe: one lock guards all state).

    ``token``: the only access token accepted (``None`` = any non-empty one).
    ``start_delay``: seconds from starting to running.  ``projects``: id -> name
    (default :data:`DEMO_PROJECTS`).  ``clock``: seconds like ``time.time``.
    ``slots``: how many starting+running workspaces may exist (``None`` = no
    limit).  ``faults``/``latency``/``jitter``: the initial :class:`FaultPlan`.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        start_delay: float = 1.0,
        projects: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        slots: int | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        faults: Mapping[str, Any] | FaultPlan | None = None,
    ):
        if start_delay < 0:
            raise ValueError("start_delay must be >= 0")
        self._token = token
        self.start_delay = float(start_delay)
        self.projects: dict[str, str] = dict(DEMO_PROJECTS if projects is None else projects)
        for pid in self.projects:
            if len(pid) != 32 or any(c not in string.hexdigits.lower() for c in pid):
                raise ValueError(f"project id {pid!r} is not 32 lower-case hex characters")
        self.clock: Callable[[], float] = clock or time.time
        self.slots = slots
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._workspaces: dict[str, _Workspace] = {}
        self._seq = 0
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._injected: Counter[str] = Counter()
        self._rng = random.Random()
        self._faults = FaultPlan()
        self._sequence: list[int | str | Mapping[str, Any] | None] = []
        plan = faults if isinstance(faults, FaultPlan) else FaultPlan.build(**dict(faults or {}))
        if latency or jitter:
            plan = replace(plan, latency=latency or plan.latency, jitter=jitter or plan.jitter)
        self._install_faults(plan)
        rules = [Rule(rule, methods=[method], endpoint=(endpoint, label))
                 for label, (method, rule, endpoint) in {**API_ROUTES, **OTHER_ROUTES}.items()]
        self._map = Map(rules)

    # ------------------------------------------------------------------ Python API

    def count(self, route: str) -> int:
        """Requests seen for ``route`` (e.g. ``"POST /workspaces"``), whatever the outcome."""
        with self._lock:
            return sum(self._counts.get(route, Counter()).values())

    def stats(self) -> dict[str, Any]:
        """Requests per route and status, faults injected, workspaces total/alive/by state."""
        with self._lock:
            now = self.clock()
            for ws in self._workspaces.values():
                self._advance(ws, now)
            by_state = Counter(STATE_NAMES[ws.state] for ws in self._workspaces.values())
            routes = {route: {"total": sum(c.values()), "by_status": dict(sorted(c.items()))}
                      for route, c in sorted(self._counts.items())}
            return {
                "requests": routes,
                "total_requests": sum(r["total"] for r in routes.values()),
                "faults_injected": dict(sorted(self._injected.items())),
                "workspaces": {
                    "total": len(self._workspaces),
                    "alive": sum(by_state[STATE_NAMES[s]] for s in ALIVE),
                    "by_state": {STATE_NAMES[s]: by_state[STATE_NAMES[s]] for s in STATE_NAMES},
                },
                "faults": self._faults.as_dict(),
            }

    def reset_stats(self) -> None:
        """Forget request counts (workspaces and faults stay)."""
        with self._lock:
            self._counts.clear()
            self._injected.clear()

    def set_faults(self, **kw: Any) -> None:
        """Replace the fault plan (``set_faults()`` clears every fault); see :class:`FaultPlan`."""
        self._install_faults(FaultPlan.build(**kw))

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    def workspace(self, workspace_id: str) -> dict[str, Any] | None:
        """The workspace object as the API would show it (for tests), or None."""
        with self._lock:
            ws = self._workspaces.get(workspace_id)
            if ws is None:
                return None
            self._advance(ws, self.clock())
            return self._public(ws, "http://emulator/")

    def close(self) -> None:
        """Wake every emulated hang so a server can stop promptly."""
        self._closing.set()

    def _install_faults(self, plan: FaultPlan) -> None:
        with self._lock:
            self._faults = plan
            self._sequence = list(plan.sequence)
            self._rng = random.Random(plan.seed)

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        if request.method == "OPTIONS":
            return self._cors(Response(status=204))
        try:
            (endpoint, label), args = adapter.match()
        except HTTPException as exc:
            status = exc.code or 404
            self._record("other", status)
            return self._error(ApiError(status, 0, "not found" if status == 404 else
                                        (exc.description or "error")))
        counted = endpoint not in UNCOUNTED
        try:
            if label in API_ROUTES:
                fault = self._before_api(label)
                if fault == "reset":
                    self._record(label, "reset")
                    self._reset(request)
                if fault == "malformed":
                    response = Response('{"message": "Workspace has been cr', 200,
                                        mimetype="application/json")
                    self._record(label, 200)
                    return self._cors(response)
                if isinstance(fault, Mapping):
                    response = self._echo(request, fault)
                    self._record(label, response.status_code)
                    return self._cors(response)
                if isinstance(fault, int):
                    raise self._fault_error(fault)
                self._authenticate(request)
            response = getattr(self, f"_ep_{endpoint}")(request, **args)
        except ApiError as err:
            response = self._error(err)
        except _Reset:
            raise
        except Exception:  # a bug of the emulator: still the API's error envelope, not a crash page
            response = self._error(ApiError(500, ERR_SERVER, "server error"))
        if counted:
            self._record(label, response.status_code)
        return self._cors(response)

    # ------------------------------------------------------------------ faults

    def _before_api(self, label: str) -> int | str | Mapping[str, Any] | None:
        """Apply latency and pick this request's fault (None = behave)."""
        with self._lock:
            plan = self._faults
            if plan.routes and label not in plan.routes:
                return None
            delay = plan.latency + (self._rng.uniform(0, plan.jitter) if plan.jitter else 0.0)
            fault: int | str | Mapping[str, Any] | None = None
            if self._sequence:
                fault = self._sequence.pop(0)
            elif plan.rate and self._rng.random() < plan.rate:
                fault = plan.status
            if fault in ("ok", 200):
                fault = None
            if fault is not None:
                self._injected["echo" if isinstance(fault, Mapping) else str(fault)] += 1
            hang = plan.hang
        if delay:
            self._closing.wait(delay)
        if fault == "hang":
            self._closing.wait(hang)
            return None
        return fault

    def _echo(self, request: Request, fault: Mapping[str, Any]) -> Response:
        """An answer quoting the request's access token (see the module docstring)."""
        token = request.args.get("access_token", "")
        auth = request.headers.get("Authorization", "")
        if not token and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        echoed = encode_token(token, str(fault["echo"])) if token else ""
        size, status = int(fault.get("size", 200)), int(fault.get("status", 500))
        filler = (_ECHO_FILLER * (size // len(_ECHO_FILLER) + 1))[:max(0, size - len(echoed))]
        offset = min(int(fault.get("offset", 0)), len(filler))
        text = filler[:offset] + echoed + filler[offset:]
        kind = fault.get("format", "text")
        if kind == "json":
            return self._json({"error_code": ERR_SERVER, "message": text}, status)
        if kind == "html":
            page = f"<html><head><title>Error</title></head><body><pre>{text}</pre></body></html>"
            return Response(page, status, mimetype="text/html")
        if kind == "reason":
            reason = " ".join(text.split()).encode("latin-1", "replace").decode("latin-1")
            return Response(b"", f"{status} {reason}")
        return Response(text, status, mimetype="text/plain")

    def _fault_error(self, status: int) -> ApiError:
        if status == 429:
            retry = str(self._faults.retry_after)
            return ApiError(429, ERR_RATE_LIMITED, "too many requests", {"Retry-After": retry})
        if status >= 500:
            return ApiError(status, ERR_SERVER, f"emulated server error {status}")
        return ApiError(status, ERR_INVALID, f"emulated error {status}")

    @staticmethod
    def _reset(request: Request) -> None:
        sock = request.environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            # Linger on with timeout 0: close() sends RST instead of FIN.  The
            # server skips its usual shutdown(SHUT_WR) for such a socket.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raise _Reset("emulated connection reset")

    # ------------------------------------------------------------------ helpers

    def _record(self, label: str, status: int | str) -> None:
        with self._lock:
            self._counts[label][str(status)] += 1

    @staticmethod
    def _cors(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        return response

    @staticmethod
    def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return Response(json.dumps(obj), status, headers=dict(headers or {}),
                        mimetype="application/json")

    def _error(self, err: ApiError) -> Response:
        return self._json({"error_code": err.error_code, "message": err.message},
                          err.status, err.headers)

    def _authenticate(self, request: Request) -> None:
        given = request.args.get("access_token", "")
        auth = request.headers.get("Authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        ok = bool(given) if self._token is None else given == self._token
        if not ok:
            raise ApiError(401, ERR_UNAUTHORIZED, "unauthorized access")

    def _advance(self, ws: _Workspace, now: float) -> None:
        """Apply every transition that fell due up to ``now``, in time order."""
        while True:
            due: list[tuple[float, str]] = []
            if ws.state == STARTING:
                due.append((ws.ready_at, "ready"))
            if ws.state != REMOVED and ws.retention_total > 0:
                due.append((ws.created + 60.0 * ws.retention_total, "remove"))
            if ws.state == RUNNING and ws.inactivity_timeout > 0:
                kind = "stop" if ws.retention_stopped > 0 else "remove"
                due.append((ws.active_since + 60.0 * ws.inactivity_timeout, kind))
            if ws.state == STOPPED and ws.retention_stopped > 0 and ws.stopped_at is not None:
                due.append((ws.stopped_at + 60.0 * ws.retention_stopped, "remove"))
            due = [d for d in due if d[0] <= now]
            if not due:
                return
            when, kind = min(due)
            if kind == "ready":
                ws.state = RUNNING
                ws.active_since = max(ws.active_since, when)
            elif kind == "stop":
                ws.state = STOPPED
                ws.stopped_at = when
            else:
                ws.state = REMOVED
                ws.terminated_at = when

    def _public(self, ws: _Workspace, url_root: str) -> dict[str, Any]:
        return {
            "id": ws.id,
            "project": {"id": ws.project_id, "name": self.projects.get(ws.project_id, "")},
            "created_at": _ts(ws.created),
            "terminated_at": _ts(ws.terminated_at),
            "last_usage": _ts(ws.last_usage),
            "inactivity_timeout": ws.inactivity_timeout,
            "workspace_token": ws.token,
            "workspace_token_required": ws.token_required,
            "state": {"code": ws.state, "name": STATE_NAMES[ws.state], "error_reason": None},
            "auto_resume": ws.auto_resume,
            "workspace_init_failed": False,
            "streams": {"workspace_init_output": None, "workspace_init_error": None},
            "retention_time_stopped": ws.retention_stopped,
            "retention_time_total": ws.retention_total,
            "permissions": {"enter": True, "remove": False, "stop": False},
            "config": _project_config(self.projects.get(ws.project_id, "")),
            "workspace_url": f"{url_root.rstrip('/')}/workspace/{ws.id}",
        }

    def _get(self, wid: str) -> _Workspace:
        ws = self._workspaces.get(wid)
        if ws is None:
            raise ApiError(404, ERR_WORKSPACE_NOT_FOUND, "workspace not found")
        self._advance(ws, self.clock())
        return ws

    def _alive(self) -> int:
        now = self.clock()
        for ws in self._workspaces.values():
            self._advance(ws, now)
        return sum(1 for ws in self._workspaces.values() if ws.state in ALIVE)

    def _start(self, ws: _Workspace, now: float) -> None:
        ws.state = STARTING
        ws.ready_at = now + self.start_delay
        ws.active_since = now
        ws.stopped_at = None
        self._advance(ws, now)

    @staticmethod
    def _body(request: Request) -> Mapping[str, Any]:
        if request.mimetype == "application/json" or request.mimetype.endswith("+json"):
            raw = request.get_data(cache=True)
            if not raw.strip():
                return {}
            data = _loads(raw)
            if data is _UNDECODABLE:
                raise ApiError(400, ERR_INVALID, "invalid request data: malformed JSON body")
            if not isinstance(data, dict):
                raise ApiError(400, ERR_INVALID, "invalid request data: JSON body must be an object")
            return data
        return request.form.to_dict()

    # ------------------------------------------------------------------ API endpoints

    def _ep_test(self, request: Request) -> Response:
        return self._json({"message": TEST_MESSAGE})

    def _ep_list_projects(self, request: Request) -> Response:
        items = [{"id": pid, "name": name} for pid, name in self.projects.items()]
        return self._json(_paged(items, request))

    def _ep_create_workspace(self, request: Request) -> Response:
        data = self._body(request)
        project_id = data.get("project_id")
        if not isinstance(project_id, str) or not project_id.strip():
            raise ApiError(400, ERR_INVALID, "invalid request data: project_id is required")
        project_id = project_id.strip()
        token_required = _bool_field(data, "workspace_token_required", True)
        auto_resume = _bool_field(data, "auto_resume", True)
        inactivity = _int_field(data, ("inactivity_timeout",), DEFAULT_INACTIVITY_TIMEOUT)
        stopped = _int_field(data, ("retention_time_stopped", "max_inactivity_storage_time",
                                    "max_inactive_storage_time"), 0)
        total = _int_field(data, ("retention_time_total", "max_storage_time"), 0)
        if project_id not in self.projects:
            raise ApiError(404, ERR_PROJECT_NOT_FOUND, "project not found")
        with self._lock:
            if self.slots is not None and self._alive() >= self.slots:
                raise ApiError(400, ERR_NO_SLOTS, "no free workspace slots")
            now = self.clock()
            self._seq += 1
            ws = _Workspace(
                id=uuid.uuid4().hex, project_id=project_id, seq=self._seq, created=now,
                ready_at=now + self.start_delay, token=str(uuid.uuid4()),
                token_required=token_required, auto_resume=auto_resume,
                inactivity_timeout=inactivity, retention_stopped=stopped, retention_total=total,
                active_since=now,
            )
            self._workspaces[ws.id] = ws
            self._advance(ws, now)
            body = {"message": "Workspace has been created",
                    "workspace": self._public(ws, request.url_root)}
        return self._json(body, 201)

    def _ep_get_workspace(self, request: Request, wid: str) -> Response:
        with self._lock:
            return self._json(self._public(self._get(wid), request.url_root))

    def _ep_list_workspaces(self, request: Request) -> Response:
        project_id = request.args.get("project_id") or None
        raw_states = request.args.getlist("states[]") + request.args.getlist("states")
        states: set[int] = set()
        for raw in raw_states:
            for part in raw.split(","):
                part = part.strip()
                if not part:
                    continue
                if not part.isdigit() or int(part) not in STATE_NAMES:
                    raise ApiError(400, ERR_INVALID,
                                   f"invalid request data: states must be codes {sorted(STATE_NAMES)}")
                states.add(int(part))
        with self._lock:
            now = self.clock()
            items = []
            for ws in sorted(self._workspaces.values(), key=lambda w: w.seq):
                self._advance(ws, now)
                if project_id and ws.project_id != project_id:
                    continue
                if states and ws.state not in states:
                    continue
                items.append(self._public(ws, request.url_root))
        return self._json(_paged(items, request))

    def _ep_stop(self, request: Request, wid: str) -> Response:
        with self._lock:
            ws = self._get(wid)
            if ws.state == REMOVED:
                raise ApiError(400, ERR_STATE, "a removed workspace cannot be stopped")
            if ws.state == STOPPED:
                message = "Workspace is already stopped"
            else:
                ws.state = STOPPED
                ws.stopped_at = self.clock()
                message = "Workspace has been stopped"
            return self._json({"message": message, "workspace": self._public(ws, request.url_root)})

    def _ep_resume(self, request: Request, wid: str) -> Response:
        with self._lock:
            ws = self._get(wid)
            if ws.state in (REMOVED, ERROR):
                raise ApiError(400, ERR_STATE,
                               f"a {STATE_NAMES[ws.state]} workspace cannot be resumed")
            if ws.state in ALIVE:
                message = "Workspace is already running"
            else:
                if self.slots is not None and self._alive() >= self.slots:
                    raise ApiError(400, ERR_NO_SLOTS, "no free workspace slots")
                self._start(ws, self.clock())
                message = "Workspace has been resumed"
            return self._json({"message": message, "workspace": self._public(ws, request.url_root)})

    def _ep_remove(self, request: Request, wid: str) -> Response:
        with self._lock:
            ws = self._get(wid)
            if ws.state == REMOVED:
                message = "Workspace has already been removed"
            else:
                ws.state = REMOVED
                ws.terminated_at = self.clock()
                message = "Workspace has been removed"
            return self._json({"message": message, "workspace": self._public(ws, request.url_root)})

    # ------------------------------------------------------------------ SDK and page

    def _ep_sdk(self, request: Request) -> Response:
        response = Response(_resource("sdk.js"), mimetype="application/javascript")
        response.headers["Cache-Control"] = "no-cache"
        return response

    def _embed_check(self, wid: str, token: str) -> tuple[int, dict[str, Any], _Workspace | None]:
        """Can the embed show this workspace with this token?  (status, info, workspace)"""
        ws = self._workspaces.get(wid)
        if ws is None:
            return 404, {"ok": False, "reason": "This workspace does not exist."}, None
        self._advance(ws, self.clock())
        info: dict[str, Any] = {
            "ok": True, "reason": None, "workspace_id": ws.id,
            "project": self.projects.get(ws.project_id, ""),
            "state": STATE_NAMES[ws.state], "token_required": ws.token_required,
        }
        if ws.token_required and not token:
            info.update(ok=False, reason="This workspace requires a workspace token, "
                                         "and the page did not provide one (data-workspace-token).")
            return 403, info, ws
        if ws.token_required and token != ws.token:
            info.update(ok=False, reason="The workspace token given by the page "
                                         "(data-workspace-token) is not valid for this workspace.")
            return 403, info, ws
        if ws.state == REMOVED:
            info.update(ok=False, reason="This workspace has been removed.")
            return 410, info, ws
        if ws.state == STOPPED and not ws.auto_resume:
            info.update(ok=False, reason="This workspace is stopped and must be resumed "
                                         "through the API (auto_resume is off).")
            return 409, info, ws
        return 200, info, ws

    def _ep_check(self, request: Request, wid: str) -> Response:
        with self._lock:
            status, info, _ = self._embed_check(wid, request.args.get("token", ""))
        return self._json(info, status)

    def _ep_page(self, request: Request, wid: str) -> Response:
        with self._lock:
            status, info, ws = self._embed_check(wid, request.args.get("token", ""))
            if ws is not None and status == 200:
                now = self.clock()
                if ws.state == STOPPED:
                    self._start(ws, now)
                ws.last_usage = now
                ws.active_since = max(ws.active_since, now)
                info["state"] = STATE_NAMES[ws.state]
            state_code = ws.state if ws is not None else 0
            created = _ts(ws.created) if ws is not None else ""
        template = string.Template(_resource("workspace.html"))
        page = template.safe_substitute(
            title=_esc(f"{info.get('project') or 'Workspace'} · Sphere Engine emulator"),
            project=_esc(info.get("project") or "—"),
            state=_esc(info.get("state") or "unknown"),
            state_code=state_code,
            workspace_id=_esc(wid),
            created=_esc(created or ""),
            refused="" if status == 200 else "refused",
            reason=_esc(info.get("reason") or ""),
            refresh='<meta http-equiv="refresh" content="1">' if info.get("state") == "starting"
            and status == 200 else "",
        )
        return Response(page, status, mimetype="text/html")

    # ------------------------------------------------------------------ emulator control

    def _ep_stats(self, request: Request) -> Response:
        return self._json(self.stats())

    def _ep_reset(self, request: Request) -> Response:
        """Forget counts; with ``?workspaces=1`` (or JSON ``{"workspaces": true}``) also workspaces."""
        data = _loads(request.get_data(cache=True)) if request.is_json else None
        drop = request.args.get("workspaces", "") in _TRUE or (
            isinstance(data, dict) and data.get("workspaces") is True)
        with self._lock:
            self.reset_stats()
            if drop:
                self._workspaces.clear()
        return self._json({"message": "reset", "workspaces_cleared": drop})

    def _ep_get_faults(self, request: Request) -> Response:
        return self._json(self._faults.as_dict())

    def _ep_post_faults(self, request: Request) -> Response:
        data = _loads(request.get_data(cache=True)) if request.is_json else None
        if data in (None, _UNDECODABLE) and not request.get_data().strip():
            data = {}
        if not isinstance(data, dict):
            raise ApiError(400, ERR_INVALID, "faults must be a JSON object")
        try:
            self.set_faults(**data)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, ERR_INVALID, str(exc)) from None
        return self._json(self._faults.as_dict())


def create_app(**kw: Any) -> EmulatorApp:
    """The emulator WSGI app without a server (same keyword arguments as :class:`EmulatorApp`)."""
    return EmulatorApp(**kw)
