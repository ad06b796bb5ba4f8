"""Is an uploaded update acceptable: safetensors, the model's tensors exactly, every value finite?

Returns a reason string, or None when the update is acceptable. Never raises on bad input.
"""
from __future__ import annotations

import numpy as np

from backend.api.model_layout import Layout, read_layout


def check_update(data: bytes, expected: Layout, max_bytes: int) -> str | None:
    if len(data) > max_bytes:
        return f"update is {len(data)} bytes; the cap is {max_bytes}"
    try:
        layout = read_layout(data)
    except ValueError as exc:
        return f"not safetensors: {exc}"
    missing = sorted(set(expected) - set(layout))
    extra = sorted(set(layout) - set(expected))
    if missing or extra:
        return f"tensor names differ from the model's: missing {missing[:5]}, unexpected {extra[:5]}"
    for name, (dtype, shape) in expected.items():
        if layout[name] != (dtype, shape):
            got_dtype, got_shape = layout[name]
            return f"tensor {name!r} is {got_dtype}{list(got_shape)}; the model's is {dtype}{list(shape)}"
    try:
        from safetensors.numpy import load

        tensors = load(data)
    except Exception as exc:  # the Rust parser raises SafetensorError and others for corrupt files
        return f"not safetensors: {exc}"
    for name, array in tensors.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return f"tensor {name!r} has NaN or infinite values"
    return None
