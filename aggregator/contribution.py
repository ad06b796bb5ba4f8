"""Shapley-value contribution estimators for a round: which trainers' updates made the model better.

``shapley(utility, n, method=...)`` values n players under ``utility(frozenset[int]) -> float``
(in a round: the validation accuracy of global + mean Δ over the coalition). Following pyDVL, the
work splits into a *utility* (the caller's), a *sampler* (which coalitions to evaluate: planned in
batches and run through a pluggable executor, see ``aggregator.executors``) and a *stopping rule*
(the ``budget`` of distinct utility evaluations). Every coalition is evaluated at most once, and
the result is a deterministic function of (utility, n, method, seed, budget).

Methods, chosen by name:

``"stratified_cv"`` (default; ``"gtg"`` is its former name, still accepted)
    Stratified sampling of complementary coalition pairs with a fitted surrogate game as control
    variate: close to KernelSHAP with control variates, not GTG-Shapley, whose name it carried until
    it outgrew it. As in GTG-Shapley, a round whose full coalition is worth
    what the empty one is (|v(N) − v(∅)| ≤ 1e-9) is truncated: all values 0, after two evaluations,
    even when the budget would allow enumeration. Otherwise the sizes
    0, 1, n−1 and n are enumerated exactly (2n + 2 evaluations); the rest of the budget goes to
    complementary pairs (S, N∖S) of the middle sizes, balanced across players and allocated per size
    in two stages (Neyman allocation from the first stage's residual spread). A surrogate game g,
    fitted by Shapley-kernel weighted least squares to every evaluated coalition, gives the bulk of
    each value: its Shapley values cost no utility call (closed form, or enumerating g). The
    stratified mean of the residuals v − g over every evaluated coalition, for every player, corrects
    it: g is a control variate, so the estimate stays consistent however poor g is, and an additive
    game comes out exact. Surrogate families (``surrogate=``): ``"linear"`` (additive, i.e.
    KernelSHAP), ``"mean"`` (adds Σ_{i∈S} a_i/|S| and a free function of |S|: a mean of updates
    dilutes each member), ``"curved"`` (adds powers of the "mean" index: saturating accuracy), and
    ``"auto"``, the default, which picks the family with the least 5-fold cross-validated error.
    For n > 14 only the linear family is used. With a budget of at least 2^n it enumerates and is
    exact. A ``proxy`` (any cheap approximation of the utility on every coalition; the round passes
    ``CoalitionUtility.secant_proxy``) joins the surrogate's features: on real MNIST rounds it cut
    the worst error about in half at the same number of validation passes. On synthetic games at n = 10 and 300 evaluations it has 2–20× smaller maximum error than
    permutation sampling (``bench/contribution.py``).
``"exact"``
    All 2^n coalitions (n ≤ 20).
``"tmc"``
    Truncated Monte Carlo permutation sampling (Ghorbani & Zou, 2019): a permutation's remaining
    marginal contributions count as zero once its prefix is within ``truncation`` × |v(N) − v(∅)| of
    v(N). Permutations run in batches, one prefix position per executor call.
``"loo"``
    Leave-one-out, v(N) − v(N∖{i}): n + 1 evaluations, the cheap mode.

Default budget (``budget=None``): 2^n for n ≤ 10, so small rounds are exact, else
``max(1024, 32·n)`` distinct evaluations.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from aggregator.executors import Executor, SequentialExecutor

Utility = Callable[[frozenset], float]
Proxy = Any  # Callable[[frozenset], float], or an object with table(z: bool[m, n]) -> float[m]

METHODS = ("stratified_cv", "exact", "tmc", "loo")
# former names, still accepted so that configurations and callers written before a rename keep working
METHOD_ALIASES = {"gtg": "stratified_cv"}
EXACT_MAX_PLAYERS = 20
DEFAULT_EXACT_PLAYERS = 10
# |v(N) − v(∅)| at or below this is "no progress this round" (GTG-Shapley's between-round truncation).
ROUND_TRUNCATION = 1e-9
TMC_TRUNCATION = 0.01
_TMC_BATCH = 8
# stratified_cv: surrogate families, and the largest n whose surrogate is enumerated (above it: linear only).
SURROGATES = ("auto", "linear", "mean", "curved")
ENUMERATE_MAX_PLAYERS = 14
_CV_FOLDS = 5
_PILOT_SHARE = 0.4  # of the sampled pairs, drawn before the Neyman allocation of the rest


@dataclass(frozen=True)
class ShapleyResult:
    """Estimated Shapley values, one per player, and what it cost.

    ``evaluations`` counts distinct utility calls. ``exact`` is true when every coalition the
    definition needs was evaluated; ``truncated`` when the round was skipped because v(N) ≈ v(∅).
    """

    values: list[float]
    evaluations: int
    method: str
    seed: int
    budget: int | None
    exact: bool = False
    truncated: bool = False


def default_budget(n: int) -> int:
    return 2**n if n <= DEFAULT_EXACT_PLAYERS else max(1024, 32 * n)


def minimum_budget(n: int, method: str) -> int:
    """The fewest distinct evaluations a method can run on: fewer is refused."""
    method = METHOD_ALIASES.get(method, method)
    if method == "exact":
        return 2**n
    if method == "loo":
        return n + 1 if n else 1
    return min(2**n, 2 * n + 2)


def shapley(
    utility: Utility,
    n: int,
    method: str = "stratified_cv",
    seed: int = 0,
    budget: int | None = None,
    executor: Executor | None = None,
    *,
    surrogate: str = "auto",
    truncation: float = TMC_TRUNCATION,
    proxy: Proxy | None = None,
) -> ShapleyResult:
    """Shapley values of n players under ``utility``, using at most ``budget`` distinct evaluations.

    ``executor`` runs each planned batch of coalitions (default: sequential). ``surrogate`` picks the
    stratified_cv control variate's family (``"auto"``: by cross-validation; ``"linear"`` is KernelSHAP's).
    ``truncation`` is tmc's relative tolerance (0 gives plain permutation sampling).
    ``proxy`` (stratified_cv only, n ≤ 14): a cheap approximation of the utility, evaluated on every coalition
    at no cost to ``budget`` (whatever building it cost is the caller's to count); it enters the
    surrogate as one more feature, so a good proxy sharpens the control variate and a useless one
    gets a coefficient near 0. Either a callable like ``utility`` or an object whose
    ``table(z)`` maps a boolean membership matrix (coalitions × n) to values.

    Example: ``shapley(lambda s: float(len(s)), 3, method="exact").values == [1.0, 1.0, 1.0]``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n = int(n)
    method = METHOD_ALIASES.get(method, method)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not callable(utility):
        raise ValueError("utility must be callable: frozenset[int] -> float")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if method == "exact" and n > EXACT_MAX_PLAYERS:
        raise ValueError(
            f"method 'exact' needs 2^n evaluations; n={n} > {EXACT_MAX_PLAYERS} is refused, use 'stratified_cv'"
        )
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise ValueError(f"budget must be an int or None, got {budget!r}")
        budget = int(budget)
        floor = minimum_budget(n, method)
        if budget < floor:
            raise ValueError(
                f"budget {budget} is below the minimum of {floor} evaluations for method {method!r} with n={n}"
            )
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {', '.join(SURROGATES)}")
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0 <= truncation < 1:
        raise ValueError(f"truncation must be a number in [0, 1), got {truncation!r}")
    if proxy is not None and not (callable(proxy) or callable(getattr(proxy, "table", None))):
        raise ValueError("proxy must be callable (frozenset[int] -> float) or have a table(z) method")
    options = {"stratified_cv": {"surrogate": surrogate, "proxy": proxy}, "tmc": {"truncation": float(truncation)}}.get(
        method, {}
    )
    cap = budget if budget is not None else (2**n if method in ("exact", "loo") else default_budget(n))
    game = _Game(utility, n, cap, executor or SequentialExecutor())
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    values, exact, truncated = _ESTIMATORS[method](game, rng, **options)
    return ShapleyResult(
        values=[float(v) for v in values],
        evaluations=game.evaluations,
        method=method,
        seed=int(seed),
        budget=budget,
        exact=exact,
        truncated=truncated,
    )


class _Game:
    """Memoized, budgeted access to the utility. Coalitions are int bitmasks inside this module."""

    def __init__(self, utility: Utility, n: int, budget: int, executor: Executor) -> None:
        self.utility = utility
        self.n = n
        self.full = (1 << n) - 1
        self.budget = budget
        self.executor = executor
        self.cache: dict[int, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    @property
    def remaining(self) -> int:
        return self.budget - len(self.cache)

    def missing(self, masks) -> list[int]:
        return list(dict.fromkeys(m for m in masks if m not in self.cache))

    def evaluate(self, masks) -> list[float]:
        """Values of ``masks``, evaluating the missing ones as one executor batch."""
        masks = list(masks)
        todo = self.missing(masks)
        if len(todo) > self.remaining:
            raise AssertionError("estimator planned past its budget")  # a bug here, never the caller's
        # A utility that keeps its own cache in this process (``cached``/``remember``, as
        # CoalitionUtility does) answers what it already knows here, and learns what the
        # executor's workers evaluated: their caches die with them.
        cached = getattr(self.utility, "cached", None)
        remember = getattr(self.utility, "remember", None)
        if todo and cached is not None:
            for mask in todo:
                value = cached(_members(mask))
                if value is not None:
                    self._record(mask, value)
            todo = [m for m in todo if m not in self.cache]
        if todo:
            results = self.executor.map(self.utility, [_members(m) for m in todo])
            for mask, value in zip(todo, results):
                self._record(mask, value)
                if remember is not None:
                    remember(_members(mask), self.cache[mask])
        return [self.cache[m] for m in masks]

    def _record(self, mask: int, value) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"utility returned {value} for coalition {sorted(_members(mask))}")
        self.cache[mask] = value


def _members(mask: int) -> frozenset[int]:
    return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)


def _mask(players) -> int:
    return sum(1 << i for i in players)


# --------------------------------------------------------------------------------------------- exact


def _exact(game: _Game, rng: np.random.Generator) -> tuple[np.ndarray, bool, bool]:
    n = game.n
    if n == 0:
        return np.zeros(0), True, False
    values = np.array(game.evaluate(range(1 << n)))
    return _exact_from_table(values, n), True, False


def _exact_from_table(table: np.ndarray, n: int) -> np.ndarray:
    """Shapley values from v on all 2^n masks: φ_i = Σ_{S∌i} |S|!(n−|S|−1)!/n! (v(S+i) − v(S))."""
    masks = np.arange(1 << n)
    sizes = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        sizes += (masks >> i) & 1
    weight = np.array([1.0 / (n * math.comb(n - 1, k)) for k in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = masks[((masks >> i) & 1) == 0]
        phi[i] = np.dot(weight[sizes[without]], table[without | (1 << i)] - table[without])
    return phi


# ----------------------------------------------------------------------------------------------- loo


def _loo(game: _Game, rng: np.random.Generator) -> tuple[np.ndarray, bool, bool]:
    n = game.n
    if n == 0:
        return np.zeros(0), True, False
    values = game.evaluate([game.full] + [game.full & ~(1 << i) for i in range(n)])
    return values[0] - np.array(values[1:]), n == 1, False


# ----------------------------------------------------------------------------------------------- tmc


def _tmc(game: _Game, rng: np.random.Generator, truncation: float = TMC_TRUNCATION) -> tuple[np.ndarray, bool, bool]:
    n = game.n
    v_empty, v_full = game.evaluate([0, game.full])
    span = abs(v_full - v_empty)
    if span <= ROUND_TRUNCATION:
        return np.zeros(n), False, True
    if game.budget >= 1 << n:
        return _exact(game, rng)
    total = np.zeros(n)
    used = 0
    stalled = 0
    while stalled < 10 * n:
        perms = [rng.permutation(n) for _ in range(max(1, min(_TMC_BATCH, game.remaining // max(1, n - 1))))]
        kept = len(perms)
        prefix = [0] * kept
        previous = [v_empty] * kept
        marginals = np.zeros((kept, n))
        active = list(range(kept))
        before = game.evaluations
        for position in range(n):
            wanted = {p: prefix[p] | (1 << int(perms[p][position])) for p in active}
            while active and len(game.missing(wanted[p] for p in active)) > game.remaining:
                kept = active.pop()  # out of budget: drop this permutation and every later one
            if not active:
                break
            values = game.evaluate([wanted[p] for p in active])
            still = []
            for p, value in zip(active, values):
                marginals[p, int(perms[p][position])] = value - previous[p]
                prefix[p], previous[p] = wanted[p], value
                if truncation == 0 or abs(v_full - value) > truncation * span:
                    still.append(p)
            active = still
        total += marginals[:kept].sum(axis=0)
        used += kept
        stalled = stalled + kept if game.evaluations == before else 0
        if kept < len(perms):
            break
    return (total / used if used else np.zeros(n)), False, False


# ------------------------------------------------------------------------------------- stratified_cv


def _stratified_cv(
    game: _Game, rng: np.random.Generator, surrogate: str = "auto", proxy: Proxy | None = None
) -> tuple[np.ndarray, bool, bool]:
    n = game.n
    v_empty, v_full = game.evaluate([0, game.full])
    if abs(v_full - v_empty) <= ROUND_TRUNCATION:  # no progress this round: nothing to share out
        return np.zeros(n), False, True
    if game.budget >= 1 << n:
        return _exact(game, rng)
    extra = (
        _proxy_table(proxy, n) if proxy is not None and surrogate != "linear" and n <= ENUMERATE_MAX_PLAYERS else None
    )
    singles = [1 << i for i in range(n)]
    game.evaluate(singles + [game.full & ~m for m in singles])
    sampler = _PairSampler(n, rng)
    pairs = game.remaining // 2
    pilot = int(round(pairs * _PILOT_SHARE))
    game.evaluate(sampler.draw(_allocate(pilot, sampler.static_weights(), sampler.capacity, sampler.taken)))
    if pairs > pilot:
        z, y = _design(game)
        residual = y - _surrogate(z, y, v_empty, v_full, n, surrogate, extra)[1]
        weights = sampler.neyman_weights(z.sum(axis=1), residual)
        game.evaluate(
            sampler.draw(_allocate(int(sampler.taken.sum()) + pairs - pilot, weights, sampler.capacity, sampler.taken))
        )
    z, y = _design(game)
    phi_g, fitted = _surrogate(z, y, v_empty, v_full, n, surrogate, extra)
    phi = phi_g + _stratified_residual_means(z, y - fitted, n)
    phi += (v_full - v_empty - phi.sum()) / n  # efficiency: the sampled strata's correction need not sum to 0
    return phi, False, False


def _surrogate(
    z: np.ndarray, y: np.ndarray, v_empty: float, v_full: float, n: int, kind: str, extra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(Shapley values of the fitted surrogate, the surrogate on the evaluated rows). ``extra``: the
    proxy on every mask (index = mask), an added feature."""
    if kind == "linear" or n > ENUMERATE_MAX_PLAYERS:
        return _fit_linear(z, y, v_empty, v_full, n)
    return _fit_enumerated(z, y, n, kind, extra)


def _proxy_table(proxy: Proxy, n: int) -> np.ndarray:
    """The proxy on all 2^n coalitions, indexed by mask; checked finite."""
    z = _all_masks(n)
    table = getattr(proxy, "table", None)
    if callable(table):
        values = np.asarray(table(z), dtype=float)
    else:
        values = np.array([proxy(_members(m)) for m in range(1 << n)], dtype=float)
    if values.ndim not in (1, 2) or len(values) != 1 << n or not np.all(np.isfinite(values)):
        raise ValueError(f"proxy must give {1 << n} finite values (or rows of values), one per coalition")
    return values


def _mask_index(z: np.ndarray) -> np.ndarray:
    return (z.astype(np.int64) << np.arange(z.shape[1], dtype=np.int64)).sum(axis=1)


def _design(game: _Game) -> tuple[np.ndarray, np.ndarray]:
    """The evaluated coalitions as a boolean membership matrix, and their values (sorted by mask)."""
    masks = sorted(game.cache)
    width = (game.n + 7) // 8
    packed = np.frombuffer(b"".join(m.to_bytes(width, "little") for m in masks), dtype=np.uint8).reshape(
        len(masks), width
    )
    z = np.unpackbits(packed, axis=1, bitorder="little")[:, : game.n].astype(bool)
    return z, np.array([game.cache[m] for m in masks])


def _stratum_weights(sizes: np.ndarray, n: int) -> np.ndarray:
    """Shapley-kernel mass of each coalition's size, spread over that size's evaluated coalitions.

    So the regression fitted on a sample approximates the one over all 2^n coalitions, whose solution
    is the Shapley value. The sizes 0 and n enter as constraints, not as weighted rows.
    """
    counts = np.bincount(sizes, minlength=n + 1)
    inner = (sizes > 0) & (sizes < n)
    w = np.zeros(len(sizes))
    s = sizes[inner]
    w[inner] = (n - 1) / (s * (n - s) * counts[s])
    return w


def _fit_linear(z: np.ndarray, y: np.ndarray, v_empty: float, v_full: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shapley-kernel weighted least squares for an additive g with g(∅) = v(∅), g(N) = v(N): KernelSHAP.

    The Shapley values of g are its coefficients. Closed form, so it serves any n.
    """
    w = _stratum_weights(z.sum(axis=1), n)
    rows = w > 0
    x = z[rows].astype(float)
    xw = x * w[rows, None]
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = xw.T @ x
    kkt[:n, n] = kkt[n, :n] = 1.0
    rhs = np.r_[xw.T @ (y[rows] - v_empty), v_full - v_empty]
    coef = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]
    return coef, v_empty + z.astype(float) @ coef


def _all_masks(n: int) -> np.ndarray:
    return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)


def _basis(z: np.ndarray, kind: str, inner: np.ndarray | None = None, extra: np.ndarray | None = None) -> np.ndarray:
    """Surrogate features: 'linear' is additive; 'mean' adds Σ_{i∈S} z_i/|S| terms (a mean of updates
    dilutes each member) and a free function of |S|; 'curved' adds powers of a fitted 'mean' index."""
    zf = z.astype(float)
    n = z.shape[1]
    tail = [] if extra is None else [np.asarray(extra, float).reshape(len(z), -1)]
    if kind == "linear":
        return np.hstack([np.ones((len(z), 1)), zf, *tail])
    sizes = zf.sum(axis=1)
    inv = np.divide(1.0, sizes, out=np.zeros_like(sizes), where=sizes > 0)
    parts = [zf, zf * inv[:, None], (sizes[:, None] == np.arange(n + 1)).astype(float), *tail]
    if kind == "curved":
        t = np.hstack(parts) @ inner
        parts += [t[:, None] ** 2, t[:, None] ** 3]
    return np.hstack(parts)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-12) -> np.ndarray:
    xw = x * w[:, None]
    gram = xw.T @ x
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    return np.linalg.lstsq(gram, xw.T @ y, rcond=None)[0]


def _fit_model(z: np.ndarray, y: np.ndarray, w: np.ndarray, kind: str, extra: np.ndarray | None = None):
    """Fit a surrogate family on rows (z, y) (and the proxy on them, ``extra``); return a predictor
    ``predict(coalitions, proxy_on_them)``."""
    if kind != "curved":
        coef = _wls(_basis(z, kind, None, extra), y, w)
        return lambda q, e=None: _basis(q, kind, None, e) @ coef
    center = y @ w / w.sum()
    scale = np.sqrt(((y - center) ** 2) @ w / w.sum()) or 1.0
    inner = _wls(_basis(z, "mean", None, extra), (y - center) / scale, w)  # the index whose powers bend the fit
    coef = _wls(_basis(z, kind, inner, extra), y, w)
    return lambda q, e=None: _basis(q, kind, inner, e) @ coef


def _fit_enumerated(
    z: np.ndarray, y: np.ndarray, n: int, kind: str, extra_all: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fit a surrogate family ('auto': the one with the least cross-validated, kernel-weighted error);
    its Shapley values come from enumerating the surrogate, which costs no utility evaluation."""
    sizes = z.sum(axis=1)
    w = _stratum_weights(sizes, n)
    w[(sizes == 0) | (sizes == n)] = 10.0 * w.max()  # pin v(∅) and v(N), as the linear fit's constraint does
    extra = None if extra_all is None else extra_all[_mask_index(z)]
    if kind == "auto":
        folds = np.arange(len(y)) % _CV_FOLDS
        inner = (sizes > 0) & (sizes < n)
        errors = []
        for candidate in SURROGATES[1:]:
            oof = np.empty(len(y))
            for f in range(_CV_FOLDS):
                train, test = folds != f, folds == f
                oof[test] = _fit_model(z[train], y[train], w[train], candidate, _rows(extra, train))(
                    z[test], _rows(extra, test)
                )
            errors.append((((y - oof)[inner] ** 2) @ w[inner], candidate))
        kind = min(errors)[1]
    predict = _fit_model(z, y, w, kind, extra)
    return _exact_from_table(predict(_all_masks(n), extra_all), n), predict(z, extra)


def _rows(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[rows]


def _stratified_residual_means(z: np.ndarray, r: np.ndarray, n: int) -> np.ndarray:
    """Per player i: (1/n) Σ_s (mean of r over evaluated size-s coalitions containing i
    − mean of r over evaluated size-s coalitions without i).

    This is the Shapley value written over sizes, φ_i = (1/n) (Σ_{s=1..n} E[v(S) | |S|=s, i∈S] −
    Σ_{s=0..n−1} E[v(S) | |S|=s, i∉S]), so every evaluated coalition enters every player's estimate.
    A side with no evaluated coalition contributes nothing: there the surrogate is trusted.
    """
    sizes = z.sum(axis=1)
    total = np.zeros(n)
    for s in range(n + 1):
        rows = sizes == s
        if not rows.any():
            continue
        a = z[rows].astype(float)
        rs = r[rows]
        count_in = a.sum(axis=0)
        sum_in = rs @ a
        count_out = len(rs) - count_in
        sum_out = rs.sum() - sum_in
        total += np.divide(sum_in, count_in, out=np.zeros(n), where=count_in > 0)
        total -= np.divide(sum_out, count_out, out=np.zeros(n), where=count_out > 0)
    return total / n


def _allocate(total: int, weights: np.ndarray, capacity: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, each within [current, capacity], as close as the bounds
    allow to proportional to ``weights``: counts = clip(λ·w, current, capacity), λ by bisection."""
    lo, hi = current.astype(float), capacity.astype(float)
    total = int(min(max(total, current.sum()), capacity.sum()))
    w = np.asarray(weights, float)
    w = np.maximum(w, 1e-9 * w.max()) if w.max() > 0 else np.ones(len(w))  # every stratum may grow
    low, high = 0.0, float(np.max(hi / w))
    for _ in range(200):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if np.clip(mid * w, lo, hi).sum() < total else (low, mid)
    target = np.clip(high * w, lo, hi)
    counts = np.floor(target).astype(np.int64)
    order = np.argsort(-(target - counts), kind="stable")
    while counts.sum() < total:  # largest remainders first, then any stratum with room
        for idx in order:
            if counts.sum() < total and counts[idx] < capacity[idx]:
                counts[idx] += 1
    while counts.sum() > total:  # bisection overshoot by rounding: trim the smallest remainders
        for idx in order[::-1]:
            if counts.sum() > total and counts[idx] > current[idx]:
                counts[idx] -= 1
    return counts


class _PairSampler:
    """Complementary pairs (S, N∖S), |S| = p for p = 2..⌊n/2⌋, drawn without replacement.

    Within a size, coalitions come as disjoint blocks of a random permutation, so every player is
    in about the same number of sampled coalitions (a balanced design: fewer empty cells, less
    variance than independent draws).
    """

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.sizes = np.arange(2, n // 2 + 1)
        self.capacity = np.array(
            [min(math.comb(n, p) // (2 if 2 * p == n else 1), 2**52) for p in self.sizes], dtype=np.int64
        )
        self.taken = np.zeros(len(self.sizes), dtype=np.int64)
        self.seen: list[set[int]] = [set() for _ in self.sizes]
        self.full = (1 << n) - 1

    def static_weights(self) -> np.ndarray:
        """Neyman weights if every size had the same spread: ∝ √(Var-factor of a pair at size p)."""
        n, p = self.n, self.sizes.astype(float)
        return np.where(2 * p == n, np.sqrt(1.0 / (2 * p * p)), np.sqrt(2.0 / (p * (n - p))))

    def neyman_weights(self, sizes: np.ndarray, residual: np.ndarray) -> np.ndarray:
        n = self.n
        spread = np.zeros(n + 1)
        for s in range(2, n - 1):
            rs = residual[sizes == s]
            spread[s] = rs.var(ddof=1) if len(rs) > 1 else 0.0
        mean_spread = spread[2 : n - 1].mean()
        spread = np.maximum(spread, 0.05 * mean_spread + 1e-15)
        p = self.sizes
        var = np.where(2 * p == n, spread[p] / (2.0 * p * p), (spread[p] + spread[n - p]) / (p * (n - p)))
        return np.sqrt(var)

    def draw(self, counts: np.ndarray) -> list[int]:
        masks: list[int] = []
        for k, (p, want) in enumerate(zip(self.sizes, counts)):
            extra = int(want - self.taken[k])
            if extra <= 0:
                continue
            for s in self._draw_size(k, int(p), extra):
                masks += [s, self.full & ~s]
            self.taken[k] += extra
        return masks

    def _canonical(self, mask: int, p: int) -> int:
        return min(mask, self.full & ~mask) if 2 * p == self.n else mask

    def _draw_size(self, k: int, p: int, extra: int) -> list[int]:
        seen, out = self.seen[k], []
        left = int(self.capacity[k]) - len(seen)
        if extra >= left // 2:  # dense: pick from what is left explicitly
            rest = [
                m
                for m in (self._canonical(_mask(c), p) for c in itertools.combinations(range(self.n), p))
                if m not in seen
            ]
            rest = sorted(set(rest))
            picks = self.rng.choice(len(rest), size=min(extra, len(rest)), replace=False)
            out = [rest[i] for i in sorted(picks)]
        else:
            while len(out) < extra:
                perm = self.rng.permutation(self.n)
                for b in range(self.n // p):
                    mask = self._canonical(_mask(int(x) for x in perm[b * p : (b + 1) * p]), p)
                    if mask not in seen and len(out) < extra:
                        seen.add(mask)
                        out.append(mask)
        seen.update(out)
        return out


_ESTIMATORS = {"stratified_cv": _stratified_cv, "exact": _exact, "tmc": _tmc, "loo": _loo}
