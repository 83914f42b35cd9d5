"""``sphere-docs endpoint``: serve the lazy endpoint for development.

Prints the endpoint's URL on the first line of stdout (then the POST target
for the ``lazy_endpoint`` setting) and serves with werkzeug's threaded server
until Ctrl-C.  Every flag falls back to its ``SPHERE_ENDPOINT_*`` variable;
production runs the same app under gunicorn (see ``sphere_docs.endpoint``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..endpoint.config import ENV_VARS
from ..errors import SettingsError


def _env(field: str) -> str:
    return ENV_VARS[field][0]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "endpoint",
        help="serve the lazy endpoint (development; use gunicorn in production)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", help=f"address to listen on (default 127.0.0.1; env {_env('host')})")
    add("--port", type=int, help=f"port, 0 for any free port (default 0; env {_env('port')})")
    add("--api", help=f"Containers API endpoint: customer host or URL (env {_env('api')})")
    add("--allow-project", dest="allow_projects", action="append", metavar="ID",
        help=f"a project readers may start; repeatable (env {_env('allow_projects')})")
    add("--allow-origin", dest="allow_origins", action="append", metavar="ORIGIN",
        help=f"origin of the docs site, e.g. http://127.0.0.1:8000; repeatable (env {_env('allow_origins')})")
    add("--manifest", metavar="PATH|URL",
        help=f"sphere-workspaces.json written by a build; its projects are allowed (env {_env('manifest')})")
    add("--token-env", metavar="NAME",
        help=f"variable holding the API token (default SPHERE_ENGINE_ACCESS_TOKEN; env {_env('token_env')})")
    add("--rate", metavar="N/SECONDS", help=f"creations per client per window (default 5/10m; env {_env('rate')})")
    add("--budget", metavar="N/SECONDS", help=f"creations per window in total (default 200/1h; env {_env('budget')})")
    add("--claim-ttl", type=int, metavar="SECONDS", help=f"reuse claim lifetime (default 86400; env {_env('claim_ttl')})")
    add("--timeout", type=float, metavar="SECONDS", help=f"per API call (default 8; env {_env('timeout')})")
    add("--trust-proxy", type=int, metavar="N",
        help=f"reverse proxies whose X-Forwarded-For is trusted (default 0; env {_env('trust_proxy')})")
    add("--quiet", action="store_true", help="log warnings only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from ..endpoint import EndpointConfig, create_app

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "api", "allow_projects", "allow_origins", "manifest", "token_env",
                     "rate", "budget", "claim_ttl", "timeout", "trust_proxy")
    }
    try:
        config = EndpointConfig.from_env(**overrides)
        app = create_app(config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    server = make_server(config.host, config.port, app, threaded=True)
    host = config.host if ":" not in config.host else f"[{config.host}]"
    url = f"http://{host}:{server.server_port}"
    print(url, flush=True)
    print(f"lazy_endpoint: {url}/workspaces", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
    return 0
