"""Synthetic cooperative games with known Shapley values, for testing and benchmarking estimators.

Every game is a picklable callable ``game(coalition: frozenset[int]) -> float`` with ``game.n`` players
and ``game.name``. ``exact_values(game)`` computes the Shapley values by brute force from the
definition (subset weights), independently of ``aggregator.contribution``, so tests can use it as the
reference. ``GAMES`` builds the standard n-player suite used by the tests and by ``bench/contribution``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AdditiveGame:
    """v(S) = bias + Σ_{i∈S} w_i; the Shapley value of i is w_i."""

    weights: tuple[float, ...]
    bias: float = 0.0
    name: str = "additive"

    @property
    def n(self) -> int:
        return len(self.weights)

    def __call__(self, coalition: frozenset[int]) -> float:
        return self.bias + sum(self.weights[i] for i in coalition)


@dataclass(frozen=True)
class WeightedVotingGame:
    """v(S) = 1 if Σ_{i∈S} w_i ≥ quota else 0: a step function, the classic hard case for samplers."""

    weights: tuple[int, ...]
    quota: int
    name: str = "voting"

    @property
    def n(self) -> int:
        return len(self.weights)

    def __call__(self, coalition: frozenset[int]) -> float:
        return 1.0 if sum(self.weights[i] for i in coalition) >= self.quota else 0.0


@dataclass(frozen=True)
class AccuracyGame:
    """A federated-learning proxy: v(S) is a saturating accuracy curve of the useful data in S.

    Trainer i holds ``sizes[i]`` samples with label-noise rate ``noise[i]``. Noisy labels cost more than
    they bring (``harm`` per noisy sample), so a trainer with enough noise has negative value and makes
    every coalition it joins worse: the interaction a mean-of-updates utility shows.
    """

    sizes: tuple[float, ...]
    noise: tuple[float, ...]
    harm: float = 1.5
    scale: float = 400.0
    floor: float = 0.1
    ceiling: float = 0.98
    name: str = "accuracy"

    @property
    def n(self) -> int:
        return len(self.sizes)

    def __call__(self, coalition: frozenset[int]) -> float:
        clean = sum(self.sizes[i] * (1.0 - self.noise[i]) for i in coalition)
        noisy = sum(self.sizes[i] * self.noise[i] for i in coalition)
        # Noise hurts in proportion to its share of the pooled data (mean of updates), not its amount.
        total = clean + noisy
        useful = max(0.0, clean - self.harm * noisy) if total else 0.0
        share = noisy / total if total else 0.0
        acc = self.floor + (self.ceiling - self.floor) * (1.0 - math.exp(-math.sqrt(useful / self.scale)))
        return acc * (1.0 - 0.5 * share * share)


@dataclass(frozen=True)
class CoverageGame:
    """v(S) = |∪_{i∈S} C_i|: monotone submodular (diminishing returns, overlapping data)."""

    covers: tuple[frozenset[int], ...]
    name: str = "coverage"

    @property
    def n(self) -> int:
        return len(self.covers)

    def __call__(self, coalition: frozenset[int]) -> float:
        return float(len(frozenset().union(*(self.covers[i] for i in coalition)))) if coalition else 0.0


@dataclass(frozen=True)
class SupermodularGame:
    """v(S) = (Σ_{i∈S} w_i)^p with p > 1: increasing returns (complementary data)."""

    weights: tuple[float, ...]
    power: float = 2.0
    name: str = "supermodular"

    @property
    def n(self) -> int:
        return len(self.weights)

    def __call__(self, coalition: frozenset[int]) -> float:
        return sum(self.weights[i] for i in coalition) ** self.power


@dataclass(frozen=True)
class UnanimityGame:
    """v(S) = Σ_T a_T [T ⊆ S]: a sum of unanimity games of random orders (high-order interactions)."""

    n_players: int
    terms: tuple[tuple[frozenset[int], float], ...]
    name: str = "unanimity"

    @property
    def n(self) -> int:
        return self.n_players

    def __call__(self, coalition: frozenset[int]) -> float:
        return sum(a for t, a in self.terms if t <= coalition)


@dataclass(frozen=True)
class NullPlayerGame:
    """Wraps a game of n players and adds null players, which never change the value."""

    inner: object
    null_players: tuple[int, ...]
    name: str = "with-null"
    _map: tuple[int, ...] = field(default=(), repr=False)

    @property
    def n(self) -> int:
        return self.inner.n + len(self.null_players)

    def __call__(self, coalition: frozenset[int]) -> float:
        real = [i for i in range(self.n) if i not in self.null_players]
        index = {p: k for k, p in enumerate(real)}
        return self.inner(frozenset(index[i] for i in coalition if i in index))


def exact_values(game) -> list[float]:
    """Shapley values from the definition: φ_i = Σ_{S ⊆ N\\{i}} |S|!(n−|S|−1)!/n! (v(S∪i) − v(S))."""
    n = game.n
    cache = {}
    for size in range(n + 1):
        for subset in itertools.combinations(range(n), size):
            s = frozenset(subset)
            cache[s] = game(s)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    values = [0.0] * n
    for s, value in cache.items():
        for i in range(n):
            if i not in s:
                values[i] += weight[len(s)] * (cache[s | {i}] - value)
    return values


def make_games(n: int = 10, seed: int = 0) -> list:
    """The benchmark suite: one instance of each game family, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    games = []
    games.append(AdditiveGame(tuple(float(x) for x in rng.normal(1.0, 1.0, n)), bias=0.3))
    weights = tuple(int(x) for x in rng.integers(1, 10, n))
    games.append(WeightedVotingGame(weights, quota=sum(weights) // 2 + 1))
    sizes = tuple(float(x) for x in rng.integers(50, 1001, n))
    noise = tuple(float(x) for x in rng.choice([0.0, 0.0, 0.1, 0.2, 0.3, 0.5], n))
    games.append(AccuracyGame(sizes, noise))
    # The hard FL case: a few large, very noisy trainers next to small clean ones.
    sizes_h = tuple(float(x) for x in np.sort(rng.integers(50, 1001, n)))
    noise_h = tuple(float(x) for x in np.r_[np.zeros(max(0, n - 3)), [0.3, 0.4, 0.5][-min(n, 3) :]])
    games.append(AccuracyGame(sizes_h, noise_h, harm=2.0, name="accuracy-noisy"))
    covers = tuple(
        frozenset(int(x) for x in rng.choice(60, size=int(rng.integers(5, 20)), replace=False)) for _ in range(n)
    )
    games.append(CoverageGame(covers))
    games.append(SupermodularGame(tuple(float(x) for x in rng.uniform(0.1, 1.0, n)), power=3.0))
    terms = []
    for _ in range(3 * n):
        order = int(rng.integers(1, n + 1))
        terms.append((frozenset(int(x) for x in rng.choice(n, size=order, replace=False)), float(rng.normal())))
    games.append(UnanimityGame(n, tuple(terms)))
    games.append(make_mean_update_game(n, seed))
    return games


@dataclass(frozen=True)
class MeanUpdateGame:
    """The closest proxy to a round's utility: accuracy of global + mean of the coalition's updates.

    The model is a point in R^dim that should reach ``target``. Trainer i's update points a fraction
    ``reach[i]`` of the way there (more clean data, bigger step), plus its own noise; a label-noisy
    trainer's update is partly turned away (``bias[i]``). Accuracy decays with the squared distance
    left to the target, so v(S) depends on the *mean* update: adding a weak trainer dilutes strong ones.
    """

    updates: tuple[tuple[float, ...], ...]
    target: tuple[float, ...]
    width: float = 1.0
    floor: float = 0.1
    ceiling: float = 0.98
    name: str = "mean-update"

    @property
    def n(self) -> int:
        return len(self.updates)

    def __call__(self, coalition: frozenset[int]) -> float:
        target = np.asarray(self.target)
        if coalition:
            mean = np.mean([self.updates[i] for i in sorted(coalition)], axis=0)
        else:
            mean = np.zeros_like(target)
        distance = float(np.sum((target - mean) ** 2))
        return self.floor + (self.ceiling - self.floor) * math.exp(-distance / self.width)


def make_mean_update_game(n: int = 10, seed: int = 0, dim: int = 20) -> MeanUpdateGame:
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 1.0, dim) * math.sqrt(3.0 / dim)
    sizes = rng.integers(50, 1001, n)
    noise = rng.choice([0.0, 0.0, 0.0, 0.1, 0.3, 0.5], n)
    updates = []
    for size, eta in zip(sizes, noise):
        reach = (1.0 - 2.0 * eta) * (1.0 - math.exp(-size / 300.0))
        wobble = rng.normal(0.0, 1.0, dim) * math.sqrt(1.0 / dim) / math.sqrt(size / 100.0)
        turn = rng.normal(0.0, 1.0, dim) * math.sqrt(3.0 / dim) * eta
        updates.append(tuple(float(x) for x in reach * target + wobble + turn))
    return MeanUpdateGame(tuple(updates), tuple(float(x) for x in target), width=2.0)
