"""The fairness benchmark's bookkeeping: the contract's split rule and the ground truth of markets."""

from __future__ import annotations

import numpy as np
import pytest

from bench.fairness import MARKETS, TRAINERS, split_budget, summarize, targets


def test_split_budget_follows_the_contract():
    # round 0: 3:1; round 1: trainer 1 flagged, so trainer 0 takes it all; round 2: nothing to pay
    # (carried); round 3: the carried budget and its own, split evenly
    weights = [[750, 250], [500, 500], [0, 0], [1, 1]]
    flags = [0, 0b10, 0, 0]
    assert split_budget(weights, flags) == pytest.approx([0.75 + 1 + 1, 0.25 + 1])


def test_split_budget_leaves_a_last_carry_unpaid():
    assert split_budget([[1, 1], [0, 0]], [0, 0]).sum() == pytest.approx(1.0)


def _run(market, seed, pay, sizes, noise=None, flag_rate=0.0, excluded_rate=0.0):
    quality = [1 - q for q in (noise or [0.0] * len(pay))]
    from bench.fairness import _spearman

    p = np.asarray(pay, float)
    return {
        "market": market,
        "seed": seed,
        "honest_flag_rate": flag_rate,
        "honest_excluded_rate": excluded_rate,
        "final_accuracy": 0.9,
        **{
            rule: {
                "cv": float(p.std() / p.mean()),
                "spearman_size": _spearman(p, sizes),
                "spearman_quality": _spearman(p, quality),
            }
            for rule in ("posted", "within_round", "proportional")
        },
    }


def test_targets_take_the_worst_seed():
    runs = [
        _run("identical", 0, [1, 1, 1, 1], [4] * 4),
        _run("identical", 1, [1, 2, 1, 2], [4] * 4),
        _run("sizes", 0, [1, 2, 3, 4], [1, 2, 3, 4]),
        _run("sizes", 1, [2, 1, 3, 4], [1, 2, 3, 4]),
        _run("dirichlet_0.1", 0, [1, 2, 3, 4], [4, 1, 2, 3], flag_rate=0.1, excluded_rate=0.05),
        _run("dirichlet_0.1", 1, [1, 2, 3, 4], [4, 1, 2, 3], flag_rate=0.04, excluded_rate=0.15),
    ]
    summary = summarize(runs)
    # left out without a flag is reported beside the flags, and is no flag
    assert summary["dirichlet_0.1"]["honest_excluded_rate"] == pytest.approx(0.1)
    assert summary["dirichlet_0.1"]["honest_flag_rate"] == pytest.approx(0.07)
    assert summary["identical"]["posted"]["cv"]["worst"] == pytest.approx(1 / 3, abs=1e-3)
    assert "spearman_size" not in summary["identical"]["posted"]  # equal sizes: no ranking to follow
    checks = targets(summary)
    assert checks["identical_cv_le_0.15"] is False
    assert checks["sizes_spearman_ge_0.9"] is False  # seed 1 ranks 0.8
    assert checks["label_quality_spearman_ge_0.9"] is None  # no such market run
    assert checks["honest_flagged_le_0.05"] == {"identical": True, "sizes": True, "dirichlet_0.1": False}


def test_markets_have_their_ground_truth():
    from bench.aggregator import Setup
    from bench.fairness import market_data

    setup = Setup()
    for market in MARKETS:
        shards, labels, truth = market_data(setup, market, seed=1)
        assert len(shards) == len(labels) == TRAINERS
        assert truth["sizes"] == [len(s) for s in shards]
        all_rows = np.concatenate(shards)
        assert len(np.unique(all_rows)) == len(all_rows)  # disjoint
    _, labels, truth = market_data(setup, "label_noise", seed=1)
    shards, _, _ = market_data(setup, "label_noise", seed=1)
    wrong = [float(np.mean(lab != setup.yt[idx])) for lab, idx in zip(labels, shards)]
    assert wrong == pytest.approx(truth["label_noise"], abs=0.01)
    assert market_data(setup, "sizes", 0)[2]["sizes"] == [100, 200, 300, 400, 500, 600, 700, 800]
    with pytest.raises(ValueError, match="unknown market"):
        market_data(setup, "nonsense", 0)
