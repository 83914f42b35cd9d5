"""``sphere-docs endpoint``: serve the lazy endpoint for development.

Prints the endpoint's URL on the first line of stdout (then the POST target
for the ``lazy_endpoint`` setting) and serves with werkzeug's threaded server
until Ctrl-C.  Every flag falls back to its ``SPHERE_ENDPOINT_*`` variable,
except secrets, which have no flag: ``SPHERE_ENDPOINT_SECRET`` (the claim keys)
and the API token (in the variable ``--token-env`` names).  Production runs the
same app under gunicorn (see ``sphere_docs.endpoint``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ...core.errors import SettingsError
from ...services.endpoint.config import SETTINGS, Setting, _hide_password, setting_error


def _help(setting: Setting) -> str:
    more = "; repeatable" if setting.repeat else ""
    return f"{setting.help}{more} (env {setting.var})".replace("%", "%%")


def register(subparsers: Any) -> None:
    secrets = ", ".join(s.var for s in SETTINGS if s.secret)
    parser = subparsers.add_parser(
        "endpoint",
        help="serve the lazy endpoint (development; use gunicorn in production)",
        description=__doc__,
        epilog=f"Secrets have no flag (a command line is visible to every user of the host): set {secrets} "
               "in the environment; the API token is read from the variable --token-env names.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for setting in SETTINGS:
        option = setting.option
        if option is None:
            continue
        if setting.kind == "bool":
            parser.add_argument(option, dest=setting.name, action=argparse.BooleanOptionalAction,
                                default=None, help=_help(setting))
        else:
            parser.add_argument(option, dest=setting.name, metavar=setting.metavar, default=None,
                                action="append" if setting.repeat else "store", help=_help(setting))
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.set_defaults(func=run)


def flag_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings given as flags (field -> raw value) and their flags (field -> flag) for messages."""
    overrides: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.option is None:
            continue
        value = getattr(args, setting.name, None)
        if value is None:
            continue
        if setting.name == "storage" and _hide_password(str(value)) != str(value):
            raise setting_error(setting.option, _hide_password(str(value)),
                                f"a URL without a password (a command line is visible to every user of the "
                                f"host): put it in {setting.var}", problem="password in")
        overrides[setting.name] = value
        labels[setting.name] = setting.option
    return overrides, labels


def run(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from ...services.endpoint import EndpointConfig, create_app

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        overrides, labels = flag_overrides(args)
        config = EndpointConfig.from_env(labels=labels, **overrides)
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
