"""The tools: ``sphere-docs check``, ``doctor``, ``prune``, ``demo`` and the command line.

May import the core, the syntax and site layers, the API client, the pipeline and the
services (the demo runs the emulator); never an engine adapter.
"""
