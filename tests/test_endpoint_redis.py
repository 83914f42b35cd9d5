"""The lazy endpoint's shared state on a real Redis (issue 15).

Debian's ``redis-server`` (installed by ``.ci/setup``) is started on a free loopback
port with a temporary directory for each test that needs it.  In-process tests run
two apps on one Redis (two "processes"); the gunicorn tests run two real masters
(standing in for two hosts) x 2 workers each, on loopback ports, upstream the emulator.
Nothing is mocked and no assertion depends on the wall clock.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import assert_no_leak
from test_lazy_endpoint import ORIGIN, PROJECT, SECRET, Endpoint, error, reader, serve

from sphere_docs.services.endpoint import create_app

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "sphere_docs" / "services" / "endpoint" / "gunicorn.conf.py"
STORAGE_DOWN = "The workspace service cannot check its limits right now. Please try again in a moment."


def until(condition: Any, what: str, polls: int = 3000) -> None:
    """Poll ``condition`` (every 20 ms, a bounded number of times: a guard against hanging, not a timing claim)."""
    for _ in range(polls):
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what() if callable(what) else what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Debian's redis-server on a free loopback port, data in ``directory``; start/stop at will."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(port=self.port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is installed by .ci/setup"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = self.client()
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.02)
        else:
            raise AssertionError("redis-server did not start")
        client.close()

    def stop(self, *, keep_data: bool = False) -> None:
        """``keep_data``: ``SHUTDOWN SAVE`` (a restart in the same directory has the counts);
        otherwise SIGKILL (what a crashed or killed Redis without persistence loses)."""
        assert self.proc is not None
        if keep_data:
            import redis

            with contextlib.suppress(redis.ConnectionError):
                self.client().shutdown(save=True)
        else:
            self.proc.kill()
        self.proc.wait(30)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        if os.environ.get("CI"):
            pytest.fail("redis-server not found: .ci/setup installs it")
        pytest.skip("redis-server not found (run .ci/setup)")
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    if server.proc is not None:
        server.stop()


class ReplyCutter:
    """A loopback TCP relay in front of Redis that can lose one answer: once ``arm(marker)`` is
    called, the next command whose bytes contain ``marker`` reaches Redis (and runs), and the
    connection is then closed before its reply comes back: what a reader's request sees when
    Redis stops, or a timeout strikes, just after running a script."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.marker: bytes | None = None
        self.cut = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, marker: bytes) -> None:
        with self._lock:
            self.marker = marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        cutting = threading.Event()

        def back() -> None:
            with contextlib.suppress(OSError):
                while data := upstream.recv(65536):
                    if cutting.is_set():
                        break  # the command ran; its answer is lost
                    client.sendall(data)
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        threading.Thread(target=back, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self._lock:
                    if self.marker is not None and self.marker in data:
                        self.marker = None
                        self.cut += 1
                        cutting.set()
                upstream.sendall(data)

    def close(self) -> None:
        self.listener.close()


# ------------------------------------------------------------------ in process: two apps, one Redis


@pytest.fixture
def two_apps(emulator: Any, redis_server: RedisServer, access_token: str) -> Iterator[Any]:
    opened: list[Any] = []

    def make(**overrides: Any) -> list[Endpoint]:
        values: dict[str, Any] = {
            "api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN], "secret": SECRET,
            "retries": 0, "trust_proxy": 1, "rate": "100/600", "requests": "1000/60",
            "storage": redis_server.url,
        }
        values.update(overrides)
        eps = []
        for _ in range(2):
            app = create_app(values)
            cm = serve(app)
            eps.append(Endpoint(cm.__enter__(), app))
            opened.append((cm, app))
        return eps

    yield make
    for cm, app in opened:
        cm.__exit__(None, None, None)
        app.close()


def test_two_processes_share_the_budget_and_the_client_rate(two_apps: Any, emulator: Any) -> None:
    a, b = two_apps(budget="5/1h", rate="2/10m")
    assert [ep.post(client="203.0.113.1").status_code for ep in (a, b)] == [200, 200]
    error(a.post(client="203.0.113.1"), 429, "rate_limited")
    error(b.post(client="203.0.113.1"), 429, "rate_limited")
    statuses = [(a, b)[n % 2].post(client=f"198.51.100.{n}").status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    body = error(b.post(client="198.51.100.77"), 429, "budget_exhausted")
    assert 3590 <= body["retry_after"] <= 3600
    assert emulator.count("POST /workspaces") == 5


def test_a_create_that_surely_failed_gives_its_slots_back(two_apps: Any, emulator: Any) -> None:
    a, b = two_apps(budget="1/1h", rate="1/10m")
    emulator.set_faults(sequence=[409])  # the API refused: nothing was created
    assert a.post(client="203.0.113.1").status_code == 502
    assert b.post(client="203.0.113.1").status_code == 200  # the same reader, the only budget slot
    error(a.post(client="203.0.113.2"), 429, "budget_exhausted")


def test_the_in_flight_cap_is_deployment_wide(two_apps: Any, emulator: Any) -> None:
    a, b = two_apps(inflight=1)
    emulator.set_faults(latency=1.5)
    slow: list[int] = []
    thread = threading.Thread(target=lambda: slow.append(a.post(client="203.0.113.1").status_code))
    thread.start()
    until(lambda: a.app.limits.store.in_flight() >= 1, "a create in flight")
    answer = b.post(client="203.0.113.2")
    error(answer, 429, "busy", "Many readers are starting workspaces right now.")
    assert answer.headers["Retry-After"] == "1"
    thread.join()
    assert slow == [200]
    emulator.set_faults(latency=0)
    assert b.post(client="203.0.113.2").status_code == 200
    assert a.app.limits.store.in_flight() == 0


def test_storage_failure_closed_then_recovery(two_apps: Any, redis_server: RedisServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    a, _b = two_apps()
    assert a.post(client="203.0.113.1").status_code == 200
    redis_server.stop()
    answer = a.post(client="203.0.113.1")
    body = error(answer, 503, "storage_unavailable", STORAGE_DOWN)
    assert body["retry_after"] == 5 and answer.headers["Retry-After"] == "5"
    health = a.request("GET", "/healthz", origin=None)
    assert health.status_code == 200  # liveness: restarting the endpoint would not bring Redis back
    assert health.json()["status"] == "degraded"
    assert health.json()["storage"] == "unavailable" and health.json()["storage_failure"] == "closed"
    redis_server.start()
    for _ in range(300):  # the store is tried again a second after a failure
        if a.request("GET", "/healthz", origin=None).json()["status"] == "ok":
            break
        time.sleep(0.05)
    assert a.request("GET", "/healthz", origin=None).json() == {"status": "ok", "storage": "redis"}
    assert a.post(client="203.0.113.1").status_code == 200
    assert "rate-limit storage unavailable" in caplog.text and "rate-limit storage is back" in caplog.text


def test_storage_failure_open_counts_in_memory_meanwhile(two_apps: Any, redis_server: RedisServer,
                                                         emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    a, _b = two_apps(storage_failure="open", rate="2/10m")
    redis_server.stop()
    assert [a.post(client="203.0.113.1").status_code for _ in range(3)] == [200, 200, 429]
    health = a.request("GET", "/healthz", origin=None).json()
    assert (health["status"], health["storage"], health["storage_failure"]) == ("degraded", "unavailable", "open")
    assert caplog.text.count("counting in this process's memory meanwhile") == 1  # once a minute at most
    redis_server.start()
    for _ in range(300):
        if a.request("GET", "/healthz", origin=None).json()["status"] == "ok":
            break
        time.sleep(0.05)
    assert a.post(client="203.0.113.1").status_code == 200  # Redis's count again: a fresh window
    assert emulator.count("POST /workspaces") == 3


# ------------------------------------------------------------------ two gunicorn masters x 2 workers


@dataclass
class Master:
    proc: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)

    def booted(self) -> int:
        return sum("Booting worker" in line for line in self.output)

    def pids(self) -> Counter[str]:
        """Access-log lines (format ``ACCESS <pid> <status>``): answers per worker pid."""
        return Counter(m.group(1) for line in self.output if (m := re.match(r"ACCESS <(\d+)> \d+", line)))


def start_master(env: dict[str, str], workers: int = 2) -> Master:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-w", str(workers),
         "--access-logformat", "ACCESS %(p)s %(s)s", "sphere_docs.endpoint:create_app()"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    master = Master(proc, "")
    assert proc.stdout is not None
    for line in proc.stdout:
        master.output.append(line)
        if m := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line):
            master.url = m.group(1)
        if master.url and master.booted() == workers:
            break
    assert master.url, "".join(master.output)
    threading.Thread(target=lambda: master.output.extend(proc.stdout or []), daemon=True).start()
    wait_ready(master.url)
    return master


def wait_ready(url: str) -> None:
    for _ in range(500):
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not become ready")


@pytest.fixture
def masters(emulator: Any, redis_server: RedisServer, access_token: str) -> Iterator[Any]:
    started: list[Master] = []

    def make(count: int = 2, **settings: str) -> list[Master]:
        env = {**os.environ, "SPHERE_ENDPOINT_API": emulator.url, "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
               "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN, "SPHERE_ENDPOINT_SECRET": SECRET,
               "SPHERE_ENDPOINT_BIND": "127.0.0.1:0", "SPHERE_ENDPOINT_TRUST_PROXY": "1",
               "SPHERE_ENDPOINT_RETRIES": "0", "SPHERE_ENDPOINT_REQUESTS": "10000/60",
               "SPHERE_ENDPOINT_STORAGE": redis_server.url, "PYTHONUNBUFFERED": "1"}
        env.update({f"SPHERE_ENDPOINT_{k.upper()}": v for k, v in settings.items()})
        for _ in range(count):
            started.append(start_master(env))
        return started[-count:]

    yield make
    for master in started:
        os.killpg(master.proc.pid, signal.SIGTERM)
        master.proc.wait(30)
        assert_no_leak(["".join(master.output)])


def served_by(hosts: list[Master], answers: int) -> set[str]:
    """The worker pids that answered, once the access log shows all ``answers``."""
    for _ in range(500):
        pids = [m.pids() for m in hosts]
        if sum(sum(p.values()) for p in pids) >= answers:
            break
        time.sleep(0.02)
    return set().union(*pids)


def flood(urls: list[str], clients: list[str], *, body: Any = None, threads: int = 32) -> list[tuple[int, str]]:
    """One POST per client, concurrently, spread over ``urls``; (status, code) of each answer."""
    def one(n: int) -> tuple[int, str]:
        answer = requests.post(urls[n % len(urls)] + "/workspaces", json=body or reader(name=f"r{n}"),
                               headers={"Origin": ORIGIN, "X-Forwarded-For": clients[n], "Connection": "close"},
                               timeout=60)
        return answer.status_code, answer.json().get("code", "ok")

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(len(clients))))


def test_two_hosts_share_the_budget_exactly_and_a_reload_keeps_it(masters: Any, emulator: Any) -> None:
    """Budget 10/h, 2 masters x 2 workers, 80 distinct clients: exactly 10 created; SIGHUP after the
    budget is spent: still 10.  Claims verify on any worker of either host (one secret)."""
    hosts = masters(budget="10/1h")
    urls = [m.url for m in hosts]
    answers = flood(urls, [f"10.1.{n // 250}.{n % 250}" for n in range(80)])
    assert Counter(answers) == {(200, "ok"): 10, (429, "budget_exhausted"): 70}
    assert emulator.count("POST /workspaces") == 10
    served = served_by(hosts, 80)
    assert len(served) >= 3, served  # the flood really was spread over the workers

    for master in hosts:
        before = master.booted()
        master.proc.send_signal(signal.SIGHUP)
        until(lambda m=master, b=before: m.booted() >= b + 2, "workers rebooted")
        wait_ready(master.url)
    answers = flood(urls, [f"10.2.0.{n}" for n in range(40)])
    assert Counter(answers) == {(429, "budget_exhausted"): 40}
    assert emulator.count("POST /workspaces") == 10


def test_one_client_over_four_workers_gets_exactly_its_rate(masters: Any, emulator: Any) -> None:
    hosts = masters(rate="3/10m", budget="100/1h")
    urls = [m.url for m in hosts]
    answers = flood(urls, ["203.0.113.9"] * 40)
    assert Counter(answers) == {(200, "ok"): 3, (429, "rate_limited"): 37}
    assert emulator.count("POST /workspaces") == 3
    served = served_by(hosts, 40)
    assert len(served) >= 3, served

    # claims: the workspace one host gave is reused by every worker of both
    first = requests.post(urls[0] + "/workspaces", json=reader(), timeout=30,
                          headers={"Origin": ORIGIN, "X-Forwarded-For": "198.51.100.1"}).json()
    again = flood(urls, ["198.51.100.2"] * 12, body=reader(claim=first["claim"]), threads=4)
    assert again == [(200, "ok")] * 12
    assert emulator.count("POST /workspaces") == 4


def test_redis_stopped_and_restarted_under_load(masters: Any, emulator: Any, redis_server: RedisServer) -> None:
    """Only the configured answer (503 storage_unavailable) while Redis is down, no other 5xx,
    recovery without restarting the endpoint, and exactly the budget created: never more, and
    no slot lost to the outage (a permit Redis recorded as it stopped, whose answer never came
    back, is given back once it answers: test_a_permit_whose_answer_was_lost_gives_its_slot_back)."""
    hosts = masters(budget="30/1h")
    urls = [m.url for m in hosts]
    answers: list[tuple[int, str]] = []
    stop = threading.Event()
    counter = iter(range(1_000_000))

    def load() -> None:
        while not stop.is_set():
            n = next(counter)
            answer = requests.post(urls[n % 2] + "/workspaces", json=reader(name=f"r{n}"), timeout=60,
                                   headers={"Origin": ORIGIN, "X-Forwarded-For": f"10.{n // 62500}.{n // 250 % 250}.{n % 250}",
                                            "Connection": "close"})
            answers.append((answer.status_code, answer.json().get("code", "ok")))
            time.sleep(0.01)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for t in workers:
        t.start()
    try:
        until(lambda: sum(a == (200, "ok") for a in answers) >= 8, "8 created")
        redis_server.stop(keep_data=True)
        until(lambda: sum(a == (503, "storage_unavailable") for a in answers) >= 10, "10 storage_unavailable")
        redis_server.start()
        during = len(answers)
        until(lambda: any(a[0] == 200 for a in answers[during:]) and sum(a[0] == 200 for a in answers) >= 30,
              lambda: f"recovery and the whole budget created: {Counter(answers[during:])} {Counter(answers)}")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in workers:
            t.join()
    codes = Counter(answers)
    assert set(codes) <= {(200, "ok"), (503, "storage_unavailable"), (429, "budget_exhausted")}, codes
    assert codes[(200, "ok")] == 30 == emulator.count("POST /workspaces")
    assert codes[(503, "storage_unavailable")] >= 10


def test_killed_redis_without_persistence_forgets_and_the_endpoint_recovers(two_apps: Any,
                                                                           redis_server: RedisServer) -> None:
    """What a deployer must know: a Redis that loses its data (SIGKILL, no persistence) starts the
    windows again; the endpoint itself needs no restart."""
    a, _b = two_apps(budget="1/1h")
    assert a.post(client="203.0.113.1").status_code == 200
    error(a.post(client="203.0.113.2"), 429, "budget_exhausted")
    redis_server.stop()
    error(a.post(client="203.0.113.2"), 503, "storage_unavailable", STORAGE_DOWN)
    redis_server.start()
    for _ in range(300):
        if a.request("GET", "/healthz", origin=None).json()["status"] == "ok":
            break
        time.sleep(0.05)
    assert a.post(client="203.0.113.2").status_code == 200


def test_a_permit_whose_answer_was_lost_gives_its_slot_back(emulator: Any, redis_server: RedisServer,
                                                           access_token: str) -> None:
    """The cause of the budget ending one short after an outage: Redis ran the permit script and
    recorded the reservation, but its answer never came back, so no workspace was created for it.
    The endpoint keeps the permit's id and gives the slot back once Redis answers again."""
    cutter = ReplyCutter(redis_server.port)
    app = create_app({"api": emulator.url, "allow_projects": [PROJECT], "allow_origins": [ORIGIN],
                      "secret": SECRET, "retries": 0, "trust_proxy": 1, "budget": "2/1h",
                      "storage": cutter.url})
    redis = redis_server.client()
    budget, flight = "{sphere-docs:endpoint}:budget", "{sphere-docs:endpoint}:inflight"
    try:
        with serve(app) as url:
            ep = Endpoint(url, app)
            assert ep.post(client="203.0.113.9").status_code == 200  # (Redis now knows the script)
            cutter.arm(b"inflight")  # only the permit script names the in-flight set
            error(ep.post(client="203.0.113.1"), 503, "storage_unavailable", STORAGE_DOWN)
            assert cutter.cut == 1
            assert redis.zcard(budget) == 2  # recorded, but its answer was lost
            assert emulator.count("POST /workspaces") == 1
            until(lambda: a_health(ep) == "ok", "the storage answers again")
            assert (redis.zcard(budget), redis.zcard(flight)) == (1, 0)  # given back
            assert ep.post(client="203.0.113.2").status_code == 200  # the budget's second slot
            error(ep.post(client="203.0.113.3"), 429, "budget_exhausted")
            assert emulator.count("POST /workspaces") == 2
    finally:
        app.close()
        redis.close()
        cutter.close()


def a_health(ep: Endpoint) -> str:
    return str(ep.request("GET", "/healthz", origin=None).json()["status"])
