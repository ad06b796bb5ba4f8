"""The thread policy (backend/threads.py): torch gets the cores not already busy, at least one, chosen
once when `merit` starts; MERIT_TORCH_THREADS overrides it and a user's OMP_NUM_THREADS is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from backend import threads


@pytest.mark.parametrize(
    "cores, busy, expected",
    [
        (2, 0.0, 2),
        (2, 0.3, 2),
        (2, 0.6, 1),
        (2, 2.0, 1),
        (2, 7.5, 1),
        (16, 0.0, 16),
        (16, 4.2, 12),
        (16, 15.9, 1),
        (1, 0.0, 1),
        (8, -1.0, 8),
    ],
)
def test_fair_share_is_the_idle_cores_and_at_least_one(cores, busy, expected):
    assert threads.fair_share(cores, busy) == expected


def test_fair_share_refuses_no_cores():
    with pytest.raises(ValueError):
        threads.fair_share(0, 0.0)


def test_busy_cores_counts_what_runs_now_besides_this_process(tmp_path, monkeypatch):
    fake = tmp_path / "loadavg"
    fake.write_text("0.10 0.20 0.30 3/120 4242\n")  # a 1-minute average that has not caught up yet
    monkeypatch.setattr(threads, "PROC_LOADAVG", fake)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.2, 0.3))
    assert threads.busy_cores() == 2.0
    fake.write_text("2.50 1.00 0.50 1/120 4242\n")  # the load just stopped: the average still counts it
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 1.0, 0.5))
    assert threads.busy_cores() == 2.5


def test_available_cores_follow_the_affinity_mask():
    assert threads.available_cores() == len(os.sched_getaffinity(0))


def test_the_override_wins_and_must_be_positive(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 100.0)
    assert threads.choose_threads(3) == 3
    assert threads.choose_threads() == 1
    with pytest.raises(ValueError):
        threads.choose_threads(0)


def test_a_users_omp_num_threads_is_left_alone(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure_threads(None) is None
    assert os.environ["OMP_NUM_THREADS"] == "3"


def _threads_after_merit(env: dict[str, str]) -> str:
    """Run a `merit` command in a fresh process, then report the torch thread count it left."""
    code = (
        "import sys; sys.argv = ['merit', 'ipfs', 'add', '--only-hash', sys.executable]\n"
        "from backend.cli import main\n"
        "try:\n    main.run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "import os, torch; print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MERIT_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_merit_sets_torch_threads_once_at_start():
    """Before torch loads, through OpenMP's variable (torch caps it at the cores it sees)."""
    assert _threads_after_merit({"MERIT_TORCH_THREADS": "1"}) == "1 1"
    assert _threads_after_merit({"MERIT_TORCH_THREADS": "3"}).startswith("3 ")
    assert _threads_after_merit({"OMP_NUM_THREADS": "3"}).startswith("3 ")  # the user's choice stands
    chosen, torch_threads = _threads_after_merit({}).split()
    assert 1 <= int(torch_threads) == min(int(chosen), os.cpu_count())


def test_applying_after_torch_loaded_uses_torchs_setter(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "x")  # restored afterwards
    before = torch.get_num_threads()
    try:
        threads.apply_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_a_bad_thread_setting_is_a_clear_error():
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "demo", "--rounds", "1"],
        env={**os.environ, "MERIT_TORCH_THREADS": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "MERIT_TORCH_THREADS" in out.stderr and "Traceback" not in out.stderr
