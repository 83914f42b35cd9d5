# A small course: rST and MyST pages, one page with two embeds (one inside an
# admonition), one page without embeds.  Tests point sphere_endpoint at the
# emulator through confoverrides.
extensions = ["sphere_docs.sphinx", "myst_parser"]
project = "Sphere basic"
author = "sphere-docs tests"
copyright = "2025, sphere-docs tests"
version = release = "1.0"
exclude_patterns = ["_build"]
suppress_warnings = ["epub.unknown_project_files"]

sphere_endpoint = "http://127.0.0.1:9"  # replaced by the emulator's URL in tests
sphere_lazy_endpoint = "http://127.0.0.1:9/sphere/workspaces"
sphere_retries = 1
sphere_timeout = 5.0
