"""Build-time provisioning: one workspace per build-mode embed, reused across builds.

Both front ends (the MkDocs plugin and the Sphinx extension) collect an
:class:`EmbedRequest` per build-mode embed and hand them all to
:meth:`Provisioner.resolve`, which answers a :class:`Resolution` per
``request.key`` (``"<page>#<name>"``).

The ledger
----------
Created workspaces are recorded in the ledger under the ``cache`` folder (keep
it out of the docs folder so it is never published): ``ledger.json`` plus the
journal of the changes since it was last written whole, ``ledger.journal``
(:mod:`sphere_docs.pipeline.ledger` keeps both on disk and documents their format).  Its
content, as :meth:`Ledger.read` answers it::

    {"version": 1,
     "entries": {"<api_base>|<project>|<creation key>|<page>#<name>":
                   {"endpoint", "project_id", "creation_key", "page", "name",
                    "workspace_id", "workspace_token", "created_at",
                    "last_used_build", "last_used_at"}},
     "builds":  {"<api_base>|<scope>": {"build_id", "updated_at", "keys": [...]}},
     "intents": {"<id>": {"endpoint", "project_id", "creation_key", "fields",
                          "ledger_key", "page", "name", "build_id", "host", "pid",
                          "state", "started_at", "ended_at", "window_end", "reason"}}}

The key holds everything that shapes the created workspace
(:meth:`WorkspaceSpec.creation_key`: project and creation options, not display
options such as height) plus the page and the embed's name, so editing prose
or the height reuses the workspace and changing ``:inactivity-timeout:``
creates exactly one new one.  The stored token is the *workspace* token
(public in the built page anyway), never the access token.

``intents`` (added in sphere-docs 0.2; the version stays 1, older readers keep
the key as it is) make the ledger lose nothing: before each ``POST
/workspaces`` an *intent* (project, creation options, page and name, start
time) is written durably, and the moment the create answers, the workspace is
recorded and the intent dropped, in one journal line.  So whatever kills a build, the
only workspaces the ledger does not list are creates that were in flight, and
each of those is named by an intent (``state: in_flight``).  A create that got
no usable answer (timeout, reset, 5xx after sending) leaves its intent with
``state: unanswered``: the API may have made the workspace.  The next build
*reconciles* intents first (:meth:`Provisioner.resolve`): it lists the
project's workspaces and adopts one that has the same creation options, was
created in the intent's time window (``started_at`` .. ``window_end``), was
never entered (``last_usage`` null) and that no ledger entry owns — only when
that choice is unambiguous; an intent whose window is over with nothing to
adopt is dropped.  ``sphere-docs doctor`` names the intents left.  An adopted
workspace whose embed already has one, a duplicate lost in a race with a
concurrent build, and a replaced predecessor that could not be removed are
recorded under a *spare* key (``<key>|unused:<workspace id>``) that no build
uses, so ``sphere-docs prune`` removes them.

Every read validates the whole document (:func:`validate_ledger`, one schema).
A ledger that cannot be read — cut short, not UTF-8, wrongly shaped, a folder,
no permission — raises :class:`LedgerError` (file, place, fix) before anything
is created, and is never overwritten: the engines stop the build, ``doctor``
reports it, ``prune`` refuses.

A resolve checks every ledger hit with ``GET /workspaces/{id}`` and creates
what is missing or no longer live (removed, errored, stopped without
auto-resume), all concurrently (at most ``concurrency`` calls in flight).  A
check the API cannot answer (5xx, 429, timeout, connection error after the
retries) keeps the recorded workspace, with a warning: it was live at the last
build, and only a definite answer (404, removed, errored) replaces it.
Each intent and each result is one journal line (O(change), flushed to disk
before the create is sent, resp. before the answer is used); the writes of
concurrent workers are grouped (one line per batch).  The ledger is written
whole once per build (the build's record, with the journal folded in) and for
the rare whole-ledger changes (reconciling, renaming legacy keys, prune).
Every write holds a :class:`filelock.FileLock` and first reads what other
builds added, so two builds at once leave it valid and complete.
If another build recorded a workspace for the same key while we were creating
ours, we adopt theirs and remove ours, so a key never ends up with two
workspaces.

Ctrl-C (SIGINT) or SIGTERM while provisioning starts nothing new, waits for
the creates in flight (each bounded by the API timeout), records them, and
then lets the interruption end the build (a second signal stops the wait; the
intents still name what was in flight).

``builds`` remembers which keys the last build of each site scope used;
``sphere-docs prune`` (:func:`prune`) removes ledger workspaces that no last
build uses any more.  One :class:`Provisioner` is one build: several
``resolve`` calls on it add up to that build's set of keys, and an
incremental build marks the embeds it did not re-resolve with
:meth:`Provisioner.mark_used`.

Failures follow the ``on_error`` setting: ``fail`` raises
:class:`ProvisionError` naming page, line, project and the API's reason;
``placeholder`` and ``lazy`` answer ``Resolution(fallback=...)`` and log a
WARNING on the given logger (so ``mkdocs build --strict`` still fails).
Workspaces created before a failure are recorded all the same.

``sphere-workspaces.json`` (page → embeds, never a token) is written and read
by :mod:`sphere_docs.core.manifest`, which does not need this module's HTTP stack.

The deployed site as the ledger of record
-----------------------------------------
On a fresh machine (CI) the ledger is empty.  With the ``previous_manifest``
setting (or ``$SPHERE_DOCS_PREVIOUS_MANIFEST``) naming the last deployed site's
``sphere-workspaces.json``, a resolve whose ledger misses some embed fetches
that manifest once (:meth:`Provisioner._deployed_lookup`) and, for each embed
it lists with the same page, name, project and creation key, checks the
workspace with ``GET /workspaces/{id}``: same project, live or resuming on
entry (:attr:`Workspace.is_live`), usable by the page (:meth:`Provisioner._usable`).
Such a workspace is reused with the token from the API's answer and recorded in
the ledger (``note: "reused from the deployed site"``); anything else is
created as before.  The predecessor of a workspace created that way is left
alone: the deployed site still shows it until the new one is deployed, and
``sphere-docs prune --previous`` removes it then.  A manifest that cannot be
fetched is one warning; a malformed one is a :class:`ManifestError`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..api.errors import (
    NotFoundError,
    RateLimitedError,
    ServerError,
    SphereEngineError,
    TransportError,
)
from ..api.models import STATE_REMOVED, Workspace
from ..core.errors import SphereDocsError
from ..core.manifest import (
    ManifestError,
    ManifestUnavailable,
    deployed_workspaces,
    read_manifest,
    shown_source,
)
from ..core.naming import legacy_adoptions
from ..core.options import TOKEN_RE, WORKSPACE_ID_RE, truth
from ..core.redact import redact
from ..core.settings import PREVIOUS_MANIFEST_ENV, SiteSettings, parse_endpoint
from . import Embed
from .ledger import (
    JOURNAL_NAME,
    LEDGER_NAME,
    GroupCommit,
    Ledger,
    LedgerError,
    _now,
    _stamp,
    parse_time,
    validate_ledger,
)
from .process_pool import ProcessPool, can_fork

if TYPE_CHECKING:  # the HTTP stack (requests) is imported when the first API call is made:
    from ..api.client import ContainersClient  # a rebuild that the ledger answers never loads it

__all__ = [
    "JOURNAL_NAME",
    "LEDGER_NAME",
    "EmbedRequest",
    "Ledger",
    "LedgerError",
    "ProvisionError",
    "Provisioner",
    "PruneResult",
    "Resolution",
    "ResolveSession",
    "match_intents",
    "prune",
    "validate_ledger",
]

PROGRESS_EVERY_SECONDS = 2.0
#: builds with at least this many embeds log progress every tenth (others only when slow)
PROGRESS_MIN_TOTAL = 10
#: marks a spare entry: a workspace we hold that no embed uses (prune removes it)
UNUSED_MARK = "|unused:"
#: seconds of tolerance around an intent's window (whole-second stamps, clocks that differ a little)
WINDOW_SLACK = 5.0
#: seconds a server may still complete a create after the client stopped waiting for its answer
LATE_ANSWER_GRACE = 60.0

log = logging.getLogger("sphere_docs.pipeline.provision")

#: intents whose create is running in this process (a reconcile must leave them alone)
_ACTIVE_INTENTS: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


# --------------------------------------------------------------------------- values


#: set on the log record of each per-embed fallback warning (``record.sphere_fallback``)
FALLBACK_RECORD_FLAG = "sphere_fallback"


#: One build-mode embed of one page: the pipeline's embed record (``page``, ``spec`` named, ``line``).
EmbedRequest = Embed


@dataclass(frozen=True)
class Resolution:
    """What a front end renders for one embed."""

    request: EmbedRequest
    workspace_id: str | None = None
    workspace_token: str | None = field(default=None, repr=False)
    fallback: str | None = None  #: None when ok; "placeholder" or "lazy" per on_error
    reason: str | None = None  #: human text for the placeholder / warning (never the token)
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.fallback is None and self.workspace_id is not None


class ProvisionError(SphereDocsError):
    """A workspace could not be created and ``on_error`` is ``fail``.

    ``request`` is the (first) failed embed, ``reason`` the API's reason,
    ``failures`` every failed embed with its reason.
    """

    def __init__(self, message: str, *, request: EmbedRequest | None = None,
                 reason: str | None = None,
                 failures: Sequence[tuple[EmbedRequest, str]] = ()):
        self.request = request
        self.reason = reason
        self.failures = list(failures)
        super().__init__(message)


def ledger_key(api_base: str, request: EmbedRequest) -> str:
    spec = request.spec
    return "|".join((api_base, spec.project_id, spec.creation_key(), request.key))


def unused_key(lkey: str, workspace_id: str) -> str:
    """The key of a spare entry: a workspace of ours that no embed uses (``prune`` removes it)."""
    return f"{lkey.split(UNUSED_MARK, 1)[0]}{UNUSED_MARK}{workspace_id}"


# --------------------------------------------------------------------------- intents


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    try:  # a zombie (a killed build's provisioning process nobody reaped yet) runs nothing
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def intent_in_flight(iid: str, intent: Mapping[str, Any], now: float | None = None) -> bool:
    """Is the create of ``intent`` possibly still running in a live build (leave it alone)?"""
    if intent.get("state") != "in_flight":
        return False
    now = time.time() if now is None else now
    end = parse_time(intent.get("window_end"))
    if end is not None and now > end + WINDOW_SLACK:
        return False  # whatever ran it has given up long ago
    pid = intent.get("pid")
    if intent.get("host") == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            with _ACTIVE_LOCK:
                return iid in _ACTIVE_INTENTS
        return _pid_alive(pid)
    return True  # another machine: trust the window


_BOOL_FIELDS = ("workspace_token_required", "auto_resume")


def _options_match(ws: Workspace, fields: Mapping[str, str]) -> bool:
    """Could ``ws`` have been created with ``fields``?  (A field the API does not show counts as a match.)"""
    raw = ws.raw
    for name, wanted in fields.items():
        have = raw.get(name)
        if have is None:
            continue
        if name in _BOOL_FIELDS:
            flag = truth(have) is True
            if flag != (wanted == "true"):
                return False
        else:
            try:
                if int(have) != int(wanted):
                    return False
            except (TypeError, ValueError):
                return False
    return True


def _window(intent: Mapping[str, Any]) -> tuple[float, float]:
    start = parse_time(intent.get("started_at")) or 0.0
    end = parse_time(intent.get("window_end")) or start
    return start - WINDOW_SLACK, end + WINDOW_SLACK


@dataclass
class IntentMatches:
    """What :func:`match_intents` decided for each intent."""

    adopt: dict[str, Workspace] = field(default_factory=dict)  #: intent id -> the workspace it made
    gone: list[str] = field(default_factory=list)  #: made a workspace that is removed already
    nothing: list[str] = field(default_factory=list)  #: window over, the API lists nothing for it
    ambiguous: dict[str, list[Workspace]] = field(default_factory=dict)  #: more candidates than creates
    waiting: list[str] = field(default_factory=list)  #: nothing yet, window still open (or in flight)


def match_intents(intents: Mapping[str, Mapping[str, Any]], listed: Mapping[str, Sequence[Workspace]],
                  entries: Mapping[str, Mapping[str, Any]], now: float | None = None) -> IntentMatches:
    """Which listed workspace each intent made (for the next build to adopt, for doctor to show).

    ``intents`` are one endpoint's; ``listed`` maps each of their projects to the
    API's list of its workspaces.  A candidate is a workspace no entry owns,
    never entered, with the intent's creation options, created in its window; an
    intent still in flight elsewhere keeps its candidates from the others.  When a
    group of intents (same project and options) has more candidates than
    creates, nothing of the group is adopted (``ambiguous``).
    """
    now = time.time() if now is None else now
    owned = {str(e.get("workspace_id")) for e in entries.values()}
    result = IntentMatches()
    groups: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
    for iid, intent in intents.items():
        group = (str(intent.get("project_id")), json.dumps(intent.get("fields") or {}, sort_keys=True))
        groups.setdefault(group, []).append((iid, intent))
    for (project, _), members in groups.items():
        fields = members[0][1].get("fields") or {}
        running = {iid for iid, i in members if intent_in_flight(iid, i, now)}
        live = [i for iid, i in members if iid in running]
        ours = sorted(((iid, i) for iid, i in members if iid not in running),
                      key=lambda m: parse_time(m[1].get("started_at")) or 0.0)
        result.waiting.extend(sorted(running))
        candidates: list[tuple[float, Workspace]] = []
        for ws in listed.get(project, ()):
            created = parse_time(ws.created_at)
            if ws.id in owned or ws.last_usage is not None or created is None \
                    or not _options_match(ws, fields):
                continue
            if any(lo <= created <= hi for lo, hi in map(_window, live)):
                continue  # it may be the answer a running build is about to record
            if any(lo <= created <= hi for lo, hi in (_window(i) for _, i in ours)):
                candidates.append((created, ws))
        candidates.sort(key=lambda c: (c[0], c[1].id))
        taken: set[str] = set()
        assigned: dict[str, Workspace] = {}
        for iid, intent in ours:
            lo, hi = _window(intent)
            pick = next((ws for created, ws in candidates if ws.id not in taken and lo <= created <= hi), None)
            if pick is not None:
                taken.add(pick.id)
                assigned[iid] = pick
        if len(taken) < len(candidates):  # more workspaces than creates: which are ours is a guess
            for iid, intent in ours:
                lo, hi = _window(intent)
                result.ambiguous[iid] = [ws for created, ws in candidates if lo <= created <= hi]
            continue
        for iid, intent in ours:
            if iid in assigned:
                if assigned[iid].state_code == STATE_REMOVED:
                    result.gone.append(iid)
                else:
                    result.adopt[iid] = assigned[iid]
            elif now > _window(intent)[1]:
                result.nothing.append(iid)
            else:
                result.waiting.append(iid)
    return result


def describe_intent(intent: Mapping[str, Any]) -> str:
    """One line for people: project, page and name, window, what happened."""
    state = ("its build stopped before the answer came" if intent.get("state") == "in_flight"
             else f"no usable answer: {intent.get('reason') or 'unknown'}")
    return (f"project {intent.get('project_id')}, {intent.get('page')} {intent.get('name')}: "
            f"created between {intent.get('started_at')} and {intent.get('window_end')} (UTC) "
            f"if at all ({state})")


# --------------------------------------------------------------------------- interruptions


class _Terminated(BaseException):
    """SIGTERM while provisioning, raised in the main thread by :func:`_sigterm_raises`."""


#: the exit status of a build that SIGTERM ended (what a shell reports for a process it killed)
SIGTERM_EXIT = 128 + int(signal.SIGTERM)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While provisioning, SIGTERM raises :class:`_Terminated` instead of ending the process at once.

    Only in the main thread, and only when SIGTERM has its default action (a host
    application that handles it keeps its own handler).  The first SIGTERM restores
    the default, so a second one ends the process without waiting.
    """
    installed = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                def handler(signum: int, frame: Any) -> None:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    raise _Terminated()

                signal.signal(signal.SIGTERM, handler)
                installed = handler
    try:
        yield
    finally:
        if installed is not None and signal.getsignal(signal.SIGTERM) is installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --------------------------------------------------------------------------- provisioner


@dataclass
class _Outcome:
    lkey: str
    request: EmbedRequest
    workspace: Workspace | None = None
    created: bool = False
    error: SphereEngineError | None = None
    replaced: Workspace | None = None  #: a dead workspace this one replaces
    skipped: bool = False  #: not attempted: the build was stopped (on_error=fail, Ctrl-C, SIGTERM)
    checked: str | None = None  #: the workspace id whose GET check failed (``error`` is that call's)
    unchecked: str | None = None  #: why the recorded workspace is used without a check (API down)
    fatal: SphereDocsError | None = None  #: the ledger could not be written: stop the build
    confirmed_at: str | None = None  #: when the API said ``workspace`` is live (a check or a create)
    trusted: bool = False  #: used without a check: the ledger's last check is within ``trust_checked``

    def resolution(self, request: EmbedRequest) -> Resolution:
        """What ``request`` (this outcome's embed, or one with the same ledger key) renders."""
        ws = self.workspace
        assert ws is not None
        return Resolution(request, ws.id, ws.workspace_token, created=self.created)


@dataclass
class _RunResult:
    outcomes: list[_Outcome]
    interrupted: BaseException | None = None
    in_flight: int = 0  #: creates and checks running when the build was interrupted
    abandoned: int = 0  #: of those, still running when a second interruption stopped the wait
    not_started: int = 0


class Provisioner:
    """Resolves a build's embeds to workspaces; see the module docstring.

    ``client`` defaults to :meth:`ContainersClient.from_settings` (created at
    the first resolve that needs the API, so a site without build-mode embeds
    needs no token).  ``scope`` separates sites that share one cache folder
    and endpoint (for prune); ``build_id`` groups several Provisioners into
    one build (default: a fresh id per Provisioner).
    """

    def __init__(
        self,
        settings: SiteSettings,
        *,
        client: ContainersClient | None = None,
        logger: logging.Logger | None = None,
        progress: Callable[[int, int], None] | None = None,
        scope: str = "default",
        build_id: str | None = None,
    ):
        self.settings = settings
        self.logger = logger or log
        self.progress = progress
        self.scope = scope
        self.build_id = build_id or f"{_now()}-{uuid.uuid4().hex[:8]}"
        self.ledger = Ledger(settings.cache_dir)
        self._journal = GroupCommit(self.ledger)
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        self._snapshot: Mapping[str, Any] = {}
        #: ledger key -> workspace id the deployed site's manifest lists (embeds the ledger misses)
        self._deployed: dict[str, str] = {}
        self._deployed_read = False  #: the previous manifest was fetched (once per Provisioner)
        self._deployed_data: dict[str, Any] | None = None
        self._deployed_listed: dict[str, str] | None = None
        self._deployed_counts = [0, 0]  #: embeds found in the deployed site's manifest, embeds looked up

    # -- public

    @property
    def client(self) -> ContainersClient:
        with self._lock:
            if self._client is None:
                from ..api.client import ContainersClient

                self._client = ContainersClient.from_settings(self.settings)
            return self._client

    def close(self) -> None:
        self.ledger.close()
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(self, requests: Sequence[EmbedRequest]) -> dict[str, Resolution]:
        """Resolve every request (keyed by ``request.key``); see the module docstring.

        Lazy-mode specs are answered ``fallback="lazy"`` without an API call.
        Raises :class:`ProvisionError` (``on_error = fail``),
        :class:`~sphere_docs.core.errors.SettingsError` (no token / endpoint) or
        :class:`LedgerError` (the ledger cannot be read or written; when it
        cannot be read, nothing was created).  Ctrl-C and SIGTERM end it as
        the module docstring says (``KeyboardInterrupt``; ``SystemExit`` with
        status :data:`SIGTERM_EXIT`).

        The same as ``session = self.start(); session.submit(requests); session.finish()``.
        """
        session = self.start()
        session.submit(requests)
        return session.finish()

    def start(self) -> ResolveSession:
        """A resolve that starts as embeds become known: :meth:`ResolveSession.submit` them page by
        page while the site is still read, :meth:`ResolveSession.finish` where the pages need them."""
        return ResolveSession(self)

    def _conclude(self, run: _RunResult, unique: Mapping[str, EmbedRequest],
                  aliases: Mapping[str, list[EmbedRequest]], snapshot: Mapping[str, Any],
                  results: dict[str, Resolution]) -> dict[str, Resolution]:
        """What :meth:`resolve` answers once every call has ended: record, report, apply ``on_error``."""
        if run.interrupted is not None:
            self._interrupted(run)  # raises
        fatal = next((o.fatal for o in run.outcomes if o.fatal is not None), None)
        if fatal is not None:
            raise fatal  # what was created is recorded; the rest of the build's record is not
        final = self._record(run.outcomes, snapshot, set(unique))

        failures: list[tuple[EmbedRequest, str]] = []
        headlines: list[str] = []
        created = reused = trusted = 0
        for outcome in final:
            for request in aliases[outcome.lkey]:
                if outcome.workspace is not None:
                    results[request.key] = outcome.resolution(request)
                else:
                    failures.append((request, self._reason(outcome)))
                    headlines.append(self._headline(outcome, request))
            if outcome.workspace is not None:
                created += outcome.created
                reused += not outcome.created
                trusted += outcome.trusted
            if outcome.unchecked:
                self.logger.warning(
                    "sphere-workspaces: %s: %s; using the recorded workspace (it was live at the last "
                    "build)", outcome.request.where, outcome.unchecked)
        finished = {o.lkey for o in final}
        cancelled = [r for lkey, r in unique.items() if lkey not in finished]
        self.logger.info(
            "sphere-workspaces: %d workspace(s) ready: %d reused, %d created%s%s",
            created + reused, reused, created,
            f", {len(failures)} failed" if failures else "",
            f" ({trusted} confirmed live less than {self.settings.trust_checked:g}s ago: not asked again)"
            if trusted else "")

        if failures and self.settings.on_error == "fail":
            request, reason = failures[0]
            more = len(failures) - 1 + len(cancelled)
            message = f"sphere-workspaces: {request.where}: {headlines[0]}: {reason}"
            if more:
                message += f" (and {more} more embed(s) not provisioned)"
            raise ProvisionError(message, request=request, reason=reason, failures=failures)
        fallback = "lazy" if self.settings.on_error == "lazy" else "placeholder"
        for request, reason in failures:
            what = "falling back to a lazy embed" if fallback == "lazy" else "showing a placeholder"
            self.logger.warning(
                "sphere-workspaces: %s: workspace for project %s unavailable (%s); %s",
                request.where, request.spec.project_id, reason, what,
                extra={FALLBACK_RECORD_FLAG: True},  # front ends that report fallbacks themselves skip these
            )
            results[request.key] = Resolution(request, fallback=fallback, reason=reason)
        return results

    def mark_used(self, requests: Iterable[EmbedRequest]) -> None:
        """Record that this build still embeds ``requests`` without checking them (no API call).

        For incremental builds (Sphinx re-reads only changed documents): resolve the
        changed embeds, and mark the unchanged ones as used so ``sphere-docs prune``
        keeps their workspaces.  Lazy-mode specs are ignored.
        """
        keys = {ledger_key(self._api_base(), r) for r in requests if r.spec.mode == "build"}
        if not keys:
            return
        now = _now()

        def merge(data: dict[str, Any]) -> None:
            self._merge_build(data, keys, now)
            for lkey in keys:
                entry = data["entries"].get(lkey)
                if isinstance(entry, dict):
                    entry["last_used_build"] = self.build_id
                    entry["last_used_at"] = now

        self._journal.apply(merge)

    # -- internals

    def _merge_build(self, data: dict[str, Any], keys: set[str], now: str) -> None:
        """Add ``keys`` to this build's record (a new build id replaces the scope's old record)."""
        builds: dict[str, Any] = data.setdefault("builds", {})
        scope_key = f"{self._api_base()}|{self.scope}"
        previous = builds.get(scope_key)
        merged = set(keys)
        if isinstance(previous, Mapping) and previous.get("build_id") == self.build_id:
            merged.update(previous.get("keys") or ())
        builds[scope_key] = {"build_id": self.build_id, "updated_at": now, "keys": sorted(merged)}

    def _adopt_legacy_names(self, unique: Mapping[str, EmbedRequest]) -> None:
        """Entries recorded under the old positional default names move to the new names.

        Re-keyed in the ledger itself (durably, under the lock) before anything is
        checked or created, so the workspace is reused and ``prune`` never sees the
        old key as unused (which would remove a workspace this build embeds).
        """
        wanted = {lkey: (r.page, r.spec) for lkey, r in unique.items()}
        if not legacy_adoptions(self.ledger.read()["entries"], wanted):
            return  # the usual build: one read, no write

        def rekey(data: dict[str, Any]) -> None:
            entries = data["entries"]
            for new_key, old_key in legacy_adoptions(entries, wanted).items():
                entry = entries.pop(old_key)
                if isinstance(entry, dict):
                    entry["name"] = unique[new_key].spec.name
                entries[new_key] = entry
                self.logger.info("sphere-workspaces: %s: workspace %s kept under the new default name %s",
                                 unique[new_key].where, entries[new_key].get("workspace_id"),
                                 unique[new_key].spec.name)

        self.ledger.update(rekey)


    def _api_base(self) -> str:
        return self.settings.api.api_base

    @staticmethod
    def _reason(outcome: _Outcome) -> str:
        err = outcome.error
        if err is None:
            return "unknown error"
        reason = err.reason
        if outcome.checked is not None:
            reason = f"could not check workspace {outcome.checked} (GET /workspaces/{outcome.checked}): {reason}"
        elif err.maybe_processed:
            reason += ("; the API may have created a workspace that was not recorded: the next build "
                       "looks for it and adopts it (sphere-docs doctor lists it until then)")
        return redact(reason)

    @staticmethod
    def _headline(outcome: _Outcome, request: EmbedRequest) -> str:
        if outcome.checked is not None:
            return f"cannot use the workspace of project {request.spec.project_id}"
        return f"cannot create a workspace for project {request.spec.project_id}"

    def _interrupted(self, run: _RunResult) -> None:
        """Say what an interrupted build left behind, then let the interruption end it."""
        exc = run.interrupted
        what = ("SIGTERM" if isinstance(exc, _Terminated)
                else "Ctrl-C" if isinstance(exc, KeyboardInterrupt)
                else "the build ended first" if isinstance(exc, _BuildEnded) else type(exc).__name__)
        if run.abandoned:
            waited = (f"{run.abandoned} call(s) still in flight were not waited for; "
                      "their creates are named in the ledger (sphere-docs doctor lists them)")
        else:
            waited = f"{run.in_flight} call(s) in flight were finished and recorded"
        self.logger.warning("sphere-workspaces: provisioning interrupted (%s): nothing new was started "
                            "(%d embed(s) not provisioned); %s", what, run.not_started, waited)
        if isinstance(exc, _Terminated):
            raise SystemExit(SIGTERM_EXIT)
        assert exc is not None
        raise exc

    def _report(self, done: int, total: int, *, force: bool) -> None:
        if self.progress is not None:
            try:
                self.progress(done, total)
            except Exception:  # a broken progress bar must not break the build
                self.logger.debug("sphere-workspaces: progress callback failed", exc_info=True)
        if force:
            self.logger.info("sphere-workspaces: provisioning %d/%d", done, total)

    def _guarded(self, stop: threading.Event, stop_early: bool, client: ContainersClient, lkey: str,
                 request: EmbedRequest, entry: Mapping[str, Any] | None) -> _Outcome:
        """:meth:`_one`, unless the build was stopped (an earlier failure, Ctrl-C, SIGTERM)."""
        if stop.is_set():
            return _Outcome(lkey, request, skipped=True)
        outcome = self._one(stop, client, lkey, request, entry)
        if outcome.fatal is not None or (stop_early and outcome.error is not None):
            stop.set()
        return outcome

    def _one(self, stop: threading.Event, client: ContainersClient, lkey: str, request: EmbedRequest,
             entry: Mapping[str, Any] | None) -> _Outcome:
        outcome = _Outcome(lkey, request)
        if entry is None and lkey in self._deployed:  # not in the ledger: the deployed site's?
            try:
                reused = self._reuse_deployed(client, lkey, request, self._deployed[lkey])
            except LedgerError as exc:
                outcome.fatal = exc
                return outcome
            if reused is not None:
                outcome.workspace, outcome.confirmed_at = reused, _now()
                return outcome
        known_id = _recorded_id(entry) if isinstance(entry, Mapping) else None
        if known_id:
            assert entry is not None
            trusted = self._trusted(entry, request)
            if trusted is not None:  # the API confirmed it a moment ago: do not ask again
                outcome.workspace, outcome.trusted = trusted, True
                return outcome
            try:
                current: Workspace | None = client.get_workspace(known_id)
            except NotFoundError:
                current = None
            except (ServerError, RateLimitedError, TransportError) as exc:
                # The API could not say (outage): the recorded workspace was live at the last build.
                assert entry is not None
                recorded = _recorded_workspace(entry)
                if self._usable(recorded, request) is None:
                    outcome.workspace = recorded
                    outcome.unchecked = (f"could not check workspace {known_id} "
                                         f"(GET /workspaces/{known_id}): {redact(exc.reason)}")
                    return outcome
                outcome.error, outcome.checked = exc, known_id
                return outcome
            except SphereEngineError as exc:  # a definite refusal (401, 403, 400): not an outage
                outcome.error, outcome.checked = exc, known_id
                return outcome
            if current is not None and current.is_live and self._usable(current, request) is None:
                outcome.workspace, outcome.confirmed_at = current, _now()
                return outcome
            if current is not None and current.state_code != STATE_REMOVED:
                outcome.replaced = current
        return self._create(stop, client, outcome)

    def _trusted(self, entry: Any, request: EmbedRequest) -> Workspace | None:
        """The workspace of ledger entry ``entry`` (whatever the ledger holds for the key, or None)
        when the API confirmed it live within ``trust_checked`` seconds.

        ``checked_at`` is written whenever a check (``GET``) or a create answered that the
        workspace is live; a younger confirmation is trusted without a new ``GET`` (0: never).
        """
        window = float(self.settings.trust_checked)
        if window <= 0 or not isinstance(entry, Mapping) or not _recorded_id(entry):
            return None
        checked = parse_time(entry.get("checked_at"))
        if checked is None or not -WINDOW_SLACK <= time.time() - checked < window:
            return None  # never checked, too long ago, or a clock that jumped back
        recorded = _recorded_workspace(entry)
        return recorded if self._usable(recorded, request) is None else None

    def _deployed_lookup(self, unique: Mapping[str, EmbedRequest], snapshot: Mapping[str, Any]) -> dict[str, str]:
        """Ledger key -> workspace id of the deployed site, for the embeds the ledger has no entry for.

        Fetches the previous manifest at most once per Provisioner, and only when some
        embed misses the ledger.  Unreachable or missing: one warning, nothing found.
        Malformed: :class:`ManifestError` (located: source, page, embed).
        """
        missing = [lkey for lkey in unique if lkey not in snapshot]
        if not missing:
            return {}
        source = self.settings.previous_manifest_source
        if source is None:
            return {}
        if not self._deployed_read:
            self._deployed_read = True
            try:
                self._deployed_data = read_manifest(source, timeout=self.settings.timeout)
            except ManifestUnavailable as exc:
                self.logger.warning(
                    "sphere-workspaces: the previous manifest %s is not available (%s); the embeds "
                    "the ledger does not list get new workspaces", exc.source, redact(exc.reason))
            except ManifestError as exc:
                named = (PREVIOUS_MANIFEST_ENV if os.environ.get(PREVIOUS_MANIFEST_ENV, "").strip()
                         else "the previous_manifest setting")
                raise ManifestError(f"the previous manifest ({named}) is malformed: {exc}") from None
        if self._deployed_data is None:
            return {}
        api = self._api_base()
        listed = self._deployed_listed
        if listed is None:
            listed = self._deployed_listed = {}
            for item in deployed_workspaces(self._deployed_data):
                lkey = "|".join((api, item.project_id, item.creation_key, f"{item.page}#{item.name}"))
                listed.setdefault(lkey, item.workspace_id)
        found = {lkey: listed[lkey] for lkey in missing if lkey in listed}
        if found:
            owned = {str(e.get("workspace_id")) for e in snapshot.values() if isinstance(e, Mapping)}
            found = {lkey: ws_id for lkey, ws_id in found.items() if ws_id not in owned}
        self._deployed_counts[0] += len(found)
        self._deployed_counts[1] += len(missing)
        return found

    def _report_deployed(self) -> None:
        """One line for the whole build: how many of the embeds the ledger missed the deployed site lists."""
        source = self.settings.previous_manifest_source if self._deployed_data is not None else None
        if source is not None and self._deployed_counts[1]:
            self.logger.info("sphere-workspaces: the previous manifest %s lists %d of the %d embed(s) the "
                             "ledger does not", shown_source(source), *self._deployed_counts)
        self._deployed_counts = [0, 0]

    def _reuse_deployed(self, client: ContainersClient, lkey: str, request: EmbedRequest,
                        workspace_id: str) -> Workspace | None:
        """The deployed site's workspace for ``request`` if the API says it is usable; recorded in the ledger."""
        try:
            ws = client.get_workspace(workspace_id)
        except SphereEngineError as exc:  # 404 or the API cannot say: create as without it
            self.logger.info("sphere-workspaces: %s: the deployed site's workspace %s is not reused "
                             "(GET /workspaces/%s: %s)", request.where, workspace_id, workspace_id,
                             redact(exc.reason))
            return None
        if (ws.project_id or "").lower() != request.spec.project_id.lower() or ws.id != workspace_id:
            why: str | None = f"it belongs to project {ws.project_id}"
        elif not ws.is_live:
            why = f"it is {ws.state_name}" + (" without auto-resume" if ws.state_name == "stopped" else "")
        else:
            why = self._usable(ws, request)
        if why is not None:
            self.logger.info("sphere-workspaces: %s: the deployed site's workspace %s is not reused: %s",
                             request.where, workspace_id, why)
            return None
        created = parse_time(ws.created_at)
        entry = self._entry(request, ws, created_at=_stamp(created) if created is not None else None,
                            note="reused from the deployed site")

        def record(data: dict[str, Any]) -> dict[str, Any] | None:
            current = data["entries"].get(lkey)
            if current is not None and current["workspace_id"] != ws.id:
                return dict(current)  # another build recorded this embed meanwhile: theirs wins
            data["entries"][lkey] = entry
            return None

        theirs = self._journal.apply(record, [("entries", lkey)], durable=False)
        return _recorded_workspace(theirs) if theirs is not None else ws

    def _create(self, stop: threading.Event, client: ContainersClient, outcome: _Outcome) -> _Outcome:
        """``POST /workspaces`` between an intent written before and the entry written after."""
        request = outcome.request
        if stop.is_set():
            outcome.skipped = True
            return outcome
        try:
            iid = self._begin_intent(outcome.lkey, request)
        except LedgerError as exc:
            outcome.fatal = exc  # nothing was sent
            return outcome
        created: Workspace | None = None
        try:
            if stop.is_set():  # stopped while the intent was being written: send nothing
                self._journal.apply(lambda data: data["intents"].pop(iid, None), [("intents", iid)], durable=False)
                outcome.skipped = True
                return outcome
            try:
                created = client.create_workspace(request.spec.create_fields())
            except SphereEngineError as exc:
                outcome.error = exc
                self._settle_intent(iid, exc)
                return outcome
            problem = self._usable(created, request)
            if problem is not None:  # it exists all the same: keep it where prune finds it
                self._record_spare(iid, outcome.lkey, request, created, "the API's answer was unusable")
                outcome.error = SphereEngineError(problem, method="POST", path="/workspaces")
                return outcome
            outcome.workspace, outcome.created, outcome.confirmed_at = created, True, _now()
            self._record_created(client, outcome, iid)
        except LedgerError as exc:
            if created is None:
                outcome.fatal = exc
            else:
                outcome.fatal = LedgerError(
                    exc.path, f"{exc.problem}, so workspace {created.id} (project "
                              f"{request.spec.project_id}, {request.page} {request.spec.name}) was "
                              "created but is not recorded",
                    fix=f"{exc.fix}; the next build that can write the ledger adopts that workspace "
                        "(its create is named in the ledger)")
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_INTENTS.discard(iid)
        return outcome

    def _create_budget(self) -> float:
        """Seconds a create may take on our side, retries included (the intent's window)."""
        client = self._client
        timeout = float(getattr(client, "timeout", self.settings.timeout))
        retries = int(getattr(client, "retries", self.settings.retries))
        from ..api.client import RETRY_AFTER_MAX

        return (retries + 1) * 2 * timeout + retries * RETRY_AFTER_MAX

    def _begin_intent(self, lkey: str, request: EmbedRequest) -> str:
        spec = request.spec
        iid = uuid.uuid4().hex
        now = time.time()
        intent = {
            "endpoint": self._api_base(),
            "project_id": spec.project_id,
            "creation_key": spec.creation_key(),
            "fields": {k: v for k, v in spec.create_fields().items() if k != "project_id"},
            "ledger_key": lkey,
            "page": request.page,
            "name": str(spec.name),
            "build_id": self.build_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": "in_flight",
            "started_at": _stamp(now),
            "window_end": _stamp(now + self._create_budget() + LATE_ANSWER_GRACE),
        }
        with _ACTIVE_LOCK:
            _ACTIVE_INTENTS.add(iid)

        def add(data: dict[str, Any]) -> None:
            data["intents"][iid] = intent

        try:
            self._journal.apply(add, [("intents", iid)])
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE_INTENTS.discard(iid)
            raise
        return iid

    def _settle_intent(self, iid: str, error: SphereEngineError) -> None:
        """A create failed: forget its intent, unless the API may have made the workspace."""
        if not error.maybe_processed:
            self._journal.apply(lambda data: data["intents"].pop(iid, None), [("intents", iid)], durable=False)
            return
        now = time.time()
        # An answer (5xx) ends the server's work; without one the server may finish later.
        late = LATE_ANSWER_GRACE if error.status is None else 0.0

        def unanswered(data: dict[str, Any]) -> None:
            intent = data["intents"].get(iid)
            if intent is not None:
                intent.update(state="unanswered", ended_at=_stamp(now), window_end=_stamp(now + late),
                              reason=redact(error.reason)[:300])

        self._journal.apply(unanswered, [("intents", iid)], durable=False)

    def _entry(self, request: EmbedRequest, ws: Workspace, *, created_at: str | None = None,
               note: str | None = None) -> dict[str, Any]:
        spec = request.spec
        now = _now()
        entry = {
            "endpoint": self._api_base(),
            "project_id": spec.project_id,
            "creation_key": spec.creation_key(),
            "page": request.page,
            "name": str(spec.name),
            "workspace_id": ws.id,
            "workspace_token": ws.workspace_token,
            "created_at": created_at or now,
            "last_used_build": self.build_id,
            "last_used_at": now,
            "checked_at": now,
        }
        if note:
            entry["note"] = note
        return entry

    def _record_spare(self, iid: str, lkey: str, request: EmbedRequest, ws: Workspace, note: str) -> None:
        entry = self._entry(request, ws, note=note)

        def spare(data: dict[str, Any]) -> None:
            data["intents"].pop(iid, None)
            data["entries"][unused_key(lkey, ws.id)] = entry

        self._journal.apply(spare, [("intents", iid), ("entries", unused_key(lkey, ws.id))], durable=False)

    def _record_created(self, client: ContainersClient, outcome: _Outcome, iid: str) -> None:
        """Record the workspace a create just answered (and drop its intent), in one durable write."""
        ws = outcome.workspace
        assert ws is not None
        lkey, request, replaced = outcome.lkey, outcome.request, outcome.replaced
        seen = self._snapshot.get(lkey)
        seen_id = seen.get("workspace_id") if isinstance(seen, Mapping) else None
        entry = self._entry(request, ws)

        def change(data: dict[str, Any]) -> dict[str, Any] | None:
            data["intents"].pop(iid, None)
            entries = data["entries"]
            current = entries.get(lkey)
            current_id = current["workspace_id"] if current is not None else None
            if current is not None and current_id not in (seen_id, ws.id):
                # Another build recorded this embed while we worked: theirs wins, ours is spare.
                entries[unused_key(lkey, ws.id)] = {
                    **entry, "note": "duplicate: another build recorded this embed first"}
                return dict(current)
            if current is not None and replaced is not None and current_id == replaced.id:
                entries[unused_key(lkey, replaced.id)] = {
                    **current, "note": "replaced: removed by the build that replaced it"}
            entries[lkey] = entry
            return None

        touches = [("intents", iid), ("entries", lkey), ("entries", unused_key(lkey, ws.id))]
        if replaced is not None:
            touches.append(("entries", unused_key(lkey, replaced.id)))
        theirs = self._journal.apply(change, touches, durable=False)
        if theirs is not None:
            outcome.workspace = _recorded_workspace(theirs)
            outcome.created = False
            self._remove_spare(client, lkey, ws.id, "duplicate")
        elif replaced is not None:  # a stopped/failed predecessor: free its storage
            self._remove_spare(client, lkey, replaced.id, "replaced")

    def _remove_spare(self, client: ContainersClient, lkey: str, ws_id: str, what: str) -> None:
        try:
            client.remove(ws_id)
        except NotFoundError:
            pass
        except SphereEngineError as exc:
            self.logger.info("sphere-workspaces: could not remove the %s workspace %s (%s); it stays in "
                             "the ledger, so `sphere-docs prune` removes it", what, ws_id,
                             redact(exc.reason))
            return
        key = unused_key(lkey, ws_id)

        def drop(data: dict[str, Any]) -> None:
            entry = data["entries"].get(key)
            if entry is not None and entry.get("workspace_id") == ws_id:
                del data["entries"][key]

        self._journal.apply(drop, [("entries", key)], durable=False)

    @staticmethod
    def _usable(ws: Workspace, request: EmbedRequest) -> str | None:
        """Why the page could not embed ``ws`` (None when it can)."""
        if not WORKSPACE_ID_RE.match(ws.id):
            return "the API returned a workspace id that is not 32 hex characters"
        if request.spec.token_required and not (ws.workspace_token and TOKEN_RE.match(ws.workspace_token)):
            return "the API returned no usable workspace_token"
        return None

    def _reconcile(self, client: ContainersClient, data: dict[str, Any]) -> dict[str, Any]:
        """Adopt the workspaces that interrupted creates made (see the module docstring)."""
        api = self._api_base()
        intents = {iid: i for iid, i in data["intents"].items() if i["endpoint"] == api}
        now = time.time()
        projects = sorted({i["project_id"] for iid, i in intents.items() if not intent_in_flight(iid, i, now)})
        if not projects:
            return data
        try:
            listed = {p: list(client.iter_workspaces(project_id=p)) for p in projects}
        except SphereEngineError as exc:
            self.logger.warning(
                "sphere-workspaces: could not look for the workspaces of %d interrupted create(s) "
                "(GET /workspaces): %s; the next build looks again (sphere-docs doctor lists them)",
                len(intents), redact(exc.reason))
            return data
        matches = match_intents(intents, listed, data["entries"], now)
        for iid, found in matches.ambiguous.items():
            self.logger.info(
                "sphere-workspaces: an interrupted create (%s) is not adopted: the API lists %d "
                "workspaces it could have made (%s); sphere-docs doctor lists it",
                describe_intent(intents[iid]), len(found), ", ".join(ws.id for ws in found))
        if not (matches.adopt or matches.gone or matches.nothing):
            return data
        adopted: list[tuple[Mapping[str, Any], Workspace, str]] = []

        def change(fresh: dict[str, Any]) -> dict[str, Any]:
            owned = {e["workspace_id"] for e in fresh["entries"].values()}
            for iid, ws in matches.adopt.items():
                intent = fresh["intents"].get(iid)
                if intent is None or ws.id in owned:
                    continue  # another build settled it meanwhile
                del fresh["intents"][iid]
                key = intent["ledger_key"]
                if key in fresh["entries"]:  # the embed has a workspace already: this one is spare
                    key = unused_key(key, ws.id)
                created = parse_time(ws.created_at)
                fresh["entries"][key] = {
                    "endpoint": api,
                    "project_id": intent["project_id"],
                    "creation_key": intent["creation_key"],
                    "page": intent.get("page", ""),
                    "name": intent.get("name", ""),
                    "workspace_id": ws.id,
                    "workspace_token": ws.workspace_token,
                    "created_at": _stamp(created) if created is not None else _now(),
                    "last_used_build": str(intent.get("build_id", "")),
                    "last_used_at": _now(),
                    "note": "adopted: its create got no answer",
                }
                owned.add(ws.id)
                adopted.append((intent, ws, key))
            for iid in (*matches.gone, *matches.nothing):
                fresh["intents"].pop(iid, None)
            return fresh

        fresh = self._journal.apply(change)
        for intent, ws, key in adopted:
            spare = UNUSED_MARK in key
            self.logger.info(
                "sphere-workspaces: adopted workspace %s, made by an interrupted create (%s %s, started "
                "%s)%s", ws.id, intent.get("page"), intent.get("name"), intent.get("started_at"),
                "; the embed has another one, so it is recorded as unused (sphere-docs prune removes it)"
                if spare else "")
        return fresh  # type: ignore[no-any-return]

    def _record(self, outcomes: list[_Outcome], snapshot: Mapping[str, Any],
                used: set[str]) -> list[_Outcome]:
        """Mark this build's workspaces used and record the build; adopt concurrent builds' workspaces."""
        now = _now()

        def merge(data: dict[str, Any]) -> None:
            entries: dict[str, Any] = data["entries"]
            for outcome in outcomes:
                ours = outcome.workspace
                current = entries.get(outcome.lkey)
                seen = snapshot.get(outcome.lkey)
                if ours is None:  # failed here; another build may have recorded one meanwhile
                    if current is None or (seen is not None and current["workspace_id"] == seen.get("workspace_id")):
                        continue
                elif current is None or current["workspace_id"] == ours.id:
                    current = None
                elif outcome.created:  # replaced under our feet: keep ours findable for prune
                    entries[unused_key(outcome.lkey, ours.id)] = {
                        **self._entry(outcome.request, ours), "note": "duplicate"}
                if current is not None:
                    # Another build recorded this key while we worked: theirs wins.
                    outcome.workspace = _recorded_workspace(current)
                    outcome.created = False
                    outcome.error = None
                    outcome.unchecked = None
                    current["last_used_build"] = self.build_id
                    current["last_used_at"] = now
                    continue
                assert ours is not None
                current = entries.get(outcome.lkey)
                if current is not None and current["workspace_id"] == ours.id:
                    entry = dict(current)
                    if ours.workspace_token:
                        entry["workspace_token"] = ours.workspace_token
                else:
                    entry = self._entry(outcome.request, ours)
                entry["last_used_build"] = self.build_id
                entry["last_used_at"] = now
                if outcome.confirmed_at is not None:
                    entry["checked_at"] = outcome.confirmed_at
                entries[outcome.lkey] = entry
            self._merge_build(data, used, now)

        self._journal.apply(merge)
        return outcomes


class ResolveSession:
    """One build's resolve, started while the site is still being read (:meth:`Provisioner.start`).

    :meth:`submit` hands over embeds as soon as their page is read; it only queues
    them (the page's thread never waits for the API).  A coordinator thread reads
    the ledger once (reconciling intents, as :meth:`Provisioner.resolve` does), then
    puts each new embed's check or create on the bounded pool of ``concurrency``
    workers, so the API calls run while the rest of the site is read and rendered.
    :meth:`finish` waits for them where the pages need their ids and answers
    exactly what :meth:`Provisioner.resolve` answers for all the embeds submitted:
    the same records, log lines, ``on_error`` handling and exceptions (raised by
    :meth:`finish`, never by :meth:`submit`).  :meth:`abort` (a build that failed
    elsewhere) starts nothing new and waits for the calls in flight, which are
    recorded as they answer.  At interpreter exit (Ctrl-C while pages render) an
    open session starts nothing new either.
    """

    def __init__(self, provisioner: Provisioner):
        self._prov = provisioner
        self._stop = threading.Event()
        self._stop_early = provisioner.settings.on_error == "fail"
        self._cond = threading.Condition()
        self._queue: list[dict[str, EmbedRequest]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | ProcessPool | None = None
        self._futures: dict[Future[_Outcome], str] = {}
        self._by_key: dict[str, Future[_Outcome]] = {}  #: ledger key -> its call (see answer)
        self._answered = 0  #: how many of those have answered (see settled)
        #: guards _answered; a lock of its own because answers are noted from inside other locks
        #: (a failed child's futures fail while its pool holds its lock, which the coordinator
        #: takes while it holds _cond)
        self._answered_lock = threading.Lock()
        self.waited = 0.0  #: seconds the caller spent blocked in answer() and finish()
        self._held: dict[int, tuple[Any, Any]] = {}  #: signal -> (our handler, the default) (hold_signals)
        self.answered_at = time.perf_counter()  #: when the last call answered (perf_counter)
        self._error: BaseException | None = None  #: what stopped the coordinator (raised by finish)
        self._snapshot: Mapping[str, Any] = {}
        #: the ledger's entries as the first submit read them (False: not usable here), see _answer_from_ledger
        self._ledger_view: Mapping[str, Any] | bool | None = None
        self._results: dict[str, Resolution] = {}
        self._unique: dict[str, EmbedRequest] = {}
        self._aliases: dict[str, list[EmbedRequest]] = {}
        self._submitted: set[tuple[str, str]] = set()  #: (request key, ledger key) already handed over
        self._page_keys: set[str] = set()
        self.finished = False

    @property
    def settled(self) -> bool:
        """Has every embed submitted so far been handed to a call that has answered?  Then
        :meth:`finish` waits for nothing: a front end that fills pages as they are written ends
        the resolve there, so the build is recorded and the workers stop while pages are still
        being written, not after the last one."""
        with self._cond:
            dispatched = not self._queue and len(self._by_key) == len(self._unique)
            calls = len(self._by_key)
        with self._answered_lock:
            return dispatched and self._answered == calls

    @property
    def started(self) -> bool:
        """Has any embed been handed to the API side (a check or a create may have run)?"""
        return bool(self._unique)

    def submit(self, requests: Iterable[EmbedRequest]) -> None:
        """Start resolving ``requests`` (a request submitted before is skipped); never waits."""
        batch: dict[str, EmbedRequest] = {}
        for request in requests:
            if not request.spec.name:
                raise ValueError(f"{request.where}: the embed has no name; front ends must set one "
                                 "(options.default_name)")
            if request.spec.mode != "build":
                self._results[request.key] = Resolution(request, fallback="lazy", reason="lazy mode")
                continue
            if self._error is not None:
                return
            try:
                lkey = ledger_key(self._prov._api_base(), request)
            except SphereDocsError as exc:  # no endpoint: finish() says so
                self._error = exc
                return
            if (request.key, lkey) in self._submitted:
                continue
            self._submitted.add((request.key, lkey))
            if lkey in self._unique:
                self._aliases[lkey].append(request)
                continue
            if request.key in self._page_keys:
                self._prov.logger.warning(
                    "sphere-workspaces: %s: two embeds named %r on page %s; the later one wins",
                    request.where, request.spec.name, request.page)
            self._page_keys.add(request.key)
            self._unique[lkey] = request
            self._aliases[lkey] = [request]
            batch[lkey] = request
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("submit() after finish() or abort()")
            self._answer_from_ledger(batch)
            if not batch:
                return
            if self._pool is None and self._thread is None and self._prov._owns_client and can_fork():
                # before any thread of ours exists: the workers go to a forked child (process_pool);
                # a client given to the Provisioner stays in this process, on threads
                self._pool = ProcessPool(self._prov, self._prov.settings.concurrency, self._stop_early)
            self._queue.append(batch)
            self._cond.notify_all()
            if self._thread is None:
                _OPEN_SESSIONS.add(self)
                self._thread = threading.Thread(target=self._coordinate, name="sphere-provision-feed",
                                                daemon=True)
                self._thread.start()

    def _answer_from_ledger(self, batch: dict[str, EmbedRequest]) -> None:
        """Answer here, on the caller's thread, the embeds of ``batch`` whose workspace the API
        confirmed live within the trust window (and take them out of ``batch``).

        Such an embed needs no call, so it gets no thread hand-off and no HTTP client either:
        a rebuild inside the window reads the ledger once and loads no HTTP stack (issue 16).
        The answer is the one :meth:`Provisioner._one` gives for it.  Everything else, and
        everything when the ledger cannot be read here or names intents (reconciling them
        comes first), goes to the coordinator, which reports what it finds.
        """
        prov = self._prov
        if self._ledger_view is None:
            view: Mapping[str, Any] | bool = False
            if self._thread is None and prov.settings.trust_checked > 0:
                try:
                    data = prov.ledger.read()
                except LedgerError:
                    data = None  # the coordinator reads it again and stops the build with the error
                if data is not None and not data["intents"]:
                    view = self._snapshot = prov._snapshot = data["entries"]
            self._ledger_view = view
        entries = self._ledger_view
        if entries is False or self._stop.is_set():
            return
        assert isinstance(entries, Mapping)
        for lkey in list(batch):
            workspace = prov._trusted(entries.get(lkey), batch[lkey])
            if workspace is not None:
                answered: Future[_Outcome] = Future()
                answered.set_result(_Outcome(lkey, batch.pop(lkey), workspace=workspace, trusted=True))
                self._futures[answered] = lkey
                self._by_key[lkey] = answered
                with self._answered_lock:
                    self._answered += 1
                self.answered_at = time.perf_counter()

    def _stop_workers(self) -> None:
        """Workers skip what they pick up next (in a child process too); calls in flight finish."""
        self._stop.set()
        if isinstance(self._pool, ProcessPool):
            self._pool.stop()

    def _halt(self) -> None:
        """Start nothing new (calls in flight finish and are recorded)."""
        self._stop_workers()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _coordinate(self) -> None:
        prov = self._prov
        client: ContainersClient | None = None
        started = False
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed and not self._stop.is_set():
                        self._cond.wait()
                    if self._stop.is_set() or not self._queue:
                        return
                    batches, self._queue = self._queue, []
                batch = {lkey: r for b in batches for lkey, r in b.items()}
                if not started:
                    started = True
                    if isinstance(self._pool, ProcessPool):  # the child calls the API: no HTTP stack here
                        prov.settings.api  # noqa: B018  (the client's SettingsError: no endpoint
                        prov.settings.token()  # or no token), before any work
                    else:
                        client = prov.client  # may raise SettingsError (no token) before any work
                    prov._adopt_legacy_names(batch)  # reads the ledger: LedgerError before anything is created
                    data = prov.ledger.read()
                    if data["intents"]:
                        data = prov._reconcile(client or prov.client, data)
                    self._snapshot = prov._snapshot = data["entries"]
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(max_workers=prov.settings.concurrency,
                                                        thread_name_prefix="sphere-provision")
                else:
                    wanted = {lkey: (r.page, r.spec) for lkey, r in batch.items()}
                    if any(lkey not in self._snapshot for lkey in batch) \
                            and legacy_adoptions(self._snapshot, wanted):  # rare: re-key, then read again
                        prov._adopt_legacy_names(batch)
                        self._snapshot = prov._snapshot = {**self._snapshot, **prov.ledger.read()["entries"]}
                prov._deployed.update(prov._deployed_lookup(batch, self._snapshot))
                assert self._pool is not None
                with self._cond:
                    if self._stop.is_set():
                        return
                    for lkey, request in batch.items():
                        if isinstance(self._pool, ProcessPool):
                            future = self._pool.submit(lkey, request, self._snapshot.get(lkey),
                                                       prov._deployed.get(lkey))
                        else:
                            future = self._pool.submit(prov._guarded, self._stop, self._stop_early,
                                                       client or prov.client, lkey, request,
                                                       self._snapshot.get(lkey))
                        self._futures[future] = lkey
                        self._by_key[lkey] = future
                        future.add_done_callback(self._note_answer)
                    self._cond.notify_all()
        except BaseException as exc:  # raised by finish(), where the batch resolve raised it
            self._error = exc
            self._halt()

    def _wait_for_feed(self) -> None:
        thread = self._thread
        while thread is not None and thread.is_alive():
            thread.join(0.2)  # wakes up for signals (Ctrl-C, SIGTERM) in the main thread

    def hold_signals(self) -> None:
        """Until :meth:`finish`: Ctrl-C and SIGTERM end the resolve in order wherever the main thread
        is (MkDocs writing pages while the calls run): nothing new starts, the calls in flight are
        waited for and recorded, the build says so and stops (Ctrl-C: ``KeyboardInterrupt``;
        SIGTERM: exit status :data:`SIGTERM_EXIT`).  Only the default handlers are replaced."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, default, cause in ((signal.SIGINT, signal.default_int_handler, KeyboardInterrupt),
                                       (signal.SIGTERM, signal.SIG_DFL, _Terminated)):
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) is default:
                    def handler(num: int, frame: Any, default: Any = default, cause: Any = cause) -> None:
                        signal.signal(num, default)  # a second one acts at once
                        self.finish(interrupted=cause())  # raises it (SIGTERM: SystemExit)
                    signal.signal(signum, handler)
                    self._held[signum] = (handler, default)

    def _release_signals(self) -> None:
        held, self._held = self._held, {}
        for signum, (handler, default) in held.items():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) is handler:
                    signal.signal(signum, default)

    def _note_answer(self, future: Future[_Outcome]) -> None:
        with self._answered_lock:
            self._answered += 1
            self.answered_at = time.perf_counter()

    def answer(self, requests: Iterable[EmbedRequest]) -> dict[str, Resolution] | None:
        """Early answers for ``requests`` (already submitted), waiting only for their own calls.

        For a front end that writes each page as soon as its own embeds are answered (MkDocs
        fills a page just before its template is rendered), so the build waits for a page's
        workspaces, not the whole site's.  Each answer is the workspace :meth:`finish` will
        give (the create or check recorded it already), unless another build records the
        same key in the meantime: the caller compares with :meth:`finish`'s answers.  None
        when one of them got no workspace (a failure, or not started because the build is
        stopping): :meth:`finish` says what happened and applies ``on_error``.  Ctrl-C or
        SIGTERM while waiting end the resolve as they do in :meth:`finish` (raised here).
        """
        wanted = [r for r in requests if r.spec.mode == "build"]
        if self.finished or self._error is not None:
            return None
        started = time.perf_counter()
        answers: dict[str, Resolution] = {}
        try:
            with _sigterm_raises():
                for request in wanted:
                    lkey = ledger_key(self._prov._api_base(), request)
                    with self._cond:
                        while lkey not in self._by_key and self._error is None and not self._stop.is_set() \
                                and self._thread is not None and self._thread.is_alive():
                            self._cond.wait(0.2)  # the coordinator has not dispatched it yet
                        future = self._by_key.get(lkey)
                    if future is None:
                        return None
                    while True:  # in steps: Ctrl-C and SIGTERM get through
                        try:
                            outcome = future.result(timeout=0.2)
                            break
                        except concurrent.futures.TimeoutError:
                            continue
                        except Exception:
                            return None  # finish() raises what the call raised
                    if outcome.workspace is None or outcome.skipped:
                        return None
                    answers[request.key] = outcome.resolution(request)
        except BaseException as exc:  # interrupted while waiting: as finish() would have been
            self.waited += time.perf_counter() - started
            if self.finished:  # a held signal's handler finished it already (and raised this)
                raise
            self.finish(interrupted=exc)
            raise  # pragma: no cover - finish() raised the interruption
        self.waited += time.perf_counter() - started
        return answers

    def finish(self, interrupted: BaseException | None = None) -> dict[str, Resolution]:
        """Wait for every submitted embed and answer as :meth:`Provisioner.resolve` does.

        ``interrupted``: the Ctrl-C or SIGTERM that stopped the caller's wait (:meth:`answer`):
        nothing new starts, the calls in flight are waited for and recorded, and it is raised.
        """
        self._release_signals()  # from here _wait handles them, as in a resolve that waits at once
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.finished:
            raise RuntimeError("finish() called twice")
        self.finished = True
        started = time.perf_counter()
        try:
            if not self._unique:
                if interrupted is not None:
                    raise interrupted
                if self._error is not None:
                    raise self._error
                return self._results
            run = self._wait(interrupted)
            if self._error is not None and run.interrupted is None:
                raise self._error
            self._prov._report_deployed()
            return self._prov._conclude(run, self._unique, self._aliases, self._snapshot, self._results)
        finally:
            self.waited += time.perf_counter() - started
            _OPEN_SESSIONS.discard(self)

    def abort(self) -> None:
        """The build failed elsewhere: start nothing new, wait for the calls in flight (recorded)."""
        self._release_signals()
        self._halt()
        self.finished = True
        try:
            self._wait_for_feed()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            _OPEN_SESSIONS.discard(self)

    def _wait(self, interrupted: BaseException | None = None) -> _RunResult:
        """Like the batch resolve's wait: progress, stop early, Ctrl-C and SIGTERM (module docstring)."""
        prov = self._prov
        total = len(self._unique)
        outcomes: list[_Outcome] = []
        collected: set[Future[_Outcome]] = set()
        done = 0
        last_log = time.monotonic()
        step = max(1, total // 10)
        result = _RunResult(outcomes)
        futures = self._futures
        with _sigterm_raises():
            try:
                try:
                    if interrupted is not None:
                        raise interrupted
                    self._wait_for_feed()
                    chatty = total >= PROGRESS_MIN_TOTAL
                    prov._report(0, total, force=chatty)
                    for future in as_completed(list(futures)):
                        collected.add(future)
                        outcome = future.result()
                        if outcome.skipped:
                            continue
                        outcomes.append(outcome)
                        done += 1
                        now = time.monotonic()
                        due = chatty and (done == total or done % step == 0)
                        slow = now - last_log >= PROGRESS_EVERY_SECONDS
                        prov._report(done, total, force=due or slow)
                        if due or slow:
                            last_log = now
                        if outcome.fatal is not None or (outcome.error is not None and self._stop_early):
                            self._stop_workers()  # they skip what they pick up next; in-flight calls finish
                            break
                except BaseException as exc:  # Ctrl-C, SIGTERM (or a bug): stop, finish what runs
                    result.interrupted = exc
                    self._halt()
                finally:
                    self._stop_feed_and_pool()
                running = [f for f in futures if not f.done()]
                result.in_flight = len(running)
                concurrent.futures.wait(running)
                if self._pool is not None:  # every call has answered: its workers (or process) end now
                    self._pool.shutdown(wait=True)
            except BaseException as exc:  # interrupted (again) while waiting: stop waiting
                result.interrupted = result.interrupted or exc
                result.abandoned = sum(1 for f in futures if not f.done())
        for future in futures:  # finished while we were stopping
            if future in collected or not future.done() or future.cancelled():
                continue
            if future.exception() is not None and result.interrupted is None:
                result.interrupted = future.exception()
                continue
            if future.exception() is None and not future.result().skipped:
                outcomes.append(future.result())
        result.not_started = total - len(outcomes) - result.abandoned
        return result

    def _stop_feed_and_pool(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._stop.is_set():
            self._wait_for_feed()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


#: sessions whose calls may still run; an interpreter that exits (Ctrl-C while pages render)
#: stops them before ``concurrent.futures`` waits for its workers, so nothing new is started
_OPEN_SESSIONS: weakref.WeakSet[ResolveSession] = weakref.WeakSet()


class _BuildEnded(BaseException):
    """The process is exiting with a resolve still open (e.g. Ctrl-C while pages were written)."""


def _stop_open_sessions() -> None:
    for session in list(_OPEN_SESSIONS):
        if session.finished or not session.started:
            session._halt()
            continue
        # nobody waited for it: start nothing new, record what is in flight, say so
        with contextlib.suppress(BaseException):
            session.finish(interrupted=_BuildEnded())


with contextlib.suppress(AttributeError, RuntimeError):  # runs before threads are joined, last first
    threading._register_atexit(_stop_open_sessions)  # type: ignore[attr-defined]


def _recorded_id(entry: Mapping[str, Any]) -> str | None:
    """The workspace id a ledger entry records, if it records one."""
    known = entry.get("workspace_id")
    return known if isinstance(known, str) and known else None


def _recorded_workspace(entry: Mapping[str, Any]) -> Workspace:
    """The workspace a ledger entry names, as far as the ledger knows it."""
    return Workspace(
        id=str(entry["workspace_id"]), project_id=entry.get("project_id"), project_name=None,
        state_code=0, state_name="unknown", workspace_token=entry.get("workspace_token"))


# --------------------------------------------------------------------------- prune


@dataclass
class PruneResult:
    removed: list[dict[str, Any]] = field(default_factory=list)  #: entries removed (or to remove)
    kept: int = 0  #: entries the last build uses
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def prune(
    cache_dir: Path | str,
    *,
    endpoint: str | None = None,
    dry_run: bool = False,
    client_factory: Callable[[str], ContainersClient] | None = None,
    out: TextIO | None = None,
) -> PruneResult:
    """Remove (``PUT /remove``) ledger workspaces that no last build uses; print each step.

    ``endpoint`` limits pruning to one API endpoint (a host or URL, as the
    ``endpoint`` setting).  ``client_factory(api_base)`` makes the client
    (it is not called for a dry run).  A workspace the API no longer knows
    counts as removed.
    """
    def say(text: str) -> None:
        if out is not None:
            print(text, file=out)

    ledger = Ledger(cache_dir)
    data = ledger.read()
    only = parse_endpoint(endpoint).api_base if endpoint else None
    used = Ledger.used_keys(data)
    result = PruneResult()
    doomed: list[tuple[str, dict[str, Any]]] = []
    for lkey, entry in sorted(data["entries"].items()):
        if not isinstance(entry, dict):
            continue
        api_base = Ledger.entry_api_base(lkey, entry)
        if only is not None and api_base != only:
            continue
        if lkey in used:
            result.kept += 1
        else:
            doomed.append((lkey, entry))

    intents = [i for i in data["intents"].values() if only is None or i["endpoint"] == only]
    if intents:
        say(f"note: {len(intents)} create(s) of interrupted builds may have made workspaces the ledger "
            "does not list yet; the next build adopts them (sphere-docs doctor lists them)")

    def describe(entry: Mapping[str, Any]) -> str:
        return (f"{entry.get('workspace_id')} ({entry.get('page')} {entry.get('name')}, "
                f"project {entry.get('project_id')}, {entry.get('endpoint')})")

    if not doomed:
        say(f"sphere-docs prune: nothing to remove ({result.kept} workspace(s) in use by the last build)")
        return result
    clients: dict[str, ContainersClient] = {}
    gone: list[tuple[str, str]] = []
    try:
        for lkey, entry in doomed:
            if dry_run:
                say(f"would remove {describe(entry)}")
                result.removed.append(entry)
                continue
            api_base = str(entry.get("endpoint"))
            if client_factory is None:
                raise ValueError("prune needs a client_factory unless dry_run is set")
            if api_base not in clients:
                clients[api_base] = client_factory(api_base)
            try:
                clients[api_base].remove(str(entry.get("workspace_id")))
            except NotFoundError:
                say(f"already gone {describe(entry)}")
            except SphereEngineError as exc:
                say(f"FAILED to remove {describe(entry)}: {exc.reason}")
                result.failed.append((entry, exc.reason))
                continue
            else:
                say(f"removed {describe(entry)}")
            result.removed.append(entry)
            gone.append((lkey, str(entry.get("workspace_id"))))
    finally:
        for client in clients.values():
            client.close()

    if gone:
        def drop(fresh: dict[str, Any]) -> None:
            for lkey, ws_id in gone:
                entry = fresh["entries"].get(lkey)
                if isinstance(entry, Mapping) and entry.get("workspace_id") == ws_id:
                    del fresh["entries"][lkey]
        ledger.update(drop)
    verb = "would remove" if dry_run else "removed"
    say(f"sphere-docs prune: {verb} {len(result.removed)}, kept {result.kept} in use"
        + (f", {len(result.failed)} failed" if result.failed else ""))
    return result
