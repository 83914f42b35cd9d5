"""Sample gunicorn configuration for the lazy endpoint.

    gunicorn -c sphere_docs/endpoint_gunicorn.conf.py "sphere_docs.endpoint:create_app()"

The app reads its settings from ``SPHERE_ENDPOINT_*`` variables (see
``sphere_docs.endpoint.config.ENV_VARS``) and the API token from
``SPHERE_ENGINE_ACCESS_TOKEN``.  Set ``SPHERE_ENDPOINT_SECRET`` to the same
value on every worker and host, or returning readers get new workspaces.

Put it behind a TLS-terminating reverse proxy and set
``SPHERE_ENDPOINT_TRUST_PROXY=1`` (one proxy) so rate limits see the reader's
address from ``X-Forwarded-For`` instead of the proxy's.
"""

import os

bind = os.environ.get("SPHERE_ENDPOINT_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("SPHERE_ENDPOINT_WORKERS", "2"))
# Threads: a request waits on the API (hundreds of ms); threads keep a worker busy meanwhile.
worker_class = "gthread"
threads = int(os.environ.get("SPHERE_ENDPOINT_THREADS", "16"))
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

# Each worker keeps its own rate-limit counters; the deployment-wide creation budget
# is split between them (budget // workers), so they must know how many there are.
os.environ["SPHERE_ENDPOINT_WORKERS"] = str(workers)
