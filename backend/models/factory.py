"""Build a model from a spec, with weights that depend only on a seed."""

from __future__ import annotations

import torch
from torch import nn

from backend.models.registry import get_architecture
from backend.models.spec import ModelSpec


def build_model(spec: ModelSpec, seed: int | None = None) -> nn.Module:
    """Instantiate ``spec.arch``. With a seed, initialization is deterministic and leaves the
    global torch RNG untouched."""
    builder = get_architecture(spec.arch)
    if seed is None:
        return builder(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(spec)


def initial_weights(spec: ModelSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict a project starts from, as detached CPU tensors."""
    return {k: v.detach().clone() for k, v in build_model(spec, seed).state_dict().items()}


def parameter_count(spec: ModelSpec) -> int:
    return sum(p.numel() for p in build_model(spec, 0).parameters())
