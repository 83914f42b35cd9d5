"""``sphere-docs doctor``: is this docs site ready to build against its account?

Pointed at a docs folder, doctor reads the site settings the way the build
does — ``mkdocs.yml`` through MkDocs' own loader (``!ENV`` tags, ``INHERIT``,
the plugin's validation), or ``conf.py`` executed in a namespace of its own
like Sphinx does — then, with the configured endpoint and the token from the
configured environment variable:

1. finds every embed of the docs (as ``sphere-docs check`` does);
2. checks the token with ``GET /test``;
3. checks that the account has every project the docs use (``GET /projects``);
4. reports the ledger's workspaces as live or dead (``GET /workspaces/{id}``).

It also says how long the deployed site's build-mode embeds stay usable (their
lifecycle: :meth:`WorkspaceSpec.lifecycle`, the build-mode defaults included)
and *warns* about the ones whose options make them die between builds (removed
when idle, a total lifetime, stopped without auto-resume).

``--site URL_OR_PATH`` (:func:`run_site_doctor`) checks a *deployed* site
instead: every workspace its ``sphere-workspaces.json`` lists, with the exit
status a scheduled CI job rebuilds on.

Each problem is printed with the fix to apply.  The token is never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..core.errors import SettingsError
from ..core.options import BUILD_LIFECYCLE_DEFAULTS
from ..core.redact import redact
from ..core.settings import SiteSettings, renamed
from ..site import DocsSite, find_docs_site, read_conf_py  # the site layer (re-exported)
from .check import CheckResult, check_paths, plural

__all__ = ["DocsSite", "find_docs_site", "read_conf_py", "run_doctor", "run_site_doctor"]

#: projects of the account named in a "not in your account" fix, at most
SHOWN_PROJECTS = 5
#: the inactivity timeout of a workspace created without one (the vendor's example response)
API_INACTIVITY_TIMEOUT = 15


def _show(path: Path) -> str:
    """``path`` relative to the current folder when it is under it."""
    try:
        text = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()
    return text or "."


# --------------------------------------------------------------------------- the report


class _Report:
    def __init__(self, out: TextIO, secrets: tuple[str, ...] = ()):
        self.out = out
        self.secrets = secrets
        self.problems = 0
        self.warnings = 0

    def line(self, text: str) -> None:
        print(redact(text, self.secrets), file=self.out)

    def ok(self, text: str) -> None:
        self.line(f"ok: {text}")

    def problem(self, text: str, fix: str, details: tuple[str, ...] = ()) -> None:
        self.problems += 1
        self.line(f"problem: {text}")
        for detail in details:
            self.line(f"    {detail}")
        self.line(f"  fix: {fix}")

    def warning(self, text: str, fix: str, details: tuple[str, ...] = ()) -> None:
        """Something that may be what the author wants: printed with its fix, exit status unchanged."""
        self.warnings += 1
        self.line(f"warning: {text}")
        for detail in details:
            self.line(f"    {detail}")
        self.line(f"  fix: {fix}")


def _where(site: DocsSite) -> str:
    if site.kind == "mkdocs":
        return "under the sphere-workspaces plugin in " + (site.config_file.name if site.config_file else "mkdocs.yml")
    if site.kind == "sphinx":
        return "in conf.py"
    return "on the command line"


def _setting(site: DocsSite, name: str) -> str:
    if site.kind == "none":
        return "--" + name.replace("_", "-")
    return site.setting_prefix + name


def _settings(site: DocsSite, endpoint: str | None, token_env: str | None,
              report: _Report) -> SiteSettings | None:
    values = dict(site.values)
    if endpoint:
        values["endpoint"] = endpoint
    if token_env:
        values["token_env"] = token_env
    base = site.config_file.parent if site.config_file else Path(".")
    try:
        return SiteSettings.from_mapping(values, base_dir=base)
    except SettingsError as err:
        # named as the config file spells them, as the build would (conf.py: sphere_<name>)
        report.problem(renamed(err, site.setting_prefix), f"correct {_setting(site, err.setting)} {_where(site)}")
        return None


def run_doctor(docs: Path | str = ".", *, endpoint: str | None = None,
               token_env: str | None = None, out: TextIO | None = None) -> int:
    """Print the diagnosis of the docs site at ``docs``; 0 when all is well, 1 otherwise."""
    out = out if out is not None else sys.stdout
    report = _Report(out)
    site = find_docs_site(Path(docs))

    if site.kind == "none":
        report.line(f"sphere-docs doctor: {_show(Path(docs))} (no mkdocs.yml or conf.py found; "
                    "settings from the command line)")
    else:
        assert site.config_file is not None
        engine = "MkDocs" if site.kind == "mkdocs" else "Sphinx"
        report.line(f"sphere-docs doctor: {_show(site.config_file)} ({engine}, pages in "
                    f"{_show(site.docs_dir)})")
    if site.errors:
        name = site.config_file.name if site.config_file else "the configuration"
        report.problem(f"{name} cannot be loaded", f"correct {name}",
                       details=tuple(site.errors[:5]))
        report.line(f"sphere-docs doctor: {plural(report.problems, 'problem')}")
        return 1

    settings = _settings(site, endpoint, token_env, report)
    mode = settings.mode if settings else "build"
    found = check_paths([_show(site.docs_dir)], default_mode=mode)
    _report_embeds(report, site, found, settings)
    if settings is None:
        return _finish(report)

    endpoint_ok = _report_endpoint(report, site, settings)
    client, token = None, None
    if endpoint_ok:
        client, token = _report_token(report, settings)
    try:
        if client is not None:
            _report_projects(report, client, found)
        _report_ledger(report, settings, client)
    finally:
        if client is not None:
            client.close()
    del token
    return _finish(report)


def _finish(report: _Report) -> int:
    warned = f" ({plural(report.warnings, 'warning')})" if report.warnings else ""
    if report.problems:
        report.line(f"sphere-docs doctor: {plural(report.problems, 'problem')}{warned}")
        return 1
    report.line(f"sphere-docs doctor: no problems{warned}")
    return 0


def _report_embeds(report: _Report, site: DocsSite, found: CheckResult,
                   settings: SiteSettings | None) -> None:
    pages = sum(1 for n in found.counts.values() if n)
    lazy = sum(1 for e in found.embeds if e.spec.mode == "lazy")
    build = len(found.embeds) - lazy
    report.line(f"embeds: {found.total} in {plural(pages, 'page')} "
                f"({build} build, {lazy} lazy, {len(found.errors)} invalid)")
    if not found.total:
        return
    _report_lifecycles(report, site, found)
    if not site.enabled:
        if site.kind == "mkdocs":
            report.problem(f"{plural(found.total, 'embed')} but {_show(site.config_file or Path())} "
                           "does not enable the sphere-workspaces plugin",
                           "add `- sphere-workspaces` under `plugins:` in mkdocs.yml")
        elif site.kind == "sphinx":
            report.problem(f"{plural(found.total, 'embed')} but conf.py does not enable the extension",
                           'add "sphere_docs.sphinx" to extensions in conf.py')
    if site.kind == "sphinx" and not site.myst and any(p.endswith(".md") for p, n in found.counts.items() if n):
        report.problem("Markdown pages have embeds but conf.py does not enable MyST",
                       'add "myst_parser" to extensions in conf.py (pip install myst-parser)')
    if found.errors:
        report.problem(f"{plural(len(found.errors), 'invalid embed')}",
                       f"correct them (the same list: sphere-docs check {_show(site.docs_dir)})",
                       details=tuple(p.text for p in found.errors[:10])
                       + ((f"... and {len(found.errors) - 10} more",) if len(found.errors) > 10 else ()))
    if lazy and settings is not None and not settings.lazy_endpoint:
        first = next(e for e in found.embeds if e.spec.mode == "lazy")
        report.problem(f"{plural(lazy, 'lazy embed')} (first at {first.page}:{first.line}) but no "
                       "lazy endpoint is set",
                       f"set {_setting(site, 'lazy_endpoint')} {_where(site)} to the URL of your "
                       "lazy endpoint (see `sphere-docs endpoint --help`)")


# --------------------------------------------------------------------------- lifecycles


def duration(minutes: int) -> str:
    """``minutes`` in the largest whole unit: ``15 minutes``, ``2 hours``, ``30 days``."""
    if minutes and minutes % (60 * 24) == 0:
        return plural(minutes // (60 * 24), "day")
    if minutes and minutes % 60 == 0:
        return plural(minutes // 60, "hour")
    return plural(minutes, "minute")


def lifecycle_of(spec: Any) -> tuple[str, str, str | None]:
    """How a build-mode embed's workspace lives: ``(kind, sentence, fix)``; fix None when it outlives builds.

    Kinds: ``removed-idle``, ``total``, ``no-resume`` (each a warning: the deployed page
    dies between builds), ``kept`` and ``never-idle``.  Values the author and the
    build-mode defaults leave unset are the API's documented defaults (inactivity 15,
    retention 0, auto-resume true).
    """
    lc = spec.lifecycle()
    idle = lc["inactivity_timeout"] if lc["inactivity_timeout"] is not None else API_INACTIVITY_TIMEOUT
    stopped = lc["retention_stopped"] or 0
    total = lc["retention_total"] or 0
    auto = lc["auto_resume"] is not False
    if idle and not stopped:
        return ("removed-idle",
                f"removed after {duration(idle)} without a reader (retention-stopped 0 turns "
                "stop/resume off): the deployed page shows a dead embed soon after each build",
                "leave retention-stopped out (build mode keeps an idle workspace stopped for "
                f"{duration(int(BUILD_LIFECYCLE_DEFAULTS['retention_stopped']))}) or set it to the minutes an idle workspace must be kept")
    if total:
        return ("total",
                f"removed {duration(total)} after the build that created it, however much it is used "
                "(retention-total; rebuilds reuse it, they do not renew it): the deployed site stays "
                f"usable for at most {duration(total)}",
                "leave retention-total out, or schedule `sphere-docs doctor --site URL` to rebuild "
                "once it is removed (README: A scheduled refresh)")
    if idle and not auto:
        return ("no-resume",
                f"stopped after {duration(idle)} without a reader and auto-resume is off: readers "
                "see a stopped workspace until the next build replaces it",
                "leave auto-resume out (build mode turns it on): readers cannot resume a workspace")
    if not idle:
        return ("never-idle",
                "never stopped for inactivity: usable until removed, holding a workspace "
                "slot all the time", None)
    return ("kept",
            f"stopped after {duration(idle)} without a reader, resumed when one opens it, removed "
            f"after {duration(stopped)} without one: the deployed site stays usable while each is "
            f"opened at least once every {duration(stopped)}", None)


def _report_lifecycles(report: _Report, site: DocsSite, found: CheckResult) -> None:
    """One line per lifecycle of the build-mode embeds; a warning for those that die between builds."""
    groups: dict[tuple[str, str, str | None], list[str]] = {}
    for embed in sorted(found.embeds, key=lambda e: (e.page, e.line or 0)):
        if embed.spec.mode == "build":
            groups.setdefault(lifecycle_of(embed.spec), []).append(f"{embed.page}:{embed.line}")
    for (_kind, sentence, fix), places in groups.items():
        count = plural(len(places), "build embed")
        if fix is None:
            report.line(f"lifecycle: {count}: {sentence}")
            continue
        more = f" (and {plural(len(places) - 1, 'other')})" if len(places) > 1 else ""
        report.warning(f"{count} (first at {places[0]}{more}): {sentence}", fix,
                       details=tuple(places[1:10]) + ((f"... and {len(places) - 10} more",)
                                                       if len(places) > 10 else ()))


def _report_endpoint(report: _Report, site: DocsSite, settings: SiteSettings) -> bool:
    if not settings.endpoint:
        report.problem("no endpoint is set, so nothing can be checked against the API",
                       f"set {_setting(site, 'endpoint')} {_where(site)} (your customer host, "
                       "e.g. 12345678.containers.sphere-engine.com) or pass --endpoint URL")
        return False
    report.line(f"endpoint: {settings.api.api_base}")
    return True


def _report_token(report: _Report, settings: SiteSettings,
                  skipped: str = "the projects and the ledger's workspaces") -> tuple[Any, str | None]:
    from ..api.client import (
        AuthError,
        ContainersClient,
        NotFoundError,
        SphereEngineError,
        TransportError,
    )

    name = settings.token_env
    fix = f"export {name}=<an API access token of your Sphere Engine account (client panel: API Tokens)>"
    try:
        token = settings.token()
    except SettingsError:
        report.line(f"token: ${name} is not set")
        report.problem(f"no access token: the environment variable {name} is empty or not set", fix)
        return None, None
    report.secrets = (token,)
    report.line(f"token: ${name} (set, not shown)")
    client = ContainersClient(settings.api.api_base, token, timeout=settings.timeout,
                              retries=min(settings.retries, 1))
    api = settings.api.api_base
    try:
        client.test()
    except AuthError as exc:
        report.problem(f"the API rejects the token in ${name} ({exc.reason})", fix)
    except NotFoundError as exc:
        report.problem(f"{api} is not a Containers API ({exc.reason} for GET /test)",
                       "check the endpoint setting: the customer host, e.g. "
                       "12345678.containers.sphere-engine.com")
    except TransportError as exc:
        report.problem(f"cannot reach {api}: {exc.message}",
                       "check the endpoint setting and your network (the customer host, e.g. "
                       "12345678.containers.sphere-engine.com)")
    except SphereEngineError as exc:
        report.problem(f"GET /test failed: {exc.reason}", "try again later; if it persists, "
                       "check the endpoint and the token")
    else:
        report.ok("the API accepts the token (GET /test)")
        return client, token
    client.close()
    report.line(f"skipped: {skipped} (they need a working token)")
    return None, token


def _report_projects(report: _Report, client: Any, found: CheckResult) -> None:
    from ..api.client import SphereEngineError

    used: dict[str, list[str]] = {}
    for embed in sorted(found.embeds, key=lambda e: (e.page, e.line or 0)):
        used.setdefault(embed.spec.project_id, []).append(f"{embed.page}:{embed.line}")
    if not used:
        return
    try:
        projects = {p.id.lower(): p.name for p in client.list_projects()}
    except SphereEngineError as exc:
        report.line(f"skipped: the projects could not be listed ({exc.reason}); "
                    f"{plural(len(used), 'project')} not verified")
        return
    for project_id, places in used.items():
        count = plural(len(places), "embed")
        if project_id in projects:
            name = projects[project_id]
            report.ok(f"project {project_id}{f' ({name})' if name else ''}: {count}")
            continue
        others = ", ".join(f"{pid} ({name})" if name else pid
                           for pid, name in list(projects.items())[:SHOWN_PROJECTS])
        if len(projects) > SHOWN_PROJECTS:
            others += f", and {len(projects) - SHOWN_PROJECTS} more"
        more = f" (and {plural(len(places) - 1, 'other embed')})" if len(places) > 1 else ""
        report.problem(
            f"project {project_id} is not in your account: {count}",
            f"check the id in {places[0]}{more}; your account has "
            + (others or "no projects"),
        )


def _report_ledger(report: _Report, settings: SiteSettings, client: Any) -> None:
    from ..api.client import NotFoundError, SphereEngineError
    from ..pipeline.ledger import Ledger, LedgerError

    ledger = Ledger(settings.cache_dir)
    where = _show(ledger.path)
    try:
        data = ledger.read()
        missing = not data["entries"] and not data["intents"] and not ledger.path.exists()
    except LedgerError as err:
        report.problem(f"the ledger {where} {err.problem}", err.fix)
        return
    except OSError as exc:  # the cache folder itself cannot be looked into
        report.problem(f"the ledger {where} cannot be read: {exc.strerror or exc}",
                       f"let the user who builds read {_show(ledger.dir)}")
        return
    if missing:
        report.line(f"ledger: {where}: no workspaces yet (the first build creates it)")
        return
    api = settings.api.api_base if settings.endpoint else None  # (no endpoint: nothing is checked)
    entries = {k: e for k, e in data["entries"].items() if api is None or Ledger.entry_api_base(k, e) == api}
    elsewhere = len(data["entries"]) - len(entries)
    used = Ledger.used_keys(data)
    unused = sum(1 for k in entries if k not in used)
    tail = f" (+{elsewhere} for other endpoints, not checked)" if elsewhere else ""
    if client is None or not entries:
        report.line(f"ledger: {where}: {plural(len(entries), 'workspace')}"
                    f"{' (not checked)' if entries else ''}{tail}")
        _report_intents(report, data, api, client)
        return

    def state(entry: Mapping[str, Any]) -> tuple[bool | None, str]:
        try:
            ws = client.get_workspace(str(entry.get("workspace_id")))
        except NotFoundError:
            return False, "not found"
        except SphereEngineError as exc:
            return None, exc.reason
        return ws.is_live, ws.state_name

    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        states = list(pool.map(state, entries.values()))
    live = sum(1 for alive, _ in states if alive)
    dead = [(e, s) for e, (alive, s) in zip(entries.values(), states, strict=True) if alive is False]
    unknown = sum(1 for alive, _ in states if alive is None)
    counts = f"{live} live, {len(dead)} dead" + (f", {unknown} not checked (API error)" if unknown else "")
    report.line(f"ledger: {where}: {plural(len(entries), 'workspace')}: {counts}{tail}")
    for entry, state_name in sorted(dead, key=lambda d: (str(d[0].get("page")), str(d[0].get("name")))):
        report.line(f"    dead: {entry.get('workspace_id')} ({entry.get('page')} "
                    f"{entry.get('name')}): {state_name}")
    if dead:
        report.line("    the next build replaces dead workspaces")
    if unused:
        report.line(f"    {unused} not used by the last build: `sphere-docs prune` removes them")
    _report_intents(report, data, api, client)


def _report_intents(report: _Report, data: Mapping[str, Any], api: str | None, client: Any) -> None:
    """Creates that an interrupted build left without an answer: each may have made a workspace."""
    from ..api.client import SphereEngineError
    from ..pipeline.provision import describe_intent, intent_in_flight, match_intents

    intents = data["intents"]
    if not intents:
        return
    running = {iid for iid, i in intents.items() if intent_in_flight(iid, i)}
    found: dict[str, str] = {}
    ours = {iid: i for iid, i in intents.items() if i["endpoint"] == api}
    if client is not None and ours:
        try:
            listed = {p: list(client.iter_workspaces(project_id=p))
                      for p in sorted({i["project_id"] for i in ours.values()})}
        except SphereEngineError as exc:
            found = {iid: f"not looked for: GET /workspaces failed ({exc.reason})" for iid in ours}
        else:
            matches = match_intents(ours, listed, data["entries"])
            for iid, ws in matches.adopt.items():
                found[iid] = f"the API lists workspace {ws.id} (created {ws.created_at}): the next build adopts it"
            for iid, candidates in matches.ambiguous.items():
                found[iid] = ("the API lists more workspaces it could have made than there were creates: "
                              + ", ".join(ws.id for ws in candidates) + " (not adopted: check them in the panel)")
            for iid in matches.gone:
                found[iid] = "it made a workspace that is removed already: the next build forgets it"
            for iid in matches.nothing:
                found[iid] = "the API lists no workspace it made: the next build forgets it"
    details = []
    for iid, intent in sorted(intents.items(), key=lambda item: str(item[1].get("started_at"))):
        line = describe_intent(intent)
        if iid in running:
            line += "; a build running now may still record it"
        elif iid in found:
            line += f"; {found[iid]}"
        elif intent["endpoint"] != api:
            line += f"; endpoint {intent['endpoint']}"
        details.append(line)
    report.problem(
        f"{plural(len(intents), 'create')} of interrupted builds may have made workspaces the ledger "
        "does not list",
        "build again: the build adopts each such workspace the API lists (and forgets a create that "
        "made none); or find them in the client panel (project and time above) and remove them",
        details=tuple(details[:20]) + ((f"... and {len(details) - 20} more",) if len(details) > 20 else ()))


# --------------------------------------------------------------------------- a deployed site


#: exit status of ``doctor --site``: every listed workspace usable / one is dead (rebuild) / not checked
SITE_OK, SITE_DEAD, SITE_UNCHECKED = 0, 1, 2


@dataclass
class _Listed:
    """One build-mode embed of a deployed manifest and what the API says of its workspace."""

    page: str
    name: str
    project_id: str
    workspace_id: str
    verdict: str = ""  #: "usable", "dead" or "unknown"
    state: str = ""  #: what is shown: the state name, "not found", or the API's reason
    removal: float | None = None  #: stopped: when it is removed unless a reader opens it (estimate)


def _removal_estimate(ws: Any) -> float | None:
    """When a stopped workspace is removed if nobody opens it: its last activity + inactivity + retention.

    The API shows no stop time: the last activity is ``last_usage`` (or ``created_at``), and the
    workspace stopped ``inactivity_timeout`` after it.  None when the fields are missing.
    """
    from ..pipeline.ledger import parse_time

    raw = ws.raw
    last = parse_time(raw.get("last_usage")) or parse_time(raw.get("created_at"))
    created = parse_time(raw.get("created_at"))
    try:
        idle = int(raw.get("inactivity_timeout") or 0)
        kept = int(raw.get("retention_time_stopped") or 0)
        total = int(raw.get("retention_time_total") or 0)
    except (TypeError, ValueError):
        return None
    ends = []
    if last is not None and kept:
        ends.append(last + 60.0 * (idle + kept))
    if created is not None and total:
        ends.append(created + 60.0 * total)
    return min(ends) if ends else None


def _check_listed(client: Any, item: _Listed) -> _Listed:
    from ..api.client import STATE_REMOVED, STATE_STOPPED, NotFoundError, SphereEngineError

    try:
        ws = client.get_workspace(item.workspace_id)
    except NotFoundError:
        item.verdict, item.state = "dead", "not found"
        return item
    except SphereEngineError as exc:
        item.verdict, item.state = "unknown", exc.reason
        return item
    item.state = ws.state_name
    if ws.project_id and ws.project_id.lower() != item.project_id.lower():
        item.verdict, item.state = "dead", f"a workspace of project {ws.project_id}, not {item.project_id}"
    elif ws.state_code == STATE_STOPPED and not ws.auto_resume:
        item.verdict, item.state = "dead", "stopped, and auto-resume is off (readers cannot resume it)"
    elif ws.is_live:
        item.verdict = "usable"
        if ws.state_code == STATE_STOPPED:
            item.removal = _removal_estimate(ws)
    else:
        item.verdict = "dead"
        if ws.state_code == STATE_REMOVED and ws.terminated_at:
            item.state = f"removed at {ws.terminated_at}"
    return item


def _shown(source: str) -> str:
    try:
        from ..core.manifest import shown_source
    except ImportError:  # pragma: no cover - an older manifest module
        return redact(source)
    return shown_source(source)


def run_site_doctor(manifest: str, docs: Path | str = ".", *, endpoint: str | None = None,
                    token_env: str | None = None, out: TextIO | None = None) -> int:
    """Check the workspaces a deployed site's manifest lists (``doctor --site``).

    ``manifest`` is the deployed ``sphere-workspaces.json`` (URL or path; a site URL ending
    in ``/`` or a folder names the one in it).  The endpoint and the token come from the
    settings of the docs site at ``docs`` (when there is one) and the options, as for
    :func:`run_doctor`.  Answers :data:`SITE_OK` (0) when every listed workspace is usable
    (starting, running, or stopped and resumed when a reader opens it), :data:`SITE_DEAD` (1)
    when any is removed, errored, not found or stopped without auto-resume — a rebuild
    replaces it — and :data:`SITE_UNCHECKED` (2) when the check could not be made (manifest,
    settings, token, API errors).
    """
    from datetime import datetime, timezone

    from ..core.manifest import ManifestError, read_manifest

    out = out if out is not None else sys.stdout
    report = _Report(out)
    report.line(f"sphere-docs doctor: deployed site {_shown(manifest)}")
    site = find_docs_site(Path(docs))
    if site.errors:
        name = site.config_file.name if site.config_file else "the configuration"
        report.problem(f"{name} cannot be loaded", f"correct {name}", details=tuple(site.errors[:5]))
        return _finish_site(report, SITE_UNCHECKED)
    settings = _settings(site, endpoint, token_env, report)
    if settings is None:
        return _finish_site(report, SITE_UNCHECKED)
    try:
        data = read_manifest(manifest)
    except ManifestError as exc:
        report.problem(str(exc), "give the URL of the deployed site's sphere-workspaces.json "
                                 "(or the site's URL ending in /), or a path to one")
        return _finish_site(report, SITE_UNCHECKED)

    listed: list[_Listed] = []
    without_id = 0
    for page, embeds in data["pages"].items():
        for entry in embeds:
            if entry.get("mode", "build") != "build":
                continue
            wid = entry.get("workspace_id")
            if not isinstance(wid, str) or not wid:
                without_id += 1
                continue
            listed.append(_Listed(str(page), str(entry.get("name")), str(entry.get("project_id")), wid))
    pages = len({item.page for item in listed})
    tail = (f" ({plural(without_id, 'build embed')} without a workspace id: a placeholder, or a "
            "manifest of an older sphere-docs; not checked)") if without_id else ""
    report.line(f"manifest: {plural(len(listed), 'build-mode workspace')} on {plural(pages, 'page')}{tail}")
    if not listed:
        return _finish_site(report, SITE_OK)
    if not _report_endpoint(report, site, settings):
        return _finish_site(report, SITE_UNCHECKED)
    client, token = _report_token(report, settings, "the deployed site's workspaces")
    if client is None:
        return _finish_site(report, SITE_UNCHECKED)
    try:
        with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
            checked = list(pool.map(lambda item: _check_listed(client, item), listed))
    finally:
        client.close()
        del token

    usable = [i for i in checked if i.verdict == "usable"]
    dead = [i for i in checked if i.verdict == "dead"]
    unknown = [i for i in checked if i.verdict == "unknown"]
    if usable:
        states: dict[str, int] = {}
        for item in usable:
            states[item.state] = states.get(item.state, 0) + 1
        shown = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        stopped = states.get("stopped", 0)
        report.ok(f"{plural(len(usable), 'workspace')} usable ({shown})"
                  + (": stopped ones resume when a reader opens them" if stopped else ""))
        due = sorted((i for i in usable if i.removal is not None), key=lambda i: i.removal or 0.0)
        if due:
            first = due[0]
            when = datetime.fromtimestamp(first.removal or 0.0, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            report.line(f"    first to go: {first.page} {first.name}: removed about {when} "
                        "unless a reader opens it before")
    if dead:
        report.problem(
            f"{plural(len(dead), 'workspace')} of the deployed site "
            f"{'is' if len(dead) == 1 else 'are'} dead: readers see an embed that does not work",
            "rebuild and deploy the site: the build replaces dead workspaces (and reuses the "
            "usable ones); then `sphere-docs prune` removes what the new build no longer uses",
            details=tuple(f"{i.page} {i.name}: workspace {i.workspace_id} {i.state}"
                          for i in sorted(dead, key=lambda i: (i.page, i.name))))
    if unknown:
        report.problem(f"{plural(len(unknown), 'workspace')} could not be checked",
                       "try again later; if it persists, check the endpoint and the token",
                       details=tuple(f"{i.page} {i.name}: workspace {i.workspace_id}: {i.state}"
                                     for i in sorted(unknown, key=lambda i: (i.page, i.name))[:10]))
    return _finish_site(report, SITE_DEAD if dead else SITE_UNCHECKED if unknown else SITE_OK)


def _finish_site(report: _Report, status: int) -> int:
    _finish(report)
    return status
