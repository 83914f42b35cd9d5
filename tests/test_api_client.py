"""ContainersClient against the real emulator on a loopback port."""

from __future__ import annotations

import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from urllib3 import HTTPResponse

from sphere_docs.api.client import (
    USER_AGENT,
    ApiTimeout,
    AuthError,
    ContainersClient,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SphereEngineError,
    TransportError,
    Workspace,
    _ApiRetry,
)
from sphere_docs.core.errors import SphereDocsError
from sphere_docs.core.options import parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

SECOND_PROJECT = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"


def make_client(server: EmulatorServer, token: str, **kw) -> ContainersClient:
    kw.setdefault("timeout", 3.0)
    kw.setdefault("retries", 3)
    kw.setdefault("backoff", 0.01)
    return ContainersClient(server.url + "/api/v1", token, **kw)


@pytest.fixture
def client(emulator, access_token):
    with make_client(emulator, access_token) as c:
        yield c


def reset_ready_client(server: EmulatorServer, token: str, **kw) -> ContainersClient:
    """A client whose session sends ``Connection: close``.

    werkzeug keeps a kept-alive connection open after an emulated reset (it
    waits for the next request), which a client sees as a read timeout rather
    than a reset; with ``Connection: close`` the emulator's RST arrives at once.
    """
    session = requests.Session()
    session.headers["Connection"] = "close"
    return make_client(server, token, session=session, **kw)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- every method


def test_test_returns_the_greeting(client):
    assert client.test() == "You can use Sphere Engine Containers API"


def test_create_get_and_state(client, emulator):
    ws = client.create_workspace(parse_options(DEMO_PROJECT_ID, {}).create_fields())
    assert len(ws.id) == 32
    assert ws.project_id == DEMO_PROJECT_ID and ws.project_name == "EXAMPLE"
    assert ws.state_code in (1, 2) and ws.is_live
    assert ws.workspace_token and ws.token_required is True
    assert ws.raw["permissions"] == {"enter": True, "remove": False, "stop": False}  # unknown fields kept
    again = client.get_workspace(ws.id)
    assert again.id == ws.id and again.workspace_token == ws.workspace_token
    assert emulator.count("POST /workspaces") == 1
    assert emulator.count("GET /workspaces/{id}") == 1


def test_create_from_mapping_encodes_booleans(client):
    ws = client.create_workspace({"project_id": DEMO_PROJECT_ID, "workspace_token_required": False,
                                  "auto_resume": False, "inactivity_timeout": 5, "ignored": None})
    assert ws.token_required is False and ws.auto_resume is False
    assert ws.inactivity_timeout == 5


def test_create_spec_options_reach_the_api(client):
    spec = parse_options(DEMO_PROJECT_ID, {"token-required": "false", "inactivity-timeout": "7",
                                           "retention-stopped": "60", "auto-resume": "no"})
    ws = client.create_workspace(spec.create_fields())
    assert ws.token_required is False and ws.auto_resume is False
    assert ws.inactivity_timeout == 7
    assert ws.raw["retention_time_stopped"] == 60


def test_stop_resume_remove(client):
    ws = client.create_workspace({"project_id": DEMO_PROJECT_ID})
    assert "message" in client.stop(ws.id)
    assert client.get_workspace(ws.id).state_name == "stopped"
    client.resume(ws.id)
    assert client.get_workspace(ws.id).state_code in (1, 2)
    client.remove(ws.id)
    gone = client.get_workspace(ws.id)
    assert gone.state_code == 4 and not gone.is_live and gone.terminated_at


def test_list_workspaces_filters_and_paging(client):
    ids = [client.create_workspace({"project_id": DEMO_PROJECT_ID}).id for _ in range(5)]
    other = client.create_workspace({"project_id": SECOND_PROJECT}).id
    client.remove(ids[0])
    page = client.list_workspaces(project_id=DEMO_PROJECT_ID, limit=2)
    assert len(page.items) == 2 and page.next_page_token
    everything = list(client.iter_workspaces(project_id=DEMO_PROJECT_ID, limit=2))
    assert [w.id for w in everything] == ids
    running = client.list_workspaces(project_id=DEMO_PROJECT_ID, states=[1, 2], limit=30)
    assert {w.id for w in running.items} == set(ids[1:])
    removed = client.list_workspaces(states=[4])
    assert [w.id for w in removed.items] == [ids[0]]
    assert other in {w.id for w in client.iter_workspaces()}


def test_list_projects(client):
    projects = client.list_projects()
    assert {p.id: p.name for p in projects}[DEMO_PROJECT_ID] == "EXAMPLE"


def test_from_settings_reads_the_env_token(emulator, access_token, tmp_path):
    settings = SiteSettings.from_mapping({"endpoint": emulator.url, "timeout": 2, "retries": 1},
                                         base_dir=tmp_path)
    with ContainersClient.from_settings(settings) as c:
        assert c.timeout == 2 and c.retries == 1
        assert c.test()
        assert access_token not in repr(c)


def test_request_encoding_and_auth(emulator, access_token):
    """Form fields, true/false booleans, access_token query parameter, our User-Agent."""
    seen: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    with make_client(emulator, access_token, session=session) as c:
        c.create_workspace(parse_options(DEMO_PROJECT_ID, {"token-required": "false"}).create_fields())
    (sent,) = seen
    assert sent.method == "POST"
    assert sent.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("sphere-docs/")
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(urlsplit(sent.url).query)["access_token"] == [access_token]
    assert "Authorization" not in sent.headers
    body = parse_qs(sent.body if isinstance(sent.body, str) else sent.body.decode())
    assert body == {"project_id": [DEMO_PROJECT_ID], "workspace_token_required": ["false"],
                    # the build-mode lifecycle defaults (sphere_docs.core.options.BUILD_LIFECYCLE_DEFAULTS)
                    "inactivity_timeout": ["15"], "retention_time_stopped": ["43200"],
                    "auto_resume": ["true"]}
    session.close()  # an injected session is the caller's to close


# --------------------------------------------------------------------------- error mapping


def test_401_is_auth_error(emulator):
    with make_client(emulator, "not-the-right-token") as c, pytest.raises(AuthError) as info:
        c.test()
    err = info.value
    assert (err.status, err.error_code, err.method, err.path) == (401, 1, "GET", "/api/v1/test")
    assert isinstance(err, SphereEngineError) and isinstance(err, SphereDocsError)


def test_404_unknown_workspace_and_project(client):
    with pytest.raises(NotFoundError) as info:
        client.get_workspace("0" * 32)
    assert info.value.status == 404 and info.value.path == "/api/v1/workspaces/" + "0" * 32
    with pytest.raises(NotFoundError) as info:
        client.create_workspace({"project_id": "f" * 32})
    assert info.value.method == "POST" and "project" in info.value.message


def test_400_is_invalid_request(client):
    with pytest.raises(InvalidRequestError) as info:
        client.list_workspaces(limit=99)
    err = info.value
    assert err.status == 400 and err.error_code == 10
    assert err.path == "/api/v1/workspaces?limit=99"
    assert "limit" in str(err)
    with pytest.raises(InvalidRequestError):
        client.create_workspace({"workspace_token_required": "true"})  # no project_id


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("sequence", [[503], [503, 503, 503], [429, 429], [502, 504], [503, 429, 502]])
def test_get_recovers_from_transient_statuses(client, emulator, sequence):
    emulator.set_faults(sequence=sequence, retry_after=0)
    assert client.test()
    assert emulator.count("GET /test") == len(sequence) + 1


def test_get_recovers_from_a_reset(emulator, access_token):
    emulator.set_faults(sequence=["reset", "reset"])
    with reset_ready_client(emulator, access_token) as c:
        assert c.test()
    assert emulator.count("GET /test") == 3
    assert emulator.stats()["faults_injected"] == {"reset": 2}


def test_reset_on_get_gives_up_after_the_limit(emulator, access_token):
    emulator.set_faults(sequence=["reset"] * 5)
    with reset_ready_client(emulator, access_token, retries=2) as c, \
            pytest.raises(TransportError) as info:
        c.test()
    assert not isinstance(info.value, ApiTimeout)
    assert "connection broken" in str(info.value)
    assert emulator.count("GET /test") == 3


def test_get_recovers_from_a_hang(emulator, access_token):
    emulator.set_faults(sequence=["hang"], hang=5)
    with make_client(emulator, access_token, timeout=0.3) as c:
        assert c.test()
    # the hung request is counted when it finally answers; the injected fault at once
    assert emulator.stats()["faults_injected"] == {"hang": 1}
    assert emulator.count("GET /test") >= 1


@pytest.mark.parametrize("status", [503, 429])
def test_post_is_retried_when_not_processed(client, emulator, status):
    emulator.set_faults(sequence=[status, status], retry_after=0, routes=["POST /workspaces"])
    ws = client.create_workspace({"project_id": DEMO_PROJECT_ID})
    assert ws.id
    assert emulator.count("POST /workspaces") == 3
    assert emulator.stats()["workspaces"]["total"] == 1  # exactly one created


@pytest.mark.parametrize("fault, error", [
    (502, ServerError),
    (504, ServerError),
    ("reset", TransportError),
    ("malformed", MalformedResponseError),
])
def test_post_that_may_have_been_processed_is_not_repeated(emulator, access_token, fault, error):
    emulator.set_faults(sequence=[fault], routes=["POST /workspaces"])
    with reset_ready_client(emulator, access_token) as c, pytest.raises(error) as info:
        c.create_workspace({"project_id": DEMO_PROJECT_ID})
    assert not isinstance(info.value, ApiTimeout)
    assert info.value.maybe_processed is True
    assert info.value.method == "POST"
    assert emulator.count("POST /workspaces") == 1


def test_post_read_timeout_is_not_repeated(emulator, access_token):
    emulator.set_faults(sequence=["hang"], hang=3, routes=["POST /workspaces"])
    with make_client(emulator, access_token, timeout=0.3) as c, pytest.raises(ApiTimeout) as info:
        c.create_workspace({"project_id": DEMO_PROJECT_ID})
    assert info.value.maybe_processed and isinstance(info.value, TimeoutError)
    assert emulator.stats()["faults_injected"] == {"hang": 1}
    assert emulator.count("POST /workspaces") == 0  # the only attempt is still hanging


def test_gives_up_on_503_after_the_limit(client, emulator):
    emulator.set_faults(sequence=[503] * 10)
    with pytest.raises(ServerError) as info:
        client.get_workspace("0" * 32)
    err = info.value
    assert err.status == 503 and err.error_code is not None
    assert "gave up after 3 retries" in str(err)
    assert emulator.count("GET /workspaces/{id}") == 4


def test_gives_up_on_429_with_retry_after(client, emulator):
    emulator.set_faults(sequence=[429] * 10, retry_after=0)
    with pytest.raises(RateLimitedError) as info:
        client.test()
    assert info.value.status == 429 and info.value.retry_after == 0
    assert emulator.count("GET /test") == 4


def test_retry_after_is_honoured(emulator, access_token):
    emulator.set_faults(sequence=[429], retry_after=1)
    with make_client(emulator, access_token) as c:
        started = time.monotonic()
        c.test()
        assert time.monotonic() - started >= 0.95  # a lower bound: the client waited as told


def test_retry_after_is_capped():
    retry = _ApiRetry(total=3)
    retry.retry_after_cap = 30.0
    response = HTTPResponse(body=b"", headers={"Retry-After": "3600"}, status=429)
    assert retry.get_retry_after(response) == 30.0
    assert retry.new(total=2).retry_after_cap == 30.0


def test_backoff_is_exponential_with_jitter():
    retry = _ApiRetry(total=5, backoff_factor=1.0)
    for n, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0)):
        retry = retry.increment(method="GET", url="/x", error=None, response=HTTPResponse(status=503))
        samples = {retry.get_backoff_time() for _ in range(50)}
        assert all(ceiling / 2 <= s <= ceiling for s in samples), (n, samples)
        assert len(samples) > 1  # jittered


def test_timeout_is_honoured(emulator, access_token):
    emulator.set_faults(sequence=["hang"] * 5, hang=5)
    with make_client(emulator, access_token, timeout=0.3, retries=1) as c, \
            pytest.raises(ApiTimeout) as info:
        c.test()
    assert "0.3s" in str(info.value)
    assert emulator.stats()["faults_injected"] == {"hang": 2}  # first try + one retry


def test_malformed_answer(client, emulator):
    emulator.set_faults(sequence=["malformed"])
    with pytest.raises(MalformedResponseError) as info:
        client.test()
    assert info.value.status == 200 and not info.value.maybe_processed


def test_connection_refused():
    port = closed_port()
    with ContainersClient(f"http://127.0.0.1:{port}/api/v1", "tok-123456", retries=1,
                          backoff=0.01, timeout=2) as c:
        with pytest.raises(TransportError) as info:
            c.test()
        assert "could not connect" in str(info.value)
        assert not info.value.maybe_processed
        with pytest.raises(TransportError) as info:
            c.create_workspace({"project_id": DEMO_PROJECT_ID})
        assert not info.value.maybe_processed  # never sent: safe to try again later


# --------------------------------------------------------------------------- tolerant parsing


def test_workspace_parsing_is_tolerant():
    bare = {"id": "a" * 32, "project": {"id": DEMO_PROJECT_ID, "name": "EXAMPLE"},
            "state": {"code": "2", "name": "running"}, "workspace_token": "73543c2d-3476",
            "brand_new_field": [1, 2]}
    ws = Workspace.from_api(bare)
    assert ws.state_code == 2 and ws.is_live and ws.raw["brand_new_field"] == [1, 2]
    assert Workspace.from_api({"message": "created", "workspace": bare}) == ws
    assert Workspace.from_api({**bare, "state": {"name": "Stopped"}}).state_code == 3
    assert Workspace.from_api({**bare, "state": 4}).state_name == "removed"
    assert Workspace.from_api({**bare, "state": {"code": 7}}).state_name == "unknown"
    flat = Workspace.from_api({"id": "b" * 32, "project_id": DEMO_PROJECT_ID,
                               "workspace_token_required": "false"})
    assert flat.project_id == DEMO_PROJECT_ID and flat.token_required is False
    with pytest.raises(ValueError):
        Workspace.from_api({"message": "no id here"})
    with pytest.raises(ValueError):
        Workspace.from_api(["not", "an", "object"])


@pytest.mark.parametrize("code, auto_resume, live", [
    (1, True, True), (2, False, True), (3, True, True), (3, False, False),
    (4, True, False), (5, True, False), (0, True, False),
])
def test_is_live(code, auto_resume, live):
    ws = Workspace("a" * 32, None, None, code, "x", auto_resume=auto_resume)
    assert ws.is_live is live


def test_errors_pickle_and_keep_their_fields():
    import pickle

    err = RateLimitedError("slow down", retry_after=3.0, status=429, error_code=50,
                           method="GET", path="/api/v1/test")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RateLimitedError and str(back) == str(err)
    assert (back.status, back.error_code, back.path) == (429, 50, "/api/v1/test")


def test_unresolvable_host_is_a_connect_error_that_sent_nothing():
    """A host name that does not resolve: "could not connect", and a POST surely not processed.

    Built from the exception requests raises for it (no DNS query leaves this machine).
    """
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    gai = socket.gaierror(-2, "Name or service not known")
    reason = NameResolutionError("no-such-host.invalid", None, gai)  # type: ignore[arg-type]
    reason.__cause__ = gai  # as urllib3 raises it: "raise NameResolutionError(...) from e"
    exc = requests.ConnectionError(MaxRetryError(None, "/api/v1/workspaces", reason))  # type: ignore[arg-type]
    client = ContainersClient("http://no-such-host.invalid/api/v1", "t", timeout=2, retries=0)
    failure = client._transport_failure(exc, "POST", "/workspaces")
    assert str(failure) == "Sphere Engine API POST /workspaces: could not connect: Name or service not known"
    assert failure.maybe_processed is False
