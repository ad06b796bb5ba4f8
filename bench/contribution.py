"""Fidelity of the Shapley estimators at a fixed budget of distinct utility evaluations.

For each synthetic cooperative game of ``tests/aggregator/games.py`` (n = 10, three instances per
family) and each estimator, over many seeds: Spearman rank correlation with the exact values and the
maximum absolute error as a fraction of v(N) − v(∅). Estimators compared at the same budget:

- ``gtg``: the default (stratified complementary pairs, cross-validated surrogate control variate);
- ``gtg-linear``: the same sampler with a KernelSHAP-style linear control variate (the reference
  the issue asks to beat);
- ``tmc``: truncated Monte Carlo permutation sampling;
- ``permutation``: plain permutation sampling (tmc without truncation).

``fidelity(utility, n, exact, ...)`` is reusable: give it any utility with known exact values (a
real FL round, say) and it returns the same table.

pyDVL's estimators join the table when ``MERIT_PYDVL_PYTHON`` names the Python of a throwaway venv
with ``pydvl==0.10.0`` installed (never the project's venv): this module then re-runs itself there
(``python -m bench.contribution --pydvl``). They are stopped once they have made ``budget − n``
distinct utility calls (pyDVL does not memoize, so repeated coalitions are free here, as in ours).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Callable, Sequence

import numpy as np

from aggregator.contribution import shapley

Estimator = Callable[[Callable, int, int, int], Sequence[float]]

ESTIMATORS: dict[str, Estimator] = {
    "gtg": lambda u, n, seed, budget: shapley(u, n, "gtg", seed, budget).values,
    "gtg-linear": lambda u, n, seed, budget: shapley(u, n, "gtg", seed, budget, surrogate="linear").values,
    "tmc": lambda u, n, seed, budget: shapley(u, n, "tmc", seed, budget).values,
    "permutation": lambda u, n, seed, budget: shapley(u, n, "tmc", seed, budget, truncation=0.0).values,
}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho with average ranks for ties; 1.0 when both are constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return 1.0 if np.ptp(ra) == np.ptp(rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def fidelity(
    utility: Callable,
    n: int,
    exact: Sequence[float],
    estimators: dict[str, Estimator] | None = None,
    seeds: Sequence[int] = range(20),
    budget: int = 300,
    target: tuple[float, float] = (0.95, 0.01),
) -> dict[str, dict]:
    """Per estimator: Spearman min/mean and max |error| (absolute and as a fraction of v(N) − v(∅)).

    ``meets_target`` is the share of seeds with Spearman ≥ target[0] and max |error| ≤ target[1] in
    the utility's own units: the issue's fidelity target for a round (0.95, 0.01 accuracy).
    """
    exact = np.asarray(exact, float)
    span = abs(utility(frozenset(range(n))) - utility(frozenset())) or 1.0
    table = {}
    for name, estimate in (estimators or ESTIMATORS).items():
        rhos, errors = [], []
        start = time.perf_counter()
        for seed in seeds:
            values = np.asarray(estimate(utility, n, seed, budget), float)
            rhos.append(spearman(values, exact))
            errors.append(float(np.abs(values - exact).max()))
        errors_arr = np.array(errors)
        table[name] = {
            "spearman_min": round(min(rhos), 4),
            "spearman_mean": round(float(np.mean(rhos)), 4),
            "max_error_mean": round(float(errors_arr.mean() / span), 5),
            "max_error_worst": round(float(errors_arr.max() / span), 5),
            "max_abs_error_worst": float(errors_arr.max()),
            "meets_target": round(float(np.mean([r >= target[0] and e <= target[1] for r, e in zip(rhos, errors)])), 3),
            "seconds_per_run": round((time.perf_counter() - start) / len(seeds), 4),
        }
    return table


def suite(n: int = 10, instances: int = 3, seeds: int = 20, budget: int = 300, estimators: dict | None = None) -> dict:
    """Fidelity on every synthetic game family, pooled over ``instances`` random instances."""
    from tests.aggregator.games import make_games

    pooled: dict[str, dict[str, list]] = {}
    for instance in range(instances):
        for game in make_games(n, seed=instance):
            exact = shapley(game, n, method="exact").values
            table = fidelity(game, n, exact, estimators, seeds=range(seeds), budget=budget)
            for estimator, row in table.items():
                pooled.setdefault(game.name, {}).setdefault(estimator, []).append(row)
    out = {}
    for family, per_estimator in pooled.items():
        out[family] = {
            estimator: {
                "spearman_min": min(r["spearman_min"] for r in rows),
                "spearman_mean": round(float(np.mean([r["spearman_mean"] for r in rows])), 4),
                "max_error_mean": round(float(np.mean([r["max_error_mean"] for r in rows])), 5),
                "max_error_worst": max(r["max_error_worst"] for r in rows),
                "meets_target": round(float(np.mean([r["meets_target"] for r in rows])), 3),
                "seconds_per_run": round(float(np.mean([r["seconds_per_run"] for r in rows])), 4),
            }
            for estimator, rows in per_estimator.items()
        }
    return out


def pydvl_estimators() -> dict[str, Estimator]:
    """pyDVL 0.10's Shapley estimators under the same distinct-evaluation budget (needs pydvl)."""
    from pydvl.utils.status import Status
    from pydvl.valuation.games import Game
    from pydvl.valuation.methods.shapley import ShapleyValuation, StratifiedShapleyValuation, TMCShapleyValuation
    from pydvl.valuation.samplers.permutation import AntitheticPermutationSampler
    from pydvl.valuation.stopping import StoppingCriterion

    class Wrapped(Game):
        def __init__(self, utility, n):
            self.utility, self.seen = utility, set()
            self.empty = utility(frozenset())
            super().__init__(n)

        def _score(self, x) -> float:  # pyDVL scores the empty coalition as 0: shift by v(∅)
            coalition = frozenset(int(i) for i in np.asarray(x).ravel())
            self.seen.add(coalition)
            return self.utility(coalition) - self.empty

    class DistinctCalls(StoppingCriterion):
        def __init__(self, game, limit):
            super().__init__()
            self.game, self.limit = game, limit

        def _check(self, result) -> Status:
            return Status.Converged if len(self.game.seen) >= self.limit else Status.Pending

    def make(build):
        def estimate(utility, n, seed, budget):
            game = Wrapped(utility, n)
            valuation = build(game.u, DistinctCalls(game, budget - n), seed)
            valuation.fit(game.data)
            result = valuation.result
            values = np.zeros(n)
            values[np.asarray(result.indices, int)] = result.values
            return values.tolist()

        return estimate

    return {
        "pydvl-tmc": make(lambda u, stop, seed: TMCShapleyValuation(u, is_done=stop, seed=seed, show_warnings=False)),
        "pydvl-antithetic": make(
            lambda u, stop, seed: ShapleyValuation(
                u, AntitheticPermutationSampler(seed=seed), stop, show_warnings=False
            )
        ),
        "pydvl-stratified": make(
            lambda u, stop, seed: StratifiedShapleyValuation(u, stop, seed=seed, show_warnings=False)
        ),
    }


def _pydvl_suite(n: int, instances: int, seeds: int, budget: int) -> dict:
    """The suite's table for pyDVL's estimators, computed in the throwaway venv named by the env."""
    python = os.environ.get("MERIT_PYDVL_PYTHON")
    if not python:
        return {}
    root = pathlib.Path(__file__).resolve().parent.parent
    args = [python, "-m", "bench.contribution", "--pydvl", str(n), str(instances), str(seeds), str(budget)]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode:
        raise RuntimeError(f"pyDVL bench failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def run(out_dir: pathlib.Path) -> dict:
    n, budget, instances, seeds = 10, 300, 3, 20
    games = suite(n=n, instances=instances, seeds=seeds, budget=budget)
    pydvl = _pydvl_suite(n, instances, seeds, budget)
    for family, rows in pydvl.items():
        games[family].update(rows)
    return {
        "n": n,
        "budget": budget,
        "instances_per_family": instances,
        "seeds": seeds,
        "metric": "max_error_* are fractions of |v(N) - v(empty)|; spearman uses average ranks for ties",
        "games": games,
        "pydvl": "pydvl 0.10.0 estimators included" if pydvl else "not run: set MERIT_PYDVL_PYTHON (see docstring)",
    }


if __name__ == "__main__" and sys.argv[1:2] == ["--pydvl"]:
    n_, instances_, seeds_, budget_ = (int(a) for a in sys.argv[2:6])
    print(json.dumps(suite(n_, instances_, seeds_, budget_, estimators=pydvl_estimators())))
