"""Trainer behaviours, honest and malicious. Each is a function ``(ctx, **params) -> update``
(a state dict of deltas), chosen by name from :data:`BEHAVIOURS`.

The blatant kinds (``sign_flip``, ``noise``, ``scale``, ``free_rider``, ``copycat``) should be
flagged by the aggregator's detectors; ``label_flip`` trains honestly on poisoned labels and is
meant to earn nothing through its (negative) contribution score.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from backend.errors import ConfigError
from backend.models.spec import ModelSpec
from backend.trainer.local import compute_update, train_local

Update = dict[str, torch.Tensor]


@dataclass
class AttackContext:
    """What a simulated trainer knows when it builds its update."""

    spec: ModelSpec
    global_weights: Mapping[str, torch.Tensor]
    X: np.ndarray
    y: np.ndarray
    seed: int
    # updates already submitted this round, in submission order (copycats copy from these)
    previous: Sequence[Mapping[str, torch.Tensor]] = field(default_factory=list)
    epochs: int | None = None

    def train(self, y: np.ndarray | None = None) -> Update:
        """The honest routine: train locally and return the delta."""
        local = train_local(self.spec, self.global_weights, self.X, self.y if y is None else y, self.seed, self.epochs)
        return compute_update(local, self.global_weights)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def _gaussian_like(update: Mapping[str, torch.Tensor], std: float, gen: torch.Generator) -> Update:
    return {k: torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.dtype) * std for k, v in update.items()}


def honest(ctx: AttackContext) -> Update:
    return ctx.train()


def label_flip(ctx: AttackContext) -> Update:
    """Train on labels mapped c -> (num_classes - 1 - c)."""
    return ctx.train(y=(ctx.spec.num_classes - 1 - np.asarray(ctx.y)).astype(np.int64))


def sign_flip(ctx: AttackContext, factor: float = 1.0) -> Update:
    """Send the honest update reversed (times ``factor``)."""
    return {k: -factor * v for k, v in ctx.train().items()}


def scale(ctx: AttackContext, factor: float = 10.0) -> Update:
    """Boost the honest update (model-replacement style)."""
    return {k: factor * v for k, v in ctx.train().items()}


def noise(ctx: AttackContext, std: float = 0.05) -> Update:
    """Pure Gaussian noise in place of an update."""
    return _gaussian_like(ctx.global_weights, std, ctx.generator())


def free_rider(ctx: AttackContext, std: float = 1e-3) -> Update:
    """Train nothing: submit the global model plus a little noise (std 0: an all-zero update)."""
    if std == 0:
        return {k: torch.zeros_like(v) for k, v in ctx.global_weights.items()}
    return _gaussian_like(ctx.global_weights, std, ctx.generator())


def copycat(ctx: AttackContext, source: int = 0, jitter: float = 1e-4) -> Update:
    """Resubmit an earlier trainer's update, optionally perturbed by relative noise ``jitter``."""
    if not ctx.previous:
        return free_rider(ctx)
    victim = ctx.previous[min(source, len(ctx.previous) - 1)]
    if jitter == 0:
        return {k: v.clone() for k, v in victim.items()}
    gen = ctx.generator()
    return {k: v + jitter * float(v.abs().mean()) * torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.dtype)
            for k, v in victim.items()}


BEHAVIOURS: dict[str, Callable[..., Update]] = {
    "honest": honest,
    "label_flip": label_flip,
    "sign_flip": sign_flip,
    "noise": noise,
    "scale": scale,
    "free_rider": free_rider,
    "copycat": copycat,
}
ATTACK_KINDS = tuple(k for k in BEHAVIOURS if k != "honest")
BLATANT_KINDS = ("sign_flip", "noise", "scale", "free_rider", "copycat")


def make_update(kind: str, ctx: AttackContext, **params) -> Update:
    """The update a trainer of behaviour ``kind`` submits."""
    try:
        behaviour = BEHAVIOURS[kind]
    except KeyError:
        raise ConfigError(f"unknown trainer behaviour {kind!r}", f"known: {', '.join(BEHAVIOURS)}") from None
    return behaviour(ctx, **params)


def parse_attackers(spec: str) -> dict[str, int]:
    """``"label_flip:2,noise:1"`` -> {"label_flip": 2, "noise": 1}."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, count = item.partition(":")
        if kind not in ATTACK_KINDS:
            raise ConfigError(f"unknown attacker kind {kind!r}", f"known: {', '.join(ATTACK_KINDS)}")
        try:
            n = int(count or 1)
        except ValueError:
            raise ConfigError(f"attacker count for {kind} must be an integer, got {count!r}") from None
        if n < 0:
            raise ConfigError(f"attacker count for {kind} must be >= 0")
        counts[kind] = counts.get(kind, 0) + n
    return counts
