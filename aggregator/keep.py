"""Keep policies: which unflagged updates enter the aggregate (``AggregatorConfig.keep``), and which
ones do clear damage (left out of the second scoring pass)."""

from __future__ import annotations

from typing import Callable, Sequence


def select_kept(values: Sequence[float], keep: str = "positive", margin: float = 0.5) -> list[int]:
    """Indices (into ``values``, the unflagged updates' scores) that enter the aggregate.

    ``positive``: score > 0. ``tolerant``: score > -margin x the best score, so updates whose score
    is estimation noise around zero stay in and only clearly harmful ones leave. ``unflagged``: all.
    Whenever nothing qualifies, all of them: a round never discards every unflagged update."""
    best = max(values, default=0.0)
    if keep == "positive":
        kept = [i for i, v in enumerate(values) if v > 0]
    elif keep == "tolerant" and best > 0:
        kept = [i for i, v in enumerate(values) if v > -margin * best]
    else:
        kept = []
    return kept or list(range(len(values)))


def clearly_harmful(values: Sequence[float], ratio: float = 1.0) -> list[int]:
    """Indices whose score is below -ratio x the best positive score: removing the update gains
    more than the best one adds. Estimation noise around zero stays well above that line."""
    best = max(values, default=0.0)
    return [j for j, v in enumerate(values) if best > 0 and v < -ratio * best]


def select_validated(values: Sequence[float], utility: Callable[[frozenset], float]) -> tuple[list[int], list[float]]:
    """The prefix of the updates ranked by score (ties: lower index first) whose coalition value is
    highest, the longest among equals; and the value of every prefix (for the report). Costs at most
    one utility evaluation per update, fewer when the estimator already evaluated a prefix."""
    order = sorted(range(len(values)), key=lambda j: (-values[j], j))
    curve = [float(utility(frozenset(order[:k]))) for k in range(1, len(order) + 1)]
    if not curve:
        return [], []
    best = max(range(len(curve)), key=lambda k: (curve[k], k))
    return sorted(order[: best + 1]), curve
