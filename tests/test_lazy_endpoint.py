"""The lazy endpoint through real HTTP: werkzeug's threaded server on a loopback
port, the emulator upstream, ``requests`` as the reader's browser would speak.

Each test pins the status and the JSON body (``code`` and ``message``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import make_server as wsgiref_server
from wsgiref.validate import validator

import pytest
import requests
from conftest import SECRET_TOKEN, assert_no_leak
from werkzeug.serving import make_server

from sphere_docs.api.client import ContainersClient
from sphere_docs.core.errors import SettingsError
from sphere_docs.services.emulator import DEMO_PROJECT_ID
from sphere_docs.services.endpoint import EndpointConfig, create_app

ORIGIN = "http://127.0.0.1:8000"  # the docs site (only ever a header here)
PROJECT = DEMO_PROJECT_ID
SECOND = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"  # an emulator project this endpoint does not serve
SECRET = "test-signing-key-0123456789abcdef"
PAGE = "lessons/intro.md"
NAME = "ws-lessons-intro-md-abc123-1"

MESSAGES = {
    "origin_not_allowed": "This workspace service does not accept requests from this site.",
    "project_not_allowed": "This workspace is not offered by this site.",
    "claim_invalid": "The saved workspace claim is not valid for this embed.",
    "claim_expired": "The saved workspace claim has expired.",
    "rate_limited": "You have started several workspaces in a short time.",
    "budget_exhausted": "Many readers are starting workspaces right now.",
    "too_many_requests": "Too many requests from your network.",
    "upstream_rate_limited": "The workspace service is busy right now.",
    "upstream_unavailable": "The workspace service is unavailable right now. Please try again in a moment.",
    "upstream_unreachable": "The workspace service cannot be reached right now. Please try again in a moment.",
    "upstream_timeout": "The workspace service did not answer in time. Please try again.",
    "upstream_error": "The workspace service could not start a workspace. Please try again later.",
    "upstream_malformed": "The workspace service gave an answer that could not be understood. Please try again.",
}


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under werkzeug's threaded server on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Endpoint:
    url: str
    app: Any
    seen: list[str] = field(default_factory=list)  # every response (headers + body) for leak scans

    def request(self, method: str, path: str = "/workspaces", *, origin: str | None = ORIGIN,
                client: str | None = None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if origin is not None:
            headers["Origin"] = origin
        if client is not None:
            headers["X-Forwarded-For"] = client
        answer = requests.request(method, self.url + path, headers=headers, timeout=30, **kw)
        self.seen.append(json.dumps(dict(answer.headers)) + answer.text)
        return answer

    def post(self, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", json=body if body is not None else reader(), **kw)


def reader(project: str = PROJECT, page: str = PAGE, name: str = NAME, claim: str | None = None) -> dict[str, Any]:
    body = {"project_id": project, "page": page, "name": name}
    if claim is not None:
        body["claim"] = claim
    return body


def error(answer: requests.Response, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["code"] == code
    assert body["message"] == (message if message is not None else MESSAGES[code])
    return body


@pytest.fixture
def endpoint_factory(emulator: Any, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    caplog.set_level(logging.DEBUG)
    opened: list[Any] = []
    stack: list[Any] = []

    def make(**overrides: Any) -> Endpoint:
        values: dict[str, Any] = {
            "api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
            "secret": SECRET, "retries": 0, "trust_proxy": 1, "rate": "100/600",
            "requests": "1000/60",
        }
        values.update(overrides)
        app = create_app(values)
        cm = serve(app)
        url = cm.__enter__()
        stack.append(cm)
        ep = Endpoint(url, app)
        opened.append(ep)
        return ep

    yield make
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
    for ep in opened:
        ep.app.close()
        assert_no_leak(ep.seen)
    assert_no_leak([caplog.text])


@pytest.fixture
def endpoint(endpoint_factory: Any) -> Endpoint:
    return endpoint_factory()


# ------------------------------------------------------------------ creation and projects


def test_creates_a_workspace_for_an_allowed_project(endpoint: Endpoint, emulator: Any) -> None:
    answer = endpoint.post()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"workspace_id", "workspace_token", "state", "sdk_base", "claim",
                         "claim_expires", "reused"}
    assert len(body["workspace_id"]) == 32
    assert body["state"] == "running"
    assert body["sdk_base"] == emulator.host
    assert body["reused"] is False
    assert body["claim"].startswith(f"v1.{body['workspace_id']}.")
    assert body["claim_expires"] > time.time() + 86000
    ws = emulator.app.workspace(body["workspace_id"])
    assert ws["project"]["id"] == PROJECT
    assert ws["workspace_token"] == body["workspace_token"]
    assert ws["workspace_token_required"] is True
    assert emulator.count("POST /workspaces") == 1
    # CORS for the allowed origin, so the page can read the answer
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Vary"] == "Origin"


def test_root_path_also_creates(endpoint: Endpoint) -> None:
    assert endpoint.request("POST", "/", json=reader()).status_code == 200


def test_disallowed_project_is_refused_without_calling_the_api(endpoint: Endpoint, emulator: Any) -> None:
    error(endpoint.post(reader(project=SECOND)), 403, "project_not_allowed")
    error(endpoint.post(reader(project=SECOND.upper())), 403, "project_not_allowed")
    assert emulator.count("POST /workspaces") == 0


def test_create_options_per_project(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(
        allow_projects=[PROJECT, SECOND],
        create_options=json.dumps({"*": {"inactivity-timeout": 5},
                                   SECOND: {"token-required": "false", "auto-resume": False}}),
    )
    first = ep.post().json()
    second = ep.post(reader(project=SECOND)).json()
    ws1, ws2 = emulator.app.workspace(first["workspace_id"]), emulator.app.workspace(second["workspace_id"])
    assert (ws1["inactivity_timeout"], ws1["workspace_token_required"], ws1["auto_resume"]) == (5, True, True)
    assert (ws2["inactivity_timeout"], ws2["workspace_token_required"], ws2["auto_resume"]) == (5, False, False)


def test_manifest_projects_are_allowed(endpoint_factory: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "sphere-workspaces.json"
    manifest.write_text(json.dumps({"version": 1, "projects": [SECOND],
                                    "pages": {PAGE: [{"project_id": SECOND, "mode": "lazy", "name": NAME}]}}))
    ep = endpoint_factory(allow_projects=[], manifest=str(manifest))
    assert ep.post(reader(project=SECOND)).status_code == 200
    error(ep.post(reader(project=PROJECT)), 403, "project_not_allowed")


# ------------------------------------------------------------------ origins and CORS


def test_disallowed_or_missing_origin_is_refused(endpoint: Endpoint, emulator: Any) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1:8001"):
        answer = endpoint.post(origin=origin)
        error(answer, 403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in answer.headers
    error(endpoint.post(origin=None), 403, "origin_not_allowed",
          "Requests must come from a browser on an allowed site (Origin header).")
    assert emulator.count("POST /workspaces") == 0


def test_preflight(endpoint: Endpoint) -> None:
    ok = endpoint.request("OPTIONS", headers={"Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "content-type"})
    assert ok.status_code == 204
    assert ok.text == ""
    assert "Content-Type" not in ok.headers
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert ok.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert ok.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert ok.headers["Access-Control-Max-Age"] == "7200"
    assert ok.headers["Vary"] == "Origin"
    refused = endpoint.request("OPTIONS", origin="https://evil.example",
                               headers={"Access-Control-Request-Method": "POST"})
    error(refused, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_errors_for_an_allowed_origin_are_readable_by_the_page(endpoint: Endpoint) -> None:
    answer = endpoint.post(reader(project=SECOND))
    error(answer, 403, "project_not_allowed")
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Expose-Headers"] == "Retry-After"


# ------------------------------------------------------------------ rate limit and budget


def test_per_client_creation_rate_limit(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(rate="2/600")
    for _ in range(2):
        assert ep.post(client="203.0.113.7").status_code == 200
    answer = ep.post(client="203.0.113.7")
    body = error(answer, 429, "rate_limited")
    assert 590 <= body["retry_after"] <= 600
    assert answer.headers["Retry-After"] == str(body["retry_after"])
    assert ep.post(client="198.51.100.9").status_code == 200  # another reader is not affected
    assert emulator.count("POST /workspaces") == 3


def test_global_budget_per_window(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(budget="3/1h")
    for n in range(3):
        assert ep.post(client=f"203.0.113.{n}").status_code == 200
    body = error(ep.post(client="203.0.113.50"), 429, "budget_exhausted")
    assert 3590 <= body["retry_after"] <= 3600
    assert emulator.count("POST /workspaces") == 3
    # a refused reader did not spend their own allowance either
    assert not ep.app.limits.store._windows["rate:203.0.113.50"].events


def test_the_budget_is_exact_not_split(endpoint_factory: Any, emulator: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKERS / WEB_CONCURRENCY no longer split the budget (issue 15): memory:// is one process."""
    monkeypatch.setenv("SPHERE_ENDPOINT_WORKERS", "2")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    ep = endpoint_factory(budget="5/1h")
    assert [ep.post(client=f"203.0.113.{n}").status_code for n in range(6)] == [200] * 5 + [429]
    assert emulator.count("POST /workspaces") == 5


def test_the_in_flight_cap_answers_busy_at_once(endpoint_factory: Any, emulator: Any) -> None:
    """Beyond SPHERE_ENDPOINT_INFLIGHT creates waiting on the API, 429 busy with a short
    Retry-After, and nothing is counted against the reader or the budget."""
    ep = endpoint_factory(inflight=2, budget="3/1h")
    emulator.set_faults(latency=1.5)
    slow: list[int] = []
    threads = [threading.Thread(target=lambda n=n: slow.append(ep.post(client=f"203.0.113.{n}").status_code))
               for n in range(2)]
    for t in threads:
        t.start()
    for _ in range(3000):  # bounded: a guard against hanging, not a timing claim
        if ep.app.limits.store.in_flight() >= 2:
            break
        time.sleep(0.01)
    answer = ep.post(client="198.51.100.1")
    body = error(answer, 429, "busy", "Many readers are starting workspaces right now.")
    assert body["retry_after"] == 1 and answer.headers["Retry-After"] == "1"
    for t in threads:
        t.join()
    assert slow == [200, 200]
    emulator.set_faults(latency=0)
    assert ep.post(client="198.51.100.1").status_code == 200  # the budget still had its third
    error(ep.post(client="198.51.100.2"), 429, "budget_exhausted")


def test_per_client_request_rate(endpoint_factory: Any) -> None:
    ep = endpoint_factory(requests="2/60")
    assert ep.post(reader(project=SECOND), client="203.0.113.7").status_code == 403
    assert ep.post(client="203.0.113.7").status_code == 200
    body = error(ep.post(client="203.0.113.7"), 429, "too_many_requests")
    assert 50 <= body["retry_after"] <= 60


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(endpoint_factory: Any) -> None:
    ep = endpoint_factory(rate="1/600", trust_proxy=0)
    assert ep.post(client="203.0.113.1").status_code == 200
    error(ep.post(client="203.0.113.2"), 429, "rate_limited")  # same socket address: same client


# ------------------------------------------------------------------ reuse claims


def test_reuse_with_a_valid_claim(endpoint: Endpoint, emulator: Any) -> None:
    first = endpoint.post(client="203.0.113.7").json()
    emulator.reset_stats()
    again = endpoint.post(reader(claim=first["claim"]), client="198.51.100.1")
    assert again.status_code == 200
    body = again.json()
    assert body["workspace_id"] == first["workspace_id"]
    assert body["workspace_token"] == first["workspace_token"]
    assert body["reused"] is True
    assert body["claim"].startswith(f"v1.{first['workspace_id']}.")
    assert emulator.count("POST /workspaces") == 0
    assert emulator.count("GET /workspaces/{id}") == 1


def test_reuse_resumes_a_stopped_workspace_without_auto_resume(endpoint_factory: Any, emulator: Any,
                                                                access_token: str) -> None:
    ep = endpoint_factory(create_options=json.dumps({"*": {"auto-resume": "false",
                                                           "retention-stopped": "60"}}))
    first = ep.post().json()
    with ContainersClient(emulator.url + "/api/v1", access_token, retries=0) as client:
        client.stop(first["workspace_id"])
    assert emulator.app.workspace(first["workspace_id"])["state"]["name"] == "stopped"
    body = ep.post(reader(claim=first["claim"])).json()
    assert (body["workspace_id"], body["reused"]) == (first["workspace_id"], True)
    assert emulator.count("PUT /workspaces/{id}/resume") == 1
    assert emulator.app.workspace(first["workspace_id"])["state"]["name"] == "running"


def test_a_removed_workspace_is_replaced(endpoint: Endpoint, emulator: Any, access_token: str) -> None:
    first = endpoint.post().json()
    with ContainersClient(emulator.url + "/api/v1", access_token, retries=0) as client:
        client.remove(first["workspace_id"])
    body = endpoint.post(reader(claim=first["claim"])).json()
    assert body["workspace_id"] != first["workspace_id"]
    assert body["reused"] is False
    assert emulator.count("POST /workspaces") == 2


def test_forged_and_foreign_claims_are_rejected(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(allow_projects=[PROJECT, SECOND])
    claim = ep.post().json()["claim"]
    version, wid, expiry, mac = claim.split(".")
    other_wid = "f" * 32
    forged = [
        f"{version}.{other_wid}.{expiry}.{mac}",  # someone else's workspace id
        f"{version}.{wid}.{int(expiry) + 3600}.{mac}",  # a longer life
        f"{version}.{wid}.{expiry}.{mac[:-2]}AA",  # a guessed signature
        "v2." + claim[3:],
        "not a claim",
    ]
    emulator.reset_stats()
    for bad in forged:
        error(ep.post(reader(claim=bad)), 403, "claim_invalid")
    # a genuine claim, presented for another project, page or embed
    error(ep.post(reader(project=SECOND, claim=claim)), 403, "claim_invalid")
    error(ep.post(reader(page="lessons/other.md", claim=claim)), 403, "claim_invalid")
    error(ep.post(reader(name="ws-other-1", claim=claim)), 403, "claim_invalid")
    # a claim signed by an endpoint with another key
    stranger = create_app({"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
                           "secret": "another-key-0123456789abcdef"})
    error(ep.post(reader(claim=stranger.signer.issue(wid, PROJECT, PAGE, NAME))), 403, "claim_invalid")
    assert emulator.stats()["total_requests"] == 0  # nothing reached the API


def test_expired_claim_is_rejected(endpoint: Endpoint, emulator: Any) -> None:
    first = endpoint.post().json()
    old = endpoint.app.signer.issue(first["workspace_id"], PROJECT, PAGE, NAME, now=time.time() - 90000)
    error(endpoint.post(reader(claim=old)), 403, "claim_expired")
    assert emulator.count("POST /workspaces") == 1


def test_without_a_secret_claims_do_not_survive_the_process(emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "sphere_docs.endpoint")
    values = {"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN]}
    one, two = create_app(values), create_app(values)
    assert "SPHERE_ENDPOINT_SECRET is not set" in caplog.text
    claim = one.signer.issue("a" * 32, PROJECT, PAGE, NAME)
    assert one.signer.verify(claim, PROJECT, PAGE, NAME) == "a" * 32
    with pytest.raises(ValueError, match="not valid"):
        two.signer.verify(claim, PROJECT, PAGE, NAME)
    assert repr(one.signer) == "Signer(ttl=86400)"


# ------------------------------------------------------------------ malformed requests


def test_malformed_and_oversized_bodies(endpoint: Endpoint, emulator: Any) -> None:
    json_headers = {"Content-Type": "application/json"}
    error(endpoint.request("POST", data=b"{", headers=json_headers), 400, "malformed_json",
          "The request body is not valid JSON.")
    error(endpoint.request("POST", data=b"\xff\xfe", headers=json_headers), 400, "malformed_json",
          "The request body is not valid JSON.")
    error(endpoint.request("POST", data=b"[1, 2]", headers=json_headers), 400, "malformed_json",
          "The request body must be a JSON object.")
    big = json.dumps({**reader(), "padding": "x" * 5000})
    error(endpoint.request("POST", data=big, headers=json_headers), 413, "body_too_large",
          "The request body is larger than 4096 bytes.")
    error(endpoint.request("POST", data=json.dumps(reader()), headers={"Content-Type": "text/plain"}),
          415, "unsupported_media_type", "Send the request as application/json.")
    chunked = endpoint.request("POST", data=iter([json.dumps(reader()).encode()]), headers=json_headers)
    error(chunked, 411, "length_required", "The request needs a Content-Length header.")
    cases = {
        "project_id": [reader(project="xyz"), {"page": PAGE, "name": NAME}, reader(project=12)],  # type: ignore[arg-type]
        "page": [reader(page=""), reader(page="a\nb"), reader(page="p" * 513)],
        "name": [reader(name="1abc"), reader(name="a b"), reader(name="<script>")],
        "claim": [reader(claim="c" * 201), {**reader(), "claim": 5}],
    }
    valid = {
        "project_id": "32 hexadecimal characters",
        "page": "a page path of 1 to 512 characters",
        "name": "an embed name (letters, digits, - and _)",
        "claim": "a claim issued by this service",
    }
    for name, bodies in cases.items():
        for body in bodies:
            got = error(endpoint.post(body), 400, "invalid_field", f"{name}: expected {valid[name]}.")
            assert got["field"] == name
    assert emulator.count("POST /workspaces") == 0


def test_unknown_paths_and_methods(endpoint: Endpoint) -> None:
    error(endpoint.request("GET", "/nope"), 404, "not_found", "There is nothing here; POST to /workspaces.")
    answer = endpoint.request("GET", "/workspaces")
    error(answer, 405, "method_not_allowed", "Use POST.")
    assert answer.headers["Allow"] == "POST, OPTIONS"
    error(endpoint.request("DELETE", "/healthz"), 405, "method_not_allowed", "Use GET.")


# ------------------------------------------------------------------ upstream failures


def test_upstream_503_becomes_503(endpoint: Endpoint, emulator: Any) -> None:
    emulator.set_faults(sequence=[503], routes=["POST /workspaces"])
    error(endpoint.post(), 503, "upstream_unavailable")
    # nothing was created, so the reader's allowance was given back; the next try works
    assert endpoint.post().status_code == 200


def test_upstream_503_is_retried_when_configured(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(retries=1)
    emulator.set_faults(sequence=[503], retry_after=0, routes=["POST /workspaces"])
    assert ep.post().status_code == 200
    assert emulator.count("POST /workspaces") == 2


def test_upstream_429_passes_its_wait_on(endpoint: Endpoint, emulator: Any) -> None:
    emulator.set_faults(sequence=[429], retry_after=42, routes=["POST /workspaces"])
    answer = endpoint.post()
    body = error(answer, 429, "upstream_rate_limited")
    assert body["retry_after"] == 42
    assert answer.headers["Retry-After"] == "42"


def test_upstream_timeout_becomes_503(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(timeout=0.3)
    emulator.set_faults(sequence=["hang"], hang=3, routes=["POST /workspaces"])
    error(ep.post(), 503, "upstream_timeout")


def test_upstream_timeout_on_reuse_becomes_503(endpoint_factory: Any, emulator: Any) -> None:
    ep = endpoint_factory(timeout=0.3)
    claim = ep.post().json()["claim"]
    emulator.set_faults(sequence=["hang"], hang=3, routes=["GET /workspaces/{id}"])
    error(ep.post(reader(claim=claim)), 503, "upstream_timeout")


def test_upstream_5xx_and_malformed(endpoint: Endpoint, emulator: Any) -> None:
    emulator.set_faults(sequence=[500, 502, "malformed"], routes=["POST /workspaces"])
    error(endpoint.post(), 502, "upstream_error")
    error(endpoint.post(), 502, "upstream_error")
    error(endpoint.post(), 502, "upstream_error", MESSAGES["upstream_malformed"])


def test_upstream_down_and_refused_token(emulator: Any, endpoint_factory: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token-0000")
    wrong = endpoint_factory(token_env="WRONG_TOKEN")
    error(wrong.post(), 502, "upstream_error")
    ep = endpoint_factory()
    emulator.stop()
    error(ep.post(), 503, "upstream_unavailable", MESSAGES["upstream_unreachable"])


# ------------------------------------------------------------------ health


def test_healthz(endpoint: Endpoint, emulator: Any) -> None:
    healthy = {"status": "ok", "storage": "memory", "limits": "per process"}
    answer = endpoint.request("GET", "/healthz", origin=None)
    assert (answer.status_code, answer.json()) == (200, healthy)
    answer = endpoint.request("GET", "/healthz?upstream=1", origin=None)
    assert (answer.status_code, answer.json()) == (200, healthy)
    emulator.set_faults(sequence=[503])
    answer = endpoint.request("GET", "/healthz?upstream=1", origin=None)
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "code": "upstream_unavailable",
                             "message": MESSAGES["upstream_unavailable"], "storage": "memory",
                             "limits": "per process"}


# ------------------------------------------------------------------ WSGI compliance


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgi_validator(emulator: Any) -> None:
    """The app under ``wsgiref.validate`` on wsgiref's own server: any violation raises."""
    app = create_app({"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
                      "secret": SECRET, "rate": "1/600"})
    server = wsgiref_server("127.0.0.1", 0, validator(app), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with requests.Session() as s:
            h = {"Origin": ORIGIN}
            created = s.post(base + "/workspaces", json=reader(), headers=h, timeout=30)
            assert created.status_code == 200
            reused = s.post(base + "/workspaces", json=reader(claim=created.json()["claim"]), headers=h, timeout=30)
            assert reused.json()["reused"] is True
            assert s.options(base + "/workspaces", headers=h, timeout=30).status_code == 204
            assert s.post(base + "/workspaces", json=reader(), headers=h, timeout=30).status_code == 429
            assert s.post(base + "/workspaces", data="{", headers={**h, "Content-Type": "application/json"},
                          timeout=30).status_code == 400
            assert s.get(base + "/healthz", timeout=30).status_code == 200
            assert s.head(base + "/healthz", timeout=30).status_code == 200
            assert s.get(base + "/x", timeout=30).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def test_internal_errors_are_json_without_details(emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Any:
        raise RuntimeError("boom in the client factory")

    app = create_app({"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
                      "secret": SECRET}, client_factory=broken)
    with serve(app) as url:
        answer = requests.post(url + "/workspaces", json=reader(), headers={"Origin": ORIGIN}, timeout=30)
    error(answer, 500, "internal_error", "The workspace service failed unexpectedly.")
    assert "boom" not in answer.text
    assert "boom in the client factory" in caplog.text  # the operator sees it in the log


# ------------------------------------------------------------------ configuration


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SPHERE_ENDPOINT_API": "http://127.0.0.1:9",
        "SPHERE_ENDPOINT_ALLOW_PROJECTS": f"{PROJECT}, {SECOND.upper()}",
        "SPHERE_ENDPOINT_ALLOW_ORIGINS": "https://Docs.Example.org/ http://127.0.0.1:8000",
        "SPHERE_ENDPOINT_RATE": "3/10m",
        "SPHERE_ENDPOINT_BUDGET": "100/1h",
        "WEB_CONCURRENCY": "4",
        "SPHERE_ENDPOINT_SECRET": SECRET,
    }
    config = EndpointConfig.from_env(env)
    assert config.allow_projects == (PROJECT, SECOND)
    assert config.allow_origins == ("https://docs.example.org", "http://127.0.0.1:8000")
    assert (config.rate.limit, config.rate.seconds) == (3, 600)
    assert (config.budget.limit, config.budget.seconds) == (100, 3600)  # WEB_CONCURRENCY splits nothing
    assert (config.storage, config.storage_failure, config.inflight, config.metrics) == (
        "memory://", "closed", 50, False)
    assert config.sdk_base == "127.0.0.1:9"
    assert SECRET not in repr(config) and SECRET not in json.dumps(config.describe())
    assert EndpointConfig.from_env(env, inflight=3).inflight == 3
    redis_env = {**env, "SPHERE_ENDPOINT_STORAGE": "redis://:pw-not-shown@10.0.0.5:6379/2",
                 "SPHERE_ENDPOINT_STORAGE_FAILURE": "open", "SPHERE_ENDPOINT_METRICS": "1"}
    config = EndpointConfig.from_env(redis_env)
    assert (config.storage_failure, config.metrics) == ("open", True)
    assert config.describe()["storage"] == "redis://:***@10.0.0.5:6379/2"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "sphere-docs endpoint: missing setting SPHERE_ENDPOINT_API; expected the Containers API "
         "endpoint, e.g. 12345678.containers.sphere-engine.com or http://127.0.0.1:8123"),
    ({"SPHERE_ENDPOINT_ALLOW_PROJECTS": "abc"},
     "sphere-docs endpoint: invalid value 'abc' for SPHERE_ENDPOINT_ALLOW_PROJECTS; "
     "expected project ids of 32 hexadecimal characters"),
    ({"SPHERE_ENDPOINT_ALLOW_ORIGINS": "docs.example.org"},
     "sphere-docs endpoint: invalid value 'docs.example.org' for SPHERE_ENDPOINT_ALLOW_ORIGINS; "
     "expected origins such as https://docs.example.org or http://127.0.0.1:8000"),
    ({"SPHERE_ENDPOINT_RATE": "fast"},
     "sphere-docs endpoint: invalid value 'fast' for SPHERE_ENDPOINT_RATE; expected "
     "COUNT/SECONDS such as 5/600, 5/10m or 200/1h (both at least 1)"),
    ({"SPHERE_ENDPOINT_STORAGE": "redis//localhost"},
     "sphere-docs endpoint: invalid value 'redis//localhost' for SPHERE_ENDPOINT_STORAGE; expected "
     "memory:// or a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)"),
    ({"SPHERE_ENDPOINT_STORAGE_FAILURE": "maybe"},
     "sphere-docs endpoint: invalid value 'maybe' for SPHERE_ENDPOINT_STORAGE_FAILURE; expected closed or open"),
    ({"SPHERE_ENDPOINT_INFLIGHT": "0"},
     "sphere-docs endpoint: invalid value 0 for SPHERE_ENDPOINT_INFLIGHT; expected a whole number from 1 to 100000"),
    ({"SPHERE_ENDPOINT_CREATE_OPTIONS": '{"*": {"height": "3px"}}'},
     "sphere-docs endpoint: unknown option 'height' for SPHERE_ENDPOINT_CREATE_OPTIONS; expected "
     "options among: token-required, inactivity-timeout, retention-stopped, retention-total, auto-resume"),
    ({"SPHERE_ENDPOINT_CREATE_OPTIONS": '{"*": {"inactivity-timeout": "soon"}}'},
     "sphere-docs endpoint: invalid 'inactivity-timeout' value 'soon' for SPHERE_ENDPOINT_CREATE_OPTIONS; expected a whole number of minutes between 0 and 525600"),
])
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    base = {"SPHERE_ENDPOINT_API": "http://127.0.0.1:9", "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
            "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN}
    merged = {**base, **env} if env else {}
    with pytest.raises(SettingsError) as info:
        EndpointConfig.from_env(merged)
    assert str(info.value) == message


def test_missing_token_and_bad_manifest_fail_at_startup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPHERE_ENGINE_ACCESS_TOKEN", raising=False)
    values = {"api": "http://127.0.0.1:9", "allow_projects": [PROJECT], "allow_origins": [ORIGIN]}
    with pytest.raises(SettingsError, match=r"^sphere-docs endpoint: no access token: set the environment "
                                            r"variable SPHERE_ENGINE_ACCESS_TOKEN"):
        create_app(values)
    monkeypatch.setenv("SPHERE_ENGINE_ACCESS_TOKEN", SECRET_TOKEN)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(SettingsError, match="for SPHERE_ENDPOINT_MANIFEST;"):
        create_app({**values, "manifest": str(tmp_path / "m.json")})


def test_cli_serves_and_prints_its_url(emulator: Any, access_token: str) -> None:
    env = {**os.environ, "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN, "SPHERE_ENDPOINT_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphere_docs", "endpoint", "--api", emulator.url,
         "--allow-project", PROJECT, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert proc.stdout.readline().strip() == f"lazy_endpoint: {url}/workspaces"
        answer = requests.post(url + "/workspaces", json=reader(), headers={"Origin": ORIGIN}, timeout=30)
        assert answer.status_code == 200
        assert_no_leak([answer.text, json.dumps(dict(answer.headers))])
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert_no_leak([err])
    assert "created workspace" in err


def test_cli_reports_a_bad_setting(access_token: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENDPOINT_")}
    done = subprocess.run([sys.executable, "-m", "sphere_docs", "endpoint", "--allow-project", PROJECT,
                           "--allow-origin", ORIGIN], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "sphere-docs endpoint: missing setting SPHERE_ENDPOINT_API; expected the "
        "Containers API endpoint, e.g. 12345678.containers.sphere-engine.com or http://127.0.0.1:8123"
    )


# ------------------------------------------------------------------ gunicorn


GUNICORN_CONF = Path(__file__).resolve().parent.parent / "sphere_docs" / "services" / "endpoint" / "gunicorn.conf.py"


@pytest.mark.parametrize("workers", [["-w", "4"], []])
def test_gunicorn_refuses_several_workers_counting_in_memory(emulator: Any, access_token: str,
                                                             workers: list[str]) -> None:
    """memory:// limits live in one process: the sample config refuses more workers, whether asked
    for by SPHERE_ENDPOINT_WORKERS or by gunicorn's own -w (which overrides the config file).
    Several workers share their limits through Redis: tests/test_endpoint_redis.py."""
    env = {**os.environ, "SPHERE_ENDPOINT_API": emulator.url, "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
           "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN, "SPHERE_ENDPOINT_SECRET": SECRET,
           "SPHERE_ENDPOINT_BIND": "127.0.0.1:0", "SPHERE_ENDPOINT_WORKERS": "1" if workers else "2"}
    env.pop("SPHERE_ENDPOINT_STORAGE", None)
    done = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), *workers,
                           "sphere_docs.endpoint:create_app()"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode != 0
    count = 4 if workers else 2
    assert (f"sphere-docs endpoint: {count} workers with SPHERE_ENDPOINT_STORAGE=memory:// would each count "
            f"the rate limits and the creation budget on their own ({count} x the budget)") in done.stderr
    assert_no_leak([done.stdout, done.stderr])


# ------------------------------------------------------------------ JSON it cannot decode

TOO_DEEP = "The request body is nested too deeply."
NOT_AN_OBJECT = "The request body must be a JSON object."


def _malformed(answer: requests.Response, *messages: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == "malformed_json" and body["message"] in messages, body


@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
@pytest.mark.parametrize("shape", ["[", '{"a":'])
def test_deeply_nested_json_is_malformed_json_not_a_crash(endpoint_factory: Any, emulator: Any,
                                                          caplog: pytest.LogCaptureFixture,
                                                          depth: int, shape: str) -> None:
    """JSON nested deeper than the parser goes is a 400 ``malformed_json``, and nothing is logged
    as an error (how deep the parser goes depends on the Python version: past it, "too deeply")."""
    endpoint = endpoint_factory(max_body=1 << 20)
    close = "]" if shape == "[" else "}"
    body = (shape * depth + "1" + close * depth).encode()
    answer = endpoint.request("POST", data=body, headers={"Content-Type": "application/json"})
    try:  # this Python's own parser: 3.11 stops near 1000 deep, 3.12+ goes thousands deep
        json.loads(body)
        parses = True
    except RecursionError:
        parses = False
    if depth > 1000 and not parses:
        _malformed(answer, TOO_DEEP)
    elif shape == "[":
        _malformed(answer, TOO_DEEP, NOT_AN_OBJECT)
    else:  # an object the parser reads: too deep, or judged on its (missing) fields like any other
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] in ("malformed_json", "invalid_field"), answer.text
        if answer.json()["code"] == "malformed_json":
            _malformed(answer, TOO_DEEP)
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert emulator.count("POST /workspaces") == 0
    # nested, but within what the parser handles: still a 400, never a 500
    shallow = ("[" * 50 + "1" + "]" * 50).encode()
    _malformed(endpoint.request("POST", data=shallow, headers={"Content-Type": "application/json"}),
               NOT_AN_OBJECT)
    nested_field = json.dumps({**reader(), "page": json.loads("[" * 50 + "]" * 50)})
    error(endpoint.request("POST", data=nested_field, headers={"Content-Type": "application/json"}),
          400, "invalid_field", "page: expected a page path of 1 to 512 characters.")


def test_the_issues_1000_deep_array_within_the_default_body_limit(endpoint: Endpoint) -> None:
    """The issue's case with the default ``max_body`` (4096 B): 2000 bytes, 1000 deep."""
    body = b"[" * 1000 + b"]" * 1000
    answer = endpoint.request("POST", data=body, headers={"Content-Type": "application/json"})
    _malformed(answer, TOO_DEEP, NOT_AN_OBJECT)


def test_the_emulator_answers_undecodable_json_with_the_api_error_envelope(emulator: Any,
                                                                           access_token: str) -> None:
    """The emulator's JSON bodies (create, faults, reset): 400 / error_code 10, never a crash page."""
    headers = {"Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    for path, params in (("/api/v1/workspaces", {"access_token": access_token}),
                         ("/_emulator/faults", {}), ("/_emulator/reset", {})):
        for body in (deep, b'{"project_id": ' + b"[" * 5000, b"\xff\xfe", b"{"):
            answer = requests.post(emulator.url + path, params=params, data=body, headers=headers, timeout=30)
            if path == "/_emulator/reset":  # reset ignores a body it cannot read
                assert answer.status_code == 200, answer.text
                continue
            assert answer.status_code == 400, (path, body[:20], answer.text[:200])
            assert answer.headers["Content-Type"] == "application/json"
            assert answer.json()["error_code"] == 10
    assert emulator.stats()["workspaces"]["total"] == 0


# ------------------------------------------------------------------ claim key rotation

NEW_KEY = "new-signing-key-fedcba9876543210"


def test_claim_keys_rotate_without_logging_readers_out(endpoint_factory: Any, emulator: Any) -> None:
    """SPHERE_ENDPOINT_SECRET="new,old": the first signs, every key verifies; a claim signed only
    by a key that was dropped no longer verifies."""
    old = endpoint_factory()
    first = old.post(client="203.0.113.1").json()
    rotated = endpoint_factory(secret=f"{NEW_KEY}, {SECRET}")
    again = rotated.post(reader(claim=first["claim"]), client="203.0.113.1").json()
    assert (again["reused"], again["workspace_id"]) == (True, first["workspace_id"])
    assert again["claim"] != first["claim"]  # re-issued under the new key
    only_new = endpoint_factory(secret=NEW_KEY)
    assert only_new.post(reader(claim=again["claim"]), client="203.0.113.1").json()["reused"] is True
    error(only_new.post(reader(claim=first["claim"]), client="203.0.113.1"), 403, "claim_invalid")
    with pytest.raises(SettingsError, match="at least 16 characters"):
        create_app({"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
                    "secret": f"{NEW_KEY},short"})


def test_claims_issued_before_itsdangerous_still_verify() -> None:
    """The claim format is unchanged: an HMAC-SHA256 made by hand, as the endpoint did before."""
    import base64
    import hashlib
    import hmac

    from sphere_docs.services.endpoint import Signer

    expiry = int(time.time()) + 600
    message = "\n".join(("v1", "a" * 32, PROJECT, PAGE, NAME, str(expiry))).encode()
    mac = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).rstrip(b"=")
    claim = f"v1.{'a' * 32}.{expiry}.{mac.decode()}"
    signer = Signer([NEW_KEY.encode(), SECRET.encode()], 86400)
    assert signer.verify(claim, PROJECT, PAGE, NAME) == "a" * 32
    assert Signer(SECRET.encode(), 600).issue("a" * 32, PROJECT, PAGE, NAME, now=expiry - 600) == claim
