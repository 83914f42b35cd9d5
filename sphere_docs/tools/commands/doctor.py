"""``sphere-docs doctor``: check a docs site's settings, token, projects and ledger."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Read the site settings from mkdocs.yml (the sphere-workspaces plugin) or
conf.py (sphere_* values) in DOCS_DIR, then with the configured endpoint and
the token from the configured environment variable: check the token
(GET /test), check that the account has every project the docs use, and
report the ledger's workspaces as live or dead.  It also says how long the
deployed site's build-mode embeds stay usable, with a warning for those whose
options make them die between builds.  Each problem is printed with the fix to
apply; the exit status is 1 when there is a problem.  The token is never
printed.

With --site URL_OR_PATH: check the workspaces of the *deployed* site instead,
the ones its sphere-workspaces.json lists (a URL or a path; a URL ending in /
or a folder names the one in it).  Exit status 0 when each is usable (running,
starting, or stopped and resumed when a reader opens it), 1 when any is dead
(removed, errored, not found, or stopped without auto-resume: rebuild the
site), 2 when they could not be checked.  Made for a scheduled CI job that
rebuilds on 1; the endpoint and token come from DOCS_DIR's settings and the
options as without --site.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check settings, token, projects and ledger of a docs site",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("docs", nargs="?", default=".", metavar="DOCS_DIR",
                        help="the folder of mkdocs.yml or conf.py (default: the current folder)")
    parser.add_argument("--endpoint", metavar="URL",
                        help="API endpoint to use instead of the configured one "
                             "(customer host or URL)")
    parser.add_argument("--token-env", metavar="NAME",
                        help="environment variable holding the access token, instead of the "
                             "configured one (default SPHERE_ENGINE_ACCESS_TOKEN)")
    parser.add_argument("--site", metavar="URL_OR_PATH",
                        help="check the workspaces a deployed site's sphere-workspaces.json lists "
                             "(exit 1 when any is dead, 2 when they could not be checked)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..doctor import run_doctor, run_site_doctor

    if not Path(args.docs).exists():
        print(f"sphere-docs doctor: no such file or folder: {args.docs}", file=sys.stderr)
        return 2
    if args.site is not None:
        return run_site_doctor(args.site, args.docs, endpoint=args.endpoint, token_env=args.token_env)
    return run_doctor(args.docs, endpoint=args.endpoint, token_env=args.token_env)
