"""Trainer behaviours, honest and malicious. Each is a function ``(ctx, **params) -> update``
(a state dict of deltas), chosen by name from :data:`BEHAVIOURS`.

The blatant kinds (``sign_flip``, ``noise``, ``scale``, ``free_rider``, ``copycat``) should be
flagged by the aggregator's detectors; ``label_flip`` trains honestly on poisoned labels and is
meant to earn nothing through its (negative) contribution score.

The adaptive kinds come from the literature:

- ``alie`` (Baruch et al., 2019), ``ipm`` (Xie et al., 2020) and ``min_max`` (Shejwalkar &
  Houmansadr, 2021) build their update from benign updates. We model the **omniscient** case, the
  stronger one: they see every update submitted before theirs in the round (``ctx.previous``) as
  well as the benign updates their colluders trained on their own data (``ctx.colluders``). Under
  commit-reveal a real attacker sees only the colluders' part.
- ``noisy_copycat`` resubmits an update submitted earlier in the round plus Gaussian noise of
  ``noise`` x its RMS (again the omniscient case: commit-reveal hides in-round updates).
- ``delta_free_rider`` (Fraboni et al., 2021) replays the last global step (public) plus noise;
  commit-reveal does not stop it.
- ``sybil``: one trainer's honest update split over several identities (disjoint random
  coordinates, scaled so that the identities' mean is the update) to be paid several times.
- ``backdoor``: trains with a pixel trigger stamped on part of its data, relabelled to a target
  class, and boosts the update (model replacement); :func:`stamp_trigger` makes the test images for
  its attack success rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from backend.errors import ConfigError
from backend.models.spec import ModelSpec
from backend.models.training import compute_update, train_local

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
    # benign updates of this attacker's colluders (same kind, own data), itself included, in order
    colluders: Sequence[Mapping[str, torch.Tensor]] = field(default_factory=list)
    rank: int = 0  # this attacker's position among its colluders
    last_step: Mapping[str, torch.Tensor] | None = None  # the last global step (public), None in round 0
    trainers: int = 0  # trainers in the round (ALIE's z), 0: unknown

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
    return {
        k: v + jitter * float(v.abs().mean()) * torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.dtype)
        for k, v in victim.items()
    }


def _flat(update: Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """One vector, the tensors in ``like``'s order (the order ``_unflat`` reads them back in; where the
    order does not matter, the update's own)."""
    return torch.cat([update[k].reshape(-1).to(torch.float64) for k in (update if like is None else like)])


def _unflat(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Update:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vector[start : start + v.numel()].reshape(v.shape).to(v.dtype)
        start += v.numel()
    return out


def _benign(ctx: AttackContext) -> list[torch.Tensor]:
    """The benign updates the attacker knows: its colluders' (its own included) and, omniscient, the
    round's earlier submissions."""
    own = list(ctx.colluders) or [ctx.train()]
    return [_flat(u, ctx.global_weights) for u in [*own, *ctx.previous]]


def alie(ctx: AttackContext, z: float | None = None) -> Update:
    """A little is enough: the coordinate-wise mean of the benign updates minus ``z`` standard
    deviations, with z from the number of trainers and attackers as in the paper (at least 1)."""
    stack = torch.stack(_benign(ctx))
    if z is None:
        from statistics import NormalDist

        n = max(ctx.trainers, len(stack) + 1)
        m = max(len(ctx.colluders), 1)
        s = n // 2 + 1 - m
        z = max(1.0, NormalDist().inv_cdf(min(max((n - s) / n, 0.5), 0.999)))
    std = stack.std(dim=0, unbiased=False) if len(stack) > 1 else torch.zeros_like(stack[0])
    return _unflat(stack.mean(dim=0) - z * std, ctx.global_weights)


def ipm(ctx: AttackContext, epsilon: float = 0.5) -> Update:
    """Inner product manipulation: minus ``epsilon`` times the mean benign update."""
    return _unflat(-epsilon * torch.stack(_benign(ctx)).mean(dim=0), ctx.global_weights)


def min_max(ctx: AttackContext) -> Update:
    """Shejwalkar & Houmansadr's min-max: mean + gamma x (minus the unit std direction), gamma as large
    as keeps its largest distance to a benign update within the largest distance between two."""
    stack = torch.stack(_benign(ctx))
    mean = stack.mean(dim=0)
    if len(stack) < 2:
        return _unflat(-mean, ctx.global_weights)
    direction = -stack.std(dim=0, unbiased=False)
    direction = direction / direction.norm().clamp_min(1e-30)
    limit = torch.cdist(stack, stack).max()
    low, high = 0.0, 1.0
    while (torch.cdist((mean + high * direction)[None], stack).max() <= limit) and high < 1e6:
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        if torch.cdist((mean + mid * direction)[None], stack).max() <= limit:
            low = mid
        else:
            high = mid
    return _unflat(mean + low * direction, ctx.global_weights)


def noisy_copycat(ctx: AttackContext, noise: float = 0.3, source: int = 0) -> Update:
    """An earlier submission plus Gaussian noise of ``noise`` x its RMS (trains nothing)."""
    if not ctx.previous:
        return free_rider(ctx)
    victim = ctx.previous[min(source, len(ctx.previous) - 1)]
    rms = float(_flat(victim).pow(2).mean().sqrt())
    return {
        k: v + n for (k, v), n in zip(victim.items(), _gaussian_like(victim, noise * rms, ctx.generator()).values())
    }


def delta_free_rider(ctx: AttackContext, noise: float = 0.1) -> Update:
    """Fraboni et al.'s delta free-rider: the last global step plus Gaussian noise of ``noise`` x its
    RMS. In round 0 there is no step yet: a plain free-rider."""
    if ctx.last_step is None:
        return free_rider(ctx)
    rms = float(_flat(ctx.last_step).pow(2).mean().sqrt())
    jitter = _gaussian_like(ctx.last_step, noise * rms, ctx.generator())
    return {k: v.clone() + jitter[k] for k, v in ctx.last_step.items()}


def sybil(ctx: AttackContext) -> Update:
    """The first colluder's honest update split over all of them: each takes a disjoint random share
    of the coordinates, times the number of sybils, so their mean is that one update."""
    count = max(len(ctx.colluders), 1)
    whole = _flat(ctx.colluders[0] if ctx.colluders else ctx.train(), ctx.global_weights)
    owner = torch.randperm(len(whole), generator=torch.Generator().manual_seed(count * 7919 + len(whole)))
    piece = torch.zeros_like(whole)
    mine = owner[ctx.rank % count :: count]
    piece[mine] = whole[mine] * count
    return _unflat(piece, ctx.global_weights)


TRIGGER = 4  # side of the square trigger, in pixels, at the image's bottom-right corner


def stamp_trigger(X: np.ndarray) -> np.ndarray:
    """Images with the backdoor's trigger: a bright square in the bottom-right corner."""
    X = np.array(X, dtype=np.float32, copy=True)
    X[..., -TRIGGER - 1 : -1, -TRIGGER - 1 : -1] = 1.0
    return X


def backdoor(ctx: AttackContext, target: int = 0, fraction: float = 0.5, boost: float = 3.0) -> Update:
    """Stamp the trigger on ``fraction`` of its digits, label them ``target``, train, and boost."""
    rng = np.random.default_rng(ctx.seed)
    X, y = np.array(ctx.X, copy=True), np.array(ctx.y, copy=True)
    poisoned = rng.choice(len(y), size=max(1, int(round(len(y) * fraction))), replace=False)
    X[poisoned] = stamp_trigger(X[poisoned])
    y[poisoned] = target
    local = train_local(ctx.spec, ctx.global_weights, X, y, ctx.seed, ctx.epochs)
    return {k: boost * v for k, v in compute_update(local, ctx.global_weights).items()}


BEHAVIOURS: dict[str, Callable[..., Update]] = {
    "honest": honest,
    "label_flip": label_flip,
    "sign_flip": sign_flip,
    "noise": noise,
    "scale": scale,
    "free_rider": free_rider,
    "copycat": copycat,
    "alie": alie,
    "ipm": ipm,
    "min_max": min_max,
    "noisy_copycat": noisy_copycat,
    "delta_free_rider": delta_free_rider,
    "sybil": sybil,
    "backdoor": backdoor,
}
ATTACK_KINDS = tuple(k for k in BEHAVIOURS if k != "honest")
BLATANT_KINDS = ("sign_flip", "noise", "scale", "free_rider", "copycat")
ADAPTIVE_KINDS = ("alie", "ipm", "min_max", "noisy_copycat", "delta_free_rider", "sybil", "backdoor")
COLLUDING_KINDS = ("alie", "ipm", "min_max", "sybil")  # build on their colluders' benign updates
NOTHING_TRAINED_KINDS = ("free_rider", "copycat", "noisy_copycat", "delta_free_rider")  # pay target: <= 2 %


def prepare_round(kinds: Sequence[str], contexts: Sequence[AttackContext]) -> None:
    """Give each trainer of a colluding kind the benign updates of every trainer of its kind (each
    trained once, on its own data, in order) and its rank among them; and tell every context how
    many trainers the round has."""
    benign: dict[str, list[Update]] = {}
    for kind, ctx in zip(kinds, contexts):
        ctx.trainers = len(kinds)
        if kind in COLLUDING_KINDS:
            ctx.rank = len(benign.setdefault(kind, []))
            benign[kind].append(ctx.train())
    for kind, ctx in zip(kinds, contexts):
        if kind in COLLUDING_KINDS:
            ctx.colluders = benign[kind]


def global_step(current: Mapping[str, torch.Tensor], previous: Mapping[str, torch.Tensor] | None) -> Update | None:
    """The last global step (current − previous global model), what a delta free-rider replays."""
    if previous is None:
        return None
    return {k: current[k].to(torch.float32) - previous[k].to(torch.float32) for k in current}


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
