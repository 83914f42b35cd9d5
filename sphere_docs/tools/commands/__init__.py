"""One module per ``sphere-docs`` subcommand; see :mod:`sphere_docs.tools.cli`."""
