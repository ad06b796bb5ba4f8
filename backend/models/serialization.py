"""Weights and updates on the wire: safetensors with string metadata. Never pickle."""

from __future__ import annotations

import json
import struct
from typing import Mapping

import torch
from safetensors.torch import load as _st_load

from backend import safe_json
from backend.errors import ConfigError

METADATA_KEYS = ("project", "round", "trainer", "base")
WEIGHTS_HEADER_MAX_BYTES = 1 << 20  # a model with thousands of tensors fits in far less


def save_weights(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, object] | None = None) -> bytes:
    """Serialize a state dict (or an update) to safetensors bytes. Metadata values become strings;
    the four protocol keys (project, round, trainer, base) are always present."""
    meta = {key: "" for key in METADATA_KEYS}
    for key, value in (metadata or {}).items():
        meta[str(key)] = "" if value is None else str(value)
    return _canonical_safetensors(tensors, meta)


# torch dtype -> safetensors dtype name; the update validator checks headers against the same table
TORCH_TO_ST = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _canonical_safetensors(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """safetensors with a canonical header (sorted keys, tensors laid out in name order, padded
    with spaces to 8 bytes as the format allows). The reference writer orders metadata through a
    hash map, so its bytes, and therefore the CID, could differ between two saves of the same model."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in TORCH_TO_ST:
            raise ConfigError(f"tensor {name!r} has unsupported dtype {t.dtype}")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names, in ``tensors``' order, of the floating tensors holding NaN or infinity."""
    return [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def load_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parse safetensors bytes of a model (a global model posted on-chain, initial weights). Its
    header is parsed with bounded depth, since whoever posted it may be hostile; updates from
    strangers go through ``backend.models.update_validation``, which checks far more."""
    if len(data) < 8:
        raise ConfigError("weights file is truncated", "expected safetensors bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise ConfigError("weights file is truncated or not safetensors")
    if header_len > WEIGHTS_HEADER_MAX_BYTES:  # 40,000 one-byte tensors in a 2.8 MB header took 3.7 s to load
        raise ConfigError(f"weights file header of {header_len} bytes exceeds {WEIGHTS_HEADER_MAX_BYTES}")
    try:
        header = safe_json.loads(data[8 : 8 + header_len], what="weights file header", max_depth=3)
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        metadata = header.get("__metadata__", {}) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("its metadata does not map names to strings")
        loaded = _st_load(bytes(data))
        # in the header's order: safetensors hands them back in an order that changes from process to
        # process (a Rust HashMap), and code that walks the values in order must see one order
        tensors = {name: loaded[name] for name in header if name != "__metadata__"}
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"weights file is not valid safetensors: {exc}") from None
    return tensors, dict(metadata)
