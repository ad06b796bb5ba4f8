"""Validate an update from a stranger before anything else touches it.

Only safetensors is accepted, and its JSON header is parsed and checked by hand (length, dtype,
shape, offsets) before a single tensor is allocated. Nothing here raises on bad input: every
failure comes back as ``ValidationResult(ok=False, reason=..., checks=...)``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as st_load

from backend import safe_json
from backend.limits import UPDATE_MAX_ABS, UPDATE_MAX_BYTES
from backend.models.serialization import TORCH_TO_ST, WEIGHTS_HEADER_MAX_BYTES, non_finite
from backend.models.vectors import Layout

# safetensors dtype names and their sizes in bytes
DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}

MAX_HEADER_BYTES = WEIGHTS_HEADER_MAX_BYTES
HEADER_MAX_DEPTH = 3  # {name: {"shape": [..]}}: anything deeper is not a safetensors header

UNAVAILABLE = "unavailable"
MALFORMED = "malformed"


@dataclass
class ValidationResult:
    ok: bool
    reason: str | None = None  # None, "unavailable" or "malformed"
    detail: str = ""  # one human-readable line
    checks: dict[str, bool] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    metadata: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-serializable form for the round report."""
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail, "checks": dict(self.checks)}


CHECK_ORDER = ("available", "size", "format", "keys", "shapes", "dtypes", "nonempty", "finite", "magnitude")


def _fail(checks: dict[str, bool], check: str, detail: str, reason: str = MALFORMED) -> ValidationResult:
    checks[check] = False
    return ValidationResult(False, reason, detail, checks)


def validate_update(
    data: bytes | None, layout: Layout, max_bytes: int = UPDATE_MAX_BYTES, max_abs: float = UPDATE_MAX_ABS
) -> ValidationResult:
    """Check ``data`` against the model's ``layout``; on success ``result.tensors`` holds the update."""
    try:
        return _validate(data, layout, max_bytes, max_abs)
    except Exception as exc:  # a bug here must not take the aggregator down with it
        return ValidationResult(False, MALFORMED, f"validation error: {type(exc).__name__}: {exc}", {})


def _validate(data: bytes | None, layout: Layout, max_bytes: int, max_abs: float) -> ValidationResult:
    checks: dict[str, bool] = {}
    if data is None:
        return _fail(checks, "available", "update could not be fetched", UNAVAILABLE)
    checks["available"] = True
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _fail(checks, "format", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        return _fail(checks, "size", f"update is {len(data)} bytes, cap is {max_bytes}")
    checks["size"] = True

    header, detail = _parse_header(data)
    if header is None:
        return _fail(checks, "format", detail)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        return _fail(checks, "format", "safetensors metadata must map strings to strings")
    checks["format"] = True

    expected = layout.expected()  # in layout order, so the first mismatch named is stable
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        return _fail(checks, "keys", f"missing keys {missing[:3]}, unexpected keys {extra[:3]}")
    checks["keys"] = True
    for name, (shape, dtype) in expected.items():
        if tuple(header[name]["shape"]) != tuple(shape):
            return _fail(checks, "shapes", f"{name}: shape {header[name]['shape']}, expected {list(shape)}")
    checks["shapes"] = True
    for name, (shape, dtype) in expected.items():
        if header[name]["dtype"] != TORCH_TO_ST.get(dtype):
            return _fail(checks, "dtypes", f"{name}: dtype {header[name]['dtype']}, expected {TORCH_TO_ST.get(dtype)}")
    checks["dtypes"] = True
    if any(math.prod(entry["shape"]) == 0 for entry in header.values()):
        return _fail(checks, "nonempty", "zero-length tensor")
    checks["nonempty"] = True

    try:
        tensors = st_load(data)
    except Exception as exc:
        return _fail(checks, "format", f"safetensors could not load it: {exc}")
    # the loader returns a hash-ordered dict: walk the layout so the first failure named is stable
    ordered = {name: tensors[name] for name in layout.names}
    bad = non_finite(ordered)
    if bad:
        return _fail(checks, "finite", f"{bad[0]} contains NaN or infinity")
    checks["finite"] = True
    for name, t in ordered.items():
        if t.numel() and float(t.abs().max()) > max_abs:
            return _fail(checks, "magnitude", f"{name} has |value| > {max_abs:g}")
    checks["magnitude"] = True
    return ValidationResult(True, None, "", checks, ordered, dict(metadata))


def _parse_header(data: bytes) -> tuple[dict | None, str]:
    """Parse and bounds-check the safetensors header without touching tensor bytes."""
    if len(data) < 8:
        return None, f"truncated: {len(data)} bytes, not safetensors"
    header, detail = _parse_safetensors_header(data)
    if header is None and (data[:1] == b"\x80" or data[:2] == b"PK"):
        detail += " (it looks like a pickle / torch.save file; only safetensors is accepted)"
    return header, detail


def _parse_safetensors_header(data: bytes) -> tuple[dict | None, str]:
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES:
        return None, f"declared header of {header_len} bytes exceeds {MAX_HEADER_BYTES}"
    if header_len > len(data) - 8:
        return None, f"truncated: header declares {header_len} bytes, file has {len(data) - 8}"
    raw = data[8 : 8 + header_len]
    if not raw.lstrip().startswith(b"{"):
        return None, "header is not a JSON object; not safetensors"
    try:
        header = safe_json.loads(raw, what="header", max_depth=HEADER_MAX_DEPTH)
    except safe_json.UntrustedJSONError as exc:
        return None, str(exc)
    if not isinstance(header, dict):
        return None, "header is not a JSON object"
    body = len(data) - 8 - header_len
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            return None, f"tensor entry {name!r} is malformed"
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            return None, f"tensor {name!r} has unknown dtype {dtype!r}"
        if not (
            isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)
        ):
            return None, f"tensor {name!r} has an invalid shape"
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            return None, f"tensor {name!r} has invalid data_offsets"
        start, end = offsets
        if not 0 <= start <= end <= body:
            return None, f"tensor {name!r} points outside the file (truncated?)"
        if end - start != math.prod(shape) * DTYPE_SIZES[dtype]:
            return None, f"tensor {name!r}: {end - start} bytes do not match shape {shape} x {dtype}"
        spans.append((start, end))
    spans.sort()
    position = 0
    for start, end in spans:
        if start != position:
            return None, "tensor data overlaps or leaves gaps"
        position = end
    if position != body:
        return None, f"file has {body - position} trailing or missing bytes after the tensors"
    return header, ""
