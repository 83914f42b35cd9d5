"""Every client failure mode, with DEBUG logging on: the token appears in no text at all."""

from __future__ import annotations

import logging
import pickle
import socket
import traceback
from collections.abc import Callable

import pytest
import requests
from conftest import SECRET_TOKEN, assert_no_leak

from sphere_docs.api.client import ContainersClient, SphereEngineError
from sphere_docs.core.redact import MASK, redact
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(url: str, **kw) -> ContainersClient:
    session = requests.Session()
    session.headers["Connection"] = "close"  # emulated resets arrive as resets (see test_api_client)
    kw.setdefault("timeout", 0.5)
    kw.setdefault("retries", 2)
    return ContainersClient(url + "/api/v1", SECRET_TOKEN, backoff=0.01, session=session, **kw)


def _texts(exc: BaseException) -> list[str]:
    """Everything a person or a log could ever print about ``exc``."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__, chain=True)))
    seen = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        texts += [str(link), repr(link), repr(vars(link))]
        link = link.__cause__ or link.__context__
    texts.append(repr(pickle.loads(pickle.dumps(exc))))
    return texts


FAULTS: dict[str, tuple[dict, Callable[[ContainersClient], object]]] = {
    "404 unknown workspace": ({}, lambda c: c.get_workspace("0" * 32)),
    "404 unknown project": ({}, lambda c: c.create_workspace({"project_id": "f" * 32})),
    "400 invalid request": ({}, lambda c: c.list_workspaces(limit=99)),
    "429 exhausted": ({"sequence": [429] * 5, "retry_after": 0}, lambda c: c.test()),
    "503 exhausted": ({"sequence": [503] * 5}, lambda c: c.test()),
    "502 on create": ({"sequence": [502]}, lambda c: c.create_workspace({"project_id": DEMO_PROJECT_ID})),
    "reset exhausted": ({"sequence": ["reset"] * 5}, lambda c: c.get_workspace("0" * 32)),
    "reset on create": ({"sequence": ["reset"]}, lambda c: c.create_workspace({"project_id": DEMO_PROJECT_ID})),
    "hang / timeout": ({"sequence": ["hang"] * 5, "hang": 3}, lambda c: c.list_projects()),
    "hang on create": ({"sequence": ["hang"], "hang": 3},
                       lambda c: c.create_workspace({"project_id": DEMO_PROJECT_ID})),
    "malformed JSON": ({"sequence": ["malformed"]}, lambda c: c.get_workspace("0" * 32)),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_no_failure_mode_leaks_the_token(emulator, caplog, name):
    faults, call = FAULTS[name]
    caplog.set_level(logging.DEBUG)
    emulator.set_faults(**faults)
    with _client(emulator.url) as client, pytest.raises(SphereEngineError) as info:
        call(client)
    assert_no_leak(_texts(info.value))
    assert_no_leak([caplog.text, *(r.getMessage() for r in caplog.records)])
    if "on create" not in name or name.startswith("502"):
        # the libraries did log the request URL: redacted, not silenced
        assert f"access_token={MASK}" in caplog.text


def test_401_does_not_leak_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    with EmulatorServer(token="some-other-token-123456", start_delay=0) as server, \
            _client(server.url) as client, pytest.raises(SphereEngineError) as info:
        client.test()
    assert info.value.status == 401
    assert_no_leak(_texts(info.value))
    assert_no_leak([caplog.text])


def test_connection_refused_does_not_leak_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    with _client(f"http://127.0.0.1:{_closed_port()}") as client:
        for call in (lambda: client.test(),
                     lambda: client.create_workspace({"project_id": DEMO_PROJECT_ID})):
            with pytest.raises(SphereEngineError) as info:
                call()
            assert_no_leak(_texts(info.value))
    assert_no_leak([caplog.text])
    assert "Retrying" in caplog.text  # urllib3 logged its retries (with the URL, redacted)


def test_library_exceptions_are_not_chained(emulator):
    emulator.set_faults(sequence=["reset"] * 5)
    with _client(emulator.url, retries=0) as client, pytest.raises(SphereEngineError) as info:
        client.test()
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_client_repr_and_a_server_echoing_the_url(emulator, caplog):
    """Even an error body that quotes the request URL comes out masked."""
    caplog.set_level(logging.DEBUG)
    with _client(emulator.url) as client:
        assert SECRET_TOKEN not in repr(client)
    echoed = f"GET /api/v1/test?access_token={SECRET_TOKEN} failed"
    assert SECRET_TOKEN not in redact(echoed)
    assert redact("x?access_token=abc123&y=1") == f"x?access_token={MASK}&y=1"
    assert redact("Authorization: Bearer abc.def-123") == f"Authorization: Bearer {MASK}"
