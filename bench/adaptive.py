"""Adaptive attacks (3 of 10 trainers, real MNIST digits, the CNN): for each kind, how often the
attackers are flagged, the share of the budget they are paid (and one attacker's pay against one
honest trainer's), honest trainers flagged, final test accuracy against a clean run, and for the
backdoor its attack success rate; beside FedAvg, coordinate-wise median and trimmed mean (the
rules Flower's FedMedian/FedTrimmedAvg and ByzFL's Median/TrMean compute) on the same attack.

The full Flower/ByzFL side by side lives in ``bench/aggregator.py`` (it needs the bench
virtualenv); ``MERIT_BENCH_ATTACKS`` there runs these kinds too.

Scale knobs: ``MERIT_ADAPTIVE_SEEDS`` (5), ``MERIT_BENCH_ROUNDS`` (5), ``MERIT_BENCH_ATTACKS``
(comma-separated kinds; default: the adaptive ones), ``MERIT_ADAPTIVE_RULES`` (plain rules beside,
comma-separated; all), ``MERIT_BENCH_JOBS`` (1), ``MERIT_BENCH_THREADS`` (1).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np
import torch

from aggregator.aggregation import median, trimmed_mean
from backend.simulate.attacks import ADAPTIVE_KINDS
from bench.aggregator import Setup, _run_job, _run_plan, run_plain, summarize_robustness

PLAIN_RULES = {
    "fedavg": lambda s: s.mean(axis=0),
    "median": lambda s: np.asarray(median(s)),
    "trimmed_mean_0.2": lambda s: np.asarray(trimmed_mean(s, beta=0.2)),
}
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def baselines(setup: Setup, kinds: list[str], seeds: int, rounds: int) -> dict:
    """Final test accuracy (and backdoor success) of the plain rules under each attack, and clean."""
    out: dict = {}
    names = [n for n in os.environ.get("MERIT_ADAPTIVE_RULES", ",".join(PLAIN_RULES)).split(",") if n]
    for kind in ("none", *kinds):
        row: dict = {}
        for name in names:
            rule = PLAIN_RULES[name]
            results = [run_plain(setup, None if kind == "none" else kind, seed, rounds, rule) for seed in range(seeds)]
            row[name] = {"final_accuracy_mean": round(float(np.mean([r["accuracy"] for r in results])), 4)}
            if kind == "backdoor":
                row[name]["backdoor_success_mean"] = round(float(np.mean([r["backdoor_success"] for r in results])), 4)
        out[kind] = row
    return out


def run(out_dir: pathlib.Path) -> dict:
    torch.set_num_threads(_env_int("MERIT_BENCH_THREADS", 1))
    seeds, rounds = _env_int("MERIT_ADAPTIVE_SEEDS", 5), _env_int("MERIT_BENCH_ROUNDS", 5)
    kinds = [k for k in os.environ.get("MERIT_BENCH_ATTACKS", ",".join(ADAPTIVE_KINDS)).split(",") if k]
    setup = Setup()
    started = time.perf_counter()
    # seed by seed, every kind each: a run stopped early still compares every kind on the same seeds
    plan = [(kind, s, rounds, False) for s in range(seeds) for kind in ("none", *kinds)]
    jobs = _env_int("MERIT_BENCH_JOBS", 1)
    if jobs > 1:
        runs = _run_plan(setup, plan, jobs)
    else:
        runs = {}
        for job in plan:
            result = _run_job(setup, job)
            runs.setdefault(result["attack"], []).append(result)
            print(f"   adaptive: {job[0]} seed {job[1]}: flagged {result['attacker_flag_rate']}", flush=True)
            # keep what is done if the run is stopped
            (out_dir / "adaptive.partial.json.tmp").write_text(json.dumps(runs, default=str))
    merit = summarize_robustness(runs, rounds)
    merit_seconds = round(time.perf_counter() - started, 1)
    plain = baselines(setup, kinds, seeds, rounds) if os.environ.get("MERIT_ADAPTIVE_BASELINES", "1") == "1" else None
    return {
        "setup": {
            "trainers": 10,
            "attackers": 3,
            "seeds": seeds,
            "rounds": rounds,
            "model": "cnn",
            "knowledge": "omniscient within a round (the stronger case; commit-reveal hides in-round updates)",
        },
        "merit": merit,
        "plain_rules": plain,
        "merit_seconds": merit_seconds,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(ROOT / "bench" / "results"), indent=2, default=str))
