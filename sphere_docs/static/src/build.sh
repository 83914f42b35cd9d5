#!/usr/bin/env bash
# Rebuilds the two files html.page_assets() inlines, from the readable sources here:
#   ../sphere-docs-lazy.js  <- sphere-docs-lazy.js, minified by terser (Node.js; npx fetches it once);
#                              ASCII only, so a page the assets go into stays a one-byte-per-character
#                              string in Python (one non-Latin-1 character doubles every later copy of it)
#   ../sphere-docs.css      <- sphere-docs.css, comments stripped
# tests/test_page_assets.py checks the budget (2 KB gzip together) and that the copies are current.
set -euo pipefail
cd "$(dirname "$0")"
TERSER="${TERSER:-npx --yes terser@5.44.0}"
{
  $TERSER sphere-docs-lazy.js --compress passes=2 --mangle --toplevel --comments false --format ascii_only=true
  printf '\n'
} > ../sphere-docs-lazy.js.tmp
mv ../sphere-docs-lazy.js.tmp ../sphere-docs-lazy.js
python3 -c 'import re,sys; sys.stdout.write(re.sub(r"/\*.*?\*/\n?", "", sys.stdin.read(), flags=re.S))' \
  < sphere-docs.css > ../sphere-docs.css
