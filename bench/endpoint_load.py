"""Load test of the lazy endpoint: gunicorn (the sample config, memory://) on loopback, the emulator upstream.

    python bench/endpoint_load.py [--requests 5000] [--concurrency 50] [--write]

For each emulator latency (0 ms and 50 ms) it starts ``sphere-docs emulator``
and gunicorn with ``sphere_docs/services/endpoint/gunicorn.conf.py`` in subprocesses,
warms up a pool of readers (their claims), then sends a bounded mix at fixed
concurrency from a thread pool (one ``requests.Session`` per thread):

* new readers (20 %): a fresh client address, no claim → 200, or 429 ``budget_exhausted``
  once the deployment-wide budget is spent;
* returning readers (60 %): a warm-up reader's claim → 200 with the same workspace;
* disallowed (20 %): a project, an origin or a forged claim the endpoint refuses → 403.

Then the same number of upstream calls straight to the emulator (creates for
the new readers, GETs for the returning ones) at the same concurrency, for the
p99 ratio.  It asserts no 5xx, every answer as expected for its kind, and no
more workspaces created than the budget.  ``--write`` puts the table into this
script's section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common  # bench/common.py
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PROJECT = "eef024c1d14f46319517a65edafb5ee3"
OTHER_PROJECT = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"
ORIGIN = "http://127.0.0.1:8000"
TOKEN = "bench-token-not-a-secret-0123456789"
SECRET = "bench-signing-key-0123456789abcdef"
WARM_READERS = 100
MARK_START = "<!-- endpoint_load:start -->"
MARK_END = "<!-- endpoint_load:end -->"


@dataclass
class Run:
    label: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


class Proc:
    """A subprocess whose output is read in a thread; ``wait_for(regex)`` returns the first match."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, cwd=ROOT, start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{pattern!r} not seen; output:\n" + "".join(self.lines[-30:]))
                self._cond.wait(0.2)

    def stop(self) -> None:
        common.stop_group(self.proc)  # its own session: gunicorn's workers too


def start_stack(latency: float, budget: int) -> tuple[Proc, Proc, str, str]:
    env = {**os.environ, "SPHERE_ENGINE_ACCESS_TOKEN": TOKEN}
    emulator = Proc([sys.executable, "-m", "sphere_docs", "emulator", "--port", "0", "--start-delay", "0",
                     "--latency", str(latency)], env)
    emulator_url = emulator.wait_for(r"(http://127\.0\.0\.1:\d+)").group(1)
    env.update({
        "SPHERE_ENDPOINT_API": emulator_url,
        "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
        "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN,
        "SPHERE_ENDPOINT_SECRET": SECRET,
        "SPHERE_ENDPOINT_BUDGET": f"{budget}/1h",
        "SPHERE_ENDPOINT_RATE": "5/10m",
        "SPHERE_ENDPOINT_REQUESTS": "600/1m",
        "SPHERE_ENDPOINT_TRUST_PROXY": "1",
        "SPHERE_ENDPOINT_BIND": "127.0.0.1:0",
        "SPHERE_ENDPOINT_WORKERS": "1",  # memory:// counts in one process (Redis shares across workers)
    })
    gunicorn = Proc([sys.executable, "-m", "gunicorn", "-c", "sphere_docs/services/endpoint/gunicorn.conf.py",
                     "--access-logfile", "/dev/null", "sphere_docs.endpoint:create_app()"], env)
    endpoint_url = gunicorn.wait_for(r"Listening at: (http://127\.0\.0\.1:\d+)").group(1)
    gunicorn.wait_for(r"Booting worker")
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(endpoint_url + "/healthz", timeout=5).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not answer /healthz")
        time.sleep(0.2)
    return emulator, gunicorn, emulator_url, endpoint_url


_local = threading.local()


def session() -> requests.Session:
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=4))
    return s


def body(project: str = PROJECT, reader: int = 0, claim: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"project_id": project, "page": f"lessons/{reader % 7}.md", "name": f"ws-r{reader}"}
    if claim:
        out["claim"] = claim
    return out


def plan(n: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    kinds = ["new"] * 20 + ["returning"] * 60 + ["disallowed"] * 20
    return [(rng.choice(kinds), i) for i in range(n)]


def run_endpoint(url: str, items: list[tuple[str, int]], claims: dict[int, str], concurrency: int,
                 label: str) -> tuple[Run, list[str]]:
    run = Run(label)
    problems: list[str] = []
    lock = threading.Lock()
    warm = sorted(claims)

    def one(item: tuple[str, int]) -> None:
        kind, i = item
        headers = {"Origin": ORIGIN}
        if kind == "new":
            reader = 10_000 + i
            payload = body(reader=reader)
        elif kind == "returning":
            reader = warm[i % len(warm)]
            payload = body(reader=reader, claim=claims[reader])
        else:
            reader = warm[i % len(warm)]
            variant = i % 3
            payload = body(project=OTHER_PROJECT if variant == 0 else PROJECT, reader=reader,
                           claim=("v1." + "0" * 32 + ".9999999999." + "A" * 43) if variant == 2 else None)
            if variant == 1:
                headers["Origin"] = "https://elsewhere.example"
        headers["X-Forwarded-For"] = f"10.{reader >> 16 & 255}.{reader >> 8 & 255}.{reader & 255}"
        t0 = time.perf_counter()
        answer = session().post(url + "/workspaces", json=payload, headers=headers, timeout=60)
        elapsed = time.perf_counter() - t0
        code = answer.json().get("code", "ok")
        ok = {
            "new": (answer.status_code == 200 or code == "budget_exhausted"),
            "returning": answer.status_code == 200 and answer.json().get("reused") is True,
            "disallowed": answer.status_code == 403,
        }[kind]
        with lock:
            run.latencies.append(elapsed)
            run.statuses[f"{kind} {answer.status_code} {code}"] += 1
            if not ok or answer.status_code >= 500:
                problems.append(f"{kind}: {answer.status_code} {answer.text[:120]}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, items))
    run.seconds = time.perf_counter() - t0
    return run, problems


def run_direct(emulator_url: str, items: list[tuple[str, int]], workspace_ids: list[str],
               concurrency: int) -> Run:
    """The upstream calls the endpoint makes for the same mix, straight to the emulator."""
    run = Run("emulator direct")
    lock = threading.Lock()
    api = emulator_url + "/api/v1"
    calls = [("create" if kind == "new" else "get", i) for kind, i in items if kind != "disallowed"]

    def one(call: tuple[str, int]) -> None:
        kind, i = call
        t0 = time.perf_counter()
        if kind == "create":
            answer = session().post(api + "/workspaces", params={"access_token": TOKEN},
                                    data={"project_id": PROJECT, "workspace_token_required": "true"}, timeout=60)
        else:
            answer = session().get(f"{api}/workspaces/{workspace_ids[i % len(workspace_ids)]}",
                                   params={"access_token": TOKEN}, timeout=60)
        elapsed = time.perf_counter() - t0
        with lock:
            run.latencies.append(elapsed)
            run.statuses[f"{kind} {answer.status_code}"] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, calls))
    run.seconds = time.perf_counter() - t0
    return run


def measure(latency: float, n: int, concurrency: int, budget: int) -> dict[str, Any]:
    emulator, gunicorn, emulator_url, endpoint_url = start_stack(latency, budget)
    try:
        claims: dict[int, str] = {}
        ids: list[str] = []
        for reader in range(WARM_READERS):  # the returning readers' first visit
            answer = requests.post(endpoint_url + "/workspaces", json=body(reader=reader), timeout=60,
                                   headers={"Origin": ORIGIN, "X-Forwarded-For": f"10.0.0.{reader}"})
            answer.raise_for_status()
            claims[reader] = answer.json()["claim"]
            ids.append(answer.json()["workspace_id"])
        items = plan(n)
        endpoint_run, problems = run_endpoint(endpoint_url, items, claims, concurrency,
                                              f"endpoint, emulator +{latency * 1000:.0f} ms")
        stats = requests.get(emulator_url + "/_emulator/stats", timeout=30).json()
        created = stats["workspaces"]["total"]
        direct = run_direct(emulator_url, items, ids, concurrency)
    finally:
        gunicorn.stop()
        emulator.stop()
    assert not problems, f"{len(problems)} unexpected answers, e.g. {problems[:5]}"
    assert created <= budget, f"{created} workspaces created, budget {budget}"
    fivexx = sum(c for k, c in endpoint_run.statuses.items() if k.split()[1].startswith("5"))
    assert fivexx == 0
    return {"latency": latency, "endpoint": endpoint_run, "direct": direct, "created": created,
            "budget": budget}


def table(results: list[dict[str, Any]], n: int, concurrency: int) -> str:
    lines = [
        f"{n} requests at {concurrency} concurrent per run (20 % new readers, 60 % returning readers with a "
        f"claim, 20 % disallowed), gunicorn with the sample config (1 gthread worker, memory://), emulator in its own process; "
        f"{WARM_READERS} readers warmed up first. Direct = the same upstream creates/GETs straight to the "
        "emulator at the same concurrency. Loopback, 2 shared cores.",
        "",
        "| emulator latency | endpoint req/s | endpoint p50 | endpoint p99 | direct req/s | direct p50 "
        "| direct p99 | p99 ratio | created / budget | 5xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e, d = r["endpoint"], r["direct"]
        lines.append(
            f"| {r['latency'] * 1000:.0f} ms | {e.rate:.0f} | {e.pct(0.5):.1f} ms | {e.pct(0.99):.1f} ms "
            f"| {d.rate:.0f} | {d.pct(0.5):.1f} ms | {d.pct(0.99):.1f} ms | {e.pct(0.99) / d.pct(0.99):.2f}x "
            f"| {r['created']} / {r['budget']} | 0 |"
        )
    lines += [
        "",
        "Reading it: the budget is deployment-wide (one process with memory://; Redis for several "
        "workers or hosts), so the workspaces created never exceed it; new readers past it get 429 "
        "`budget_exhausted` with `Retry-After`. The load generator, gunicorn and the emulator "
        "share the same 2 cores, so absolute numbers are CPU-bound and noisy; the p99 ratio is the cost of "
        "the extra hop (parse, checks, HMAC, an upstream call on the same box).",
        "",
    ]
    for r in results:
        kinds = ", ".join(f"{k}: {c}" for k, c in sorted(r["endpoint"].statuses.items()))
        lines.append(f"- {r['latency'] * 1000:.0f} ms answers: {kinds}")
    return "\n".join(lines)


def write_section(text: str) -> None:
    section = f"{MARK_START}\n## Lazy endpoint under load (`bench/endpoint_load.py`)\n\n{text}\n{MARK_END}\n"
    common.write_section(section, MARK_START, MARK_END)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--budget", type=int, default=600, help="creations per hour for the deployment")
    parser.add_argument("--latencies", default="0,0.05", help="emulator latencies in seconds")
    parser.add_argument("--write", action="store_true", help="update this script's section of bench/RESULTS.md")
    args = parser.parse_args()
    results = []
    for latency in (float(x) for x in args.latencies.split(",")):
        print(f"-- emulator latency {latency * 1000:.0f} ms", flush=True)
        results.append(measure(latency, args.requests, args.concurrency, args.budget))
    text = table(results, args.requests, args.concurrency)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
