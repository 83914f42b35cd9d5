"""The sphere-docs Sphinx demo: a small course with live workspaces.

Build it against the local emulator (what ``sphere-docs demo`` does)::

    sphere-docs emulator --port 8123 &            # the Containers API + SDK, on loopback
    export SPHERE_ENGINE_ACCESS_TOKEN=...         # the token the emulator accepts
    SPHERE_DEMO_ENDPOINT=http://127.0.0.1:8123 sphinx-build -b html sphinx_demo sphinx_demo/_build/html

Pointing ``SPHERE_DEMO_ENDPOINT`` at a real customer host
(``12345678.containers.sphere-engine.com``) is the only change for production.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "Python in the browser: a sphere-docs course"
author = "sphere-docs"
copyright = "2025, sphere-docs"
version = release = "1.0"

extensions = [
    "myst_parser",
    "sphere_docs.sphinx",
    "demo_tables",  # _ext/demo_tables.py: option/setting tables from the shared schema
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["colon_fence"]

html_theme = os.environ.get("SPHERE_DEMO_THEME", "furo")
html_title = "sphere-docs course"
html_baseurl = os.environ.get("SPHERE_DEMO_BASEURL", "")  # lets PDF/epub link to the web pages

# -- sphere-docs ----------------------------------------------------------------------------
sphere_endpoint = os.environ.get("SPHERE_DEMO_ENDPOINT", "http://127.0.0.1:8123")
sphere_lazy_endpoint = os.environ.get(
    "SPHERE_DEMO_LAZY_ENDPOINT", "http://127.0.0.1:8124/workspaces"
)
sphere_on_error = os.environ.get("SPHERE_DEMO_ON_ERROR", "fail")
# The ledger of created workspaces: kept next to conf.py, never inside the built site.
sphere_cache = os.environ.get("SPHERE_DEMO_CACHE", ".sphere-docs-cache")

# -- print ----------------------------------------------------------------------------------
latex_documents = [("index", "sphere-course.tex", project, author, "manual")]
epub_show_urls = "no"
