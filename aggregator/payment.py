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


def significantly_harmful(value: float, standard_error: float, z: float = DEFAULT_Z) -> bool:
    """Harm the validation set can tell from its noise: more than ``z`` standard errors below 0. The
    payment rule pays such a score nothing; the round flags a provisionally flagged update by it."""
    return value + z * standard_error < 0


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
    harm = [i for i in range(len(values)) if significantly_harmful(values[i], se[i], z)]
    groups = [-1] * len(values)
    pay = [0.0] * len(values)
    remaining = sorted((i for i in range(len(values)) if i not in harm), key=lambda i: (-values[i], i))
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
    useful = [i for i in range(len(values)) if i not in harm]
    floor = bool(useful) and sum(pay) <= 0
    if floor:
        pay = [1.0 if i in useful else 0.0 for i in range(len(values))]
    return Payment(pay=pay, standard_errors=[float(s) for s in se], groups=groups, harmful=harm, floor=floor)


# -- over rounds -----------------------------------------------------------------------------------
#
# Within a round, two trainers with the same kind of data still differ by the luck of their own
# training (which digits, which shuffle), and the validation set measures that luck precisely, most
# of all in the first rounds. What persists from round to round is the data; what changes is the
# luck. So from the second round on a trainer is paid by its share of everything the market has
# bought so far, and that estimate is shrunk toward the average by as much as the round-to-round
# spread says it is noise:
#
# - **Value-weighted.** Shapley values add up over rounds: a trainer's value to the model trained so
#   far is the sum of what it added in each round. Its share of that sum is the mean of its round
#   shares weighted by what each round bought (the round's total within-round pay, in utility units).
#   The first rounds, which buy most of the model and where a bigger or cleaner shard shows most,
#   count most; the late rounds, whose differences sit inside the validation noise, count little.
#   It is also the efficient estimate if a round's shares are measured with a variance inversely
#   proportional to what the round bought: the same validation noise weighs less on a bigger gain.
# - **Empirical Bayes.** Each mean share has a standard error from the round-to-round spread of
#   shares (pooled over trainers; the variance model above gives se_i^2 = sigma^2 / sum of i's
#   round values). The spread of the mean shares across trainers
#   is that noise plus the real differences; the part beyond the noise (tau^2) is the real part. Each
#   trainer is paid the posterior mean, avg + tau^2 / (tau^2 + se_i^2) * (mean_i - avg): trainers
#   whose differences are all noise are paid alike, real differences are kept in full, and the order
#   of the estimates is kept (no ties that hide a ranking the data supports).


def round_value(pay: Sequence[float | None], floor: bool) -> float:
    """What a round bought, in utility units: the sum of its within-round pay, 0 under the floor (a
    round whose improvement the validation set cannot see carries no weight over rounds)."""
    return 0.0 if floor else float(sum(p or 0.0 for p in pay))


def pay_over_rounds(
    current: Sequence[float],
    addresses: Sequence[str],
    eligible: Sequence[bool],
    prior: Sequence[dict[str, float]],
    value: float = 1.0,
) -> tuple[list[float], dict]:
    """This round's pay (in share units) from the within-round shares ``current`` (summing to 1, or
    all 0), the round's ``value`` (``round_value``) and what each trainer bought in the earlier
    rounds (``prior``: address -> value, one dict per round, ``RoundReport.pay_shares``). Only ``eligible``
    trainers (those the detectors did not flag) are paid. Returns the pay and what the report
    records."""
    if not (len(current) == len(addresses) == len(eligible)):
        raise ValueError("current shares, addresses and eligibility must have one entry per trainer")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"a round's value must be a finite number >= 0, got {value!r}")
    rounds = [(r, float(sum(r.values()))) for r in prior]
    if any(not np.isfinite(total) or min(r.values(), default=0.0) < 0 for r, total in rounds):
        raise ValueError("earlier rounds' values must be finite and >= 0")
    # per trainer: (share, weight) for every round it took part in, this one included
    history = [
        [(r[a] / total, total) for r, total in rounds if a in r and total > 0] + [(float(c), float(value))]
        for a, c in zip(addresses, current)
    ]
    # a trainer seen only in rounds that bought nothing measurable: this round's share, as one round
    history = [h if sum(w for _, w in h) > 0 else [(h[-1][0], 1.0)] for h in history]
    weight = np.array([sum(w for _, w in h) for h in history])
    paid_now = [float(c) if e else 0.0 for c, e in zip(current, eligible)]
    if not prior or sum(current) <= 0:
        return paid_now, {"rounds": [len(h) for h in history]}
    means = np.array([sum(s * w for s, w in h) for h in history]) / weight
    # a round's share is measured with a variance sigma^2 / (its value): pooled over trainers, one
    # degree of freedom per round beyond each trainer's first
    spread = sum(sum(w * (s - m) ** 2 for s, w in h) for h, m in zip(history, means))
    dof = sum(len(h) - 1 for h in history)
    sigma2 = spread / dof if dof > 0 else 0.0
    se2 = sigma2 / weight
    paid = [i for i in range(len(current)) if eligible[i]]
    pay = [0.0] * len(current)
    tau2 = 0.0
    if paid:
        avg = float(np.mean(means[paid]))
        between = float(np.var(means[paid], ddof=1)) if len(paid) > 1 else 0.0
        tau2 = max(between - float(np.mean(se2[paid])), 0.0)
        for i in paid:
            keep = tau2 / (tau2 + se2[i]) if tau2 + se2[i] > 0 else 1.0
            pay[i] = avg + keep * (float(means[i]) - avg)
    info = {
        "rounds": [len(h) for h in history],
        "round_value": round(float(value), 6),
        "mean_share": [round(float(m), 6) for m in means],
        "share_sigma": round(float(np.sqrt(sigma2)), 6),
        "tau": round(float(np.sqrt(tau2)), 6),
    }
    return pay, info
