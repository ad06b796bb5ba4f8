"""Training on a busy machine: ``merit demo --trainers 4 --rounds 2`` alone and beside two CPU-bound
processes (``python -c 'while 1: pass'``), with Merit's thread policy (backend/threads.py: the cores
not busy at start, at least one) and with torch's default (one intra-op thread per core, forced with
MERIT_TORCH_THREADS). Target: the loaded run takes at most 2.5x the run alone.

The two conditions run back to back, alternating, ``MERIT_BENCH_THREADS_REPEATS`` times (default 2),
because this machine is shared: "alone" means no load of ours, and the load average before each run
is recorded so the reader can see what else was running. Each run is a fresh process, as a user's
`merit demo` is. Ratios use the median of each condition. The demo's own CPU seconds are recorded
too: unlike wall time they do not depend on what else shares the machine, and threads that
oversubscribe the cores show as CPU time spent waiting.

    python -m bench threads            # or: make bench BENCHES=threads
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.threads import available_cores, busy_cores, choose_threads
from bench._demo import demo_report

DEMO = ["--trainers", "4", "--rounds", "2"]
LOAD_PROCESSES = 2
TARGET_RATIO = 2.5
POLICIES = {
    "merit": None,  # backend/threads.py decides at start
    "torch_default": available_cores(),  # what torch does unasked: one thread per core
}


def _env(policy_threads: int | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MERIT_TORCH_THREADS")
    }
    if policy_threads is not None:
        env["MERIT_TORCH_THREADS"] = str(policy_threads)
    return env


def _demo(policy_threads: int | None, home: Path) -> dict:
    """One `merit demo` in a fresh process: wall time, its own phase times, and the scene it ran in."""
    before = {
        "load_1min": round(os.getloadavg()[0], 2),
        "busy_cores_seen": round(busy_cores(), 2),
        "threads": choose_threads(policy_threads),
    }
    out = home / f"demo-{time.monotonic_ns()}"
    env = _env(policy_threads) | {"MERIT_HOME": str(home / "merit-home")}
    start, cpu_before = time.perf_counter(), _children_cpu()
    report = demo_report(DEMO, out, env, timeout=1800)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_before
    return {
        **before,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "phases_seconds": {k: round(v, 2) for k, v in report.get("phases_seconds", {}).items()},
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) of finished child processes: a demo's own work, whatever else ran.
    Threads that oversubscribe the cores show here as extra CPU time spent waiting at barriers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Load:
    """Two busy loops for the duration of a run. With ``own_session`` (the default) they run in a
    session of their own, as another program's work does: Linux's autogroup scheduler shares the CPU
    between sessions first, so loops started in the demo's own session would compete inside the
    demo's slice instead (MERIT_BENCH_THREADS_LOAD_SESSION=shared measures that)."""

    def __init__(self, own_session: bool = True):
        self.own_session = own_session

    def __enter__(self) -> "_Load":
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=self.own_session)
            for _ in range(LOAD_PROCESSES)
        ]
        time.sleep(1.0)  # let them be seen as runnable before the demo starts
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def _summary(runs: list[dict]) -> dict:
    walls = [r["wall_seconds"] for r in runs]
    return {
        "median_seconds": round(statistics.median(walls), 2),
        "min_seconds": min(walls),
        "max_seconds": max(walls),
        "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 2),
        "median_load_1min": round(statistics.median(r["load_1min"] for r in runs), 2),
    }


def run(results: Path) -> dict:
    repeats = int(os.environ.get("MERIT_BENCH_THREADS_REPEATS", "2"))
    policies = os.environ.get("MERIT_BENCH_THREADS_POLICIES", ",".join(POLICIES)).split(",")
    own_session = os.environ.get("MERIT_BENCH_THREADS_LOAD_SESSION", "own") != "shared"
    out: dict = {
        "command": "merit demo " + " ".join(DEMO),
        "cores": available_cores(),
        "load_processes": LOAD_PROCESSES,
        "load_session": "own" if own_session else "shared",
        "target_ratio": TARGET_RATIO,
        "repeats": repeats,
        "policies": {},
    }
    with tempfile.TemporaryDirectory(prefix="merit-bench-threads-") as tmp:
        for name in policies:
            threads = POLICIES[name]
            runs: dict[str, list[dict]] = {"alone": [], "loaded": []}
            for i in range(repeats):
                runs["alone"].append(_demo(threads, Path(tmp)))
                with _Load(own_session):
                    runs["loaded"].append(_demo(threads, Path(tmp)))
                print(
                    f"   {name} #{i}: alone {runs['alone'][-1]['wall_seconds']} s, "
                    f"loaded {runs['loaded'][-1]['wall_seconds']} s",
                    flush=True,
                )
            alone, loaded = _summary(runs["alone"]), _summary(runs["loaded"])
            out["policies"][name] = {
                "threads_setting": threads,
                "alone": alone,
                "loaded": loaded,
                "ratio": round(loaded["median_seconds"] / alone["median_seconds"], 2),
                "runs": runs,
            }
    return out
