"""The ``sphere-docs`` command.

Each subcommand lives in its own module under ``sphere_docs.tools.commands`` with a
``register(subparsers)`` function that adds its parser and sets
``func=run``.  Each command imports the heavy engines (MkDocs, Sphinx) only
when it runs and needs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

# subcommand name -> module under sphere_docs.tools.commands
COMMANDS = {
    "demo": "demo",
    "emulator": "emulator",
    "endpoint": "endpoint",
    "check": "check",
    "doctor": "doctor",
    "prune": "prune",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sphere-docs",
        description="Live Sphere Engine Containers workspaces in MkDocs and Sphinx sites.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(f"sphere_docs.tools.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sphere_docs.tools.commands.{module_name}":
                raise
            continue  # a command not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
