"""A lecture's burst on the lazy endpoint: N new readers click within one second.

    python bench/endpoint_burst.py [--readers 1000] [--window 1.0] [--latency 0.3]
                                   [--rows direct,memory,redis,old] [--slow-clients 200] [--write]

Each reader is a distinct client (``X-Forwarded-For`` 10.x.y.z, ``SPHERE_ENDPOINT_TRUST_PROXY=1``)
arriving at a uniform pattern: reader i clicks at ``i * window / N``.  The time of one reader runs
from the click (its connection is opened) to the answer carrying a workspace id; a 429 ``busy``
(the in-flight cap) is retried after its ``Retry-After``, as the page does by itself, and the
time counts until success.  The emulator (its own process, a fresh one per
row) answers each create after ``--latency`` seconds.  Rows:

* ``direct``: the same burst straight to the emulator's ``POST /api/v1/workspaces``;
* ``memory``: gunicorn with the shipped ``sphere_docs/services/endpoint/gunicorn.conf.py``, ``memory://``;
* ``redis``: the same with ``SPHERE_ENDPOINT_STORAGE=redis://`` (a redis-server started on a free
  loopback port in a temporary directory), the config's default workers for Redis;
* ``old``: the sample as it was before issue 15: 2 workers x 16 gthread threads (on Redis, the
  only way two workers share a budget now).

Budget, per-client rates and the in-flight cap are set far above the burst.  The load generator is
asyncio with raw HTTP/1.1 on loopback (one connection per reader, like a new browser), in this
process; gunicorn's access log goes to a file, not through a pipe to this process.

``--slow-clients N``: with the shipped config (``memory://``), N sockets send a request's first
line and then one header byte every 2 s; meanwhile ``GET /healthz`` is asked 20 times, one after
the other, and its times reported; then the same with N/2 threads (3 probes, 10 s timeout each):
a client that never finishes its headers holds a gunicorn thread, so without a buffering proxy
the threads are the number of slow clients it takes to starve the endpoint (see the README).

``--write`` puts the tables into this script's section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import common  # bench/common.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
CONF = ROOT / "sphere_docs" / "services" / "endpoint" / "gunicorn.conf.py"
PROJECT = "eef024c1d14f46319517a65edafb5ee3"
ORIGIN = "http://127.0.0.1:8000"
TOKEN = "bench-token-not-a-secret-0123456789"
SECRET = "bench-signing-key-0123456789abcdef"
MARK_START = "<!-- endpoint_burst:start -->"
MARK_END = "<!-- endpoint_burst:end -->"
ROWS = {
    "direct": "direct to the emulator",
    "memory": "endpoint, shipped sample config, memory://",
    "redis": "endpoint, shipped sample config, redis://",
    "old": "endpoint, old sample config (2 workers x 16 threads), redis://",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A subprocess in its own session, its output in a file; ``wait_for(regex)`` reads the file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                     start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.text()))
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{pattern!r} not seen; output:\n" + self.text()[-3000:])
            time.sleep(0.05)

    def stop(self) -> None:
        common.stop_group(self.proc)  # its own session: gunicorn's workers too
        self._out.close()


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session ``sid`` (a subprocess and its workers)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session, ...
            total += int(fields[11]) + int(fields[12])
    return total / tick


def start_emulator(latency: float, tmp: Path) -> tuple[Proc, str]:
    env = {**os.environ, "SPHERE_ENGINE_ACCESS_TOKEN": TOKEN}
    emulator = Proc([sys.executable, "-m", "sphere_docs", "emulator", "--port", "0", "--start-delay", "0",
                     "--latency", str(latency)], env, tmp / "emulator.log")
    return emulator, emulator.wait_for(r"(http://127\.0\.0\.1:\d+)").group(1)


def start_redis(tmp: Path) -> tuple[Proc, str]:
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server not found (Debian's redis-server; .ci/setup installs it)")
    port = free_port()
    data = tmp / "redis"
    data.mkdir(exist_ok=True)
    redis = Proc([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
                  "--appendonly", "no"], dict(os.environ), tmp / "redis.log")
    redis.wait_for(r"Ready to accept connections")
    return redis, f"redis://127.0.0.1:{port}/0"


def start_gunicorn(emulator_url: str, tmp: Path, readers: int, **settings: str) -> tuple[Proc, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENDPOINT_")}
    env.update({
        "SPHERE_ENGINE_ACCESS_TOKEN": TOKEN,
        "SPHERE_ENDPOINT_API": emulator_url,
        "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
        "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN,
        "SPHERE_ENDPOINT_SECRET": SECRET,
        "SPHERE_ENDPOINT_BUDGET": f"{readers * 10}/1h",
        "SPHERE_ENDPOINT_INFLIGHT": str(readers * 2),
        "SPHERE_ENDPOINT_TRUST_PROXY": "1",
        "SPHERE_ENDPOINT_BIND": "127.0.0.1:0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update({f"SPHERE_ENDPOINT_{k.upper()}": v for k, v in settings.items()})
    gunicorn = Proc([sys.executable, "-m", "gunicorn", "-c", str(CONF), "sphere_docs.endpoint:create_app()"],
                    env, tmp / "gunicorn.log")
    url = gunicorn.wait_for(r"Listening at: (http://127\.0\.0\.1:\d+)").group(1)
    workers = int(settings.get("workers", "2" if "storage" in settings else "1"))
    gunicorn.wait_for(r"Booting worker", count=workers)
    for _ in range(600):
        try:
            status, _h, _b = asyncio.run(request(url, "GET", "/healthz"))
            if status == 200:
                return gunicorn, url
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("gunicorn did not answer /healthz:\n" + gunicorn.text()[-3000:])


# ------------------------------------------------------------------ the load generator


async def request(base: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                  ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange on a new connection (``Connection: close``): status, headers, body."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, payload


@dataclass
class Row:
    key: str
    readers: int
    times: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    seconds: float = 0.0
    created: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        data = sorted(self.times)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000 if data else float("nan")

    @property
    def errors_5xx(self) -> int:
        return sum(n for k, n in self.answers.items() if k.startswith("5"))


async def burst(row: Row, base: str, window: float, direct: bool) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i * window / row.readers - loop.time()))
        clicked = time.perf_counter()
        if direct:
            path, body = "/api/v1/workspaces", f"project_id={PROJECT}".encode()
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
        else:
            path = "/workspaces"
            body = json.dumps({"project_id": PROJECT, "page": f"lessons/{i % 7}.md", "name": f"ws-r{i}"}).encode()
            headers = {"Origin": ORIGIN, "Content-Type": "application/json",
                       "X-Forwarded-For": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
        for _attempt in range(30):
            try:
                status, got, payload = await asyncio.wait_for(request(base, "POST", path, body, headers), 120)
            except (OSError, asyncio.TimeoutError) as exc:
                row.answers[f"connection {type(exc).__name__}"] += 1
                return
            code = "ok"
            if status != 200 or direct:
                try:
                    code = str(json.loads(payload).get("code", "ok")) if not direct else "ok"
                except ValueError:
                    code = "not json"
            row.answers[f"{status} {code}"] += 1
            if status == 429 and code == "busy":
                row.retried += 1
                await asyncio.sleep(float(got.get("retry-after", "1")))
                continue
            if direct:
                ok = status in (200, 201) and b'"id"' in payload
            else:
                ok = status == 200 and b'"workspace_id"' in payload
            if ok:
                row.times.append(time.perf_counter() - clicked)
            return

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(row.readers)))
    row.seconds = time.perf_counter() - began - 0.2


def run_row(key: str, args: argparse.Namespace, tmp: Path) -> Row:
    row = Row(key, args.readers)
    procs: list[Proc] = []
    try:
        emulator, emulator_url = start_emulator(args.latency, tmp)
        procs.append(emulator)
        if key == "direct":
            base = emulator_url
        else:
            settings: dict[str, str] = {}
            if key in ("redis", "old"):
                redis, url = start_redis(tmp)
                procs.append(redis)
                settings["storage"] = url
            if key == "old":
                settings.update(workers="2", threads="16")
            elif args.threads:
                settings["threads"] = str(args.threads)
            gunicorn, base = start_gunicorn(emulator_url, tmp, args.readers, **settings)
            procs.insert(0, gunicorn)
        before = {"emulator": session_cpu(emulator.proc.pid), "generator": time.process_time()}
        if key != "direct":
            before["endpoint"] = session_cpu(procs[0].proc.pid)
        asyncio.run(burst(row, base, args.window, key == "direct"))
        row.cpu = {"emulator": session_cpu(emulator.proc.pid) - before["emulator"],
                   "generator": time.process_time() - before["generator"]}
        if key != "direct":
            row.cpu["endpoint"] = session_cpu(procs[0].proc.pid) - before["endpoint"]
        stats = asyncio.run(request(emulator_url, "GET", "/_emulator/stats"))[2]
        row.created = int(json.loads(stats)["workspaces"]["total"])
    finally:
        for proc in procs:
            proc.stop()
    return row


# ------------------------------------------------------------------ slow clients vs /healthz


async def slow_clients(base: str, count: int, probes: int, timeout: float) -> tuple[list[float], Counter[str], int]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    held: list[asyncio.StreamWriter] = []
    for _ in range(count):
        _r, w = await asyncio.open_connection(host, int(port))
        w.write(b"POST /workspaces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(w)
    await asyncio.sleep(1.0)  # every one of them read by a thread by now

    async def drip() -> None:
        while True:
            await asyncio.sleep(2.0)
            for w in held:
                if not w.is_closing():
                    w.write(b"a")

    dripping = asyncio.create_task(drip())
    times: list[float] = []
    answers: Counter[str] = Counter()
    for _ in range(probes):
        t0 = time.perf_counter()
        try:
            status, _h, _b = await asyncio.wait_for(request(base, "GET", "/healthz"), timeout)
            answers[str(status)] += 1
        except (OSError, asyncio.TimeoutError) as exc:
            answers[type(exc).__name__] += 1
        times.append(time.perf_counter() - t0)
    still_open = sum(not w.is_closing() for w in held)
    dripping.cancel()
    for w in held:
        w.close()
    return times, answers, still_open


def run_slow(args: argparse.Namespace, tmp: Path) -> list[str]:
    lines = []
    # the shipped config; then threads fewer than the slow sockets (what a config without room looks like)
    for threads, probes, timeout in ((0, 20, 30.0), (args.slow_clients // 2, 3, 10.0)):
        emulator, emulator_url = start_emulator(args.latency, tmp)
        try:
            settings = {"threads": str(threads)} if threads else {}
            gunicorn, base = start_gunicorn(emulator_url, tmp, args.readers, **settings)
            try:
                times, answers, still_open = asyncio.run(slow_clients(base, args.slow_clients, probes, timeout))
            finally:
                gunicorn.stop()
        finally:
            emulator.stop()
        times.sort()
        case = f"shipped config ({threads or 512} threads)" if not threads else f"{threads} threads"
        lines.append(
            f"| {args.slow_clients} slow sockets, {case}, memory:// | {probes} x {timeout:g} s "
            f"| {times[len(times) // 2] * 1000:.1f} ms | {times[-1] * 1000:.1f} ms "
            f"| {', '.join(f'{k}: {v}' for k, v in sorted(answers.items()))} | {still_open} |")
    return lines


# ------------------------------------------------------------------ report


def table(rows: list[Row], latency: float) -> list[str]:
    direct = next((r for r in rows if r.key == "direct"), None)
    lines = ["| row | p50 | p99 | p99 / direct p99 | answers | busy retries | 5xx | created | burst done in "
             "| CPU s: endpoint / emulator / generator |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.pct(0.99) / direct.pct(0.99):.2f}x" if direct and r is not direct else "-"
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r.answers.items()))
        lines.append(f"| {ROWS[r.key]} | {r.pct(0.5):.0f} ms | {r.pct(0.99):.0f} ms | {ratio} | {answers} "
                     f"| {r.retried} | {r.errors_5xx} | {r.created} | {r.seconds:.2f} s "
                     f"| {r.cpu.get('endpoint', 0):.1f} / {r.cpu.get('emulator', 0):.1f} / {r.cpu.get('generator', 0):.1f} |")
    return lines


def summary(rounds: list[list[Row]]) -> list[str]:
    """Per row: each round's p99 / that round's direct p99, their median, and every 5xx."""
    keys = [r.key for r in rounds[0] if r.key != "direct"]
    lines = [f"Median over {len(rounds)} rounds (the machine's load moves the direct floor between rounds, "
             "so each ratio is taken within its round):", "",
             "| row | p99 / direct p99, round by round | median | 5xx, all rounds |", "|---|---|---|---|"]
    for key in keys:
        ratios = [r.pct(0.99) / d.pct(0.99) for rows in rounds
                  for r in rows if r.key == key for d in rows if d.key == "direct"]
        errors = sum(r.errors_5xx for rows in rounds for r in rows if r.key == key)
        lines.append(f"| {ROWS[key]} | {', '.join(f'{x:.2f}x' for x in ratios)} | "
                     f"**{statistics.median(ratios):.2f}x** | {errors} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--window", type=float, default=1.0, help="seconds over which the readers arrive")
    parser.add_argument("--latency", type=float, default=0.3, help="emulator seconds per create")
    parser.add_argument("--rows", default="direct,memory,redis,old")
    parser.add_argument("--slow-clients", type=int, default=0, metavar="N")
    parser.add_argument("--threads", type=int, default=0,
                        help="SPHERE_ENDPOINT_THREADS for the memory and redis rows (default: the config's)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the rows, one after the other; the ratio is taken within each round "
                             "(against that round's direct row) and the median reported")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    keys = [k for k in args.rows.split(",") if k]
    for key in keys:
        if key not in ROWS:
            parser.error(f"unknown row {key!r}; rows: {', '.join(ROWS)}")
    rounds: list[list[Row]] = []
    slow: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sphere-bench-burst-") as tmpdir:
        tmp = Path(tmpdir)
        for number in range(args.rounds):
            rows: list[Row] = []
            # the baseline of the old config is slow and far off: measured in the first round only
            for key in [k for k in keys if k != "old" or number == 0]:
                rows.append(run_row(key, args, tmp))
                print(f"round {number + 1}: " + "\n".join(table(rows, args.latency)[-1:]), flush=True)
            rounds.append(rows)
        if args.slow_clients:
            slow = run_slow(args, tmp)
    lines = [f"{args.readers} new readers (distinct clients) arriving uniformly within {args.window:g} s; "
             f"emulator latency {args.latency * 1000:.0f} ms per create; time = click to workspace id.", ""]
    for number, rows in enumerate(rounds):
        if len(rounds) > 1:
            lines += [f"Round {number + 1}:", ""]
        lines += [*table(rows, args.latency), ""]
    if len(rounds) > 1:
        lines += summary(rounds)
    if slow:
        lines += ["", "`/healthz` while slow clients hold sockets open straight on gunicorn (no proxy), probes "
                      "one after the other:", "",
                  "| case | probes x timeout | healthz p50 | healthz max | answers | slow sockets still open |",
                  "|---|---|---|---|---|---|", *slow]
    print("\n".join(lines))
    if args.write:
        machine = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores (shared)"
        command = " ".join(["python bench/endpoint_burst.py", *(argv if argv is not None else sys.argv[1:])])
        section = "\n".join([
            MARK_START, "## A lecture's burst on the lazy endpoint (`bench/endpoint_burst.py`, issue 15)", "",
            f"`{command.replace(' --write', '')}` on {machine}.", "", *lines, "", READING, MARK_END])
        common.write_section(section, MARK_START, MARK_END)
    return 0


READING = (
    'Reading it: the direct row is the floor (the emulator and the generator on the same cores); the p99 '
    'ratio is what the endpoint adds. The last column is CPU seconds spent during the burst by each proce'
    'ss group: when their sum is above the cores times the burst, the burst is CPU-bound and the ratio me'
    'asures the machine, not waiting. The old config runs at most 32 creates at once, so a second of read'
    'ers queues for about N x latency / 32.'
)


if __name__ == "__main__":
    sys.exit(main())
