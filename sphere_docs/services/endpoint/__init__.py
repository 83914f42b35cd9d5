"""The lazy endpoint: gives each reader of a docs page their own workspace.

A lazy embed's activation script (``static/sphere-docs-lazy.js``) POSTs
``{project_id, page, name, claim?}`` here; the endpoint, which alone holds the
API access token, creates a workspace (or reuses the one a valid ``claim``
proves the reader was given) and answers ``{workspace_id, workspace_token,
state, sdk_base, claim, claim_expires, reused}``.

Production::

    SPHERE_ENDPOINT_API=12345678.containers.sphere-engine.com \\
    SPHERE_ENDPOINT_ALLOW_PROJECTS=<project id> \\
    SPHERE_ENDPOINT_ALLOW_ORIGINS=https://docs.example.org \\
    SPHERE_ENDPOINT_SECRET=<32+ random characters> \\
    SPHERE_ENGINE_ACCESS_TOKEN=<token> \\
    gunicorn -c sphere_docs/services/endpoint/gunicorn.conf.py "sphere_docs.endpoint:create_app()"

Development: ``sphere-docs endpoint --api URL --allow-project ID --allow-origin ORIGIN``.

State: reuse is proved by the signed claim the reader keeps.  Rate limits,
the creation budget and the creates in flight are counted in
``SPHERE_ENDPOINT_STORAGE``: ``memory://`` (one process, the default) or Redis,
shared by every worker and host (see :mod:`.limits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .app import EndpointApp, Problem
from .claims import ClaimError, Signer
from .config import ENV_VARS, EndpointConfig, Window

__all__ = [
    "ENV_VARS",
    "ClaimError",
    "EndpointApp",
    "EndpointConfig",
    "Problem",
    "Signer",
    "Window",
    "create_app",
]


def create_app(config: EndpointConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> EndpointApp:
    """The WSGI application.

    ``config`` is an :class:`EndpointConfig`, a mapping of its fields, or
    ``None`` to read every ``SPHERE_ENDPOINT_*`` environment variable (what
    ``gunicorn "sphere_docs.endpoint:create_app()"`` does).  Raises
    :class:`~sphere_docs.core.errors.SettingsError` for a bad or missing setting
    and when the access token is not exported.
    """
    if config is None:
        config = EndpointConfig.from_env()
    elif not isinstance(config, EndpointConfig):
        config = EndpointConfig.from_mapping(config)
    return EndpointApp(config, **kwargs)
