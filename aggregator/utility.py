"""The coalition utility of federated learning: what a set of updates is worth.

``v(S)`` = the validation metric of ``global + mean(update_i for i in S)``; ``v(empty)`` is the
global model's own metric. Instances are picklable (the torch model is rebuilt lazily in each
worker) so an executor can ship them to a process pool.
"""

from __future__ import annotations

from typing import Iterable, Literal

import numpy as np
import torch
from torch import nn

from backend.models.factory import build_model
from backend.models.training import torch_threads
from backend.models.spec import ModelSpec
from backend.models.vectors import Layout, unflatten

Metric = Literal["accuracy", "neg_loss"]


class CoalitionUtility:
    """``utility(frozenset_of_indices) -> float`` over the rows of ``updates``."""

    def __init__(
        self,
        spec: ModelSpec,
        global_vector: np.ndarray,
        updates: np.ndarray,
        X: np.ndarray,
        y: np.ndarray,
        metric: Metric = "accuracy",
        batch_size: int = 128,
        layout: Layout | None = None,
        cache: bool = True,
        threads: int | None = 1,
    ):
        if metric not in ("accuracy", "neg_loss"):
            raise ValueError(f"metric must be 'accuracy' or 'neg_loss', got {metric!r}")
        self.spec = spec
        self.global_vector = np.ascontiguousarray(global_vector, dtype=np.float32)
        self.updates = np.ascontiguousarray(updates, dtype=np.float32).reshape(-1, self.global_vector.size)
        self.X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), *spec.input_shape)
        self.y = np.asarray(y, dtype=np.int64)
        self.metric = metric
        self.batch_size = int(batch_size)
        self.layout = layout
        self.cache_enabled = cache
        # One thread by default: a validation pass in batches of ~128 gains little from intra-op
        # threads, and on shared or oversubscribed cores two threads ran 3-10x slower than one
        # (measured). Parallelism belongs to the executor (one process per core) instead.
        self.threads = threads
        self._reset()

    @property
    def n(self) -> int:
        return self.updates.shape[0]

    @property
    def evaluated(self) -> int:
        """Distinct coalitions evaluated (and cached) in this process so far."""
        return len(self._cache)

    def _reset(self) -> None:
        self._model: nn.Module | None = None
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._cache: dict[frozenset[int], float] = {}
        self._samples: dict[frozenset[int], np.ndarray] = {}
        self._base_logits: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_model", "_batches", "_cache", "_samples", "_base_logits"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _prepare(self) -> None:
        model = build_model(self.spec, seed=0)
        if self.layout is None:
            self.layout = Layout.of(model.state_dict())
        channels_last = self.X.ndim == 4
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.eval()
        batches = []
        X = torch.from_numpy(self.X)
        y = torch.from_numpy(self.y)
        for start in range(0, len(y), self.batch_size):
            xb = X[start : start + self.batch_size]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            batches.append((xb, y[start : start + self.batch_size]))
        self._model, self._batches = model, batches

    def vector(self, coalition: Iterable[int]) -> np.ndarray:
        """The model vector a coalition produces."""
        members = sorted(coalition)
        if not members:
            return self.global_vector
        delta = self.updates[members].astype(np.float64).mean(axis=0)
        return (self.global_vector.astype(np.float64) + delta).astype(np.float32)

    def evaluate_vector(self, vector: np.ndarray) -> float:
        with torch_threads(self.threads):
            return self._evaluate(vector)

    @torch.inference_mode()
    def _evaluate(self, vector: np.ndarray) -> float:
        return float(_metric(self._logits(vector), self.y, self.metric))

    @torch.inference_mode()
    def _logits(self, vector: np.ndarray) -> np.ndarray:
        """The model's outputs on the validation set, float64 (samples × classes)."""
        if self._model is None:
            self._prepare()
        assert self._model is not None and self._batches is not None
        if vector is self.global_vector and self._base_logits is not None:
            return self._base_logits
        state = unflatten(torch.from_numpy(np.ascontiguousarray(vector)), self.layout)
        self._model.load_state_dict(state, strict=True)
        logits = np.concatenate([self._model(xb).double().numpy() for xb, _ in self._batches])
        if vector is self.global_vector:  # v(∅) and the secant proxy share this pass
            self._base_logits = logits
        return logits

    def secant_proxy(self, scales: tuple[float, ...] = (0.5, 0.2)) -> SecantProxy:
        """A cheap stand-in for this utility on every coalition, for ``shapley(..., proxy=...)``.

        For each update i and scale t, one validation pass gives the secant slope of the model's
        outputs along it, (f(g + t·Δ_i) − f(g)) / t; a coalition's outputs are then approximated by
        f(g) plus the mean of its members' slopes, and scored with the same metric. That costs
        ``n × len(scales)`` validation passes (``SecantProxy.cost``), after which every one of the
        2^n coalitions costs a few array operations. The global model's pass also answers v(∅).
        """
        if not scales or any(not (0 < t <= 1) for t in scales):
            raise ValueError(f"secant scales must be in (0, 1], got {scales!r}")
        with torch_threads(self.threads):
            base = self._logits(self.global_vector)
            if self.cache_enabled:
                self._cache.setdefault(frozenset(), float(_metric(base, self.y, self.metric)))
            slopes = []
            for t in scales:
                for i in range(self.n):
                    moved = (self.global_vector.astype(np.float64) + t * self.updates[i]).astype(np.float32)
                    slopes.append((self._logits(moved) - base) / t)
        return SecantProxy(base, np.stack(slopes).reshape(len(scales), self.n, *base.shape), self.y, self.metric)

    def cached(self, coalition: Iterable[int]) -> float | None:
        """The value of a coalition already evaluated in this process, or None."""
        return self._cache.get(frozenset(int(i) for i in coalition)) if self.cache_enabled else None

    def remember(self, coalition: Iterable[int], value: float) -> None:
        """Record a value evaluated elsewhere (in an executor's worker process), so that later games
        in this process (a rescoring, the validated prefix) reuse it and ``evaluated`` counts it."""
        if self.cache_enabled:
            self._cache.setdefault(frozenset(int(i) for i in coalition), float(value))

    def per_sample(self, coalition: Iterable[int]) -> np.ndarray:
        """The metric's per-sample terms for a coalition (one validation pass unless known): the
        payment rule's standard errors come from them. Kept only for the coalitions it needs
        (sizes 0, 1, n−1 and n), so a large validation set does not fill memory."""
        key = frozenset(int(i) for i in coalition)
        if key in self._samples:
            return self._samples[key]
        self._check_players(key)
        with torch_threads(self.threads):
            terms = _per_sample(self._logits(self.vector(key)), self.y, self.metric)
        self._keep_samples(key, terms)
        if self.cache_enabled:
            self._cache.setdefault(key, float(terms.mean()))
        return terms

    def _keep_samples(self, key: frozenset[int], terms: np.ndarray) -> None:
        if len(key) in (0, 1, self.n - 1, self.n):
            self._samples[key] = terms

    def _check_players(self, key: frozenset[int]) -> None:
        if any(i < 0 or i >= self.n for i in key):
            raise IndexError(f"coalition {sorted(key)} has players outside 0..{self.n - 1}")

    def __call__(self, coalition: frozenset[int]) -> float:
        key = frozenset(int(i) for i in coalition)
        if self.cache_enabled and key in self._cache:
            return self._cache[key]
        self._check_players(key)
        with torch_threads(self.threads):
            terms = _per_sample(self._logits(self.vector(key)), self.y, self.metric)
        self._keep_samples(key, terms)
        value = float(terms.mean())
        if self.cache_enabled:
            self._cache[key] = value
        return value


def _metric(logits: np.ndarray, y: np.ndarray, metric: Metric) -> float:
    """Accuracy, or the negative mean cross-entropy, of outputs (... × samples × classes)."""
    return _per_sample(logits, y, metric).mean(-1)


def _per_sample(logits: np.ndarray, y: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric's per-sample terms (... × samples): 1/0 for a right/wrong answer, or minus the
    cross-entropy. Their mean is the metric; their spread is its sampling noise."""
    if metric == "accuracy":
        return (logits.argmax(-1) == y).astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(-1))
    picked = np.take_along_axis(shifted, np.broadcast_to(y[:, None], shifted.shape[:-1] + (1,)), -1)[..., 0]
    return -(log_norm - picked)


class SecantProxy:
    """``table(z)``: the secant approximation of the utility on coalitions ``z`` (bool, m × n); see
    :meth:`CoalitionUtility.secant_proxy`. One column per scale."""

    def __init__(self, base: np.ndarray, slopes: np.ndarray, y: np.ndarray, metric: Metric):
        self.base, self.slopes, self.y, self.metric = base, slopes, y, metric
        self.scales, self.n = slopes.shape[0], slopes.shape[1]

    @staticmethod
    def footprint(n: int, scales: int, samples: int, classes: int) -> int:
        """Bytes its slopes take."""
        return 8 * n * scales * samples * classes

    @property
    def cost(self) -> int:
        """Validation passes spent building it (besides the global model's)."""
        return self.scales * self.n

    def subset(self, members: list[int]) -> SecantProxy:
        """The proxy of the game restricted to ``members`` (renumbered 0..k-1): no new passes."""
        return SecantProxy(self.base, self.slopes[:, members], self.y, self.metric)

    def table(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float).reshape(-1, self.n)
        sizes = np.maximum(z.sum(axis=1), 1.0)
        flat = self.slopes.reshape(self.scales, self.n, -1)
        out = np.empty((len(z), self.scales))
        chunk = max(1, 4_000_000 // max(1, flat.shape[2]))
        for start in range(0, len(z), chunk):
            weights = z[start : start + chunk] / sizes[start : start + chunk, None]
            for k in range(self.scales):
                outputs = self.base + (weights @ flat[k]).reshape(len(weights), *self.base.shape)
                out[start : start + chunk, k] = _metric(outputs, self.y, self.metric)
        return out


class SubsetUtility:
    """``parent`` restricted to the players ``members``, renumbered 0..k-1. Coalitions map onto the
    parent's, so its cache (in this process) serves both games. Picklable when the parent is."""

    def __init__(self, parent: CoalitionUtility, members: list[int]):
        self.parent, self.members = parent, list(members)

    def _parent_coalition(self, coalition: Iterable[int]) -> frozenset[int]:
        return frozenset(self.members[i] for i in coalition)

    def cached(self, coalition: Iterable[int]) -> float | None:
        return self.parent.cached(self._parent_coalition(coalition))

    def remember(self, coalition: Iterable[int], value: float) -> None:
        self.parent.remember(self._parent_coalition(coalition), value)

    def per_sample(self, coalition: Iterable[int]) -> np.ndarray:
        return self.parent.per_sample(self._parent_coalition(coalition))

    def __call__(self, coalition: frozenset[int]) -> float:
        return self.parent(self._parent_coalition(coalition))
