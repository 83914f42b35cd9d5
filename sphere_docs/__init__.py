"""sphere-docs: live Sphere Engine Containers workspaces in MkDocs and Sphinx sites.

Front ends:

* Python-Markdown extension: ``sphere_docs.markdown`` (works alone, and in MkDocs)
* MkDocs plugin: ``sphere-workspaces`` (``sphere_docs.engines.mkdocs``)
* Sphinx extension: ``extensions = ["sphere_docs.sphinx"]``

The shared core: ``options`` (the one option schema), ``client`` (the
Containers API client), ``provision`` (build-time creation and the ledger),
``html`` (markup and loader injection), ``endpoint`` (the lazy endpoint) and
``emulator`` (a local emulator of the API and the SDK).
"""

from .core.options import OptionError, WorkspaceSpec, parse_options

__version__ = "0.1.0"

__all__ = ["OptionError", "WorkspaceSpec", "__version__", "parse_options"]
