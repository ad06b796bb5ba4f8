"""Aggregation rules, chosen by name: plain callables over a ``(k, d)`` stack of flattened
updates (numpy or torch), returning one ``(d,)`` vector of the same kind.

They compute in float64 numpy, whose reductions do not depend on the thread count, so the
aggregate is reproducible bit for bit across machines with the same inputs.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from backend.errors import ConfigError

Aggregator = Callable[..., object]


def _as_numpy(stack) -> tuple[np.ndarray, bool]:
    is_torch = type(stack).__module__.startswith("torch")
    array = stack.detach().cpu().numpy() if is_torch else np.asarray(stack)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"expected a non-empty (k, d) stack, got shape {array.shape}")
    return array.astype(np.float64, copy=False), is_torch


def _like(result: np.ndarray, is_torch: bool, dtype=np.float32):
    result = result.astype(dtype)
    if is_torch:
        import torch  # deferred: the rules are plain numpy callables; torch only when handed tensors

        return torch.from_numpy(result)
    return result


def mean(stack, weights: Sequence[float] | None = None):
    """Plain average (FedAvg over equal votes). ``weights`` is accepted and ignored."""
    x, is_torch = _as_numpy(stack)
    return _like(x.mean(axis=0), is_torch)


def weighted_mean(stack, weights: Sequence[float] | None = None):
    """Average weighted by ``weights`` (contribution scores, clipped at 0). All-zero -> plain mean."""
    x, is_torch = _as_numpy(stack)
    if weights is None:
        return _like(x.mean(axis=0), is_torch)
    w = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
    if w.shape != (x.shape[0],):
        raise ValueError(f"{len(w)} weights for {x.shape[0]} updates")
    if w.sum() <= 0:
        return _like(x.mean(axis=0), is_torch)
    return _like((w / w.sum()) @ x, is_torch)


def median(stack, weights: Sequence[float] | None = None):
    """Coordinate-wise median."""
    x, is_torch = _as_numpy(stack)
    return _like(np.median(x, axis=0), is_torch)


def trimmed_mean(stack, weights: Sequence[float] | None = None, beta: float = 0.1):
    """Coordinate-wise mean after dropping the ``beta`` fraction largest and smallest values."""
    x, is_torch = _as_numpy(stack)
    if not 0 <= beta < 0.5:
        raise ValueError(f"beta must be in [0, 0.5), got {beta}")
    k = x.shape[0]
    cut = int(np.floor(beta * k))
    if k - 2 * cut < 1:
        cut = (k - 1) // 2
    s = np.sort(x, axis=0)
    return _like(s[cut : k - cut].mean(axis=0), is_torch)


AGGREGATORS: dict[str, Aggregator] = {
    "mean": mean,
    "contribution": weighted_mean,
    "median": median,
    "trimmed_mean": trimmed_mean,
}


def get_aggregator(name: str) -> Aggregator:
    try:
        return AGGREGATORS[name]
    except KeyError:
        raise ConfigError(f"unknown aggregation {name!r}", f"known: {', '.join(AGGREGATORS)}") from None
