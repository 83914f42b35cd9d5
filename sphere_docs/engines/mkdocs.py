"""The MkDocs (and ProperDocs) plugin ``sphere-workspaces`` — a thin adapter.

``mkdocs.yml``::

    markdown_extensions: [admonition, pymdownx.superfences]   # whatever the site uses
    plugins:
      - search
      - sphere-workspaces:
          endpoint: 12345678.containers.sphere-engine.com
          lazy_endpoint: https://workspaces.example.org/workspaces

How a build goes (each step is one hook):

``on_config``
    validate the settings (one schema: :meth:`SiteSettings.from_mapping`) and
    append an *instance* of :class:`~sphere_docs.markdown.SphereWorkspaceExtension`
    in deferred mode to ``markdown_extensions``.
``on_page_markdown`` / ``on_page_content``
    tell the extension which page it renders (and the front matter's line
    offset, so messages name the real line), then collect the page's embeds
    and errors.  Build-mode embeds are left as placeholders.
``on_env``
    after every page is rendered and before any template: fail on bad
    directives (all of them at once).  The build-mode embeds' API calls
    started as each page was read (:meth:`Provisioner.start`) and keep running.
``on_page_context``
    just before a page's template renders: wait for that page's own
    workspaces only (:meth:`ResolveSession.answer`) and put each div into its
    content, so the site's API calls run beside the writing of its pages.
    Where the previous site could not be set aside (``--dirty``, ``mkdocs
    serve``) ``on_env`` waits for all of them instead, before anything is
    written.  The resolve ends (records the build, applies ``on_error``, stops
    the provisioning process and threads) at the first page after every call
    has answered, or at the latest in ``on_post_build``; then it checks that
    every page filled early got the workspace recorded.
``on_post_page``
    inject the SDK loader and our assets right after ``<body>`` on pages with
    embeds, and on no other page.
``on_post_build``
    write ``sphere-workspaces.json`` (the lazy endpoint's allow-list).
``on_pre_build`` / ``on_build_error`` / ``on_post_build`` (last of all plugins)
    set the previous site aside before MkDocs cleans ``site_dir``, put it back
    if the build fails, drop it once the build succeeded
    (:mod:`sphere_docs.pipeline.keep_site`).

Errors become :class:`~mkdocs.exceptions.PluginError` carrying the package's
own message (``page.md:12: sphere-workspace: unknown option ...``), logged on
``mkdocs.plugins.sphere_workspaces`` as well.  Warnings (placeholders) go to the
same logger, so ``mkdocs build --strict`` fails on them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.base import ValidationError
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, CombinedEvent, event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from .. import pipeline
from ..core import html
from ..core.errors import SettingsError, SphereDocsError
from ..core.manifest import MANIFEST_NAME, ManifestError, read_manifest, write_manifest
from ..core.options import WorkspaceSpec
from ..core.settings import SETTINGS, Setting, SiteSettings
from ..pipeline import Embed
from ..pipeline.keep_site import SiteKeeper, build_flags, strict_will_abort
from ..syntax.markdown import DIRECTIVE_MARK, EXTENSION_NAMES, DirectiveError
from .markdown import PENDING_MARK, SphereWorkspaceExtension
from .markdown import PENDING_RE as _PENDING

__all__ = ["SphereWorkspacesConfig", "SphereWorkspacesPlugin"]

log = logging.getLogger("mkdocs.plugins.sphere_workspaces")


#: MkDocs reads YAML: of a setting's types (:attr:`Setting.types`), the ones a YAML value can have
_YAML_TYPES = (str, int, float, bool)


def config_option(setting: Setting) -> c.BaseConfigOption:
    """The MkDocs config option of a setting: its type and default (no default: optional)."""
    types = tuple(t for t in setting.types if t in _YAML_TYPES)
    kind: Any = types[0] if len(types) == 1 else types  # one type: MkDocs' message names it alone
    if setting.default is None:
        return c.Optional(c.Type(kind))
    return c.Type(kind, default=setting.default)


class _SettingsOptions(base.Config):
    """A config class that declares one option per entry of :data:`SETTINGS`, in its order."""

    def __init_subclass__(cls) -> None:
        for name, setting in SETTINGS.items():  # before MkDocs collects the class's options
            setattr(cls, name, config_option(setting))
        super().__init_subclass__()


class SphereWorkspacesConfig(_SettingsOptions):
    """Settings of the ``sphere-workspaces`` plugin (the same names as Sphinx's ``sphere_*``).

    One option per setting of :data:`~sphere_docs.core.settings.SETTINGS` (what each does:
    :attr:`Setting.doc`, the README's settings table).  Types are checked here;
    values (ranges, choices, URLs) by :meth:`SiteSettings.from_mapping`, so both front
    ends share one set of rules and messages.  The access token is never a setting:
    see ``token_env``.
    """

    def validate(self) -> tuple[list[tuple[str, Exception]], list[tuple[str, str]]]:
        failed, warnings = super().validate()
        if not failed:
            try:
                settings_from(self)
            except SettingsError as err:
                failed.append((err.setting, ValidationError(str(err))))
        return failed, warnings


def settings_from(config: SphereWorkspacesConfig, base_dir: Path | str = ".") -> SiteSettings:
    """The plugin's options as validated :class:`SiteSettings` (raises :class:`SettingsError`)."""
    return SiteSettings.from_mapping({name: config[name] for name in SETTINGS}, base_dir=base_dir)


class SphereWorkspacesPlugin(BasePlugin[SphereWorkspacesConfig]):
    """Live Sphere Engine workspaces in MkDocs pages; see the module docstring."""

    def __init__(self) -> None:
        self.settings: SiteSettings | None = None
        self.extension: SphereWorkspaceExtension | None = None
        self._reset_build()

    def _reset_build(self) -> None:
        self.embeds: dict[str, list[Embed]] = {}  # src_uri -> embeds, pages of this build
        self.pages: dict[str, Page] = {}
        self.errors: list[DirectiveError] = []
        self.lazy_pages: set[str] = set()  # pages that need the activation script
        self.instant_navigation = False
        self.snippets: dict[bool, str] = {}  # page assets by "has lazy embeds"
        self.rendered: set[str] = set()  # pages whose Markdown this build rendered
        self.workspace_ids: dict[str, str] = {}  # "<page>#<name>" -> the workspace embedded (manifest)
        self.deferred = False  # each page gets its workspaces just before its template (on_page_context)
        self.early: dict[str, Any] = {}  # answers given to pages before the whole resolve ended
        self.final: dict[str, Any] | None = None  # the whole resolve's answers
        self.scope = "mkdocs"
        self._abort_session()
        self.session: Any = None  # provision.ResolveSession: API work started as pages are read
        self.provisioner: Any = None
        self.background = True  # False once the settings say the build cannot provision (on_env says why)

    def _abort_session(self) -> None:
        """Start nothing new; the calls in flight finish and are recorded (a failed or restarted build)."""
        session, provisioner = getattr(self, "session", None), getattr(self, "provisioner", None)
        self.session = self.provisioner = None
        try:
            if session is not None and not session.finished:
                session.abort()
        finally:
            if provisioner is not None:
                provisioner.close()

    def _submit(self, src: str, embeds: list[Embed]) -> None:
        """Hand the page's build-mode embeds to the background provisioner (``on_env`` waits for them)."""
        build = [e for e in embeds if e.marker is not None]
        if not build or not self.background or self.errors:
            return  # after an invalid embed nothing new is started: the build fails in on_env
        settings = self._settings()
        if self.session is None:
            try:  # what on_env checks first: when it would fail, it fails there, with its message
                settings.api  # noqa: B018
                settings.sdk  # noqa: B018
                settings.token()
            except SettingsError:
                self.background = False
                return
            from ..pipeline.provision import Provisioner

            self.provisioner = Provisioner(settings, logger=log, scope=self.scope)
            self.session = self.provisioner.start()
            self._started = time.perf_counter()
        self.session.submit(build)  # the embed record is the provisioner's request

    # -- hooks

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        self._reset_build()
        config_file = Path(config.config_file_path) if config.config_file_path else None
        base_dir = config_file.parent if config_file else Path.cwd()
        try:
            self.settings = settings_from(self.config, base_dir)
        except SettingsError as err:
            raise self._fail(str(err)) from None
        self.scope = f"mkdocs:{config_file.resolve() if config_file else base_dir.resolve()}"
        self.instant_navigation = _instant_navigation(config)
        self.extension = SphereWorkspaceExtension(settings=self.settings, deferred=True)
        kept: list[Any] = []
        for ext in config.markdown_extensions:
            if isinstance(ext, SphereWorkspaceExtension):
                continue
            if ext in EXTENSION_NAMES:
                log.info(
                    "sphere-workspaces: the plugin provides the %s extension; "
                    "its markdown_extensions entry is not needed", ext,
                )
                config.mdx_configs.pop(ext, None)
                continue
            kept.append(ext)
        config.markdown_extensions = [*kept, self.extension]  # type: ignore[list-item]  # instances are accepted
        return config

    @event_priority(-100)  # last, so the offset is measured on the Markdown that is rendered
    def on_page_markdown(self, markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        assert self.extension is not None
        self.extension.begin_page(page.file.src_uri, _front_matter_lines(page, markdown))
        return markdown

    @event_priority(100)  # first, before other plugins rewrite the content
    def on_page_content(self, html_: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        assert self.extension is not None
        src = page.file.src_uri
        warnings: list[DirectiveError] = []  # directive text the page shows as text: --strict fails
        embeds, errors = self.extension.finish_page(warnings)
        self.rendered.add(src)
        for warning in warnings:
            log.warning(str(warning))
        for err in errors:
            log.error(str(err))
        self.errors.extend(errors)
        if embeds:
            self.embeds[src] = embeds
            self.pages[src] = page
            self._submit(src, embeds)
        return html_

    def on_env(self, env: Any, /, *, config: MkDocsConfig, files: Files) -> Any:
        if self.errors:  # each was logged as its page rendered; MkDocs prints this once more
            count = len(self.errors)
            started = self.session is not None and self.session.started
            self._abort_session()
            raise PluginError(
                f"sphere-workspaces: {count} problem{'s' if count != 1 else ''} in embeds (listed above); "
                + ("nothing more was provisioned (the workspaces of the embeds read before it are "
                   "recorded for the next build)" if started else "nothing was provisioned")
            )
        if not self.embeds:
            return env
        settings = self._settings()
        try:
            if any(e.marker is not None for embeds in self.embeds.values() for e in embeds):
                settings.api  # noqa: B018  (build mode needs the endpoint: named before the SDK host)
            settings.sdk  # noqa: B018  (the loader needs a host: fail before any request)
        except SettingsError as err:
            raise self._fail(str(err)) from None
        if self.session is not None and self._site_keeper is not None:
            # Its calls run on while the pages are written (on_page_context): a failure can now come
            # after some pages were written, so only where the previous site was set aside (it is
            # put back then); --dirty builds and mkdocs serve wait here, before writing anything.
            self.session.submit(self._build_embeds())  # any the pages did not hand over (none, usually)
            self.session.hold_signals()  # Ctrl-C / SIGTERM while pages are written: stop in order
            self.deferred = True
            return env
        self.final = self._resolve(settings)
        for src in self.embeds:
            self._fill_page(src, self.final)
        return env

    @event_priority(100)  # first: the page's content is final before other plugins (search) see it
    def on_page_context(self, context: Any, /, *, page: Page, config: MkDocsConfig, nav: Any) -> Any:
        """Put this page's workspaces in, waiting only for its own (issue 16): the rest of the site's
        calls keep running while this page's template renders."""
        src = page.file.src_uri
        if self.deferred and self.final is None and self.session is not None and self.session.settled:
            # Every call has answered: end the resolve now (the build is recorded, the provisioning
            # process and threads stop) instead of after the last page; the rest of the pages are
            # filled from its answers.
            self._finish_deferred()
        if self.deferred and src in self.embeds:
            self._fill_page(src, self._answers_for(self._build_embeds(src)))
        return context

    def _answers_for(self, requests: list[Embed]) -> dict[str, Any]:
        """The resolutions of ``requests``: early (their own calls answered), or the whole resolve's."""
        if not requests:
            return {}
        if self.final is None and self.session is not None:
            early = self.session.answer(requests)  # raises only an interruption (Ctrl-C, SIGTERM)
            if early is not None:
                self.early.update(early)
                return early
            self._finish_deferred()  # a failure or a stop: the whole resolve says what and applies on_error
        assert self.final is not None
        return self.final

    def _finish_deferred(self) -> None:
        """Wait for the rest of the resolve (recorded, on_error applied); check the early answers."""
        if self.final is not None:
            return
        self.final = self._resolve(self._settings())
        moved = [key for key, res in self.early.items()
                 if key in self.final and self.final[key].workspace_id != res.workspace_id]
        if moved:  # another build recorded these keys meanwhile (the ledger keeps theirs): build again
            raise self._fail(
                f"sphere-workspaces: {len(moved)} embed(s) got another workspace while this build was "
                f"writing its pages (another build sharing the cache recorded {moved[0].split('#')[0]} "
                "meanwhile); nothing was published: build again")

    def _fill_page(self, src: str, resolutions: dict[str, Any]) -> None:
        settings = self._settings()
        page = self.pages[src]
        content = page.content or ""
        for embed in self.embeds[src]:
            resolution = resolutions[embed.key] if embed.marker is not None else None
            if pipeline.decide(embed.spec, resolution, settings.lazy_endpoint)[0] == pipeline.LAZY:
                self.lazy_pages.add(src)
            if embed.marker is None:
                continue
            assert resolution is not None
            if embed.marker not in content:
                raise self._fail(
                    f"{src}:{embed.line}: sphere-workspace: the embed is missing from the "
                    "rendered page; another plugin changed the page content before "
                    "sphere-workspaces could fill it in"
                )
            content = content.replace(embed.marker, pipeline.render(embed, resolution, settings.lazy_endpoint), 1)
        page.content = content

    def _fill_copies(self, output: str) -> str:
        """Markers another plugin copied into a page (an excerpt taken in ``on_env``): filled too."""
        by_marker = {e.marker: e for e in self._build_embeds()}
        found = [by_marker[m] for m in _PENDING.findall(output) if m in by_marker]
        if not found:
            return output
        answers = self._answers_for(found)
        settings = self._settings()
        for embed in found:
            assert embed.marker is not None
            output = output.replace(embed.marker, pipeline.render(embed, answers[embed.key], settings.lazy_endpoint))
        return output

    @event_priority(100)  # inject before minifiers and other post-processing run
    def on_post_page(self, output: str, /, *, page: Page, config: MkDocsConfig) -> str:
        src = page.file.src_uri
        if self.deferred and PENDING_MARK in output:
            output = self._fill_copies(output)
        if src not in self.embeds and not self.instant_navigation:
            return output  # no embed, no SDK: a page without workspaces stays as it was
        # With Material's instant navigation a reader may land on any page and reach the
        # embeds without a page load, so every page carries the loader and the script
        # (which renders the embeds of each page that navigation brings in).
        lazy = src in self.lazy_pages or self.instant_navigation
        if lazy not in self.snippets:  # the same for every page of the build
            settings = self._settings()
            self.snippets[lazy] = pipeline.page_assets(settings, lazy=lazy)
        return html.inject_after_body(output, self.snippets[lazy])

    def _write_manifest(self, *, config: MkDocsConfig) -> None:  # on_post_build, below
        if self.deferred:
            self._finish_deferred()
        self.workspace_ids = {key: res.workspace_id for key, res in (self.final or {}).items()
                              if res.ok and res.workspace_id}
        manifest = Path(config.site_dir) / MANIFEST_NAME
        entries: list[tuple[str, WorkspaceSpec]] = [
            (src, embed.spec) for src, embeds in self.embeds.items() for embed in embeds
        ]
        write_manifest(manifest, entries, workspaces=self.workspace_ids,
                       carried=self._carried_over(manifest, config))

    # -- a failed build keeps the last good site: set it aside before MkDocs cleans site_dir,
    #    put it back on failure, drop it once everything is written (sphere_docs.pipeline.keep_site)

    _site_keeper: SiteKeeper | None = None

    @event_priority(-100)  # the last pre_build: MkDocs cleans site_dir right after it
    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        self._site_keeper = None
        keeper = SiteKeeper(config.site_dir, log)
        flags = build_flags()
        try:
            if flags is None or flags[0] or flags[1]:  # not found, --dirty, or mkdocs serve
                keeper.recover()  # an interrupted earlier build's leftovers, all the same
            elif keeper.save():
                self._site_keeper = keeper
        except OSError as exc:  # never fail a build for this: it runs as MkDocs alone runs it
            log.info("sphere-workspaces: cannot keep the previous site (%s)", exc)

    def on_build_error(self, *, error: Exception) -> None:
        self._abort_session()
        keeper, self._site_keeper = self._site_keeper, None
        if keeper is not None:
            keeper.restore()

    @event_priority(-100)  # the last post_build: every page and file of the build is written
    def _keep_site_commit(self, *, config: MkDocsConfig) -> None:
        keeper = self._site_keeper
        if keeper is not None and not strict_will_abort():  # else on_build_error comes next
            self._site_keeper = None
            keeper.commit()

    on_post_build = CombinedEvent(_write_manifest, _keep_site_commit)

    # -- helpers

    def _settings(self) -> SiteSettings:
        if self.settings is None:  # pragma: no cover - on_config always runs first
            raise PluginError("sphere-workspaces: the plugin was not configured")
        return self.settings

    def _build_embeds(self, src: str | None = None) -> list[Embed]:
        """The build-mode embeds (those left as markers) of page ``src``, or of every page."""
        pages = [self.embeds[src]] if src is not None else self.embeds.values()
        return [e for embeds in pages for e in embeds if e.marker is not None]

    def _resolve(self, settings: SiteSettings) -> dict[str, Any]:
        requests = self._build_embeds()
        if not requests:
            return {}  # a lazy-only site never loads the API client
        from ..pipeline.provision import LedgerError, Provisioner, ProvisionError

        session, provisioner, self.session, self.provisioner = self.session, self.provisioner, None, None
        try:
            if session is not None:  # started as the pages were read: wait for what is still in flight
                started = self._started
                try:
                    session.submit(requests)  # any the pages did not hand over (none, usually)
                    resolved = session.finish()
                finally:
                    provisioner.close()
                log.info("sphere-workspaces: %d build-mode embed(s) resolved in %.2fs (the build waited "
                         "%.2fs for them)", len(requests), session.answered_at - started, session.waited)
                return resolved  # type: ignore[no-any-return]
            settings.token()  # the message names the variable to set
            settings.api  # noqa: B018  (missing endpoint: a message, not a traceback)
            started = time.perf_counter()
            with Provisioner(settings, logger=log, scope=self.scope) as provisioner:
                resolved = provisioner.resolve(requests)
            log.info("sphere-workspaces: %d build-mode embed(s) resolved in %.2fs",
                     len(requests), time.perf_counter() - started)
            return resolved
        except (SettingsError, ProvisionError, LedgerError) as err:  # messages that say "sphere-workspaces:"
            raise self._fail(str(err)) from None
        except SphereDocsError as err:
            raise self._fail(f"sphere-workspaces: {err}") from None

    def _carried_over(self, manifest: Path, config: MkDocsConfig) -> Iterable[tuple[str, dict[str, Any]]]:
        """In a ``--dirty`` build, keep the manifest entries of pages that were not re-rendered (as they were)."""
        if not manifest.is_file():
            return []
        try:
            old = read_manifest(str(manifest))
        except ManifestError:
            return []
        docs_dir = Path(config.docs_dir)
        carried: list[tuple[str, dict[str, Any]]] = []
        for src, items in old["pages"].items():
            if src in self.rendered or not (docs_dir / src).is_file():
                continue
            carried.extend((src, {"mode": "build", **item}) for item in items)
        return carried

    @staticmethod
    def _fail(message: str) -> PluginError:
        return PluginError(message)  # MkDocs logs a PluginError's text itself: log it once


def _instant_navigation(config: MkDocsConfig) -> bool:
    """Material's ``navigation.instant``: pages are swapped in without a page load."""
    theme = config.theme
    return theme.name == "material" and "navigation.instant" in (theme.get("features") or [])


def _front_matter_lines(page: Page, markdown: str) -> int:
    """How many source lines precede ``markdown`` in the page's file (the YAML front matter)."""
    if DIRECTIVE_MARK not in markdown:
        return 0  # no directive, no line to report: skip re-reading the file
    if page.file.abs_src_path:
        try:
            if os.stat(page.file.abs_src_path).st_size == len(markdown.encode("utf-8")):
                return 0  # the file is exactly this text: no front matter (a stat is cheaper than a read)
        except OSError:
            return 0
    try:
        source = page.file.content_string
    except (OSError, UnicodeDecodeError):
        return 0
    source = source.replace("\r\n", "\n")
    markdown = markdown.replace("\r\n", "\n")
    if markdown and source.endswith(markdown):
        return source[: len(source) - len(markdown)].count("\n")
    return 0
