"""Scores to the fixed-point weights ``postResult`` takes: non-negative integers that sum to
``WEIGHT_SCALE`` (or are all 0), so the contract pays by exact ratios."""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from backend.chain.types import WEIGHT_SCALE


def fixed_point_weights(scores: Sequence[float | None], total: int = WEIGHT_SCALE) -> list[int]:
    """Scores -> non-negative integers summing to ``total`` (0 everywhere if nothing is positive).
    None and negative scores get 0. Largest-remainder rounding in exact rational arithmetic, ties to
    the earlier submission, so the result does not depend on float summation order."""
    positive = [Fraction(s) if s is not None and s > 0 else Fraction(0) for s in scores]
    denom = sum(positive)
    if denom == 0:
        return [0] * len(scores)
    shares = [p * total / denom for p in positive]
    floors = [int(s) for s in shares]
    left = total - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors
