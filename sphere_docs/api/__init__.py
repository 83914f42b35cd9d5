"""The API layer: the Sphere Engine Containers workspace API, and nothing about directives.

* :mod:`.errors` — every failed call is a :class:`~.errors.SphereEngineError`;
* :mod:`.models` — what the API answers (``Workspace``, ``WorkspacePage``, ``Project``);
* :mod:`.client` — the transport: :class:`~.client.ContainersClient` (HTTP, timeouts,
  retries, keep-alive, the token kept out of every message).  It re-exports the other two.

May import only the core.
"""
