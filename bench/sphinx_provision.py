"""Benchmark: Sphinx builds with build-time provisioning, measured side by side.

A generated project of 200 documents, 100 of them with one build-mode embed,
is built against the emulator (on loopback, 50 ms latency per API call) as:

* ``conc-1``   build mode, ``sphere_concurrency = 1`` (one API call at a time)
* ``conc-N``   build mode, the default concurrency (8)
* ``off``      the same documents without the extension (each embed's caption as plain text)
* ``lazy``     the extension on, ``sphere_mode = "lazy"`` (no API call at build time)

Every build is a fresh ``sphinx-build -E`` in its own process with a fresh
ledger, so each build-mode run really creates its 100 workspaces.  Reported:
the median wall time of each variant over ``--runs`` runs, the provisioning
phase (the extension's own "resolved in" line), and the ratios

* concurrency: provisioning phase conc-1 / conc-N (target >= 6x) and whole build;
* lazy overhead: lazy / off whole build (target within 5%).

Usage: ``python bench/sphinx_provision.py [--docs 200] [--embeds 100] [--latency 0.05] [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

TOKEN = "bench-token-0123456789abcdef"
RESOLVED = re.compile(r"build-mode embed\(s\) resolved in ([0-9.]+)s")

CONF = """\
extensions = {extensions!r}
project = "bench"
exclude_patterns = ["_build"]
html_theme = "alabaster"
sphere_endpoint = {endpoint!r}
sphere_lazy_endpoint = "http://127.0.0.1:9/workspaces"
sphere_mode = {mode!r}
sphere_concurrency = {concurrency}
sphere_cache = {cache!r}
"""

PROSE = (
    "This paragraph stands in for the text of a lesson. It has a few sentences so that the "
    "reader and the writer do some real work, like they would on a course page.\n\n"
)


def make_project(root: Path, docs: int, embeds: int, *, with_directive: bool) -> None:
    root.mkdir(parents=True)
    names = [f"doc{i:03d}" for i in range(docs)]
    (root / "index.rst").write_text(
        "Bench\n=====\n\n.. toctree::\n   :maxdepth: 1\n\n"
        + "".join(f"   {n}\n" for n in names), encoding="utf-8")
    step = max(1, docs // embeds) if embeds else docs + 1
    with_embed = set(names[::step][:embeds])
    for name in names:
        body = f"{name}\n{'=' * len(name)}\n\n" + PROSE * 3
        if name in with_embed:
            if with_directive:
                body += (f".. sphere-workspace:: {DEMO_PROJECT_ID}\n   :height: 400px\n\n"
                         f"   Exercise of {name}.\n\n")
            else:
                body += f"Exercise of {name}.\n\n"
        body += PROSE * 2
        (root / f"{name}.rst").write_text(body, encoding="utf-8")


def write_conf(root: Path, *, extension: bool, endpoint: str, mode: str, concurrency: int,
               cache: Path) -> None:
    extensions = ["sphere_docs.sphinx"] if extension else []
    (root / "conf.py").write_text(CONF.format(
        extensions=extensions, endpoint=endpoint, mode=mode, concurrency=concurrency,
        cache=str(cache)), encoding="utf-8")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_once(src: Path, work: Path) -> tuple[float, float, float | None]:
    """One fresh build in its own process: (wall seconds, CPU seconds, provisioning seconds)."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SPHERE_ENGINE_ACCESS_TOKEN=TOKEN)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-b", "html", "-d", str(out / ".doctrees"),
         str(src), str(out / "html")],
        env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    if proc.returncode != 0:
        raise SystemExit(f"build of {src} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    match = RESOLVED.search(proc.stdout)
    return elapsed, cpu, float(match.group(1)) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--embeds", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="the 'default' concurrency")
    parser.add_argument("--only", choices=("all", "concurrency", "lazy"), default="all",
                        help="run only the concurrency pair or only the off/lazy pair")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="sphinx-bench-"))
    try:
        with_ext = work / "src-ext"
        without = work / "src-off"
        make_project(with_ext, args.docs, args.embeds, with_directive=True)
        make_project(without, args.docs, args.embeds, with_directive=False)
        variants = {
            "conc-1": (with_ext, True, "build", 1),
            f"conc-{args.concurrency}": (with_ext, True, "build", args.concurrency),
            "off": (without, False, "build", args.concurrency),
            "lazy": (with_ext, True, "lazy", args.concurrency),
        }
        if args.only == "concurrency":
            variants = {k: v for k, v in variants.items() if k.startswith("conc-")}
        elif args.only == "lazy":
            variants = {k: v for k, v in variants.items() if k in ("off", "lazy")}
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        phases: dict[str, list[float]] = {name: [] for name in variants}
        with EmulatorServer(token=TOKEN, start_delay=0.0, latency=args.latency) as emulator:
            print(f"{args.docs} documents, {args.embeds} build-mode embeds, "
                  f"emulator latency {args.latency * 1000:.0f} ms, {args.runs} runs each "
                  f"(interleaved), Python {sys.version.split()[0]}", flush=True)
            for run in range(args.runs):
                for name, (src, extension, mode, concurrency) in variants.items():
                    cache = work / f"cache-{name}-{run}"  # fresh ledger: every workspace is new
                    write_conf(src, extension=extension, endpoint=emulator.url, mode=mode,
                               concurrency=concurrency, cache=cache)
                    before = emulator.count("POST /workspaces")
                    wall, cpu, phase = build_once(src, work)
                    creates = emulator.count("POST /workspaces") - before
                    expected = args.embeds if (extension and mode == "build") else 0
                    if creates != expected:
                        raise SystemExit(f"{name}: {creates} creates, expected {expected}")
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    if phase is not None:
                        phases[name].append(phase)
                    print(f"  run {run + 1} {name:>7}: build {wall:6.2f}s (CPU {cpu:5.2f}s)"
                          + (f", provisioning {phase:5.2f}s" if phase is not None else ""),
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in walls.items()}
    cpu_med = {name: statistics.median(values) for name, values in cpus.items()}
    phase = {name: statistics.median(values) for name, values in phases.items() if values}
    seq, par = "conc-1", f"conc-{args.concurrency}"
    print()
    print(f"{'variant':>8} | {'wall (median)':>13} | {'CPU (median)':>12} | {'provisioning (median)':>21}")
    for name in variants:
        shown = f"{phase[name]:.2f}s" if name in phase else "-"
        print(f"{name:>8} | {med[name]:12.2f}s | {cpu_med[name]:11.2f}s | {shown:>21}")
    print()
    if seq in phase and par in phase:
        print(f"concurrency, provisioning phase: {seq} / {par} = {phase[seq] / phase[par]:.1f}x "
              "(target >= 6x)")
        print(f"concurrency, whole build (wall): {seq} / {par} = {med[seq] / med[par]:.2f}x")
    if "off" in med and "lazy" in med:
        for label, values in (("wall", med), ("CPU", cpu_med)):
            overhead = (values["lazy"] / values["off"] - 1) * 100
            print(f"lazy mode vs extension off ({label}): lazy / off = "
                  f"{values['lazy'] / values['off']:.3f} ({overhead:+.1f}%, target within 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
