"""``sphere-docs check``: validate every embed of a docs tree without building."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
Find every sphere-workspace embed under PATH (Markdown/MyST fences in .md,
directives in .rst) and validate its project id and options with the same
rules as a build, without building and without calling the API.  Problems are
printed as file:line: message; the exit status is 1 when an embed is invalid.
Folders named site, _build, node_modules and hidden folders are skipped.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate every embed of a docs tree without building",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                        help="docs folders or pages to check (default: the current folder)")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text",
                        help="text: file:line: message lines and a summary (default); "
                             "json: a list of {file, line, option, value, valid, message, "
                             "severity}; github: GitHub Actions annotations (::error file=...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..check import check_paths, format_github, format_json, format_text

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for path in missing:
            print(f"sphere-docs check: no such file or folder: {path}", file=sys.stderr)
        return 2
    result = check_paths(args.paths)
    if args.format == "json":
        print(format_json(result))
        print(result.summary(), file=sys.stderr)
    else:
        for line in (format_github if args.format == "github" else format_text)(result):
            print(line)
    return 1 if result.errors else 0
