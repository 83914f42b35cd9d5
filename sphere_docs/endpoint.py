"""The public name of the lazy endpoint's WSGI app: ``gunicorn "sphere_docs.endpoint:create_app()"``.

The service itself is :mod:`sphere_docs.services.endpoint`.
"""

from __future__ import annotations

from .services.endpoint import EndpointConfig, create_app

__all__ = ["EndpointConfig", "create_app"]
