"""Build-time provisioning: one workspace per build-mode embed, reused across builds.

Both front ends (the MkDocs plugin and the Sphinx extension) collect an
:class:`EmbedRequest` per build-mode embed and hand them all to
:meth:`Provisioner.resolve`, which answers a :class:`Resolution` per
``request.key`` (``"<page>#<name>"``).

The ledger
----------
Created workspaces are recorded in ``<cache>/ledger.json`` (the ``cache``
setting; keep it out of the docs folder so it is never published)::

    {"version": 1,
     "entries": {"<api_base>|<project>|<creation key>|<page>#<name>":
                   {"endpoint", "project_id", "creation_key", "page", "name",
                    "workspace_id", "workspace_token", "created_at",
                    "last_used_build", "last_used_at"}},
     "builds":  {"<api_base>|<scope>": {"build_id", "updated_at", "keys": [...]}}}

The key holds everything that shapes the created workspace
(:meth:`WorkspaceSpec.creation_key`: project and creation options, not display
options such as height) plus the page and the embed's name, so editing prose
or the height reuses the workspace and changing ``:inactivity-timeout:``
creates exactly one new one.  The stored token is the *workspace* token
(public in the built page anyway), never the access token.

A resolve checks every ledger hit with ``GET /workspaces/{id}`` and creates
what is missing or no longer live (removed, errored, stopped without
auto-resume), all concurrently (at most ``concurrency`` calls in flight).
The ledger is only ever replaced whole (temporary file + ``os.replace``)
while holding a :class:`filelock.FileLock`, and every write re-reads the file
and merges, so two builds at once leave it valid and complete.  If another
build recorded a workspace for the same key while we were creating ours, we
adopt theirs and remove ours, so a key never ends up with two workspaces.

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
by :mod:`sphere_docs.manifest`, which does not need this module's HTTP stack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import filelock

from .client import (
    STATE_REMOVED,
    ContainersClient,
    NotFoundError,
    SphereEngineError,
    Workspace,
)
from .errors import SphereDocsError
from .fileio import atomic_write_json
from .html import TOKEN_RE, WORKSPACE_ID_RE
from .naming import legacy_adoptions
from .options import WorkspaceSpec
from .redact import redact
from .settings import SiteSettings, parse_endpoint

__all__ = [
    "LEDGER_NAME",
    "EmbedRequest",
    "Ledger",
    "ProvisionError",
    "Provisioner",
    "PruneResult",
    "Resolution",
    "prune",
]

LEDGER_NAME = "ledger.json"
LEDGER_VERSION = 1
LOCK_TIMEOUT = 60.0
PROGRESS_EVERY_SECONDS = 2.0
#: builds with at least this many embeds log progress every tenth (others only when slow)
PROGRESS_MIN_TOTAL = 10

log = logging.getLogger("sphere_docs.provision")


# --------------------------------------------------------------------------- values


#: set on the log record of each per-embed fallback warning (``record.sphere_fallback``)
FALLBACK_RECORD_FLAG = "sphere_fallback"


@dataclass(frozen=True)
class EmbedRequest:
    """One build-mode embed of one page."""

    page: str  #: source path relative to the docs root, "/"-separated
    spec: WorkspaceSpec  #: with ``name`` set (``default_name(page, index)`` unless named)
    line: int | None = None  #: source line, for messages

    @property
    def key(self) -> str:
        return f"{self.page}#{self.spec.name}"

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}" if self.line else self.page


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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger_key(api_base: str, request: EmbedRequest) -> str:
    spec = request.spec
    return "|".join((api_base, spec.project_id, spec.creation_key(), request.key))


# --------------------------------------------------------------------------- ledger


class Ledger:
    """The ledger file under ``cache_dir``: atomic writes, read-merge-write under a file lock."""

    def __init__(self, cache_dir: Path | str, *, lock_timeout: float = LOCK_TIMEOUT):
        self.dir = Path(cache_dir)
        self.path = self.dir / LEDGER_NAME
        self._lock = filelock.FileLock(str(self.dir / (LEDGER_NAME + ".lock")), timeout=lock_timeout)

    @staticmethod
    def used_keys(data: Mapping[str, Any]) -> set[str]:
        """Ledger keys that the last build of some site scope used (what prune keeps)."""
        used: set[str] = set()
        for build in data.get("builds", {}).values():
            if isinstance(build, Mapping):
                used.update(str(k) for k in build.get("keys") or ())
        return used

    @staticmethod
    def entry_api_base(key: str, entry: Mapping[str, Any]) -> str:
        """The API endpoint an entry's workspace lives on (older entries only have it in the key)."""
        return str(entry.get("endpoint") or key.split("|", 1)[0])

    @staticmethod
    def empty() -> dict[str, Any]:
        return {"version": LEDGER_VERSION, "entries": {}, "builds": {}}

    def read(self) -> dict[str, Any]:
        """The current content (an empty ledger when missing or unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self.empty()
        except OSError as exc:
            log.warning("sphere-workspaces: cannot read the ledger %s (%s); starting empty",
                        self.path, exc.strerror or exc)
            return self.empty()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if (not isinstance(data, dict) or data.get("version") != LEDGER_VERSION
                or not isinstance(data.get("entries"), dict)
                or not isinstance(data.get("builds", {}), dict)):
            log.warning("sphere-workspaces: the ledger %s is not a valid ledger; starting empty "
                        "(its workspaces will not be reused)", self.path)
            return self.empty()
        data.setdefault("builds", {})
        return data

    def update(self, mutate: Callable[[dict[str, Any]], Any]) -> Any:
        """Re-read the ledger under the lock, let ``mutate`` change it, write it atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ignore = self.dir / ".gitignore"
        if not ignore.exists():
            with contextlib.suppress(OSError):
                ignore.write_text("# sphere-docs cache: local state, never commit or publish\n*\n")
        with self._lock:
            data = self.read()
            result = mutate(data)
            atomic_write_json(self.path, data, mode=0o600, durable=True)  # workspace tokens: private to the builder
            return result


# --------------------------------------------------------------------------- provisioner


@dataclass
class _Outcome:
    lkey: str
    request: EmbedRequest
    workspace: Workspace | None = None
    created: bool = False
    error: SphereEngineError | None = None
    replaced: Workspace | None = None  #: a dead workspace this one replaces
    skipped: bool = False  #: not attempted: an earlier failure stopped the build (on_error=fail)


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
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    # -- public

    @property
    def client(self) -> ContainersClient:
        with self._lock:
            if self._client is None:
                self._client = ContainersClient.from_settings(self.settings)
            return self._client

    def close(self) -> None:
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
        Raises :class:`ProvisionError` (``on_error = fail``) or
        :class:`~sphere_docs.errors.SettingsError` (no token / endpoint).
        """
        results: dict[str, Resolution] = {}
        unique: dict[str, EmbedRequest] = {}
        aliases: dict[str, list[EmbedRequest]] = {}
        page_keys: set[str] = set()
        for request in requests:
            if not request.spec.name:
                raise ValueError(f"{request.where}: the embed has no name; front ends must set one "
                                 "(options.default_name)")
            if request.spec.mode != "build":
                results[request.key] = Resolution(request, fallback="lazy", reason="lazy mode")
                continue
            lkey = ledger_key(self._api_base(), request)
            if lkey in unique:
                aliases[lkey].append(request)
                continue
            if request.key in page_keys:
                self.logger.warning(
                    "sphere-workspaces: %s: two embeds named %r on page %s; the later one wins",
                    request.where, request.spec.name, request.page)
            page_keys.add(request.key)
            unique[lkey] = request
            aliases[lkey] = [request]
        if not unique:
            return results

        client = self.client  # may raise SettingsError (no token) before any work
        self._adopt_legacy_names(unique)
        snapshot = self.ledger.read()["entries"]
        outcomes = self._run(client, unique, snapshot)
        final, stray = self._record(outcomes, snapshot, set(unique))
        for ws_id in stray:  # ours lost a race with a concurrent build: remove it
            try:
                client.remove(ws_id)
            except SphereEngineError as exc:
                self.logger.debug("sphere-workspaces: could not remove duplicate %s: %s", ws_id, exc)

        failures: list[tuple[EmbedRequest, str]] = []
        created = reused = 0
        for outcome in final:
            for request in aliases[outcome.lkey]:
                if outcome.workspace is not None:
                    ws = outcome.workspace
                    results[request.key] = Resolution(
                        request, ws.id, ws.workspace_token, created=outcome.created)
                else:
                    failures.append((request, self._reason(outcome)))
            if outcome.workspace is not None:
                created += outcome.created
                reused += not outcome.created
        finished = {o.lkey for o in final}
        cancelled = [r for lkey, r in unique.items() if lkey not in finished]
        self.logger.info(
            "sphere-workspaces: %d workspace(s) ready: %d reused, %d created%s",
            created + reused, reused, created,
            f", {len(failures)} failed" if failures else "")

        if failures and self.settings.on_error == "fail":
            request, reason = failures[0]
            more = len(failures) - 1 + len(cancelled)
            message = (f"sphere-workspaces: {request.where}: cannot create a workspace for project "
                       f"{request.spec.project_id}: {reason}")
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

        self.ledger.update(merge)

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
        if err.maybe_processed:
            reason += ("; the API may have created a workspace that was not recorded "
                       "(nobody enters it, so its inactivity timeout removes it)")
        return redact(reason)

    def _run(self, client: ContainersClient, unique: dict[str, EmbedRequest],
             snapshot: Mapping[str, Any]) -> list[_Outcome]:
        total = len(unique)
        workers = max(1, min(self.settings.concurrency, total))
        outcomes: list[_Outcome] = []
        done = 0
        last_log = time.monotonic()
        step = max(1, total // 10)
        stop_early = self.settings.on_error == "fail"
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sphere-provision")
        futures: dict[Future[_Outcome], str] = {}
        try:
            for lkey, request in unique.items():
                entry = snapshot.get(lkey)
                futures[pool.submit(self._guarded, stop if stop_early else None, client, lkey,
                                    request, entry)] = lkey
            chatty = total >= PROGRESS_MIN_TOTAL
            self._report(0, total, force=chatty)
            for future in as_completed(futures):
                outcome = future.result()
                if outcome.skipped:
                    continue
                outcomes.append(outcome)
                done += 1
                now = time.monotonic()
                due = chatty and (done == total or done % step == 0)
                slow = now - last_log >= PROGRESS_EVERY_SECONDS
                self._report(done, total, force=due or slow)
                if due or slow:
                    last_log = now
                if outcome.error is not None and stop_early:
                    for other in futures:
                        other.cancel()
                    break
        finally:
            pool.shutdown(wait=True)
        seen = {o.lkey for o in outcomes}
        for future, lkey in futures.items():  # finished while we were stopping early
            if lkey not in seen and future.done() and not future.cancelled() \
                    and not future.result().skipped:
                outcomes.append(future.result())
        return outcomes

    def _report(self, done: int, total: int, *, force: bool) -> None:
        if self.progress is not None:
            try:
                self.progress(done, total)
            except Exception:  # a broken progress bar must not break the build
                self.logger.debug("sphere-workspaces: progress callback failed", exc_info=True)
        if force:
            self.logger.info("sphere-workspaces: provisioning %d/%d", done, total)

    def _guarded(self, stop: threading.Event | None, client: ContainersClient, lkey: str,
                 request: EmbedRequest, entry: Mapping[str, Any] | None) -> _Outcome:
        """:meth:`_one`, unless an earlier failure already stopped the build."""
        if stop is not None and stop.is_set():
            return _Outcome(lkey, request, skipped=True)
        outcome = self._one(client, lkey, request, entry)
        if stop is not None and outcome.error is not None:
            stop.set()  # workers skip what they pick up next; in-flight calls finish
        return outcome

    def _one(self, client: ContainersClient, lkey: str, request: EmbedRequest,
             entry: Mapping[str, Any] | None) -> _Outcome:
        outcome = _Outcome(lkey, request)
        known_id = entry.get("workspace_id") if isinstance(entry, Mapping) else None
        if isinstance(known_id, str) and known_id:
            try:
                current: Workspace | None = client.get_workspace(known_id)
            except NotFoundError:
                current = None
            except SphereEngineError as exc:
                outcome.error = exc
                return outcome
            if current is not None and current.is_live and self._usable(current, request) is None:
                outcome.workspace = current
                return outcome
            if current is not None and current.state_code != STATE_REMOVED:
                outcome.replaced = current
        try:
            created = client.create_workspace(request.spec)
        except SphereEngineError as exc:
            outcome.error = exc
            return outcome
        problem = self._usable(created, request)
        if problem is not None:
            outcome.error = SphereEngineError(problem, method="POST", path="/workspaces")
            return outcome
        outcome.workspace, outcome.created = created, True
        if outcome.replaced is not None:  # a stopped/failed predecessor: free its storage
            try:
                client.remove(outcome.replaced.id)
            except SphereEngineError as exc:
                self.logger.debug("sphere-workspaces: could not remove replaced %s: %s",
                                  outcome.replaced.id, exc)
        return outcome

    @staticmethod
    def _usable(ws: Workspace, request: EmbedRequest) -> str | None:
        """Why the page could not embed ``ws`` (None when it can)."""
        if not WORKSPACE_ID_RE.match(ws.id):
            return "the API returned a workspace id that is not 32 hex characters"
        if request.spec.token_required and not (ws.workspace_token and TOKEN_RE.match(ws.workspace_token)):
            return "the API returned no usable workspace_token"
        return None

    def _record(self, outcomes: list[_Outcome], snapshot: Mapping[str, Any],
                used: set[str]) -> tuple[list[_Outcome], list[str]]:
        """Merge this build's outcomes into the ledger; adopt concurrent builds' workspaces."""
        api_base = self._api_base()
        now = _now()
        stray: list[str] = []

        def merge(data: dict[str, Any]) -> None:
            entries: dict[str, Any] = data["entries"]
            for outcome in outcomes:
                current = entries.get(outcome.lkey)
                seen = snapshot.get(outcome.lkey)
                changed = (isinstance(current, Mapping) and current.get("workspace_id")
                           and (not isinstance(seen, Mapping)
                                or current.get("workspace_id") != seen.get("workspace_id")))
                ours = outcome.workspace
                if changed and isinstance(current, Mapping) and (ours is None or current["workspace_id"] != ours.id):
                    # Another build recorded this key while we worked: theirs wins.
                    if ours is not None and outcome.created:
                        stray.append(ours.id)
                    outcome.workspace = Workspace(
                        id=str(current["workspace_id"]), project_id=current.get("project_id"),
                        project_name=None, state_code=0, state_name="unknown",
                        workspace_token=current.get("workspace_token"))
                    outcome.created = False
                    outcome.error = None
                    current = dict(current)
                    current["last_used_build"] = self.build_id
                    current["last_used_at"] = now
                    entries[outcome.lkey] = current
                    continue
                if ours is None:
                    continue
                spec = outcome.request.spec
                entry = {
                    "endpoint": api_base,
                    "project_id": spec.project_id,
                    "creation_key": spec.creation_key(),
                    "page": outcome.request.page,
                    "name": spec.name,
                    "workspace_id": ours.id,
                    "workspace_token": ours.workspace_token,
                    "created_at": (now if outcome.created or not isinstance(current, Mapping)
                                   else current.get("created_at", now)),
                    "last_used_build": self.build_id,
                    "last_used_at": now,
                }
                entries[outcome.lkey] = entry
            self._merge_build(data, used, now)

        self.ledger.update(merge)
        return outcomes, stray


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
