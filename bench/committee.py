"""A dishonest committee member against an honest majority: ``merit demo --aggregators 3
--dishonest-aggregators 1`` beside the same seed with three honest members, on several seeds.

Targets (issue 12): every honest trainer's total reward within 2 % of the all-honest run, the trainer
the liar pays earns nothing it would not have earned anyway, and the dishonest member is penalised in
every round. Each run is a fresh `merit demo` process on the embedded chain; the figures come from the
two report.json files of a seed, so the same comparison can be re-run on any pair of reports.

    python -m bench committee          # MERIT_BENCH_COMMITTEE_SEEDS=0,1,2 (default) picks the seeds

``MERIT_BENCH_COMMITTEE_ATTACKERS`` replaces the attacker mix (default ``free_rider:1,sign_flip:1``): the
liar favours the first attacker-controlled trainer, so with ``alie:1`` it favours one the honest
members do not flag and pay.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench._demo import demo_report

ATTACKERS = os.environ.get("MERIT_BENCH_COMMITTEE_ATTACKERS", "free_rider:1,sign_flip:1")
DEMO = ["--trainers", "6", "--rounds", "3", "--attackers", ATTACKERS]
REWARD_TOLERANCE = 0.02


def _totals(report: dict) -> dict[str, int]:
    """Each trainer's reward over every round (the Marketplace's reward_wei only: the penalty shares the
    committee pays out are counted apart)."""
    totals: dict[str, int] = {}
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            totals[t["address"]] = totals.get(t["address"], 0) + t["reward_wei"]
    return totals


def _roles(report: dict) -> dict[str, str]:
    return {t["address"]: t["role"] for rnd in report["rounds"] for t in rnd["trainers"]}


def compare(with_liar: dict, all_honest: dict) -> dict:
    """The three targets for one seed, from the two runs' reports."""
    liar, fair = _totals(with_liar), _totals(all_honest)
    roles = _roles(all_honest)
    honest = [a for a, role in roles.items() if role == "honest"]
    deviation = {a: abs(liar.get(a, 0) - fair[a]) / fair[a] if fair[a] else float(liar.get(a, 0) > 0) for a in honest}
    favoured = with_liar["config"]["committee"]["favoured_trainer"]
    dishonest_rounds = [
        all(m["penalty_wei"] > 0 for m in rnd["aggregators"] if m["role"] == "dishonest") for rnd in with_liar["rounds"]
    ]
    honest_members_penalised = sum(
        m["penalty_wei"] > 0 for rnd in with_liar["rounds"] for m in rnd["aggregators"] if m["role"] == "honest"
    )
    return {
        "honest_reward_max_deviation": max(deviation.values()),
        "honest_rewards_within_2pct": max(deviation.values()) <= REWARD_TOLERANCE,
        "favoured_trainer": favoured,
        "favoured_role": roles.get(favoured),
        "favoured_reward_wei": liar.get(favoured, 0),
        "favoured_reward_wei_all_honest": fair.get(favoured, 0),
        "favoured_gains_nothing": liar.get(favoured, 0) <= fair.get(favoured, 0),
        "dishonest_penalised_rounds": sum(dishonest_rounds),
        "rounds": len(dishonest_rounds),
        "dishonest_penalised_every_round": all(dishonest_rounds),
        "honest_member_penalties": honest_members_penalised,
        "penalty_wei_total": sum(m["penalty_wei"] for rnd in with_liar["rounds"] for m in rnd["aggregators"]),
        "accuracy": with_liar["final"]["accuracy"],
        "accuracy_all_honest": all_honest["final"]["accuracy"],
    }


def _demo(seed: int, dishonest: int, home: Path) -> dict:
    out = home / f"seed{seed}-liars{dishonest}"
    args = [*DEMO, "--seed", str(seed), "--aggregators", "3", "--dishonest-aggregators", str(dishonest)]
    env = {**os.environ, "MERIT_HOME": str(home / "merit-home")}
    start = time.perf_counter()
    report = demo_report(args, out, env)
    report["bench_wall_seconds"] = round(time.perf_counter() - start, 1)
    return report


def run(results: Path) -> dict:
    seeds = [int(s) for s in os.environ.get("MERIT_BENCH_COMMITTEE_SEEDS", "0,1,2").split(",")]
    per_seed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            with_liar, all_honest = _demo(seed, 1, Path(tmp)), _demo(seed, 0, Path(tmp))
            per_seed[str(seed)] = compare(with_liar, all_honest) | {
                "seconds": [with_liar["bench_wall_seconds"], all_honest["bench_wall_seconds"]]
            }
    rows = list(per_seed.values())
    return {
        "demo": DEMO + ["--aggregators", "3", "--dishonest-aggregators", "1 (vs 0)"],
        "seeds": per_seed,
        "all_targets_met": all(
            r["honest_rewards_within_2pct"] and r["favoured_gains_nothing"] and r["dishonest_penalised_every_round"]
            for r in rows
        ),
        "worst_honest_reward_deviation": max(r["honest_reward_max_deviation"] for r in rows),
    }
