"""Training and evaluating a model: what a trainer's machine does with the global model and its private
data, and what the aggregator does with the validation set (the FLTrust reference, utility passes)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from backend.errors import ConfigError
from backend.models.factory import build_model
from backend.models.serialization import load_weights
from backend.models.spec import ModelSpec

Weights = dict[str, torch.Tensor]
# progress(epoch, epochs, mean_loss) after each epoch
Progress = Callable[[int, int, float], None]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily use ``threads`` intra-op threads (None: leave torch's setting alone)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_weights(weights: Mapping[str, torch.Tensor] | bytes) -> Weights:
    """Accept a state dict or safetensors bytes."""
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return load_weights(bytes(weights))[0]
    return dict(weights)


def _optimizer(spec: ModelSpec, model: nn.Module) -> torch.optim.Optimizer:
    hp = spec.hyperparams
    if hp.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)


def train_local(
    spec: ModelSpec,
    global_weights: Mapping[str, torch.Tensor] | bytes,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    epochs: int | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> Weights:
    """Train from ``global_weights`` on (X, y) for ``epochs`` (default: the spec's) and return the
    local weights. Deterministic for a seed on one machine and thread count: shuffling uses its own
    generator and the global torch RNG is forked, so callers' randomness is untouched."""
    epochs = spec.hyperparams.epochs if epochs is None else int(epochs)
    if epochs < 0:
        raise ConfigError(f"epochs must be >= 0, got {epochs}")
    if len(X) != len(y) or len(y) == 0:
        raise ConfigError(
            f"training data has {len(X)} examples and {len(y)} labels", "need at least one labelled example"
        )
    batch_size = spec.hyperparams.batch_size
    X_t = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32)).reshape(len(X), *spec.input_shape)
    y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec)
        model.load_state_dict(as_weights(global_weights), strict=True)
        model.train()
        optimizer = _optimizer(spec, model)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            order = torch.randperm(len(y_t), generator=generator)
            total, batches = 0.0, 0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(X_t[idx]), y_t[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                batches += 1
            if progress is not None:
                progress(epoch + 1, epochs, total / max(batches, 1))
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def compute_update(local: Mapping[str, torch.Tensor], global_weights: Mapping[str, torch.Tensor]) -> Weights:
    """Delta = local - global, key by key (float tensors only)."""
    if set(local) != set(global_weights):
        raise ConfigError(
            "local and global weights have different keys",
            f"only in local: {sorted(set(local) - set(global_weights))[:3]}, "
            f"only in global: {sorted(set(global_weights) - set(local))[:3]}",
        )
    return {
        k: (local[k].to(torch.float32) - global_weights[k].to(torch.float32)).to(local[k].dtype) for k in global_weights
    }


def apply_update(global_weights: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor]) -> Weights:
    """Global + delta, key by key."""
    return {k: (global_weights[k] + delta[k].to(global_weights[k].dtype)) for k in global_weights}


@torch.no_grad()
def evaluate(
    spec: ModelSpec, weights: Mapping[str, torch.Tensor] | bytes, X: np.ndarray, y: np.ndarray, batch_size: int = 1000
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of the weights on (X, y)."""
    model = build_model(spec)
    model.load_state_dict(as_weights(weights))
    model.eval()
    X_t = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32)).reshape(len(X), *spec.input_shape)
    y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
    correct, loss = 0, 0.0
    for start in range(0, len(y_t), batch_size):
        logits = model(X_t[start : start + batch_size])
        target = y_t[start : start + batch_size]
        correct += int((logits.argmax(1) == target).sum())
        loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
    return correct / len(y_t), loss / len(y_t)
