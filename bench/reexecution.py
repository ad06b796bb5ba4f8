"""How far an honest re-execution of a round strays from the original: the yardstick for the
tolerance within which committee members' posts count as agreeing (and `merit verify`'s).

The same rounds are aggregated in child processes that differ the way machines do: torch's thread
count (which changes the order of float reductions in training, evaluation and scoring) and the BLAS
kernel numpy picks (OPENBLAS_CORETYPE). Writes bench/results/reexecution.json with, for each pair of
settings and each round, the L1 distance between the weight shares (fixed point, 1e9 = everything)
and the number of flags that differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

from backend.chain.types import WEIGHT_SCALE

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "threads-1": {"MERIT_REEXEC_THREADS": "1"},
    "threads-2": {"MERIT_REEXEC_THREADS": "2"},
    "threads-1-default-blas": {"MERIT_REEXEC_THREADS": "1", "OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None},
}
# (seed, round, attack): a first round, a mid-training round, and one with attackers to flag
ROUNDS = [(0, 0, None), (0, 2, None), (1, 1, "label_flip")]


def _child(out: Path) -> None:
    import torch

    from aggregator.round import AggregatorConfig, run_round
    from backend.models import flatten_np, initial_weights, save_weights, unflatten
    from bench.aggregator import Setup, _kinds, _round_updates, _shards

    setup = Setup()
    results = []
    for seed, rnd, attack in ROUNDS:
        torch.set_num_threads(1)  # the trainers' updates are the same bytes in every child
        kinds, shards = _kinds(attack), _shards(setup, seed, skew=False)
        g = initial_weights(setup.spec, seed)
        for r in range(rnd):  # reach round `rnd` by plain averaging, the same in every child
            ups = _round_updates(setup, g, shards, _kinds(None), seed, r)
            g = unflatten(
                flatten_np(g, setup.layout) + sum(flatten_np(u, setup.layout) for u in ups) / len(ups), setup.layout
            )
        ups = _round_updates(setup, g, shards, kinds, seed, rnd)
        subs = [(f"0x{i:040x}", f"cid-{i}", save_weights(u)) for i, u in enumerate(ups)]
        torch.set_num_threads(int(os.environ["MERIT_REEXEC_THREADS"]))  # only the aggregation differs
        outcome = run_round(
            setup.spec, save_weights(g), subs, (setup.Xv, setup.yv), AggregatorConfig(), project_id=seed, round=rnd
        )
        results.append(
            {"seed": seed, "round": rnd, "attack": attack, "weights": outcome.weights, "flags": outcome.flags}
        )
    out.write_text(json.dumps(results))


def _share_l1(a: list[int], b: list[int]) -> int:
    sa, sb = sum(a), sum(b)
    return sum(abs((x * WEIGHT_SCALE // sa if sa else 0) - (y * WEIGHT_SCALE // sb if sb else 0)) for x, y in zip(a, b))


def run(results_dir: Path) -> dict:
    outcomes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in SETTINGS.items():
            env = {**os.environ}
            for key, value in changes.items():
                if value is None:
                    env.pop(key, None)
                else:
                    env[key] = value
            out = Path(tmp) / f"{name}.json"
            subprocess.run([sys.executable, "-m", "bench.reexecution", str(out)], cwd=ROOT, env=env, check=True)
            outcomes[name] = json.loads(out.read_text())
    pairs = {}
    for a, b in combinations(SETTINGS, 2):
        pairs[f"{a} vs {b}"] = [
            {
                "seed": x["seed"],
                "round": x["round"],
                "attack": x["attack"],
                "share_l1": _share_l1(x["weights"], y["weights"]),
                "flags_differing": bin(x["flags"] ^ y["flags"]).count("1"),
            }
            for x, y in zip(outcomes[a], outcomes[b])
        ]
    worst = max(row["share_l1"] for rows in pairs.values() for row in rows)
    return {
        "settings": {k: {kk: vv for kk, vv in v.items()} for k, v in SETTINGS.items()},
        "rounds": ROUNDS,
        "pairs": pairs,
        "worst_share_l1": worst,
        "worst_share_l1_fraction": worst / WEIGHT_SCALE,
        "any_flag_differs": any(row["flags_differing"] for rows in pairs.values() for row in rows),
        "load_average": list(os.getloadavg()),
    }


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
