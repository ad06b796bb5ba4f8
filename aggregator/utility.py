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
from backend.trainer.local import torch_threads
from backend.models.spec import ModelSpec
from backend.models.vectors import Layout, unflatten

Metric = Literal["accuracy", "neg_loss"]


class CoalitionUtility:
    """``utility(frozenset_of_indices) -> float`` over the rows of ``updates``."""

    def __init__(self, spec: ModelSpec, global_vector: np.ndarray, updates: np.ndarray, X: np.ndarray,
                 y: np.ndarray, metric: Metric = "accuracy", batch_size: int = 128, layout: Layout | None = None,
                 cache: bool = True, threads: int | None = 1):
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

    def _reset(self) -> None:
        self._model: nn.Module | None = None
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._cache: dict[frozenset[int], float] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_model", "_batches", "_cache"):
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
            xb = X[start:start + self.batch_size]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            batches.append((xb, y[start:start + self.batch_size]))
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
        if self._model is None:
            self._prepare()
        assert self._model is not None and self._batches is not None
        state = unflatten(torch.from_numpy(np.ascontiguousarray(vector)), self.layout)
        self._model.load_state_dict(state, strict=True)
        correct, loss = 0, 0.0
        for xb, yb in self._batches:
            logits = self._model(xb)
            if self.metric == "accuracy":
                correct += int((logits.argmax(1) == yb).sum())
            else:
                loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        if self.metric == "accuracy":
            return correct / len(self.y)
        return -loss / len(self.y)

    def __call__(self, coalition: frozenset[int]) -> float:
        key = frozenset(int(i) for i in coalition)
        if self.cache_enabled and key in self._cache:
            return self._cache[key]
        if any(i < 0 or i >= self.n for i in key):
            raise IndexError(f"coalition {sorted(key)} has players outside 0..{self.n - 1}")
        value = self.evaluate_vector(self.vector(key))
        if self.cache_enabled:
            self._cache[key] = value
        return value
