"""The emulator as a real HTTP server on a loopback port, driven with plain ``requests``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
import requests

from sphere_docs.services.emulator import (
    DEMO_PROJECT_ID,
    DEMO_PROJECTS,
    EmulatorServer,
    ManualClock,
    create_app,
)

TOKEN = "emulator-test-token"
OTHER_PROJECT = next(pid for pid in DEMO_PROJECTS if pid != DEMO_PROJECT_ID)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+0000$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# The complete create response of the reference, §2.3a (the vendor's embed tutorial).
REFERENCE_CREATE = {
    "message": "Workspace has been created",
    "workspace": {
        "id": "48dba362e85e4aebac3dc8e6b0677ff7",
        "project": {"id": "eef024c1d14f46319517a65edafb5ee3", "name": "EXAMPLE"},
        "created_at": "2021-01-01 10:20:37 +0000",
        "terminated_at": None,
        "last_usage": None,
        "inactivity_timeout": 15,
        "workspace_token": "73543c2d-3476-46ee-a49c-227f59181961",
        "workspace_token_required": True,
        "state": {"code": 1, "name": "starting", "error_reason": None},
        "auto_resume": True,
        "workspace_init_failed": False,
        "streams": {"workspace_init_output": None, "workspace_init_error": None},
        "retention_time_stopped": 0,
        "retention_time_total": 0,
        "permissions": {"enter": True, "remove": False, "stop": False},
        "config": "{content of the configuration}",
        "workspace_url": "https://<endpoint>/workspace/48dba362e85e4aebac3dc8e6b0677ff7",
    },
}


def shape(value: Any) -> Any:
    """Field names and JSON value types, recursively."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[EmulatorServer]:
    with EmulatorServer(token=TOKEN, start_delay=5.0, clock=clock) as srv:
        yield srv


class Api:
    """A tiny helper around ``requests`` for this file: query-parameter auth, JSON answers."""

    def __init__(self, server: EmulatorServer):
        self.base = server.url + "/api/v1"
        self.session = requests.Session()

    def call(self, method: str, path: str, *, token: str | None = TOKEN, params: Any = None,
             **kw: Any) -> requests.Response:
        query: list[tuple[str, str]] = list(params.items() if isinstance(params, dict)
                                            else params or [])
        if token is not None:
            query.append(("access_token", token))
        return self.session.request(method, self.base + path, params=query, timeout=10, **kw)

    def create(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("project_id", DEMO_PROJECT_ID)
        response = self.call("POST", "/workspaces", data=fields)
        assert response.status_code == 201, response.text
        return response.json()["workspace"]

    def get(self, wid: str) -> dict[str, Any]:
        response = self.call("GET", f"/workspaces/{wid}")
        assert response.status_code == 200, response.text
        return response.json()

    def state(self, wid: str) -> str:
        return self.get(wid)["state"]["name"]


@pytest.fixture
def api(server: EmulatorServer) -> Api:
    return Api(server)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """An exception, its causes/contexts and the exceptions among its args, recursively."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__, *current.args)
                 if isinstance(e, BaseException)]


def assert_error(response: requests.Response, status: int, error_code: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]


# --------------------------------------------------------------------------- envelopes


def test_create_response_has_exactly_the_reference_fields_and_types(api: Api, server: EmulatorServer):
    response = api.call("POST", "/workspaces", data={"project_id": DEMO_PROJECT_ID})
    assert response.status_code == 201
    body = response.json()
    assert shape(body) == shape(REFERENCE_CREATE)
    assert list(body["workspace"]) == list(REFERENCE_CREATE["workspace"])  # same order too
    ws = body["workspace"]
    assert body["message"] == "Workspace has been created"
    assert HEX32.match(ws["id"]) and UUID_RE.match(ws["workspace_token"])
    assert ws["project"] == {"id": DEMO_PROJECT_ID, "name": "EXAMPLE"}
    assert TS_RE.match(ws["created_at"])
    assert ws["state"] == {"code": 1, "name": "starting", "error_reason": None}
    assert (ws["workspace_token_required"], ws["auto_resume"], ws["inactivity_timeout"]) == (True, True, 15)
    assert (ws["retention_time_stopped"], ws["retention_time_total"]) == (0, 0)
    assert isinstance(json.loads(ws["config"]), dict)
    assert ws["workspace_url"] == f"{server.url}/workspace/{ws['id']}"
    # GET answers the bare object, same fields
    assert shape(api.get(ws["id"])) == shape(REFERENCE_CREATE["workspace"])


def test_test_endpoint_and_projects(api: Api):
    assert api.call("GET", "/test").json() == {"message": "You can use Sphere Engine Containers API"}
    body = api.call("GET", "/projects").json()
    assert body["items"] == [{"id": pid, "name": name} for pid, name in DEMO_PROJECTS.items()]
    assert body["paging"] == {"next_page_token": None}
    first = api.call("GET", "/projects", params={"limit": 1}).json()
    assert first["items"][0]["id"] == DEMO_PROJECT_ID and first["paging"]["next_page_token"]
    second = api.call("GET", "/projects", params={"limit": 1,
                                                  "page_token": first["paging"]["next_page_token"]})
    assert second.json()["items"] == [{"id": OTHER_PROJECT, "name": DEMO_PROJECTS[OTHER_PROJECT]}]


def test_configurable_projects():
    projects = {"0123456789abcdef0123456789abcdef": "MINE"}
    with EmulatorServer(token=TOKEN, projects=projects) as srv:
        api = Api(srv)
        assert api.call("GET", "/projects").json()["items"] == [
            {"id": "0123456789abcdef0123456789abcdef", "name": "MINE"}]
        assert_error(api.call("POST", "/workspaces", data={"project_id": DEMO_PROJECT_ID}), 404, 21)
        assert api.create(project_id="0123456789abcdef0123456789abcdef")["project"]["name"] == "MINE"
    with pytest.raises(ValueError, match="32 lower-case hex"):
        create_app(projects={"nope": "BAD"})


# --------------------------------------------------------------------------- auth


def test_both_auth_forms_and_401(api: Api, server: EmulatorServer):
    url = server.url + "/api/v1/test"
    assert requests.get(url, params={"access_token": TOKEN}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 200
    assert_error(requests.get(url, timeout=10), 401, 1)
    assert_error(requests.get(url, params={"access_token": "wrong"}, timeout=10), 401, 1)
    assert_error(requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10), 401, 1)
    # every API route is protected
    for method, path in [("GET", "/workspaces"), ("POST", "/workspaces"), ("GET", "/projects"),
                         ("GET", f"/workspaces/{'a' * 32}"), ("PUT", f"/workspaces/{'a' * 32}/stop")]:
        assert_error(api.call(method, path, token=None), 401, 1)


def test_no_configured_token_accepts_any_non_empty_token():
    with EmulatorServer() as srv:
        url = srv.url + "/api/v1/test"
        assert requests.get(url, params={"access_token": "anything"}, timeout=10).status_code == 200
        assert_error(requests.get(url, params={"access_token": ""}, timeout=10), 401, 1)


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("encoding", ["form", "multipart", "json"])
def test_create_accepts_three_body_encodings(api: Api, encoding: str):
    fields = {"project_id": OTHER_PROJECT, "workspace_token_required": "false",
              "auto_resume": "false", "inactivity_timeout": "20",
              "retention_time_stopped": "2880", "retention_time_total": "10080"}
    if encoding == "form":
        response = api.call("POST", "/workspaces", data=fields)
        assert response.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    elif encoding == "multipart":
        response = api.call("POST", "/workspaces", files={k: (None, v) for k, v in fields.items()})
        assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    else:
        typed = {"project_id": OTHER_PROJECT, "workspace_token_required": False, "auto_resume": False,
                 "inactivity_timeout": 20, "retention_time_stopped": 2880, "retention_time_total": 10080}
        response = api.call("POST", "/workspaces", json=typed)
    assert response.status_code == 201, response.text
    ws = response.json()["workspace"]
    assert ws["project"]["id"] == OTHER_PROJECT
    assert (ws["workspace_token_required"], ws["auto_resume"], ws["inactivity_timeout"]) == (False, False, 20)
    assert (ws["retention_time_stopped"], ws["retention_time_total"]) == (2880, 10080)


def test_json_nulls_mean_defaults_and_old_spellings_are_accepted(api: Api):
    response = api.call("POST", "/workspaces", json={
        "project_id": DEMO_PROJECT_ID, "workspace_token_required": None, "inactivity_timeout": None,
        "max_inactivity_storage_time": 30, "max_storage_time": 600})
    ws = response.json()["workspace"]
    assert (ws["workspace_token_required"], ws["inactivity_timeout"]) == (True, 15)
    assert (ws["retention_time_stopped"], ws["retention_time_total"]) == (30, 600)
    other = api.create(max_inactive_storage_time="45")
    assert other["retention_time_stopped"] == 45


@pytest.mark.parametrize("fields", [
    {},
    {"project_id": ""},
    {"project_id": DEMO_PROJECT_ID, "workspace_token_required": "maybe"},
    {"project_id": DEMO_PROJECT_ID, "inactivity_timeout": "-1"},
    {"project_id": DEMO_PROJECT_ID, "retention_time_total": "ten"},
])
def test_invalid_create_data_is_400_10(api: Api, fields: dict[str, str]):
    assert_error(api.call("POST", "/workspaces", data=fields), 400, 10)


def test_malformed_json_body_is_400_10(api: Api):
    bad = api.call("POST", "/workspaces", data=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert_error(bad, 400, 10)
    assert_error(api.call("POST", "/workspaces", json=[DEMO_PROJECT_ID]), 400, 10)


# --------------------------------------------------------------------------- errors


def test_error_envelopes(api: Api, server: EmulatorServer):
    assert_error(api.call("GET", f"/workspaces/{'0' * 32}"), 404, 20)
    assert_error(api.call("GET", "/workspaces/not-an-id"), 404, 20)
    for action in ("stop", "resume", "remove"):
        assert_error(api.call("PUT", f"/workspaces/{'0' * 32}/{action}"), 404, 20)
    assert_error(api.call("POST", "/workspaces", data={"project_id": "f" * 32}), 404, 21)
    assert_error(api.call("GET", "/nothing-here"), 404, 0)
    assert_error(api.call("DELETE", f"/workspaces/{'0' * 32}"), 405, 0)


# --------------------------------------------------------------------------- state machine


def test_start_delay_on_the_injected_clock(api: Api, clock: ManualClock):
    ws = api.create()
    assert ws["state"]["code"] == 1
    clock.advance(4.9)
    assert api.get(ws["id"])["state"] == {"code": 1, "name": "starting", "error_reason": None}
    clock.advance(0.1)
    assert api.get(ws["id"])["state"] == {"code": 2, "name": "running", "error_reason": None}


def test_stop_resume_remove_and_idempotent_calls(api: Api, clock: ManualClock):
    wid = api.create()["id"]
    clock.advance(5)
    stop = api.call("PUT", f"/workspaces/{wid}/stop")
    assert stop.status_code == 200 and stop.json()["workspace"]["state"]["name"] == "stopped"
    assert stop.json()["message"] == "Workspace has been stopped"
    assert api.call("PUT", f"/workspaces/{wid}/stop").json()["message"] == "Workspace is already stopped"
    resumed = api.call("PUT", f"/workspaces/{wid}/resume").json()
    assert resumed["workspace"]["state"]["name"] == "starting"  # resume goes through starting
    assert api.call("PUT", f"/workspaces/{wid}/resume").json()["message"] == "Workspace is already running"
    clock.advance(5)
    assert api.state(wid) == "running"
    removed = api.call("PUT", f"/workspaces/{wid}/remove").json()["workspace"]
    assert removed["state"] == {"code": 4, "name": "removed", "error_reason": None}
    assert TS_RE.match(removed["terminated_at"])
    again = api.call("PUT", f"/workspaces/{wid}/remove")
    assert again.status_code == 200 and again.json()["message"] == "Workspace has already been removed"
    assert_error(api.call("PUT", f"/workspaces/{wid}/resume"), 400, 30)
    assert_error(api.call("PUT", f"/workspaces/{wid}/stop"), 400, 30)
    assert api.state(wid) == "removed"  # still readable


def test_inactivity_stops_when_stop_resume_enabled_then_retention_removes(api: Api, clock: ManualClock):
    wid = api.create(inactivity_timeout=10, retention_time_stopped=60)["id"]
    clock.advance(5)  # running from here
    clock.advance(minutes=10, seconds=-0.5)
    assert api.state(wid) == "running"
    clock.advance(0.5)
    ws = api.get(wid)
    assert ws["state"]["name"] == "stopped" and ws["terminated_at"] is None
    clock.advance(minutes=60)
    ws = api.get(wid)
    assert ws["state"]["name"] == "removed" and TS_RE.match(ws["terminated_at"])


def test_inactivity_removes_without_stop_resume(api: Api, clock: ManualClock):
    wid = api.create(inactivity_timeout=1)["id"]
    clock.advance(5 + 60)
    ws = api.get(wid)
    assert ws["state"]["name"] == "removed"
    # transitions happen at their due time, not when observed
    assert ws["terminated_at"] == time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(clock()))


def test_retention_total_removes_even_an_active_workspace(api: Api, clock: ManualClock, server: EmulatorServer):
    ws = api.create(inactivity_timeout=0, retention_time_total=30)
    clock.advance(minutes=29)
    assert api.state(ws["id"]) == "running"
    clock.advance(minutes=1)
    assert api.state(ws["id"]) == "removed"


def test_visiting_the_workspace_is_activity_and_auto_resumes(api: Api, clock: ManualClock,
                                                             server: EmulatorServer):
    ws = api.create(inactivity_timeout=10, retention_time_stopped=60)
    page = f"{server.url}/workspace/{ws['id']}?token={ws['workspace_token']}"
    clock.advance(5 + 9 * 60)
    assert requests.get(page, timeout=10).status_code == 200
    after = api.get(ws["id"])
    assert TS_RE.match(after["last_usage"])
    clock.advance(9 * 60)
    assert api.state(ws["id"]) == "running"  # the visit reset the inactivity clock
    clock.advance(60)
    assert api.state(ws["id"]) == "stopped"
    assert requests.get(page, timeout=10).status_code == 200  # auto_resume
    assert api.state(ws["id"]) == "starting"
    clock.advance(5)
    assert api.state(ws["id"]) == "running"


def test_no_auto_resume_means_the_page_refuses_until_resumed(api: Api, server: EmulatorServer):
    ws = api.create(auto_resume="false")
    api.call("PUT", f"/workspaces/{ws['id']}/stop")
    page = f"{server.url}/workspace/{ws['id']}?token={ws['workspace_token']}"
    response = requests.get(page, timeout=10)
    assert response.status_code == 409 and "must be resumed" in response.text
    assert api.state(ws["id"]) == "stopped"


def test_slot_limit(clock: ManualClock):
    with EmulatorServer(token=TOKEN, start_delay=0, slots=1, clock=clock) as srv:
        api = Api(srv)
        first = api.create()["id"]
        assert_error(api.call("POST", "/workspaces", data={"project_id": DEMO_PROJECT_ID}), 400, 40)
        api.call("PUT", f"/workspaces/{first}/stop")  # a stopped workspace frees its slot
        second = api.create()["id"]
        assert_error(api.call("PUT", f"/workspaces/{first}/resume"), 400, 40)
        api.call("PUT", f"/workspaces/{second}/remove")
        assert api.call("PUT", f"/workspaces/{first}/resume").status_code == 200


# --------------------------------------------------------------------------- lists


def test_list_filters_and_paging(api: Api, clock: ManualClock):
    ids = [api.create(project_id=DEMO_PROJECT_ID if i % 2 == 0 else OTHER_PROJECT)["id"]
           for i in range(7)]
    clock.advance(5)
    api.call("PUT", f"/workspaces/{ids[0]}/stop")
    api.call("PUT", f"/workspaces/{ids[1]}/remove")

    def listed(*params: tuple[str, str]) -> tuple[list[str], str | None]:
        body = api.call("GET", "/workspaces", params=list(params)).json()
        assert set(body) == {"items", "paging"} and set(body["paging"]) == {"next_page_token"}
        return [ws["id"] for ws in body["items"]], body["paging"]["next_page_token"]

    assert listed() == (ids, None)  # default limit 10, creation order
    assert listed(("states[]", "2")) == ([i for i in ids if i not in ids[:2]], None)
    assert listed(("states[]", "3"), ("states[]", "4")) == (ids[:2], None)
    assert listed(("states", "3,4")) == (ids[:2], None)
    assert listed(("project_id", OTHER_PROJECT)) == (ids[1::2], None)
    assert listed(("project_id", OTHER_PROJECT), ("states[]", "2")) == (ids[3::2], None)

    seen: list[str] = []
    token: str | None = ""
    pages = 0
    while token is not None:
        page, token = listed(("limit", "3"), ("page_token", token))
        seen += page
        pages += 1
    assert seen == ids and pages == 3

    for bad in [("limit", "0"), ("limit", "31"), ("limit", "x"), ("states[]", "9"),
                ("states[]", "running"), ("page_token", "garbage!")]:
        assert_error(api.call("GET", "/workspaces", params=[bad]), 400, 10)
    assert listed(("limit", "30"))[0] == ids


# --------------------------------------------------------------------------- faults


def test_fault_sequence_then_normal(api: Api, server: EmulatorServer):
    server.set_faults(sequence=[500, 502, 503, "ok", 503])
    statuses = [api.call("GET", "/test").status_code for _ in range(7)]
    assert statuses == [500, 502, 503, 200, 503, 200, 200]
    server.set_faults(sequence=[503])
    assert_error(api.call("GET", "/test"), 503, 90)


def test_fault_429_with_retry_after(api: Api, server: EmulatorServer):
    server.set_faults(sequence=[429], retry_after=7)
    response = api.call("GET", "/test")
    assert_error(response, 429, 50)
    assert response.headers["Retry-After"] == "7"


def test_fault_reset_looks_like_a_reset(api: Api, server: EmulatorServer):
    server.set_faults(sequence=["reset"])
    with pytest.raises(requests.ConnectionError) as info:
        api.call("POST", "/workspaces", data={"project_id": DEMO_PROJECT_ID})
    assert any(isinstance(e, ConnectionResetError) for e in causes(info.value))
    assert server.stats()["workspaces"]["total"] == 0  # nothing was created
    assert api.call("GET", "/test").status_code == 200  # the server is fine afterwards
    assert server.stats()["requests"]["POST /workspaces"]["by_status"] == {"reset": 1}


def test_fault_malformed_json(api: Api, server: EmulatorServer):
    server.set_faults(sequence=["malformed"])
    response = api.call("GET", "/workspaces")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_fault_hang_exceeds_a_short_client_timeout(server: EmulatorServer):
    server.set_faults(sequence=["hang"], hang=20)
    with pytest.raises(requests.Timeout):
        requests.get(server.url + "/api/v1/test", params={"access_token": TOKEN}, timeout=0.3)
    # other requests are served meanwhile (threaded server)
    ok = requests.get(server.url + "/api/v1/test", params={"access_token": TOKEN}, timeout=10)
    assert ok.status_code == 200
    # stop() wakes the sleeping handler (the fixture's exit must not wait 20 s)


def test_fault_routes_filter_and_rate(api: Api, server: EmulatorServer):
    server.set_faults(rate=1.0, status=502, routes=["POST /workspaces"])
    assert api.call("GET", "/test").status_code == 200
    assert_error(api.call("POST", "/workspaces", data={"project_id": DEMO_PROJECT_ID}), 502, 90)
    server.set_faults(rate=0.5, status=503, seed=1)
    statuses = {api.call("GET", "/test").status_code for _ in range(40)}
    assert statuses == {200, 503}
    server.set_faults()
    assert {api.call("GET", "/test").status_code for _ in range(10)} == {200}


def test_latency_and_jitter_delay_answers(server: EmulatorServer):
    server.set_faults(latency=0.2, jitter=0.1)
    started = time.perf_counter()
    requests.get(server.url + "/api/v1/test", params={"access_token": TOKEN}, timeout=10)
    assert time.perf_counter() - started >= 0.2  # a lower bound only
    with EmulatorServer(token=TOKEN, latency=0.2) as slow:
        started = time.perf_counter()
        requests.get(slow.url + "/api/v1/test", params={"access_token": TOKEN}, timeout=10)
        assert time.perf_counter() - started >= 0.2
        assert slow.app.faults.latency == 0.2
        slow.set_faults(sequence=[503, 503], latency=0)
        # the control routes and the SDK are never failed
        assert requests.get(slow.url + "/_emulator/stats", timeout=10).status_code == 200
        assert requests.get(slow.url + "/static/sdk/sdk.min.js", timeout=10).status_code == 200
        assert slow.app.faults.sequence == (503, 503)


def test_faults_settable_over_http_and_validated(api: Api, server: EmulatorServer):
    url = server.url + "/_emulator/faults"
    response = requests.post(url, json={"sequence": [503, "reset"], "routes": ["GET /test"]}, timeout=10)
    assert response.status_code == 200
    assert response.json()["sequence"] == [503, "reset"]
    assert requests.get(url, timeout=10).json()["routes"] == ["GET /test"]
    assert api.call("GET", "/test").status_code == 503
    assert requests.post(url, json={}, timeout=10).json()["sequence"] == []  # clears
    for bad in [{"sequence": [200, 99]}, {"nonsense": 1}, {"routes": ["GET /nope"]},
                {"rate": 2}, {"latency": -1}]:
        assert_error(requests.post(url, json=bad, timeout=10), 400, 10)
    with pytest.raises(ValueError, match="invalid fault"):
        server.set_faults(sequence=["explode"])
    assert server.app.faults.hang <= 30
    server.set_faults(hang=3600)
    assert server.app.faults.hang == 30  # bounded


def test_faults_at_construction():
    with EmulatorServer(token=TOKEN, faults={"sequence": [503]}) as srv:
        url = srv.url + "/api/v1/test"
        assert requests.get(url, params={"access_token": TOKEN}, timeout=10).status_code == 503
        assert requests.get(url, params={"access_token": TOKEN}, timeout=10).status_code == 200


# --------------------------------------------------------------------------- stats


def test_stats_counts_routes_statuses_and_workspaces(api: Api, server: EmulatorServer,
                                                     clock: ManualClock):
    a = api.create()["id"]
    api.create()
    api.call("POST", "/workspaces", data={})
    api.call("GET", f"/workspaces/{a}")
    api.call("PUT", f"/workspaces/{a}/remove")
    server.set_faults(sequence=[503])
    api.call("GET", "/test")
    assert server.count("POST /workspaces") == 3
    assert server.count("GET /workspaces/{id}") == 1
    stats = requests.get(server.url + "/_emulator/stats", timeout=10).json()
    assert stats == server.stats()
    assert stats["requests"]["POST /workspaces"] == {"total": 3, "by_status": {"201": 2, "400": 1}}
    assert stats["requests"]["GET /test"]["by_status"] == {"503": 1}
    assert stats["faults_injected"] == {"503": 1}
    assert stats["workspaces"]["total"] == 2 and stats["workspaces"]["alive"] == 1
    assert stats["workspaces"]["by_state"]["removed"] == 1
    assert "/_emulator/stats" not in json.dumps(stats["requests"])  # control routes are not counted

    assert requests.post(server.url + "/_emulator/reset", timeout=10).status_code == 200
    assert server.count("POST /workspaces") == 0 and server.stats()["total_requests"] == 0
    assert server.stats()["workspaces"]["total"] == 2  # workspaces stay
    requests.post(server.url + "/_emulator/reset", json={"workspaces": True}, timeout=10)
    assert server.stats()["workspaces"]["total"] == 0
    api.call("GET", "/test")
    server.reset_stats()
    assert server.count("GET /test") == 0


def test_concurrent_creates_are_consistent(server: EmulatorServer):
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        for _ in range(5):
            r = session.post(server.url + "/api/v1/workspaces", params={"access_token": TOKEN},
                             data={"project_id": DEMO_PROJECT_ID}, timeout=10)
            with lock:
                ids.append(r.json()["workspace"]["id"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 40
    assert server.count("POST /workspaces") == 40
    assert server.stats()["workspaces"]["total"] == 40


# --------------------------------------------------------------------------- SDK, page, check


def test_sdk_page_and_check(api: Api, server: EmulatorServer, clock: ManualClock):
    sdk = requests.get(server.url + "/static/sdk/sdk.min.js", timeout=10)
    assert sdk.status_code == 200 and "javascript" in sdk.headers["Content-Type"]
    assert "SE.workspace" in sdk.text and "SE.create" in sdk.text
    assert server.count("GET /static/sdk/sdk.min.js") == 1

    ws = api.create()
    page_url = f"{server.url}/workspace/{ws['id']}"
    ok = requests.get(page_url, params={"token": ws["workspace_token"]}, timeout=10)
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("text/html")
    for text in ("EXAMPLE", ws["id"], "starting", "main.py", "prefers-color-scheme"):
        assert text in ok.text
    assert 'http-equiv="refresh"' in ok.text  # a starting workspace refreshes itself
    clock.advance(5)
    assert "running" in requests.get(page_url, params={"token": ws["workspace_token"]}, timeout=10).text

    missing = requests.get(page_url, timeout=10)
    assert missing.status_code == 403 and "did not provide one" in missing.text
    wrong = requests.get(page_url, params={"token": "0" * 8 + "-0000-4000-8000-" + "0" * 12}, timeout=10)
    assert wrong.status_code == 403 and "not valid" in wrong.text
    assert requests.get(f"{server.url}/workspace/{'0' * 32}", timeout=10).status_code == 404

    check = requests.get(page_url + "/check", params={"token": ws["workspace_token"]}, timeout=10)
    assert check.headers["Access-Control-Allow-Origin"] == "*"
    assert check.json()["ok"] is True and check.json()["project"] == "EXAMPLE"
    refused = requests.get(page_url + "/check", timeout=10)
    assert refused.status_code == 403 and refused.json()["ok"] is False

    open_ws = api.create(workspace_token_required="false")
    assert requests.get(f"{server.url}/workspace/{open_ws['id']}", timeout=10).status_code == 200


# --------------------------------------------------------------------------- WSGI without a server


def test_wsgi_app_passes_wsgiref_validator():
    app = validator(create_app(token=TOKEN, start_delay=0))

    def call(method: str, path: str, query: str = "", body: bytes = b"",
             content_type: str = "") -> tuple[str, bytes]:
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
                                  "QUERY_STRING": query}
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["CONTENT_TYPE"] = content_type
        setup_testing_defaults(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        seen: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status)
            return lambda data: None

        result: Any = app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            result.close()  # the validator's iterator insists on close()
        return seen[0], data

    status, data = call("GET", "/api/v1/test", f"access_token={TOKEN}")
    assert status.startswith("200") and b"You can use" in data
    status, data = call("POST", "/api/v1/workspaces", f"access_token={TOKEN}",
                        f"project_id={DEMO_PROJECT_ID}".encode(), "application/x-www-form-urlencoded")
    assert status.startswith("201")
    wid = json.loads(data)["workspace"]["id"]
    assert call("GET", f"/api/v1/workspaces/{wid}", f"access_token={TOKEN}")[0].startswith("200")
    assert call("GET", "/api/v1/test")[0].startswith("401")
    assert call("GET", "/static/sdk/sdk.min.js")[0].startswith("200")
    assert call("GET", "/_emulator/stats")[0].startswith("200")


# --------------------------------------------------------------------------- CLI


def test_cli_prints_url_serves_and_stops_cleanly():
    env = {**os.environ, "SPHERE_ENGINE_ACCESS_TOKEN": "cli-secret", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphere_docs", "emulator", "--port", "0", "--start-delay", "0", "--log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.match(r"^Sphere Engine Containers emulator on (http://127\.0\.0\.1:\d+)$", first.strip())
        assert match, first
        url = match.group(1)
        assert DEMO_PROJECT_ID in proc.stdout.readline()
        assert requests.get(url + "/api/v1/test", params={"access_token": "cli-secret"},
                            timeout=10).status_code == 200
        assert requests.get(url + "/api/v1/test", params={"access_token": "other"},
                            timeout=10).status_code == 401
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "emulator stopped" in out
    assert "GET /api/v1/test?access_token=*** HTTP/1.1\" 200" in err  # --log, redacted
    assert "cli-secret" not in out + err + first
