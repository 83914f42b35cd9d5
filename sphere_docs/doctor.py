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

Each problem is printed with the fix to apply.  The token is never printed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .check import CheckResult, check_paths, find_site, load_mkdocs_config, plural
from .errors import SettingsError
from .redact import redact
from .settings import SETTINGS, SiteSettings

__all__ = ["DocsSite", "find_docs_site", "read_conf_py", "run_doctor"]

#: projects of the account named in a "not in your account" fix, at most
SHOWN_PROJECTS = 5
#: where conf.py is looked for under the folder given
CONF_PY_PLACES = ("conf.py", "docs/conf.py", "source/conf.py", "docs/source/conf.py")


@dataclass
class DocsSite:
    """Where the settings and the pages of a docs site are."""

    kind: str  #: "mkdocs", "sphinx" or "none"
    config_file: Path | None
    docs_dir: Path
    values: dict[str, Any] = field(default_factory=dict)  #: raw setting values
    errors: list[str] = field(default_factory=list)  #: why the settings could not be read
    enabled: bool = True  #: the plugin / extension is enabled
    myst: bool = False  #: Sphinx only: myst_parser is enabled

    @property
    def setting_prefix(self) -> str:
        return "sphere_" if self.kind == "sphinx" else ""


def _show(path: Path) -> str:
    """``path`` relative to the current folder when it is under it."""
    try:
        text = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()
    return text or "."


# --------------------------------------------------------------------------- finding settings


def find_docs_site(path: Path) -> DocsSite:
    """The site of ``path``: a config file, a folder holding one, or a folder below one."""
    path = Path(path)
    if path.is_file():
        return _site_of(path)
    for place in ("mkdocs.yml", "mkdocs.yaml", *CONF_PY_PLACES):
        if (path / place).is_file():
            return _site_of(path / place)
    _, config_file = find_site(path.resolve())  # the folders above, as `check` looks for a page's site
    return _site_of(config_file) if config_file is not None else DocsSite("none", None, path)


def _site_of(config_file: Path) -> DocsSite:
    return _sphinx_site(config_file) if config_file.name == "conf.py" else _mkdocs_site(config_file)


def _mkdocs_site(config_file: Path) -> DocsSite:
    site = DocsSite("mkdocs", config_file, config_file.parent / "docs")
    try:
        from .mkdocs_ import SphereWorkspacesPlugin
    except ImportError:  # MkDocs is not installed: read the YAML ourselves
        return _mkdocs_site_without_mkdocs(site)
    config, errors = load_mkdocs_config(config_file)
    if config is None:
        site.errors = [e for e in errors if not e.startswith("Abort")] or errors
        return site
    site.docs_dir = Path(config.docs_dir)
    plugin = next((p for p in config.plugins.values() if isinstance(p, SphereWorkspacesPlugin)), None)
    if plugin is None:
        site.enabled = False
    else:
        site.values = {name: plugin.config[name] for name in SETTINGS}
    return site


class _EnvLoader(yaml.SafeLoader):
    """mkdocs.yml without MkDocs: ``!ENV`` understood, other tags read as nothing."""


def _construct_env(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        names, default = [loader.construct_scalar(node)], None
    else:
        items = loader.construct_sequence(node)  # type: ignore[arg-type]
        names, default = items[:-1], items[-1] if len(items) > 1 else None
    for name in names:
        if isinstance(name, str) and name in os.environ:
            return yaml.safe_load(os.environ[name]) if os.environ[name] else None
    return default


_EnvLoader.add_constructor("!ENV", _construct_env)
_EnvLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def _mkdocs_site_without_mkdocs(site: DocsSite) -> DocsSite:
    assert site.config_file is not None
    try:
        data = yaml.load(site.config_file.read_text(encoding="utf-8"), Loader=_EnvLoader)
    except (OSError, yaml.YAMLError) as exc:
        site.errors = [f"cannot read {site.config_file.name}: {exc}"]
        return site
    data = data if isinstance(data, dict) else {}
    site.docs_dir = site.config_file.parent / str(data.get("docs_dir") or "docs")
    site.enabled = False
    plugins = data.get("plugins") or []
    if isinstance(plugins, Mapping):  # MkDocs also accepts `plugins:` as a mapping
        plugins = [{name: options} for name, options in plugins.items()]
    for entry in plugins if isinstance(plugins, list) else ():
        if entry == "sphere-workspaces":
            site.enabled = True
        elif isinstance(entry, Mapping) and "sphere-workspaces" in entry:
            site.enabled = True
            options = entry["sphere-workspaces"] or {}
            if not isinstance(options, Mapping):
                site.errors = [f"{site.config_file.name}: the sphere-workspaces plugin's settings "
                               f"are a {type(options).__name__}; expected 'name: value' lines"]
                return site
            site.values = dict(options)
    return site


class _Tags:
    """Sphinx's ``tags`` object, for conf.py files that use it, when Sphinx is not installed."""

    def has(self, tag: str) -> bool:
        return False

    __contains__ = has

    def add(self, tag: str) -> None:
        pass

    def remove(self, tag: str) -> None:
        pass


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def read_conf_py(conf_py: Path) -> dict[str, Any]:
    """Execute ``conf.py`` as Sphinx does (its own namespace, run from its folder).

    Raises ``SettingsError`` when it cannot be executed.  ``sys.path`` changes
    made by the file are undone afterwards.
    """
    try:
        from sphinx.util.tags import Tags
        tags: Any = Tags()
    except ImportError:
        tags = _Tags()
    conf_py = conf_py.resolve()
    namespace: dict[str, Any] = {"__file__": str(conf_py), "tags": tags}
    with _in_folder(conf_py.parent):
        try:
            code = compile(conf_py.read_bytes(), str(conf_py), "exec")
            exec(code, namespace)
        except SystemExit:
            raise SettingsError("conf.py", None, "", message="conf.py called sys.exit()") from None
        except Exception as exc:  # the author's code: report, never a traceback
            raise SettingsError("conf.py", None, "",
                                message=f"conf.py failed: {type(exc).__name__}: {exc}") from None
    return namespace


def _sphinx_site(conf_py: Path) -> DocsSite:
    site = DocsSite("sphinx", conf_py, conf_py.parent)
    try:
        namespace = read_conf_py(conf_py)
    except SettingsError as exc:
        site.errors = [str(exc)]
        return site
    extensions = [str(e) for e in namespace.get("extensions") or ()]
    site.enabled = "sphere_docs.sphinx" in extensions
    site.myst = "myst_parser" in extensions or "myst_nb" in extensions
    site.values = {name: namespace[f"sphere_{name}"] for name in SETTINGS if f"sphere_{name}" in namespace}
    return site


# --------------------------------------------------------------------------- the report


class _Report:
    def __init__(self, out: TextIO, secrets: tuple[str, ...] = ()):
        self.out = out
        self.secrets = secrets
        self.problems = 0

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
        text = str(err)
        if site.kind == "sphinx" and err.setting in SETTINGS:
            text = text.replace(repr(err.setting), repr(f"sphere_{err.setting}"), 1)
        report.problem(text, f"correct {_setting(site, err.setting)} {_where(site)}")
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
    if report.problems:
        report.line(f"sphere-docs doctor: {plural(report.problems, 'problem')}")
        return 1
    report.line("sphere-docs doctor: no problems")
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
        report.problem(f"{plural(lazy, 'lazy embed')} (first at {first.file}:{first.line}) but no "
                       "lazy endpoint is set",
                       f"set {_setting(site, 'lazy_endpoint')} {_where(site)} to the URL of your "
                       "lazy endpoint (see `sphere-docs endpoint --help`)")


def _report_endpoint(report: _Report, site: DocsSite, settings: SiteSettings) -> bool:
    if not settings.endpoint:
        report.problem("no endpoint is set, so nothing can be checked against the API",
                       f"set {_setting(site, 'endpoint')} {_where(site)} (your customer host, "
                       "e.g. 12345678.containers.sphere-engine.com) or pass --endpoint URL")
        return False
    report.line(f"endpoint: {settings.api.api_base}")
    return True


def _report_token(report: _Report, settings: SiteSettings) -> tuple[Any, str | None]:
    from .client import (
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
    report.line("skipped: the projects and the ledger's workspaces (they need a working token)")
    return None, token


def _report_projects(report: _Report, client: Any, found: CheckResult) -> None:
    from .client import SphereEngineError

    used: dict[str, list[str]] = {}
    for embed in sorted(found.embeds, key=lambda e: (e.file, e.line)):
        used.setdefault(embed.spec.project_id, []).append(f"{embed.file}:{embed.line}")
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
    from .client import NotFoundError, SphereEngineError
    from .provision import Ledger, LedgerError

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
    from .client import SphereEngineError
    from .provision import describe_intent, intent_in_flight, match_intents

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
