"""The site layer: find a docs site and read its settings with each engine's own names.

One place for what ``check``, ``doctor`` and ``prune`` need to know about the site
around a path:

* :func:`find_site` / :func:`locate_site`: the nearest ``mkdocs.yml`` /
  ``mkdocs.yaml`` / ``conf.py`` — in a folder (and, for a folder named on the
  command line, its usual subfolders: ``docs/conf.py``, ``source/conf.py``...)
  or above it, up to the repository root;
* :func:`load_site`: the site read the way its engine reads it — ``mkdocs.yml``
  through MkDocs' own loader (``!ENV``, ``INHERIT``, the plugin's validation; its
  log captured, not printed), or the YAML read directly with ``!ENV`` when MkDocs
  is not installed; ``conf.py`` executed in a namespace of its own, as Sphinx
  does (:func:`read_conf_py`);
* :class:`DocsSite`: the record — kind, config file, docs folder, the raw sphere
  settings under the site setting names (:data:`sphere_docs.core.settings.SETTINGS`:
  the ``sphere-workspaces`` plugin's options for MkDocs, ``sphere_*`` values for
  Sphinx), the Markdown extensions of an MkDocs site, and whether the plugin /
  extension / MyST are enabled.

This module is below the tools and beside the engines: it imports only the core
(never an engine adapter, never a tool).  MkDocs and Sphinx are optional imports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import SettingsError
from ..core.settings import SETTINGS

__all__ = [
    "CONF_PY_PLACES",
    "MKDOCS_NAMES",
    "DocsSite",
    "find_docs_site",
    "find_site",
    "load_mkdocs_config",
    "load_site",
    "locate_site",
    "read_conf_py",
    "site_config",
]

#: the names of an MkDocs configuration, in the order they are looked for
MKDOCS_NAMES = ("mkdocs.yml", "mkdocs.yaml")
#: where conf.py is looked for under a folder named on the command line
CONF_PY_PLACES = ("conf.py", "docs/conf.py", "source/conf.py", "docs/source/conf.py")
#: the MkDocs plugin's name (its entry point) and the Sphinx extension's module
MKDOCS_PLUGIN = "sphere-workspaces"
#: the class the entry point names (pyproject.toml); a test keeps the two the same
MKDOCS_PLUGIN_CLASS = "sphere_docs.engines.mkdocs:SphereWorkspacesPlugin"
SPHINX_EXTENSION = "sphere_docs.sphinx"
SPHINX_PREFIX = "sphere_"


@dataclass
class DocsSite:
    """Where the settings and the pages of a docs site are, and what its configuration says."""

    kind: str  #: "mkdocs", "sphinx" or "none"
    config_file: Path | None
    docs_dir: Path
    values: dict[str, Any] = field(default_factory=dict)  #: raw setting values, site setting names
    errors: list[str] = field(default_factory=list)  #: why the settings could not be read
    enabled: bool = True  #: the plugin / extension is enabled
    myst: bool = False  #: Sphinx only: myst_parser is enabled
    #: MkDocs only, loaded by MkDocs itself: ``markdown_extensions`` and their configs (else None)
    markdown_extensions: list[Any] | None = None
    markdown_configs: dict[str, Any] = field(default_factory=dict)
    #: MkDocs only: what its loader said when it could not load the file ("MkDocs is not installed")
    messages: list[str] = field(default_factory=list)

    @property
    def setting_prefix(self) -> str:
        """The prefix of the site setting names in the config file (``sphere_`` in conf.py)."""
        return SPHINX_PREFIX if self.kind == "sphinx" else ""


# --------------------------------------------------------------------------- finding a site


def site_config(folder: Path) -> tuple[str, Path] | None:
    """``(kind, config file)`` when ``folder`` holds ``mkdocs.yml`` / ``mkdocs.yaml`` / ``conf.py``."""
    for name in MKDOCS_NAMES:
        if (folder / name).is_file():
            return "mkdocs", folder / name
    if (folder / "conf.py").is_file():
        return "sphinx", folder / "conf.py"
    return None


def find_site(folder: Path) -> tuple[str, Path] | tuple[str, None]:
    """The nearest ``mkdocs.yml`` or ``conf.py`` in ``folder`` (resolved) or above, up to the repository root."""
    while True:
        found = site_config(folder)
        if found:
            return found
        if (folder / ".git").exists() or folder.parent == folder:
            return "none", None
        folder = folder.parent


def _kind_of(config_file: Path) -> str:
    return "sphinx" if config_file.name == "conf.py" else "mkdocs"


def locate_site(path: Path, *, subfolders: bool = True) -> tuple[str, Path] | tuple[str, None]:
    """The site of ``path``: a config file, a folder holding one, or a folder below one.

    ``subfolders`` (a folder named on the command line, as ``doctor`` and ``prune``
    take it): the folder's usual places (:data:`CONF_PY_PLACES`) are looked in
    first, the path kept as given.  Then, as ``check`` looks for a page's site,
    the folder and the folders above it (:func:`find_site`).
    """
    path = Path(path)
    if path.is_file():
        return _kind_of(path), path
    if subfolders:
        for place in (*MKDOCS_NAMES, *CONF_PY_PLACES):
            if (path / place).is_file():
                return _kind_of(path / place), path / place
    return find_site(path.resolve())


def find_docs_site(path: Path) -> DocsSite:
    """The site of ``path`` (:func:`locate_site`), loaded (:func:`load_site`)."""
    _, config_file = locate_site(Path(path))
    return load_site(config_file) if config_file is not None else DocsSite("none", None, Path(path))


def load_site(config_file: Path) -> DocsSite:
    """The site whose configuration is ``config_file`` (``conf.py``: Sphinx; else MkDocs)."""
    return _sphinx_site(config_file) if config_file.name == "conf.py" else _mkdocs_site(config_file)


# --------------------------------------------------------------------------- MkDocs


def load_mkdocs_config(config_file: Path) -> tuple[Any, list[str]]:
    """``(config, errors)``: MkDocs' own loader, its log captured instead of printed.

    ``config`` is ``None`` when the file cannot be loaded; ``errors`` then
    holds MkDocs' messages (the last one is the exception's).  Raises
    ``ImportError`` when MkDocs is not installed.
    """
    from mkdocs.config import load_config
    from mkdocs.exceptions import ConfigurationError

    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                messages.append(record.getMessage())

    logger = logging.getLogger("mkdocs")
    handler = _Collect()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        config = load_config(config_file=str(config_file))
    except ConfigurationError as exc:
        return None, [*messages, str(exc)]
    except Exception as exc:  # a theme, plugin or hook that fails to load
        return None, [*messages, f"{type(exc).__name__}: {exc}"]
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved
    return config, messages


def _is_our_plugin(plugin: object) -> bool:
    """``plugin`` is the sphere-workspaces plugin, known by the class its entry point names
    (without importing the MkDocs adapter: MkDocs imported it when the config named it)."""
    return any(f"{cls.__module__}:{cls.__qualname__}" == MKDOCS_PLUGIN_CLASS for cls in type(plugin).__mro__)


def _mkdocs_site(config_file: Path) -> DocsSite:
    site = DocsSite("mkdocs", config_file, config_file.parent / "docs")
    try:
        config, errors = load_mkdocs_config(config_file)
    except ImportError:  # MkDocs is not installed: read the YAML ourselves
        site = _mkdocs_site_without_mkdocs(site)
        site.messages = ["MkDocs is not installed"]
        return site
    if config is None:
        site.messages = errors
        site.errors = [e for e in errors if not e.startswith("Abort")] or errors
        return site
    site.docs_dir = Path(config.docs_dir)
    site.markdown_extensions = list(config.markdown_extensions)
    site.markdown_configs = dict(config.mdx_configs)
    plugin = next((p for p in config.plugins.values() if _is_our_plugin(p)), None)
    if plugin is None:
        site.enabled = False
    else:  # the plugin's options carry the site setting names
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
        if entry == MKDOCS_PLUGIN:
            site.enabled = True
        elif isinstance(entry, Mapping) and MKDOCS_PLUGIN in entry:
            site.enabled = True
            options = entry[MKDOCS_PLUGIN] or {}
            if not isinstance(options, Mapping):
                site.errors = [f"{site.config_file.name}: the {MKDOCS_PLUGIN} plugin's settings "
                               f"are a {type(options).__name__}; expected 'name: value' lines"]
                return site
            site.values = dict(options)
    return site


# --------------------------------------------------------------------------- Sphinx


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
    site.enabled = SPHINX_EXTENSION in extensions
    site.myst = "myst_parser" in extensions or "myst_nb" in extensions
    site.values = {name: namespace[SPHINX_PREFIX + name] for name in SETTINGS
                   if SPHINX_PREFIX + name in namespace}
    return site
