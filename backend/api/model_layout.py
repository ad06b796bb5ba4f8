"""The tensors an update must have: the names, shapes and dtypes of the project's current global
model, read from storage and cached by that model's CID (a project's model changes once a round)."""

from __future__ import annotations

from collections import OrderedDict

from backend.errors import ConfigError, StorageError
from backend.models import Layout, load_weights


def global_layout(store, cid: str, cache: OrderedDict, max_cached: int = 16) -> Layout:
    """The layout of the model stored under ``cid``."""
    if cid in cache:
        cache.move_to_end(cid)
        return cache[cid]
    try:
        tensors, _ = load_weights(store.get_bytes(cid))
    except ConfigError as exc:
        raise StorageError(f"the global model {cid} is not valid safetensors: {exc}") from None
    layout = Layout.of(tensors)
    cache[cid] = layout
    while len(cache) > max_cached:
        cache.popitem(last=False)
    return layout
