"""A state dict <-> one flat float vector, in a fixed key order (the model's own order)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch


@dataclass(frozen=True)
class Layout:
    """Names, shapes and dtypes of a state dict, in order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> "Layout":
        return cls(tuple(state), tuple(tuple(t.shape) for t in state.values()), tuple(t.dtype for t in state.values()))

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def expected(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {n: (s, d) for n, s, d in zip(self.names, self.shapes, self.dtypes)}


def flatten(state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> torch.Tensor:
    """Concatenate tensors (in ``layout`` order, else the mapping's) into a 1-D float32 tensor."""
    names = layout.names if layout is not None else tuple(state)
    if not names:
        return torch.zeros(0, dtype=torch.float32)
    return torch.cat([state[n].detach().reshape(-1).to(torch.float32) for n in names])


def flatten_np(state: Mapping[str, torch.Tensor], layout: Layout | None = None) -> np.ndarray:
    return flatten(state, layout).numpy()


def unflatten(vector: torch.Tensor | np.ndarray, layout: Layout) -> dict[str, torch.Tensor]:
    """Split a flat vector back into named tensors with the layout's shapes and dtypes."""
    vec = torch.as_tensor(vector).reshape(-1)
    if vec.numel() != layout.size:
        raise ValueError(f"vector has {vec.numel()} values, layout needs {layout.size}")
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for name, shape, dtype in zip(layout.names, layout.shapes, layout.dtypes):
        n = math.prod(shape)
        out[name] = vec[offset : offset + n].reshape(shape).to(dtype).clone()
        offset += n
    return out
