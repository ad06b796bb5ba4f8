"""How many intra-op threads torch may use in this process: a fair share of the cores, decided once
at process start.

torch's default is one thread per core. On a machine that is busy with anything else (a trainer's
laptop is rarely idle) those threads oversubscribe the cores, and OpenMP's threads then wait on each
other at every barrier: beside two CPU-bound processes on 2 cores, a 2-round demo took 3.1x as long
as alone, and 1.7x with one thread. So Merit takes the cores this process may run on
(``os.sched_getaffinity``) minus the ones already busy, and never fewer than one.

Evaluation passes (aggregator.utility) use one thread each whatever this says: their parallelism is
the executor's worker processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROC_LOADAVG = Path("/proc/loadavg")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (a container's or `taskset`'s limit), not the host's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """How many cores other work keeps busy: the larger of the 1-minute load average (slow to see
    new load) and the processes runnable right now, less this one (quick, but a snapshot)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    try:
        running = int(PROC_LOADAVG.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return load
    return max(load, float(running - 1))


def fair_share(cores: int, busy: float) -> int:
    """Threads for ``cores`` usable cores of which ``busy`` are taken: the idle ones, rounded, at least 1."""
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    return max(1, min(cores, int(cores - max(0.0, busy) + 0.5)))


def choose_threads(override: int | None = None) -> int:
    """``override`` (the ``MERIT_TORCH_THREADS`` setting) if given, else the fair share right now."""
    if override is not None:
        if override < 1:
            raise ValueError(f"torch threads must be >= 1, got {override}")
        return override
    return fair_share(available_cores(), busy_cores())


def apply_threads(threads: int) -> None:
    """Make ``threads`` this process's intra-op thread count. Before torch is imported that is
    OpenMP's environment variable, which torch reads when it loads (and worker processes inherit);
    after, torch's own setter."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def configure_threads(override: int | None = None) -> int | None:
    """Once, at process start (the `merit` command's callback): pick and apply the thread count.
    A user who set ``OMP_NUM_THREADS`` and not ``MERIT_TORCH_THREADS`` has chosen already: returns None."""
    if override is None and os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = choose_threads(override)
    apply_threads(threads)
    return threads
