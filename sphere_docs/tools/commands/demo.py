"""``sphere-docs demo``: build both demo sites against the emulator and serve them."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build mkdocs_demo/ and sphinx_demo/ against a local emulator and serve them",
        description=(
            "Start the Containers emulator and the lazy endpoint on one loopback address, "
            "build every demo site against them, and serve everything with an index page "
            "until Ctrl-C."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to serve on; 0 picks a free one (default 8000)")
    parser.add_argument("--build-only", metavar="DIR", type=Path,
                        help="build the sites into DIR and exit instead of serving")
    parser.add_argument("--source", type=Path, help="the checkout holding mkdocs_demo/ and sphinx_demo/")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(f"sphere-docs demo: {message}", file=sys.stderr, flush=True)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo cleanly, even when started in the background
    (where a shell leaves SIGINT ignored)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoServer, find_sources

    _stop_on_signals()

    try:
        source = find_sources(args.source)
    except FileNotFoundError as exc:
        say(str(exc))
        return 2

    out_dir = args.build_only or Path(tempfile.mkdtemp(prefix="sphere-docs-demo-"))
    try:
        server = DemoServer(out_dir, host=args.host, port=args.port)
    except OSError as exc:
        say(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; try --port 0")
        return 2
    say(f"emulator and lazy endpoint at {server.base_url}")
    server.start()
    try:
        server.build(source, progress=say)
        if args.build_only:
            say(f"built into {out_dir}")
            return 0
        print(f"Serving the sphere-docs demo at {server.base_url}/  (Ctrl-C to stop)", flush=True)
        server.serve_until_interrupted()
        say("the server stopped unexpectedly")
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except Exception as exc:  # a failed build: say what failed, no traceback
        say(f"build failed: {exc}")
        return 1
    finally:
        server.stop()
        if not args.build_only:
            shutil.rmtree(out_dir, ignore_errors=True)
