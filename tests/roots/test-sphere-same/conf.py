# The same embed written in reStructuredText and in MyST Markdown.
extensions = ["sphere_docs.sphinx", "myst_parser"]
project = "Sphere same embed"
exclude_patterns = ["_build"]
sphere_endpoint = "http://127.0.0.1:9"  # replaced by the emulator's URL in tests
sphere_lazy_endpoint = "http://127.0.0.1:9/sphere/workspaces"
