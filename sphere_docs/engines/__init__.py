"""The engine adapters: each parses with the syntax layer and emits what the pipeline decides.

May import the core, the syntax layer, the API client and the pipeline; nothing imports them
but their public names (``sphere_docs.markdown``, ``sphere_docs.sphinx``, the MkDocs entry point).
"""
