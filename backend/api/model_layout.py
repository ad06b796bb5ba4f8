"""The tensors an update must have: the names, shapes and dtypes of the project's model.

They are read from the safetensors header of the project's current global model (a header is
a few kilobytes of JSON at the front of the file), and cached by that model's CID.
"""
from __future__ import annotations

import json
import struct

from backend.errors import StorageError

Layout = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (dtype, shape)

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself applies


def read_layout(data: bytes) -> Layout:
    """Parse a safetensors header into a layout; ValueError if it is not safetensors."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ValueError("header length is out of range")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    layout: Layout = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or not isinstance(entry.get("shape"), list):
            raise ValueError(f"tensor {name!r} has no dtype or shape")
        layout[name] = (entry["dtype"], tuple(int(d) for d in entry["shape"]))
    return layout


def global_layout(store, cid: str, cache: dict, max_cached: int = 64) -> Layout:
    """The layout of the model stored under ``cid``."""
    if cid in cache:
        cache.move_to_end(cid)  # type: ignore[attr-defined]
        return cache[cid]
    try:
        layout = read_layout(store.get_bytes(cid))
    except ValueError as exc:
        raise StorageError(f"the global model {cid} is not valid safetensors: {exc}") from None
    cache[cid] = layout
    while len(cache) > max_cached:
        cache.popitem(last=False)  # type: ignore[call-arg]
    return layout
