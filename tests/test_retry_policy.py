"""The retry policy, row by row, against the emulator's fault injection over real HTTP.

Each row of the README's *Retries* table (and of ``client.RETRY_POLICY``) is
run for a ``GET``, a ``PUT`` and the ``POST`` that creates a workspace: the
emulator counts every fault it injects, so "retried" means that
``retries + 1`` attempts met the fault, "not retried" that one did.  A create that is not
retried must say ``maybe_processed`` unless the answer says nothing was done.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sphere_docs.api.client import (
    IDEMPOTENT_METHODS,
    NOT_PROCESSED_STATUSES,
    RETRY_STATUSES,
    ContainersClient,
    SphereEngineError,
    TransportError,
    retried_statuses,
)
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

RETRIES = 2
README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

#: method -> (the emulator's route label, the call)
CALLS: dict[str, tuple[str, Callable[[ContainersClient, str], Any]]] = {
    "GET": ("GET /workspaces/{id}", lambda c, ws: c.get_workspace(ws)),
    "PUT": ("PUT /workspaces/{id}/stop", lambda c, ws: c.stop(ws)),
    "POST": ("POST /workspaces", lambda c, ws: c.create_workspace({"project_id": DEMO_PROJECT_ID})),
}

#: fault -> (retried for GET/PUT, retried for POST): the README's table
ROWS: dict[Any, tuple[bool, bool]] = {
    429: (True, True),
    503: (True, True),
    502: (True, False),
    504: (True, False),
    "hang": (True, False),  # a read timeout: the server got the request
    "reset": (True, False),  # the connection reset after the request was sent
    500: (False, False),
    501: (False, False),
    400: (False, False),
    404: (False, False),
    "malformed": (False, False),  # 200 with a cut-off JSON body
}


@pytest.fixture
def server(access_token: str) -> Iterator[EmulatorServer]:
    with EmulatorServer(token=access_token, start_delay=0.0) as srv:
        srv.set_faults(retry_after=0, hang=1.0)
        yield srv


def client_for(url: str, token: str) -> ContainersClient:
    session = requests.Session()
    session.headers["Connection"] = "close"  # an emulated reset arrives as a reset (see test_api_client)
    return ContainersClient(url + "/api/v1", token, timeout=0.4, retries=RETRIES, backoff=0.01,
                            session=session)


def a_workspace(server: EmulatorServer, token: str) -> str:
    with client_for(server.url, token) as client:
        return client.create_workspace({"project_id": DEMO_PROJECT_ID}).id


def faulted(server: EmulatorServer) -> int:
    """Requests that met a fault (counted as the fault is injected: a hung one is still hanging)."""
    return sum(server.stats()["faults_injected"].values())


def retried(fault: Any, method: str) -> bool:
    return ROWS[fault][0 if method in ("GET", "PUT") else 1]


@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize("fault", list(ROWS), ids=str)
def test_a_fault_that_lasts_is_retried_exactly_as_the_table_says(server: EmulatorServer, access_token: str,
                                                                  fault: Any, method: str) -> None:
    route, call = CALLS[method]
    workspace = a_workspace(server, access_token)
    created_before = server.stats()["workspaces"]["total"]
    server.reset_stats()
    server.set_faults(sequence=[fault] * (RETRIES + 1), routes=[route], retry_after=0, hang=1.0)
    with client_for(server.url, access_token) as client, pytest.raises(SphereEngineError) as info:
        call(client, workspace)
    attempts = faulted(server)
    assert attempts == (RETRIES + 1 if retried(fault, method) else 1), (fault, method, attempts)
    err = info.value
    if method == "POST":
        # Not performed for sure only when the answer says so; then a retry was safe.
        not_done = fault in NOT_PROCESSED_STATUSES or fault in (400, 404)
        assert err.maybe_processed is (not not_done), (fault, err)
        if fault != "hang":  # a hung create is performed after the hang, by design
            assert server.stats()["workspaces"]["total"] == created_before  # faults are not performed
    else:
        assert err.maybe_processed is False
    if retried(fault, method) and isinstance(fault, int):
        assert f"gave up after {RETRIES} retries" in str(err)


@pytest.mark.parametrize("method", list(CALLS))
@pytest.mark.parametrize("fault", [f for f in ROWS if ROWS[f][0] or ROWS[f][1]], ids=str)
def test_a_passing_fault_is_survived_where_retried(server: EmulatorServer, access_token: str,
                                                   fault: Any, method: str) -> None:
    route, call = CALLS[method]
    workspace = a_workspace(server, access_token)
    created_before = server.stats()["workspaces"]["total"]
    server.reset_stats()
    server.set_faults(sequence=[fault] * RETRIES, routes=[route], retry_after=0, hang=1.0)
    with client_for(server.url, access_token) as client:
        if retried(fault, method):
            call(client, workspace)
            assert faulted(server) == RETRIES  # and the last attempt succeeded
            if method == "POST":  # exactly one workspace for one create
                assert server.stats()["workspaces"]["total"] == created_before + 1
        else:
            with pytest.raises(SphereEngineError) as info:
                call(client, workspace)
            assert faulted(server) == 1 and info.value.maybe_processed


@pytest.mark.parametrize("method", list(CALLS))
def test_connect_errors_are_retried_for_every_method(access_token: str, caplog: pytest.LogCaptureFixture,
                                                     method: str) -> None:
    """Nothing listens: no byte was sent, so even a create is retried (urllib3 logs each retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.DEBUG, logger="urllib3")
    _, call = CALLS[method]
    with client_for(f"http://127.0.0.1:{port}", access_token) as client, \
            pytest.raises(TransportError) as info:
        call(client, "0" * 32)
    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying (")]
    assert len(retries) == RETRIES, [r.getMessage() for r in retries]
    assert all("NewConnectionError" in r.getMessage() for r in retries)
    assert info.value.maybe_processed is False
    assert f"after {RETRIES} retries" in str(info.value)


def test_413_with_retry_after_is_not_retried(server: EmulatorServer, access_token: str) -> None:
    """urllib3 on its own repeats any method on a 413 carrying Retry-After; the policy does not."""
    server.set_faults(sequence=[413] * (RETRIES + 1), routes=["GET /test"])
    with client_for(server.url, access_token) as client, pytest.raises(SphereEngineError):
        client.test()
    assert faulted(server) == server.count("GET /test") == 1


def test_the_policy_constants_are_the_table() -> None:
    for method in IDEMPOTENT_METHODS:
        assert retried_statuses(method) == RETRY_STATUSES == {429, 502, 503, 504}
    assert retried_statuses("POST") == retried_statuses("post") == NOT_PROCESSED_STATUSES == {429, 503}
    for fault, (idempotent, create) in ROWS.items():
        if isinstance(fault, int):
            assert (fault in RETRY_STATUSES) is idempotent and (fault in NOT_PROCESSED_STATUSES) is create


def test_the_readme_says_exactly_this() -> None:
    start = README.index("| failure | `GET`, `PUT` | `POST` (create) |")
    rows = README[start:].split("\n\n", 1)[0].splitlines()[2:]
    table = {}
    for row in rows:
        failure, idempotent, create = (cell.strip() for cell in row.strip("|").split("|"))
        table[failure] = (idempotent.startswith("retried"), create.startswith("retried"))
    statuses = {int(code): flags for failure, flags in table.items()
                for code in re.findall(r"\b[1-5]\d\d\b", failure)}
    assert statuses == {429: (True, True), 503: (True, True), 502: (True, False), 504: (True, False),
                        500: (False, False)}
    for status, flags in statuses.items():
        assert flags == (status in RETRY_STATUSES, status in NOT_PROCESSED_STATUSES)
    words = {failure.split(" (")[0].split(",")[0]: flags for failure, flags in table.items()}
    assert words["connect error"] == (True, True)
    assert words["read timeout"] == (True, False)
    assert table["500, other 5xx, 4xx, an answer that is not the expected JSON"] == (False, False)
    assert "retries of a failed API call, where repeating it is safe" in README
