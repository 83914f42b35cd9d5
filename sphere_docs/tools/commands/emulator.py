"""``sphere-docs emulator``: serve the Containers API emulator until Ctrl-C.

The accepted access token is ``--token``, else the ``SPHERE_ENGINE_ACCESS_TOKEN``
environment variable, else any non-empty token (handy for a quick look; the
token is never printed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from ...core.settings import DEFAULT_TOKEN_ENV


def _non_negative(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {raw!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local emulator of the Sphere Engine Containers API and SDK",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--token", default=None,
                        help=f"the only access token accepted (default: ${DEFAULT_TOKEN_ENV}, else any)")
    parser.add_argument("--start-delay", type=_non_negative, default=1.0, metavar="S",
                        help="seconds a new workspace stays 'starting' (default 1)")
    parser.add_argument("--latency", type=_non_negative, default=0.0, metavar="S",
                        help="added delay of every API answer, in seconds (default 0)")
    parser.add_argument("--slots", type=int, default=None,
                        help="at most this many starting/running workspaces (default: no limit)")
    parser.add_argument("--log", action="store_true", help="log every request on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...services.emulator import DEMO_PROJECTS, EmulatorServer

    token = args.token or os.environ.get(DEFAULT_TOKEN_ENV) or None
    try:
        server = EmulatorServer(host=args.host, port=args.port, token=token,
                                start_delay=args.start_delay, latency=args.latency,
                                slots=args.slots, log_requests=args.log)
    except OSError as exc:
        print(f"sphere-docs emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(f"Sphere Engine Containers emulator on {server.url}", flush=True)
    for pid, name in DEMO_PROJECTS.items():
        print(f"  project {pid}  {name}")
    source = "--token" if args.token else (f"${DEFAULT_TOKEN_ENV}" if token else "any non-empty token")
    print(f"  access token: {source}")
    print(f"  SDK: {server.url}/static/sdk/sdk.min.js  stats: {server.url}/_emulator/stats")
    print("Press Ctrl-C to stop.", flush=True)

    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.serve_until_interrupted()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("emulator stopped", flush=True)
    return 0
