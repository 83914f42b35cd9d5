"""``sphere-workspaces.json``: what a build embedded, page by page (never a token).

Written into the built site by the MkDocs plugin and the Sphinx extension; read
by the lazy endpoint (its allow-list) and by audits.  Kept apart from
:mod:`sphere_docs.provision` so a lazy-only build does not import the HTTP
stack just to write it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import SphereDocsError
from .fileio import atomic_write_json
from .options import WorkspaceSpec
from .redact import redact

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "ManifestError", "read_manifest", "write_manifest"]

MANIFEST_NAME = "sphere-workspaces.json"
MANIFEST_VERSION = 1


class ManifestError(SphereDocsError, ValueError):
    """A manifest that cannot be read or is not a sphere-workspaces manifest."""


def write_manifest(path: Path | str, embeds: Iterable[tuple[str, WorkspaceSpec]]) -> None:
    """Write ``sphere-workspaces.json``: page → embeds (project, mode, name); never a token."""
    pages: dict[str, list[dict[str, Any]]] = {}
    projects: set[str] = set()
    for page, spec in embeds:
        pages.setdefault(page, []).append(
            {"project_id": spec.project_id, "mode": spec.mode, "name": spec.name})
        projects.add(spec.project_id)
    data = {
        "version": MANIFEST_VERSION,
        "pages": {page: pages[page] for page in sorted(pages)},
        "projects": sorted(projects),
    }
    # published with the site: readable by the web server, and compact (it can list every page)
    atomic_write_json(Path(path), data, mode=0o644, compact=True)


def read_manifest(path_or_url: str) -> dict[str, Any]:
    """Read and check a manifest from a file path or an http(s) URL."""
    source = str(path_or_url)
    if source.startswith(("http://", "https://")):
        import requests  # only here: writing a manifest must stay light

        try:
            response = requests.get(source, timeout=10, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            problem = f"cannot fetch the manifest {redact(source)}: {type(exc).__name__}"
        else:
            if response.status_code != 200:
                problem = f"cannot fetch the manifest {redact(source)}: HTTP {response.status_code}"
            else:
                return _check_manifest(response.text, source)
        raise ManifestError(problem)
    if source.startswith("file://"):
        source = source[len("file://"):]
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest {source}: {exc.strerror or exc}") from None
    return _check_manifest(text, source)


def _check_manifest(text: str, source: str) -> dict[str, Any]:
    where = redact(source)
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
    return data
