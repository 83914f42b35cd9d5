"""``sphere-docs prune``: remove ledger workspaces that the last build no longer uses.

Every build records in the ledger (``<cache>/ledger.json``) which workspaces it
used.  A workspace whose embed was deleted, renamed or given other creation
options stays recorded but unused; prune removes it through the API
(``PUT /workspaces/{id}/remove``) and drops it from the ledger.  Run it after
a build, from the folder of ``mkdocs.yml`` / ``conf.py`` (or pass ``--cache``).

The access token is read from the environment variable ``--token-env``
(default ``SPHERE_ENGINE_ACCESS_TOKEN``); ``--dry-run`` needs none.

Against what is deployed (CI, where there is no ledger)::

    sphere-docs prune --previous URL_OR_PATH --current site/sphere-workspaces.json

removes the workspaces that the previous site's manifest lists and the current
one does not: the embeds the new site dropped or replaced.  Run it after the new
site is deployed, with the manifest the old site served (saved before the deploy,
or its URL while the old site is still served).  A workspace that neither
manifest lists is never touched, and each one is checked first (``GET``): one of
another project than its manifest entry says is left alone.  The API endpoint
is ``--endpoint``, or the ``endpoint`` setting of the site in ``--config``
(``mkdocs.yml`` / ``conf.py``, or a folder holding one; default the current
folder).  A URL ending in ``/`` or a folder names a site: its
``sphere-workspaces.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ...core.settings import SETTINGS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="remove workspaces that the last build (or the deployed site) no longer uses",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cache, token_env = SETTINGS["cache"].default, SETTINGS["token_env"].default
    timeout, retries = SETTINGS["timeout"].default, SETTINGS["retries"].default
    parser.add_argument("--cache", default=cache, metavar="DIR",
                        help=f"the cache folder holding ledger.json (default {cache})")
    parser.add_argument("--endpoint", default=None, metavar="URL",
                        help="only workspaces of this API endpoint (customer host or URL); with "
                             "--previous: the endpoint to use (default: the site's endpoint setting)")
    parser.add_argument("--previous", default=None, metavar="URL_OR_PATH",
                        help="the manifest (sphere-workspaces.json) of the site deployed before: remove "
                             "the workspaces it lists and --current does not (no ledger needed)")
    parser.add_argument("--current", default=None, metavar="PATH",
                        help="with --previous: the manifest of the site just deployed")
    parser.add_argument("--config", default=".", metavar="PATH",
                        help="with --previous: mkdocs.yml, conf.py or a folder holding one, for the "
                             "endpoint and token_env settings (default: the current folder)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be removed, change nothing")
    parser.add_argument("--token-env", default=None, metavar="NAME",
                        help=f"environment variable holding the access token (default {token_env})")
    parser.add_argument("--timeout", type=float, default=timeout, metavar="S",
                        help=f"timeout of each API call in seconds (default {timeout:g})")
    parser.add_argument("--retries", type=int, default=retries, metavar="N",
                        help=f"retries of a failed API call (default {retries})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.previous is not None or args.current is not None:
        return run_deployed(args)
    if args.token_env is None:
        args.token_env = SETTINGS["token_env"].default

    from ...api.client import ContainersClient
    from ...core.errors import SphereDocsError
    from ...core.settings import SiteSettings
    from ...pipeline.ledger import JOURNAL_NAME, LEDGER_NAME, LedgerError
    from ...pipeline.provision import prune

    cache = Path(args.cache)
    try:
        present = (cache / LEDGER_NAME).exists() or (cache / JOURNAL_NAME).exists()  # (a killed first build)
    except OSError:  # the cache folder cannot be looked into: let the ledger say why
        present = True
    if not present:
        print(f"sphere-docs prune: no ledger at {cache / LEDGER_NAME}; nothing to do")
        return 0
    try:
        # the settings schema checks the flags: a bad value is a message, not a traceback
        settings = SiteSettings.from_mapping(
            {"token_env": args.token_env, "timeout": args.timeout, "retries": args.retries})

        def client_factory(api_base: str) -> ContainersClient:
            return ContainersClient(api_base, settings.token(), timeout=settings.timeout,
                                    retries=settings.retries)

        result = prune(cache, endpoint=args.endpoint, dry_run=args.dry_run,
                       client_factory=client_factory, out=sys.stdout)
    except LedgerError as exc:  # nothing was removed, and the file is left as it is
        print(f"sphere-docs prune: {exc.sentence}", file=sys.stderr)
        return 2
    except SphereDocsError as exc:
        print(f"sphere-docs prune: {exc}", file=sys.stderr)
        return 2
    return 1 if result.failed else 0


# --------------------------------------------------------------------------- --previous / --current


def run_deployed(args: argparse.Namespace) -> int:
    """``prune --previous ... --current ...``: exit 0 done, 1 some removal failed, 2 nothing done."""
    from ...api.client import ContainersClient
    from ...core.errors import SphereDocsError
    from ...core.settings import SiteSettings

    def fail(text: str) -> int:
        print(f"sphere-docs prune: {text}", file=sys.stderr)
        return 2

    if args.previous is None or args.current is None:
        return fail("--previous and --current go together: the manifest of the site deployed "
                    "before, and of the one just deployed")
    try:
        values: dict[str, Any] = {"timeout": args.timeout, "retries": args.retries}
        if args.endpoint is not None:
            values["endpoint"] = args.endpoint
        if args.token_env is not None:
            values["token_env"] = args.token_env
        if args.endpoint is None or args.token_env is None:
            site_values = _site_values(Path(args.config))
            for name in ("endpoint", "token_env"):
                if name not in values and site_values.get(name) is not None:
                    values[name] = site_values[name]
        settings = SiteSettings.from_mapping(values)
        if not args.dry_run and settings.endpoint is None:
            return fail(f"no API endpoint: pass --endpoint, or run where the site's mkdocs.yml / conf.py "
                        f"sets it (looked in {args.config})")
        client: ContainersClient | None = None
        if not args.dry_run:
            client = ContainersClient(settings.api.api_base, settings.token(), timeout=settings.timeout,
                                      retries=settings.retries)
        try:
            _, failed = prune_deployed(args.previous, args.current, client=client,
                                             dry_run=args.dry_run, out=sys.stdout)
        finally:
            if client is not None:
                client.close()
    except SphereDocsError as exc:  # settings, no token, a manifest missing or malformed
        return fail(str(exc).removeprefix("sphere-workspaces: "))
    return 1 if failed else 0


def _site_values(config: Path) -> dict[str, Any]:
    """The raw sphere settings of the site at ``config`` ({} when there is none)."""
    from ...site import find_docs_site

    if not config.exists():
        return {}
    site = find_docs_site(config)
    return dict(site.values) if not site.errors else {}


def prune_deployed(previous: str, current: str, *, client: Any | None, dry_run: bool = False,
                   out: TextIO | None = None) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Remove the workspaces ``previous`` lists and ``current`` does not; ``(removed, failed)``.

    Both manifests are read first: a malformed one, or no ``current``, is a
    :class:`ManifestError` (nothing removed); no ``previous`` (the first deploy)
    means nothing to remove.  ``client`` is a :class:`ContainersClient` (None for a dry run).
    A workspace the API no longer knows, or knows as removed, counts as removed; one
    of another project than its manifest entry says is not touched (a failure).
    """
    from ...api.client import STATE_REMOVED, NotFoundError, SphereEngineError
    from ...core.manifest import (
        ManifestError,
        ManifestUnavailable,
        deployed_workspaces,
        read_manifest,
        shown_source,
    )
    from ...core.redact import redact

    def say(text: str) -> None:
        if out is not None:
            print(redact(text), file=out)

    new = read_manifest(current)
    try:
        old = read_manifest(previous)
    except ManifestUnavailable as exc:  # the first deploy: nothing was deployed, nothing to remove
        say(f"sphere-docs prune: nothing to remove: {exc} (no site deployed yet?)")
        return [], []
    stale = [item for embeds in new["pages"].values() for item in embeds
             if item.get("mode", "build") == "build" and "creation_key" not in item]
    if stale:
        raise ManifestError(
            f"{shown_source(current)} lists no workspace ids (written by a sphere-docs before 0.2): "
            "build the site again with this version, then prune")
    kept_ids = {w.workspace_id for w in deployed_workspaces(new)}
    listed = deployed_workspaces(old)
    doomed: dict[str, Any] = {}
    for item in listed:
        if item.workspace_id not in kept_ids:
            doomed.setdefault(item.workspace_id, item)
    kept = len({w.workspace_id for w in listed} & kept_ids)
    removed: list[Mapping[str, Any]] = []
    failed: list[Mapping[str, Any]] = []
    if not doomed:
        say(f"sphere-docs prune: nothing to remove ({kept} workspace(s) of the previous site are still "
            f"deployed{'' if listed else '; it lists no workspace ids'})")
        return removed, failed

    def describe(item: Any) -> str:
        return f"{item.workspace_id} ({item.page} {item.name}, project {item.project_id})"

    for workspace_id, item in doomed.items():
        record = item._asdict()
        if dry_run:
            say(f"would remove {describe(item)}")
            removed.append(record)
            continue
        assert client is not None
        try:
            ws = client.get_workspace(workspace_id)
            if (ws.project_id or "").lower() != item.project_id:
                say(f"NOT removed {describe(item)}: the API says it belongs to project {ws.project_id}")
                failed.append(record)
                continue
            if ws.state_code == STATE_REMOVED:
                say(f"already gone {describe(item)}")
            else:
                client.remove(workspace_id)
                say(f"removed {describe(item)}")
        except NotFoundError:
            say(f"already gone {describe(item)}")
        except SphereEngineError as exc:
            say(f"FAILED to remove {describe(item)}: {exc.reason}")
            failed.append(record)
            continue
        removed.append(record)
    verb = "would remove" if dry_run else "removed"
    say(f"sphere-docs prune: {verb} {len(removed)} workspace(s) of the previous site, kept {kept} still "
        "deployed" + (f", {len(failed)} failed" if failed else ""))
    return removed, failed
