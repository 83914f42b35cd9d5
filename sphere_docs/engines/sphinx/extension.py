"""The Sphinx extension: where each piece plugs into Sphinx's build pipeline.

::

    config-inited        validate every sphere_* value (ConfigError, before reading)
    reading              the directive validates options, records an Embed in the env
                         data and leaves a generic ``sphere_workspace`` node
    env-purge-doc        forget a document's embeds (and outcomes) before it is re-read
    env-merge-info       take the embeds found by parallel readers (-j N)
    doctree-read         main process (serial reading): hand the document's build-mode
                         embeds to a background resolve (provision.ResolveSession), so the
                         API calls run while the other documents are read
    env-merge-info       (-j N) the same for the documents a reader process sent back
    env-updated          main process, once, after all reading: provision every build-mode
                         embed that has no workspace yet, concurrently, via the shared
                         Provisioner and its ledger (waiting for the background resolve)
    doctree-resolved     non-interactive builders: replace the node by a static fallback
    writing              html/dirhtml/singlehtml: the visitor renders div / placeholder
    build-finished       html family: write sphere-workspaces.json, put the loader right
                         after <body ...> of each written page that has an embed

Parallel reading is safe because readers only add to per-document data that
``env-merge-info`` copies back; parallel writing is safe because writers only
read the env data, which is complete before the writers fork; provisioning
and the page post-processing run in the main process only.
"""

from __future__ import annotations

import logging as stdlib_logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sphinx.errors import SphinxError
from sphinx.util import logging

from ... import __version__, pipeline
from ...core import html
from ...core.errors import SettingsError, SphereDocsError
from ...core.fileio import atomic_write_text
from ...core.manifest import MANIFEST_NAME, write_manifest
from ...core.settings import SiteSettings
from . import config as sphere_config
from .directive import SphereWorkspaceDirective
from .envdata import Embed, Outcome, env_data
from .nodes import sphere_workspace
from .visitors import (
    depart_workspace_html,
    is_interactive,
    replace_for_static_builders,
    visit_workspace_html,
)

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

__all__ = ["SphereBuildError", "SphereBuildExit", "setup_extension", "stop_build"]

logger = logging.getLogger(__name__)

#: bump when the shape of the env data changes: Sphinx then re-reads everything
ENV_VERSION = 4  # 2: WorkspaceSpec became a NamedTuple; 3: names by identity, errors kept;
#               4: the pipeline's Embed and the provisioner's Resolution are kept


class SphereBuildError(SphinxError):
    """Provisioning failed with ``sphere_on_error = 'fail'`` (or the site is misconfigured)."""

    category = "Sphere Engine workspaces error"

    def __init__(self, message: str, subtype: str = "api"):
        super().__init__(message)
        self.subtype = subtype  #: the warning subtype it is logged with (sphere.api / sphere.config)


class SphereBuildExit(SystemExit):
    """Ends a ``sphinx-build`` run after :func:`stop_build` logged the error: status 2, no crash report.

    Recent ``sphinx-build`` (after 7.2; 9.0 here; sphinx-doc/sphinx#14543) treats
    every ``Exception`` that leaves ``app.build()`` as a crash, ``SphinxError`` too:
    it prints the versions, a traceback and "please open an issue", and saves
    ``sphinx-err-*.log`` in the temp folder.  A
    provisioning failure is an expected, located error, so under ``sphinx-build``
    it leaves as ``SystemExit`` (the only exception the command lets through; its
    ``finally`` blocks still run and Sphinx's buffered warnings are flushed).
    ``error`` is the :class:`SphereBuildError`.
    """

    def __init__(self, error: SphereBuildError):
        super().__init__(2)
        self.error = error


def _under_sphinx_build() -> bool:
    """Is this build run by ``sphinx-build`` / ``python -m sphinx`` (``build_main`` on the stack)?"""
    import sys

    cmd = sys.modules.get("sphinx.cmd.build")
    code = getattr(getattr(cmd, "build_main", None), "__code__", None)
    frame = sys._getframe(1)
    while frame is not None and code is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def stop_build(err: SphereBuildError) -> NoReturn:
    """End the build with ``err``: logged as a Sphinx error where authors read warnings, then raised.

    Under ``sphinx-build`` it is raised as :class:`SphereBuildExit` (exit status 2,
    the message, no crash report or crash file); called through the API
    (``Sphinx(...).build()``, ``sphinx.testing``) as the :class:`SphereBuildError`.
    """
    logger.error(str(err), type="sphere", subtype=err.subtype)
    if _under_sphinx_build():
        raise SphereBuildExit(err) from None
    raise err


def setup_extension(app: Sphinx) -> dict[str, Any]:
    sphere_config.register(app)
    app.connect("config-inited", sphere_config.validate_config)

    app.add_node(sphere_workspace, html=(visit_workspace_html, depart_workspace_html))
    app.add_directive("sphere-workspace", SphereWorkspaceDirective)

    app.connect("builder-inited", _remember_main_process)
    app.connect("env-purge-doc", _purge_doc)
    app.connect("env-merge-info", _merge_info)
    app.connect("doctree-read", _doctree_read)
    app.connect("build-finished", _abort_early_resolve)
    app.connect("env-updated", provision_pending)
    app.connect("doctree-resolved", replace_for_static_builders)
    app.connect("build-finished", finish_html)
    app.connect("build-finished", fail_on_embed_errors)
    return {
        "version": __version__,
        "env_version": ENV_VERSION,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }


def _purge_doc(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    env_data(env).purge(docname)


def _merge_info(app: Sphinx, env: BuildEnvironment, docnames: Sequence[str] | set[str],
                other: BuildEnvironment) -> None:
    env_data(env).merge(list(docnames), env_data(other))
    _start_early(app, env, docnames)


# -- provisioning as documents are read ----------------------------------------------------

#: id(app) -> the process that runs the build (readers forked by -j N are others)
_MAIN_PID: dict[int, int] = {}
#: id(app) -> (Provisioner, ResolveSession) started while reading
_EARLY: dict[int, tuple[Any, Any]] = {}
#: id(app) -> False when the settings say this build cannot provision (env-updated says why)
_CAN_START: dict[int, bool] = {}


def _remember_main_process(app: Sphinx) -> None:
    _MAIN_PID[id(app)] = os.getpid()
    _CAN_START.pop(id(app), None)
    _abort_early(app)


def _doctree_read(app: Sphinx, doctree: Any) -> None:
    _start_early(app, app.env, [app.env.docname])


def _start_early(app: Sphinx, env: BuildEnvironment, docnames: Sequence[str] | set[str]) -> None:
    """Hand these documents' build-mode embeds to the background resolve (main process only)."""
    if _MAIN_PID.get(id(app)) != os.getpid() or _CAN_START.get(id(app)) is False:
        return  # a -j reader process (the main process gets them at env-merge-info), or no API
    data = env_data(env)
    embeds = [e for d in docnames for e in data.embeds.get(d, ()) if e.spec.mode == "build"
              and ((o := data.outcomes.get(e.key)) is None or o.workspace_id is None)]
    if not embeds:
        return
    early = _EARLY.get(id(app))
    if early is None:
        if not is_interactive(app.builder):
            _CAN_START[id(app)] = False
            return
        try:
            settings = sphere_config.site_settings(app.config, app.confdir)
            settings.api  # noqa: B018
            settings.token()
        except (SettingsError, SphinxError):
            _CAN_START[id(app)] = False  # env-updated reports it as it always did
            return
        from ...pipeline.provision import Provisioner

        provisioner = Provisioner(settings, logger=_provision_log(),
                                  scope=f"sphinx:{Path(app.confdir).resolve()}")
        early = _EARLY[id(app)] = (provisioner, provisioner.start())
    early[1].submit(embeds)  # the embed record is the provisioner's request


def _abort_early(app: Sphinx) -> None:
    early = _EARLY.pop(id(app), None)
    if early is not None:
        provisioner, session = early
        try:
            if not session.finished:
                session.abort()
        finally:
            provisioner.close()


def _abort_early_resolve(app: Sphinx, exception: BaseException | None) -> None:
    """``build-finished``: a build that failed before ``env-updated`` starts nothing new."""
    _abort_early(app)


# -- provisioning ---------------------------------------------------------------------------


def provision_pending(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """``env-updated``: give every pending build-mode embed a workspace, all at once.

    Pending means: read in this build (new, or its document changed), or left
    without a workspace by an earlier build (API down, on_error placeholder,
    or a LaTeX/text build sharing the environment, which never provisions),
    which is retried.  An unchanged document's embeds are not touched, not even
    checked.  Returns the documents whose output must be rewritten.
    """
    if not is_interactive(app.builder):
        return []  # LaTeX, text, epub...: the fallback needs no workspace (and no token)
    data = env_data(env)
    pending = data.pending()
    pending_keys = {e.key for e in pending}
    # Embeds of unchanged documents keep their workspaces; they are only recorded as
    # used by this build, so `sphere-docs prune` after an incremental build keeps them.
    unchanged = [e for e in data.all_embeds() if e.spec.mode == "build" and e.key not in pending_keys]
    if not pending and not unchanged:
        return []
    settings = sphere_config.site_settings(app.config, app.confdir)
    scope = f"sphinx:{Path(app.confdir).resolve()}"
    started = time.perf_counter()
    early = _EARLY.pop(id(app), None)
    try:
        outcomes = _resolve(settings, pending, unchanged, scope=scope, early=early)
    except SphereBuildError as err:
        stop_build(err)
    if not pending:
        return []
    for embed in pending:
        outcome = outcomes[embed.key]
        data.outcomes[embed.key] = outcome
        if outcome.workspace_id is None:
            what = ("falling back to a lazy embed" if outcome.fallback == "lazy"
                    else "showing a placeholder")
            logger.warning(
                f"sphere-workspaces: workspace for project {embed.spec.project_id} "
                f"unavailable ({outcome.reason}); {what}",
                location=(embed.docname, embed.line), type="sphere", subtype="api",
            )
    logger.info(
        f"sphere-workspaces: {len(pending)} build-mode embed(s) resolved "
        f"in {time.perf_counter() - started:.2f}s"
    )
    return sorted({embed.docname for embed in pending if embed.docname})


class _ToSphinx(stdlib_logging.Handler):
    """Hands the Provisioner's log records to Sphinx's logger.

    Its per-embed fallback warnings are skipped here: :func:`provision_pending`
    reports each one itself with the document and line as Sphinx location and
    ``[sphere.api]``, so that ``suppress_warnings`` and ``-W`` apply.  Other
    warnings (an unreadable ledger, ...) become ``[sphere.api]`` warnings too.
    """

    def emit(self, record: stdlib_logging.LogRecord) -> None:
        # (loaded already: only the Provisioner logs here)
        from ...pipeline.provision import FALLBACK_RECORD_FLAG

        try:
            text = record.getMessage()
            if record.levelno >= stdlib_logging.WARNING:
                if not getattr(record, FALLBACK_RECORD_FLAG, False):
                    logger.warning(text, type="sphere", subtype="api")
            elif record.levelno >= stdlib_logging.INFO:
                logger.info(text)
            else:
                logger.debug(text)
        except Exception:  # a log line must never break the build
            self.handleError(record)


def _provision_log() -> stdlib_logging.Logger:
    log = stdlib_logging.getLogger("sphere_docs.engines.sphinx.provision")
    log.propagate = False
    log.setLevel(stdlib_logging.DEBUG)
    if not any(isinstance(h, _ToSphinx) for h in log.handlers):
        log.addHandler(_ToSphinx())
    return log


def _reason(err: SettingsError) -> str:
    return sphere_config.sphinx_message(err).removeprefix("sphere-workspaces: ")


def _resolve(settings: SiteSettings, pending: list[Embed], unchanged: list[Embed], *,
             scope: str, early: tuple[Any, Any] | None = None) -> dict[str, Outcome]:
    from ...pipeline.provision import Provisioner, ProvisionError, Resolution

    if early is not None:  # started as the documents were read
        provisioner, session = early
    else:
        provisioner = Provisioner(settings, logger=_provision_log(), scope=scope)
        session = provisioner.start()
    try:
        if pending:
            session.submit(pending)  # the ones already handed over are skipped
            results = session.finish()
        else:
            session.abort()
            results = {}
        # After resolve: same build id, so this adds to the build's record instead of replacing it.
        provisioner.mark_used(unchanged)
    except ProvisionError as err:
        raise SphereBuildError(str(err)) from None
    except SettingsError as err:
        # No endpoint or no token: nothing can be provisioned.
        if settings.on_error == "fail":
            raise SphereBuildError(sphere_config.sphinx_message(err), subtype="config") from None
        return {e.key: Resolution(e, fallback=settings.on_error, reason=_reason(err)) for e in pending}
    except SphereDocsError as err:  # anything else the core reports on purpose
        raise SphereBuildError(str(err)) from None
    finally:
        provisioner.close()
    return {embed.key: results[embed.key] for embed in pending}


# -- html pages: manifest and loader -------------------------------------------------------


def finish_html(app: Sphinx, exception: BaseException | None) -> None:
    """``build-finished``: the manifest, and the loader on pages with embeds.

    Why post-process the written files: each theme owns its ``<body ...>`` tag
    (alabaster, furo, sphinx_rtd_theme, pydata-sphinx-theme and
    sphinx-book-theme all override ``layout.html`` differently, and some put
    their own scripts first inside ``<body>``), so no template block or
    ``html-page-context`` variable lands *immediately after* the tag in all of
    them.  The written page is the one thing every theme has in common, and
    :func:`html.inject_after_body` finds the real tag and is idempotent - pages
    an incremental build did not rewrite already carry the loader and are
    left alone.  Only documents that have an embed are opened.
    """
    from sphinx.builders.html import StandaloneHTMLBuilder

    builder = app.builder
    if exception is not None or not is_interactive(builder):
        return
    assert isinstance(builder, StandaloneHTMLBuilder)
    data = env_data(app.env)
    manifest = Path(builder.outdir) / MANIFEST_NAME
    try:
        embeds = data.all_embeds()
        write_manifest(manifest, [(e.page, e.spec) for e in embeds], workspaces={
            e.key: outcome.workspace_id for e in embeds
            if (outcome := data.outcomes.get(e.key)) is not None and outcome.workspace_id})
    except OSError as exc:
        stop_build(SphereBuildError(f"sphere-workspaces: cannot write {manifest}: "
                                    f"{exc.strerror or exc}", subtype="config"))

    # a page whose embeds are all invalid still shows their notices: it gets the styles
    noticed: dict[str, list[Embed]] = {docname: [] for docname, errors in data.errors.items() if errors and not data.embeds.get(docname)}
    pages = _pages_with_embeds(app, {**noticed, **data.embeds}, keep_empty=set(noticed))
    if not pages:
        return
    settings = sphere_config.site_settings(app.config, app.confdir)
    try:
        snippets = {lazy: pipeline.page_assets(settings, lazy=lazy) for lazy in (False, True)}
    except SettingsError:
        # Only lazy embeds (:mode: lazy) on a site without sphere_endpoint or
        # sphere_sdk_host: the styles still help.
        logger.warning(sphere_config.SDK_MISSING + "; pages with embeds get no SDK loader",
                       type="sphere", subtype="config")
        snippets = {lazy: html.page_assets(lazy=lazy) for lazy in (False, True)}
    encoding = app.config.html_output_encoding
    for path, page_embeds in pages.items():
        if not path.is_file():
            continue
        has_lazy = pipeline.page_is_lazy(
            pipeline.decide(e.spec, data.outcomes.get(e.key), settings.lazy_endpoint)[0] for e in page_embeds)
        try:
            text = path.read_text(encoding=encoding)
            new = html.inject_after_body(text, snippets[has_lazy] if page_embeds else html.page_assets(lazy=False))
            if new != text:
                # never a half-written page (a reader may be serving the folder); keeps the page's mode
                atomic_write_text(path, new, encoding=encoding, errors="xmlcharrefreplace")
        except (OSError, UnicodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            stop_build(SphereBuildError(f"sphere-workspaces: cannot add the SDK loader to {path}: {why}",
                                        subtype="config"))


def _pages_with_embeds(app: Sphinx, embeds: dict[str, list[Embed]],
                       keep_empty: frozenset[str] | set[str] = frozenset()) -> dict[Path, list[Embed]]:
    from sphinx.builders.html import StandaloneHTMLBuilder
    from sphinx.builders.singlehtml import SingleFileHTMLBuilder

    builder = app.builder
    assert isinstance(builder, StandaloneHTMLBuilder)
    if hasattr(builder, "globalcontext_filename"):
        # json/pickle (sphinxcontrib-serializinghtml): fragments without <body>;
        # the application hosting them adds the loader.
        return {}
    with_embeds = {docname: found for docname, found in embeds.items() if found or docname in keep_empty}
    if not with_embeds:
        return {}
    if isinstance(builder, SingleFileHTMLBuilder):
        every = [e for docname in sorted(with_embeds) for e in with_embeds[docname]]
        return {Path(builder.get_outfilename(app.config.root_doc)): every}
    return {Path(builder.get_outfilename(d)): found for d, found in with_embeds.items()}


def fail_on_embed_errors(app: Sphinx, exception: BaseException | None) -> None:
    """``build-finished``: an author's mistake in an embed fails the build, as in MkDocs.

    Each mistake was logged as a located ERROR when its directive was read (and
    rendered as a box); here the exit status becomes non-zero.  Kept in the
    env data, so an incremental build that does not re-read the page still fails
    until the page is fixed.
    """
    if exception is not None:
        return
    errors = env_data(app.env).errors
    found = [(docname, line) for docname in sorted(errors) for line, _ in errors[docname]]
    if not found:
        return
    first_doc, first_line = found[0]
    where = app.env.doc2path(first_doc, False)
    logger.error(
        "sphere-workspace: %d problem(s) in embeds (the first at %s:%s); the build failed",
        len(found), where, first_line, type="sphere", subtype="option",
    )
    app.statuscode = 1
