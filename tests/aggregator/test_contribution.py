"""Specification of ``aggregator.contribution.shapley``: the Shapley axioms, the budget, determinism."""

from __future__ import annotations

import math
import sys

import pytest

from aggregator.contribution import METHODS, ShapleyResult, shapley
from aggregator.executors import ProcessPoolExecutor, SequentialExecutor, make_executor
from tests.aggregator.games import (
    AccuracyGame,
    AdditiveGame,
    NullPlayerGame,
    WeightedVotingGame,
    exact_values,
    make_games,
)

GAMES = make_games(10, seed=0)
ACCURACY = next(g for g in GAMES if g.name == "accuracy")


class Counting:
    """A utility wrapper that records every call, to check the budget and memoization."""

    def __init__(self, game):
        self.game, self.calls = game, []

    def __call__(self, coalition):
        assert isinstance(coalition, frozenset)
        self.calls.append(coalition)
        return self.game(coalition)


def spread(game) -> float:
    return abs(game(frozenset(range(game.n))) - game(frozenset()))


# ------------------------------------------------------------------------------------ exact results


@pytest.mark.parametrize("game", GAMES[:4], ids=lambda g: g.name)
def test_exact_matches_the_definition(game):
    result = shapley(game, game.n, method="exact")
    assert result.exact and result.evaluations == 2**game.n
    assert result.values == pytest.approx(exact_values(game), abs=1e-9)


@pytest.mark.parametrize("method", ["stratified_cv", "tmc"])
def test_small_rounds_are_exact_by_default(method):
    game = GAMES[2]
    result = shapley(game, game.n, method=method)
    assert result.exact and result.evaluations == 1024
    assert result.values == pytest.approx(exact_values(game), abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_stratified_cv_is_exact_when_the_budget_covers_every_coalition(n):
    game = AccuracyGame(tuple(100.0 * (i + 1) for i in range(n)), tuple(0.1 * i for i in range(n)))
    result = shapley(game, n, budget=2**n)
    assert result.exact
    assert result.values == pytest.approx(exact_values(game), abs=1e-12)


def test_stratified_cv_is_exact_on_additive_games_with_a_small_budget():
    game = AdditiveGame((3.0, -1.0, 0.5, 2.0, 0.0, 1.5, -0.25, 4.0, 1.0, 0.75, 2.5, -2.0), bias=0.7)
    result = shapley(game, game.n, budget=60, seed=3)
    assert not result.exact and result.evaluations <= 60
    assert result.values == pytest.approx(list(game.weights), abs=1e-9)


def test_loo_is_the_drop_in_value():
    game = ACCURACY
    full = frozenset(range(game.n))
    result = shapley(game, game.n, method="loo")
    assert result.evaluations == game.n + 1
    assert result.values == pytest.approx([game(full) - game(full - {i}) for i in range(game.n)])


def test_no_players():
    for method in METHODS:
        result = shapley(lambda s: 1.0, 0, method=method)
        assert result.values == [] and result.evaluations <= 1


# ------------------------------------------------------------------------------------- the axioms


@pytest.mark.parametrize("method", ["stratified_cv", "tmc"])
@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_efficiency(game, method):
    result = shapley(game, game.n, method=method, budget=200, seed=1)
    if method == "stratified_cv":
        assert sum(result.values) == pytest.approx(game(frozenset(range(game.n))) - game(frozenset()), abs=1e-9)
    else:  # permutation estimates are efficient except for truncated tails
        assert sum(result.values) == pytest.approx(
            game(frozenset(range(game.n))) - game(frozenset()), abs=0.02 * spread(game)
        )


def test_symmetric_players_get_equal_values():
    game = WeightedVotingGame((3, 3, 3, 3, 1, 1, 1, 1, 2, 2), quota=11)
    values = shapley(game, game.n, budget=250, seed=5).values
    for group in ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9]):
        assert max(values[i] for i in group) - min(values[i] for i in group) < 0.06
    assert min(values[i] for i in range(4)) > max(values[i] for i in range(4, 8))


def test_null_players_get_about_zero():
    game = NullPlayerGame(GAMES[2], null_players=(3, 7))
    result = shapley(game, game.n, budget=300, seed=2)
    assert abs(result.values[3]) < 0.01 * spread(game) and abs(result.values[7]) < 0.01 * spread(game)


@pytest.mark.parametrize("method", ["stratified_cv", "tmc"])
@pytest.mark.parametrize("budget", [300, None])
def test_round_without_progress_is_truncated_after_two_evaluations(method, budget):
    counting = Counting(lambda s: 0.5 if len(s) in (0, 10) else 0.5 + 0.01 * len(s))
    result = shapley(counting, 10, method=method, budget=budget)
    assert result.truncated and result.values == [0.0] * 10 and len(counting.calls) == 2


def test_plain_permutation_sampling_does_not_truncate():
    # v reaches v(N) early and then moves away: truncation=0 must keep counting marginals.
    game = AdditiveGame((1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0))
    result = shapley(game, 10, method="tmc", budget=300, truncation=0.0, seed=3)
    assert result.values == pytest.approx(list(game.weights), abs=1e-12)


# ---------------------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize(
    "game", [g for g in GAMES if g.name.startswith(("accuracy", "mean-update"))], ids=lambda g: g.name
)
def test_stratified_cv_on_fl_like_games_at_300_evaluations(game):
    exact = exact_values(game)
    for seed in range(3):
        values = shapley(game, game.n, budget=300, seed=seed).values
        assert max(abs(a - b) for a, b in zip(values, exact)) < 0.03 * spread(game)


def test_stratified_cv_beats_permutation_sampling_on_average():
    game = ACCURACY
    exact = exact_values(game)

    def error(method, seed):
        values = shapley(game, game.n, method=method, budget=300, seed=seed).values
        return max(abs(a - b) for a, b in zip(values, exact))

    stratified = sum(error("stratified_cv", s) for s in range(5))
    tmc = sum(error("tmc", s) for s in range(5))
    assert stratified < 0.5 * tmc


# ------------------------------------------------------------------------- budget and memoization


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [None, 22, 50, 301, 1023])
def test_budget_is_respected_and_no_coalition_is_evaluated_twice(method, budget):
    game = GAMES[3]
    if method == "exact" and budget is not None and budget < 1024:
        return
    counting = Counting(game)
    result = shapley(counting, game.n, method=method, budget=budget, seed=4)
    assert result.evaluations == len(counting.calls) == len(set(counting.calls))
    if budget is not None:
        assert result.evaluations <= budget
    if method == "stratified_cv" and budget is not None:
        assert result.evaluations >= budget - 1  # the whole budget is used
    assert all(math.isfinite(v) for v in result.values) and len(result.values) == game.n


def test_large_n_uses_the_default_budget():
    game = AdditiveGame(tuple(float(i % 7) for i in range(40)))
    counting = Counting(game)
    result = shapley(counting, 40, seed=1)
    assert result.evaluations == len(counting.calls) <= max(1024, 32 * 40)
    assert result.values == pytest.approx(list(game.weights), abs=1e-9)


# -------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", ["stratified_cv", "tmc"])
def test_same_seed_gives_bit_identical_values(method):
    game = GAMES[1]
    a = shapley(game, game.n, method=method, budget=150, seed=11)
    b = shapley(game, game.n, method=method, budget=150, seed=11)
    c = shapley(game, game.n, method=method, budget=150, seed=12)
    assert a == b
    assert a.values != c.values


def test_process_pool_gives_the_values_of_the_sequential_executor():
    game = GAMES[2]
    sequential = shapley(game, game.n, budget=120, seed=7, executor=SequentialExecutor())
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = shapley(game, game.n, budget=120, seed=7, executor=pool)
        parallel_tmc = shapley(game, game.n, method="tmc", budget=120, seed=7, executor=pool)
    assert parallel == sequential
    assert parallel_tmc == shapley(game, game.n, method="tmc", budget=120, seed=7)


def test_executors_by_name():
    assert isinstance(make_executor("sequential"), SequentialExecutor)
    assert isinstance(make_executor("process", max_workers=1), ProcessPoolExecutor)
    with pytest.raises(ValueError, match="sequential"):
        make_executor("ray")
    with pytest.raises(ValueError, match="max_workers"):
        make_executor("process", max_workers=0)


# ------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": -1}, "non-negative int"),
        ({"n": 2.5}, "non-negative int"),
        ({"n": True}, "non-negative int"),
        ({"method": "banzhaf"}, "stratified_cv, exact, tmc, loo"),
        ({"budget": 5}, "minimum of 22"),
        ({"budget": 1.5}, "budget must be an int"),
        ({"method": "exact", "budget": 100}, "minimum of 1024"),
        ({"method": "loo", "budget": 3}, "minimum of 11"),
        ({"seed": "x"}, "seed must be a non-negative int"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"surrogate": "forest"}, "auto, linear, mean, curved"),
        ({"truncation": 1.5}, "truncation must be"),
        ({"utility": 3}, "callable"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    args = {"utility": GAMES[0], "n": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        shapley(**args)


def test_exact_refuses_large_n():
    with pytest.raises(ValueError, match="n=21"):
        shapley(lambda s: 0.0, 21, method="exact")


def test_non_finite_utility_is_refused():
    with pytest.raises(ValueError, match="utility returned nan"):
        shapley(lambda s: float("nan") if len(s) == 1 else 1.0, 4, method="exact")


def test_result_is_a_frozen_record():
    result = shapley(GAMES[0], 10, budget=100)
    assert (
        isinstance(result, ShapleyResult)
        and result.method == "stratified_cv"
        and result.budget == 100
        and result.seed == 0
    )
    with pytest.raises(Exception):
        result.values = []  # type: ignore[misc]


def test_module_does_not_import_torch():
    import subprocess

    code = "import sys, aggregator.contribution, aggregator.executors; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_many_players_beyond_int64_masks():
    game = AdditiveGame(tuple(float(i % 5) - 1.0 for i in range(70)))
    result = shapley(game, 70, budget=400, seed=2)
    assert result.evaluations <= 400
    assert result.values == pytest.approx(list(game.weights), abs=1e-8)


def test_whole_budget_is_spent_when_some_sizes_are_exhausted():
    # n = 11 with 1495 evaluations: sizes 2 and 3 are enumerated and the rest must flow to sizes 4, 5.
    game = make_games(11, seed=0)[3]
    result = shapley(game, 11, budget=1495, seed=0)
    assert 1494 <= result.evaluations <= 1495


# ------------------------------------------------------------------------------------------ proxy


def _noisy_proxy(game, scale, seed):
    """The game itself plus coalition-wise noise: a proxy that is good but not the utility."""
    import random

    rng = random.Random(seed)
    noise = {m: rng.gauss(0.0, scale) for m in range(1 << game.n)}
    return lambda s: game(s) + noise[sum(1 << i for i in s)]


def test_a_good_proxy_cuts_the_error_at_the_same_budget():
    exact = exact_values(ACCURACY)
    base, with_proxy = [], []
    for seed in range(6):
        plain = shapley(ACCURACY, 10, "stratified_cv", seed, 150).values
        helped = shapley(
            ACCURACY, 10, "stratified_cv", seed, 150, proxy=_noisy_proxy(ACCURACY, 0.002 * spread(ACCURACY), seed)
        ).values
        base.append(max(abs(a - b) for a, b in zip(plain, exact)))
        with_proxy.append(max(abs(a - b) for a, b in zip(helped, exact)))
    assert max(with_proxy) < 0.5 * max(base)


def test_a_useless_proxy_does_not_break_the_estimate():
    import random

    rng = random.Random(3)
    junk = {m: rng.random() for m in range(1 << 10)}
    exact = exact_values(ACCURACY)
    for seed in range(3):
        values = shapley(ACCURACY, 10, "stratified_cv", seed, 300, proxy=lambda s: junk[sum(1 << i for i in s)]).values
        assert max(abs(a - b) for a, b in zip(values, exact)) < 0.1 * spread(ACCURACY)


def test_proxy_as_callable_or_table_gives_the_same_values():
    import numpy as np

    proxy = _noisy_proxy(ACCURACY, 0.01, 1)

    class Table:
        def table(self, z):
            return np.array([proxy(frozenset(np.flatnonzero(row).tolist())) for row in z])

    a = shapley(ACCURACY, 10, "stratified_cv", 4, 200, proxy=proxy)
    b = shapley(ACCURACY, 10, "stratified_cv", 4, 200, proxy=Table())
    assert a.values == b.values and a.evaluations == b.evaluations <= 200


@pytest.mark.parametrize("bad", [lambda s: float("nan"), "not a proxy"])
def test_a_bad_proxy_is_refused(bad):
    with pytest.raises(ValueError, match="proxy"):
        shapley(ACCURACY, 10, "stratified_cv", 0, 200, proxy=bad)


def test_the_former_name_gtg_still_runs_the_same_estimator():
    """Callers written before the rename get the same values and the current name back."""
    new = shapley(ACCURACY, 10, "stratified_cv", 3, 150)
    old = shapley(ACCURACY, 10, "gtg", 3, 150)
    assert old.values == new.values and old.evaluations == new.evaluations
    assert old.method == "stratified_cv"
