"""``GET /metrics``: the endpoint in Prometheus text format (``SPHERE_ENDPOINT_METRICS=1``).

Counters and the latency histogram are kept by prometheus-client.  Under
gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before the workers start (the sample gunicorn configuration does):
each worker writes its own files there and a scrape of any worker adds them
up (prometheus-client's multiprocess mode).  The deployment-wide gauges (budget
remaining, creates in flight) are read from the shared store at scrape time,
so they are the same whichever worker or host answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Metrics"]

PREFIX = "sphere_endpoint"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The endpoint's metrics; ``gauges`` returns (budget remaining, creates in flight) or None."""

    def __init__(self, gauges: Callable[[], tuple[int, int] | None]):
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.core import GaugeMetricFamily

        self.multiprocess = multiprocess_dir() is not None
        # Metrics of this app: in one process, its own registry (so two apps never share counters);
        # in multiprocess mode the values live in files and the registry is built at scrape time.
        self._own = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        own = self._own
        self.requests = Counter(f"{PREFIX}_requests", "Answers by HTTP status and code.",
                                ["status", "code"], registry=own)
        self.creations = Counter(f"{PREFIX}_creations", "Workspaces created.", registry=own)
        self.reuses = Counter(f"{PREFIX}_reuses", "Workspaces reused through a claim.", registry=own)
        self.storage_errors = Counter(f"{PREFIX}_storage_errors",
                                      "Calls to the shared rate-limit storage that failed.", registry=own)
        self.upstream = Histogram(f"{PREFIX}_upstream_seconds", "Latency of Containers API calls.",
                                  ["action"], buckets=LATENCY_BUCKETS, registry=own)

        class _Deployment:
            def collect(self) -> Iterator[Any]:
                values = gauges()
                if values is None:
                    return
                remaining, flying = values
                yield GaugeMetricFamily(f"{PREFIX}_budget_remaining",
                                        "Creations left in the deployment-wide budget's current window.",
                                        value=remaining)
                yield GaugeMetricFamily(f"{PREFIX}_creates_in_flight",
                                        "Creates waiting on the API now, deployment-wide.", value=flying)

        self._deployment = _Deployment()
        if own is not None:
            own.register(self._deployment)  # type: ignore[arg-type]

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import (
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            generate_latest,
            multiprocess,
        )

        if self._own is not None:
            return generate_latest(self._own), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self._deployment)  # type: ignore[arg-type]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """For gunicorn's ``child_exit`` hook: drop a dead worker's live-gauge files."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
