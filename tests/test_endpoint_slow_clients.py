"""Slow clients against the shipped gunicorn config (issue 15): /healthz still answers.

200 sockets send a request's first line and part of a header, then a byte now and then, and
never finish: each holds a gunicorn gthread thread while it reads the headers.  The sample config
has more threads than that (512), so /healthz and a reader's POST are still answered while they
are held.  Past the threads they would not be: production sits behind a buffering proxy that
hands over only whole requests (README, nginx snippet); bench/endpoint_burst.py --slow-clients
measures both sides.  No assertion on time: a generous socket timeout only guards against a hang.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import assert_no_leak
from test_endpoint_redis import Master, start_master
from test_lazy_endpoint import ORIGIN, PROJECT, SECRET, reader

SLOW = 200


@pytest.fixture
def shipped(emulator: Any, access_token: str) -> Iterator[Master]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENDPOINT_")},
           "SPHERE_ENDPOINT_API": emulator.url, "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
           "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN, "SPHERE_ENDPOINT_SECRET": SECRET,
           "SPHERE_ENDPOINT_BIND": "127.0.0.1:0", "SPHERE_ENDPOINT_TRUST_PROXY": "1", "PYTHONUNBUFFERED": "1"}
    master = start_master(env, workers=1)  # the shipped config with memory:// (one worker)
    yield master
    os.killpg(master.proc.pid, signal.SIGTERM)
    master.proc.wait(30)
    assert_no_leak(["".join(master.output)])


def test_healthz_answers_while_slow_clients_hold_sockets(shipped: Master) -> None:
    host, port = shipped.url.removeprefix("http://").rsplit(":", 1)
    held: list[socket.socket] = []
    try:
        for n in range(SLOW):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(b"POST /workspaces HTTP/1.1\r\nHost: x\r\nX-Slow-" + str(n).encode())
            held.append(sock)
        for sock in held:  # a second piece: each is in a thread's hands, reading headers
            sock.sendall(b"a")
        for _ in range(5):
            health = requests.get(shipped.url + "/healthz", timeout=30)
            assert (health.status_code, health.json()["status"]) == (200, "ok")
        answer = requests.post(shipped.url + "/workspaces", json=reader(), timeout=30,
                               headers={"Origin": ORIGIN, "X-Forwarded-For": "203.0.113.7"})
        assert answer.status_code == 200 and answer.json()["workspace_id"]
        for sock in held:  # none of them was answered or dropped: they are still being read
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in held:
            sock.close()
