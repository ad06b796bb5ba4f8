"""The payment rule: from a round's contribution scores to what each trainer is paid.

Shapley values estimated on a validation set of a few hundred samples carry sampling noise of the
same size as the late rounds' real differences between trainers. Normalizing a round's budget by
the scores themselves turns that noise into money: one trainer a hair above zero takes the whole
budget. This rule pays for what the validation set can tell apart, and nothing more:

1. **Uncertainty.** Each score gets a standard error from the validation set itself. A round's
   utility is a mean over validation samples, so each player's two-sided marginal contribution
   (its effect alone, v({i}) − v(∅), and its effect last, v(N) − v(N∖i)) is a mean of per-sample
   terms; their spread gives the standard error of the player's value and, paired sample by
   sample, of the difference between two players. These coalitions are ones every estimator
   already evaluates (or costs 2n + 2 validation passes at most).
2. **Harm.** A score more than ``z`` standard errors below zero is paid nothing.
3. **Indistinguishable is equal.** The others are grouped from the top down: each group takes
   every remaining player whose score the leader's does not exceed by more than ``z`` standard
   errors of their difference, and pays each member the group's mean score. A leader-based group
   cannot chain: a gentle slope of real differences splits into steps, it does not collapse.
4. **Floor.** If no group's mean is positive (the round bought nothing the validation set can
   see), the budget is split evenly among the players that did no measurable harm, rather than
   handed to whichever of them sampling noise favoured.

The rule is a pure function of the scores and the per-sample terms (no torch), so ``merit verify``
recomputes it with the rest of the round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

DEFAULT_Z = 2.0  # about a 95 % two-sided interval: the usual line between noise and a difference


@dataclass
class Payment:
    """What each player (in the order given) is paid for, in score units, and why."""

    pay: list[float]  # non-negative; the contract splits the budget in proportion
    standard_errors: list[float]
    groups: list[int]  # group index per player (-1: harmful, paid nothing)
    harmful: list[int] = field(default_factory=list)
    floor: bool = False  # True: nothing measurable was bought, split evenly


def standard_errors(terms: np.ndarray) -> np.ndarray:
    """Standard error of the mean of each row of per-sample ``terms`` (players × samples)."""
    terms = np.asarray(terms, dtype=np.float64)
    if terms.ndim != 2:
        raise ValueError(f"per-sample terms must be players × samples, got shape {terms.shape}")
    samples = terms.shape[1]
    if samples < 2:
        return np.zeros(terms.shape[0])
    return terms.std(axis=1, ddof=1) / np.sqrt(samples)


def difference_error(terms: np.ndarray, a: int, b: int) -> float:
    """Standard error of the difference between players ``a`` and ``b``, paired sample by sample
    (both were measured on the same validation samples, so shared noise cancels)."""
    return float(standard_errors(terms[[a]] - terms[[b]])[0])


def pay_by_confidence(values: Sequence[float], terms: np.ndarray, z: float = DEFAULT_Z) -> Payment:
    """The payment rule of this module's docstring. ``values`` are the players' scores (Shapley
    estimates); ``terms`` (players × samples) their per-sample marginal terms, from which the
    standard errors come. ``z`` is the number of standard errors that makes a difference."""
    values = np.asarray(values, dtype=np.float64)
    terms = np.asarray(terms, dtype=np.float64)
    if terms.ndim != 2:
        raise ValueError(f"per-sample terms must be players × samples, got shape {terms.shape}")
    if not (np.isfinite(z) and z >= 0):
        raise ValueError(f"z must be a finite number >= 0, got {z!r}")
    if terms.shape[0] != len(values):
        raise ValueError(f"{len(values)} scores but per-sample terms for {terms.shape[0]} players")
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(terms)):
        raise ValueError("scores and per-sample terms must be finite")
    se = standard_errors(terms) if len(values) else np.zeros(0)
    harmful = [i for i in range(len(values)) if values[i] + z * se[i] < 0]
    groups = [-1] * len(values)
    pay = [0.0] * len(values)
    remaining = sorted((i for i in range(len(values)) if i not in harmful), key=lambda i: (-values[i], i))
    group = 0
    while remaining:
        leader = remaining[0]
        members = [j for j in remaining if values[leader] - values[j] <= z * difference_error(terms, leader, j)]
        mean = float(np.mean(values[members]))
        for j in members:
            groups[j] = group
            pay[j] = max(mean, 0.0)
        remaining = [j for j in remaining if j not in members]
        group += 1
    useful = [i for i in range(len(values)) if i not in harmful]
    floor = bool(useful) and sum(pay) <= 0
    if floor:
        pay = [1.0 if i in useful else 0.0 for i in range(len(values))]
    return Payment(pay=pay, standard_errors=[float(s) for s in se], groups=groups, harmful=harmful, floor=floor)


# -- over rounds -----------------------------------------------------------------------------------
#
# Within a round, two trainers with the same kind of data still differ by the luck of their own
# training (which digits, which shuffle), and the validation set measures that luck precisely, most
# of all in the first rounds. What persists from round to round is the data; what changes is the
# luck. So from the second round on, a trainer is paid by its mean share of the rounds so far, and
# two trainers are told apart only when their means differ by more than the round-to-round spread
# of shares allows (pooled over every trainer, so two rounds already give a usable estimate).


def pay_over_rounds(
    current: Sequence[float],
    addresses: Sequence[str],
    eligible: Sequence[bool],
    prior: Sequence[dict[str, float]],
    z: float = DEFAULT_Z,
) -> tuple[list[float], dict]:
    """This round's pay (in share units) from the within-round shares ``current`` (summing to 1, or
    all 0) and the shares of the earlier rounds (``prior``: address -> share, one dict per round).
    Only ``eligible`` trainers (those the detectors did not flag) are paid. Returns the pay and
    what the report records."""
    if not (np.isfinite(z) and z >= 0):
        raise ValueError(f"z must be a finite number >= 0, got {z!r}")
    if not (len(current) == len(addresses) == len(eligible)):
        raise ValueError("current shares, addresses and eligibility must have one entry per trainer")
    history = [[r[a] for r in prior if a in r] + [float(c)] for a, c in zip(addresses, current)]
    if not prior or sum(current) <= 0:
        return [float(c) if e else 0.0 for c, e in zip(current, eligible)], {"rounds": [len(h) for h in history]}
    means = np.array([np.mean(h) for h in history])
    # pooled round-to-round variance of shares, over trainers with at least two rounds
    deviations = [np.var(h, ddof=1) * (len(h) - 1) for h in history if len(h) >= 2]
    dof = sum(len(h) - 1 for h in history if len(h) >= 2)
    sigma = float(np.sqrt(sum(deviations) / dof)) if dof else 0.0
    se = np.array([sigma / np.sqrt(len(h)) for h in history])
    groups = [-1] * len(current)
    pay = [0.0] * len(current)
    remaining = sorted((i for i in range(len(current)) if eligible[i]), key=lambda i: (-means[i], i))
    group = 0
    while remaining:
        leader = remaining[0]
        members = [j for j in remaining if means[leader] - means[j] <= z * float(np.hypot(se[leader], se[j]))]
        for j in members:
            groups[j], pay[j] = group, float(np.mean(means[members]))
        remaining = [j for j in remaining if j not in members]
        group += 1
    info = {
        "rounds": [len(h) for h in history],
        "mean_share": [round(float(m), 6) for m in means],
        "share_sigma": round(sigma, 6),
        "groups": groups,
    }
    return pay, info
