"""``sphere-docs prune``: remove ledger workspaces that the last build no longer uses.

Every build records in the ledger (``<cache>/ledger.json``) which workspaces it
used.  A workspace whose embed was deleted, renamed or given other creation
options stays recorded but unused; prune removes it through the API
(``PUT /workspaces/{id}/remove``) and drops it from the ledger.  Run it after
a build, from the folder of ``mkdocs.yml`` / ``conf.py`` (or pass ``--cache``).

The access token is read from the environment variable ``--token-env``
(default ``SPHERE_ENGINE_ACCESS_TOKEN``); ``--dry-run`` needs none.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..settings import SETTINGS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="remove ledger workspaces that the last build no longer uses",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cache, token_env = SETTINGS["cache"].default, SETTINGS["token_env"].default
    timeout, retries = SETTINGS["timeout"].default, SETTINGS["retries"].default
    parser.add_argument("--cache", default=cache, metavar="DIR",
                        help=f"the cache folder holding ledger.json (default {cache})")
    parser.add_argument("--endpoint", default=None, metavar="URL",
                        help="only workspaces of this API endpoint (customer host or URL)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be removed, change nothing")
    parser.add_argument("--token-env", default=token_env, metavar="NAME",
                        help=f"environment variable holding the access token (default {token_env})")
    parser.add_argument("--timeout", type=float, default=timeout, metavar="S",
                        help=f"timeout of each API call in seconds (default {timeout:g})")
    parser.add_argument("--retries", type=int, default=retries, metavar="N",
                        help=f"retries of a failed API call (default {retries})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..client import ContainersClient
    from ..errors import SphereDocsError
    from ..provision import LEDGER_NAME, LedgerError, prune
    from ..settings import SiteSettings

    cache = Path(args.cache)
    try:
        present = (cache / LEDGER_NAME).exists()
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
