"""``sphere-workspaces.json``: what a build embedded, page by page (never a token).

Written into the built site by the MkDocs plugin and the Sphinx extension; read
by the lazy endpoint (its allow-list), by audits, by the next build on a fresh
machine (the ``previous_manifest`` setting: the deployed site is the ledger of
record) and by ``sphere-docs prune --previous``.  Kept apart from
:mod:`sphere_docs.pipeline.provision` so a lazy-only build does not import the HTTP
stack just to write it.

Shape (version 1)::

    {"version": 1,
     "pages": {"<page>": [{"project_id", "mode", "name",
                           "creation_key", "workspace_id"}, ...]},
     "projects": ["<project id>", ...]}

``creation_key`` (build mode only) and ``workspace_id`` (build mode, when the
build embedded a workspace) were added in sphere-docs 0.2; the version stays 1:
readers that know only ``project_id``/``mode``/``name`` read it as before.  The
workspace id is in the published page anyway; the workspace token is not in
the manifest (a build that reuses a deployed workspace asks the API for it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from .errors import SphereDocsError
from .fileio import atomic_write_json
from .options import WorkspaceSpec
from .redact import redact

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "DeployedWorkspace",
    "ManifestError",
    "ManifestUnavailable",
    "deployed_workspaces",
    "manifest_location",
    "read_manifest",
    "shown_source",
    "write_manifest",
]

MANIFEST_NAME = "sphere-workspaces.json"
MANIFEST_VERSION = 1


_HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: the keys of an embed entry, in the order they are written (others are dropped)
ENTRY_KEYS = ("project_id", "mode", "name", "creation_key", "workspace_id")


class ManifestError(SphereDocsError, ValueError):
    """A manifest that cannot be read or is not a sphere-workspaces manifest."""


class ManifestUnavailable(ManifestError):
    """The manifest could not be fetched or read at all (missing, HTTP error, unreachable).

    As opposed to a manifest that was read and is malformed (:class:`ManifestError`).
    ``source`` is the location as shown in messages, ``reason`` why it could not be had.
    """

    def __init__(self, source: str, reason: str, verb: str = "fetch"):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot {verb} the manifest {source}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.reason))


class DeployedWorkspace(NamedTuple):
    """One build-mode embed of a manifest that names its workspace."""

    page: str
    name: str
    project_id: str
    creation_key: str
    workspace_id: str


def write_manifest(path: Path | str, embeds: Iterable[tuple[str, WorkspaceSpec]], *,
                   workspaces: Mapping[str, str] | None = None,
                   carried: Iterable[tuple[str, Mapping[str, Any]]] = ()) -> None:
    """Write ``sphere-workspaces.json``: page → embeds; never a token.

    ``workspaces`` maps ``"<page>#<name>"`` to the workspace id the build embedded
    (build mode; embeds without one, e.g. placeholders, get no ``workspace_id``).
    ``carried`` are entries of an older manifest kept as they were (pages an
    incremental build did not render).
    """
    pages: dict[str, list[dict[str, Any]]] = {}
    projects: set[str] = set()
    found = workspaces or {}
    for page, spec in embeds:
        item: dict[str, Any] = {"project_id": spec.project_id, "mode": spec.mode, "name": spec.name}
        if spec.mode == "build":
            item["creation_key"] = spec.creation_key()
            workspace_id = found.get(f"{page}#{spec.name}")
            if workspace_id:
                item["workspace_id"] = workspace_id
        pages.setdefault(page, []).append(item)
        projects.add(spec.project_id)
    for page, old in carried:
        pages.setdefault(page, []).append({k: old[k] for k in ENTRY_KEYS if k in old})
        projects.add(str(old["project_id"]))
    data = {
        "version": MANIFEST_VERSION,
        "pages": {page: pages[page] for page in sorted(pages)},
        "projects": sorted(projects),
    }
    # published with the site: readable by the web server, and compact (it can list every page)
    atomic_write_json(Path(path), data, mode=0o644, compact=True)


def shown_source(source: str) -> str:
    """``source`` fit for a message: a URL without its credentials and query, secrets masked."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        try:
            parts = urlsplit(text)
            netloc = parts.netloc.rsplit("@", 1)[-1]
            text = urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))
        except ValueError:
            pass
    return redact(text)


def manifest_location(path_or_url: str) -> str:
    """The manifest a location names: a URL ending in ``/`` or a folder is a site, its manifest is in it."""
    source = str(path_or_url).strip()
    if source.startswith(("http://", "https://")):
        parts = urlsplit(source)
        if parts.path.endswith("/") or not parts.path:
            path = (parts.path or "/") + MANIFEST_NAME
            return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        return source
    if Path(source.removeprefix("file://")).is_dir():
        return str(Path(source.removeprefix("file://")) / MANIFEST_NAME)
    return source


def read_manifest(path_or_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Read and check a manifest from a file path or an http(s) URL.

    Raises :class:`ManifestUnavailable` when it cannot be fetched or read at all,
    :class:`ManifestError` (naming the source and the place) when it is malformed.
    """
    source = manifest_location(path_or_url)
    if source.startswith(("http://", "https://")):
        import requests  # only here: writing a manifest must stay light

        try:
            response = requests.get(source, timeout=timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            reason = type(exc).__name__
        else:
            if response.status_code == 200:
                return _check_manifest(response.text, source)
            reason = f"HTTP {response.status_code}"
        raise ManifestUnavailable(shown_source(source), reason)
    if source.startswith("file://"):
        source = source[len("file://"):]
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{source}: not UTF-8 text; expected a sphere-workspaces manifest") from None
    except OSError as exc:
        raise ManifestUnavailable(source, str(exc.strerror or exc), verb="read") from None
    return _check_manifest(text, source)


def deployed_workspaces(data: Mapping[str, Any]) -> list[DeployedWorkspace]:
    """The build-mode embeds of a (checked) manifest that name their workspace, in page order."""
    found: list[DeployedWorkspace] = []
    for page, embeds in data["pages"].items():
        for item in embeds:
            if item.get("mode", "build") != "build" or not item.get("workspace_id"):
                continue
            found.append(DeployedWorkspace(
                page=str(page), name=str(item.get("name")), project_id=str(item["project_id"]).lower(),
                creation_key=str(item.get("creation_key", "")), workspace_id=str(item["workspace_id"])))
    return found


def _check_manifest(text: str, source: str) -> dict[str, Any]:
    where = shown_source(source)
    try:
        data = json.loads(text)
    except ValueError:
        raise ManifestError(f"{where}: not JSON; expected a sphere-workspaces manifest") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{where}: not a sphere-workspaces manifest (version {MANIFEST_VERSION})")
    pages = data.get("pages")
    projects = data.get("projects")
    if not isinstance(pages, dict) or not isinstance(projects, list):
        raise ManifestError(f"{where}: a manifest needs 'pages' (object) and 'projects' (list)")
    for page, embeds in pages.items():
        if not isinstance(embeds, list) or not all(
                isinstance(e, dict) and isinstance(e.get("project_id"), str) for e in embeds):
            raise ManifestError(f"{where}: page {page!r}: expected a list of embeds with project_id")
        for index, item in enumerate(embeds):
            for key, valid in (("workspace_id", _HEX32), ("creation_key", None)):
                value = item.get(key)
                if value is None:
                    continue
                if not isinstance(value, str) or (valid is not None and not valid.match(value)):
                    what = "32 hexadecimal characters" if valid is not None else "a string"
                    raise ManifestError(
                        f"{where}: page {page!r}, embed {index + 1} ({item.get('name')!r}): "
                        f"{key!r} must be {what}, found {json.dumps(value)[:40]}")
    return data
