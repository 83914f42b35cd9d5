"""``GET /metrics`` (issue 15, item 5), read back with prometheus-client's own text parser:
in one process, and under two gunicorn workers (multiprocess mode) on a real Redis."""

from __future__ import annotations

from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from test_endpoint_redis import masters, redis_server  # noqa: F401 (fixtures)
from test_lazy_endpoint import ORIGIN, Endpoint, endpoint, endpoint_factory, error, reader  # noqa: F401 (fixtures)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(url + "/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_metrics_are_off_by_default(endpoint: Endpoint) -> None:  # noqa: F811
    error(endpoint.request("GET", "/metrics", origin=None), 404, "not_found",
          "There is nothing here; POST to /workspaces.")


def test_metrics_in_one_process(endpoint_factory: Any, emulator: Any) -> None:  # noqa: F811
    ep = endpoint_factory(metrics="1", budget="3/1h", rate="2/10m")
    first = ep.post(client="203.0.113.1").json()
    assert ep.post(reader(claim=first["claim"]), client="203.0.113.1").json()["reused"] is True
    assert ep.post(client="203.0.113.1").status_code == 200
    error(ep.post(client="203.0.113.1"), 429, "rate_limited")
    emulator.set_faults(sequence=[503])
    error(ep.post(client="203.0.113.2"), 503, "upstream_unavailable")
    got = scrape(ep.url)
    assert got[("sphere_endpoint_requests_total", (("code", "ok"), ("status", "200")))] == 3
    assert got[("sphere_endpoint_requests_total", (("code", "rate_limited"), ("status", "429")))] == 1
    assert got[("sphere_endpoint_requests_total", (("code", "upstream_unavailable"), ("status", "503")))] == 1
    assert got[("sphere_endpoint_creations_total", ())] == 2
    assert got[("sphere_endpoint_reuses_total", ())] == 1
    assert got[("sphere_endpoint_upstream_seconds_count", (("action", "create"),))] == 3
    assert got[("sphere_endpoint_upstream_seconds_count", (("action", "get"),))] == 1
    assert got[("sphere_endpoint_budget_remaining", ())] == 1  # 3 - 2 (the failed create gave its slot back)
    assert got[("sphere_endpoint_creates_in_flight", ())] == 0
    assert got[("sphere_endpoint_storage_errors_total", ())] == 0


def test_metrics_add_up_over_gunicorn_workers(masters: Any, emulator: Any) -> None:  # noqa: F811
    (host,) = masters(1, metrics="1", budget="50/1h")
    for n in range(12):
        answer = requests.post(host.url + "/workspaces", json=reader(name=f"r{n}"), timeout=30,
                               headers={"Origin": ORIGIN, "X-Forwarded-For": f"10.0.0.{n}", "Connection": "close"})
        assert answer.status_code == 200
    for _ in range(6):  # any worker answers the scrape with the sum of both
        got = scrape(host.url)
        assert got[("sphere_endpoint_creations_total", ())] == 12
        assert got[("sphere_endpoint_budget_remaining", ())] == 38
    assert len(host.pids()) <= 2
