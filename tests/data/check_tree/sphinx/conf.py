# A Sphinx project for `sphere-docs check` tests: its .md pages follow MyST rules.
project = "check fixture"
extensions = ["myst_parser", "sphere_docs.sphinx"]
myst_enable_extensions = ["colon_fence"]
sphere_endpoint = "http://127.0.0.1:8123"
sphere_lazy_endpoint = "https://docs.example.org/sphere/workspaces"
exclude_patterns = ["_build"]
