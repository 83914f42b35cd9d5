"""Sample gunicorn configuration for the lazy endpoint.

    gunicorn -c sphere_docs/services/endpoint/gunicorn.conf.py "sphere_docs.endpoint:create_app()"

The app reads its settings from ``SPHERE_ENDPOINT_*`` variables (see
``sphere_docs.services.endpoint.config.ENV_VARS``) and the API token from
``SPHERE_ENGINE_ACCESS_TOKEN``.  Set ``SPHERE_ENDPOINT_SECRET`` to the same
value on every worker and host, or returning readers get new workspaces.

Worker model: ``gthread`` workers with many threads.  A reader's request is
almost all waiting (on the API, a few hundred milliseconds per create), and a
thread waiting on a socket costs little, so one process holds a lecture's
worth of waiting readers: threads are what is waiting at once, about arrivals
per second x API latency (1,000 readers in one second at 300 ms: 300), so 512
per worker (``SPHERE_ENDPOINT_THREADS``) leave room for slower answers and for
slow clients (bench/endpoint_burst.py; with 128 a 1,000-reader second queues); the deployment-wide in-flight cap
(``SPHERE_ENDPOINT_INFLIGHT``) answers the rest at once with 429 ``busy`` and
``Retry-After: 1`` instead of letting them queue.  Threads read the request
themselves, so a slow client holds one: production sits behind a buffering
proxy (nginx: ``proxy_request_buffering on``, the default), which hands over
only whole requests; see the README's nginx snippet.

Workers: with ``SPHERE_ENDPOINT_STORAGE=memory://`` (the default) the limits
and the budget live in one process's memory, so this configuration runs one
worker and refuses more.  With ``redis://`` every worker and host counts
together: run as many as the cores (``SPHERE_ENDPOINT_WORKERS``, default 2).

Put it behind a TLS-terminating reverse proxy and set
``SPHERE_ENDPOINT_TRUST_PROXY=1`` (one proxy) so rate limits see the reader's
address from ``X-Forwarded-For`` instead of the proxy's.
"""

import os
import tempfile

from sphere_docs.core.options import truth  # the one reader of true/false words

_storage = os.environ.get("SPHERE_ENDPOINT_STORAGE", "").strip() or "memory://"
_memory = _storage.startswith("memory://")

bind = os.environ.get("SPHERE_ENDPOINT_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("SPHERE_ENDPOINT_WORKERS", "1" if _memory else "2"))
worker_class = "gthread"
threads = int(os.environ.get("SPHERE_ENDPOINT_THREADS", "512"))
# Connections waiting to be accepted beyond the threads (the kernel's queue).
backlog = 2048
# Above the app's own API timeout x attempts (8 s x 2 by default), so gunicorn never
# kills a worker that is about to answer 503 upstream_timeout itself.
timeout = 30
graceful_timeout = 10
keepalive = 5
# Small requests only (the app also caps the body at SPHERE_ENDPOINT_MAX_BODY bytes).
limit_request_line = 2048
limit_request_fields = 40
limit_request_field_size = 4096
accesslog = "-"
errorlog = "-"
loglevel = "info"

# /metrics under several workers: prometheus-client's multiprocess mode, one directory
# shared by this master's workers (set before they import prometheus-client).
if truth(os.environ.get("SPHERE_ENDPOINT_METRICS", "")) \
        and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sphere-endpoint-metrics-")


def on_starting(server):  # type: ignore[no-untyped-def]
    """Refuse several workers that would each count the limits and the budget on their own."""
    count = server.cfg.workers
    if _memory and count > 1:
        raise SystemExit(
            f"sphere-docs endpoint: {count} workers with SPHERE_ENDPOINT_STORAGE=memory:// would each "
            f"count the rate limits and the creation budget on their own ({count} x the budget); "
            "share them with SPHERE_ENDPOINT_STORAGE=redis://HOST:6379/0, or run one worker"
        )


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from sphere_docs.services.endpoint.metrics import mark_process_dead

    mark_process_dead(worker.pid)
