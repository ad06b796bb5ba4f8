"""Validation of untrusted update bytes: a table of bad updates, none of which may raise."""

from __future__ import annotations

import io
import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from backend.models.update_validation import validate_update
from backend.models import Layout, save_weights

TEMPLATE = {"w": torch.zeros(4, 3), "b": torch.zeros(3)}
LAYOUT = Layout.of(TEMPLATE)


def good() -> dict[str, torch.Tensor]:
    return {"w": torch.full((4, 3), 0.01), "b": torch.full((3,), -0.02)}


def with_value(value: float) -> bytes:
    t = good()
    t["w"][1, 2] = value
    return save_weights(t)


def raw_header(header: dict, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def torch_save_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(good(), buf)
    return buf.getvalue()


BAD = {
    "unavailable": (None, "unavailable", "available"),
    "nan": (with_value(float("nan")), "malformed", "finite"),
    "inf": (with_value(float("inf")), "malformed", "finite"),
    "-inf": (with_value(float("-inf")), "malformed", "finite"),
    "huge": (with_value(1e9), "malformed", "magnitude"),
    "float64": (save_weights({k: v.double() for k, v in good().items()}), "malformed", "dtypes"),
    "float16": (save_weights({k: v.half() for k, v in good().items()}), "malformed", "dtypes"),
    "int": (save_weights({k: v.long() for k, v in good().items()}), "malformed", "dtypes"),
    "extra key": (save_weights({**good(), "evil": torch.zeros(1)}), "malformed", "keys"),
    "missing key": (save_weights({"w": good()["w"]}), "malformed", "keys"),
    "wrong shape": (save_weights({"w": torch.zeros(3, 4), "b": torch.zeros(3)}), "malformed", "shapes"),
    "zero-length": (save_weights({"w": torch.zeros(4, 3), "b": torch.zeros(0)}), "malformed", "shapes"),
    "truncated": (save_weights(good())[:-7], "malformed", "format"),
    "truncated header": (save_weights(good())[:20], "malformed", "format"),
    "tiny": (b"\x01\x02", "malformed", "format"),
    "empty": (b"", "malformed", "format"),
    "pickle": (pickle.dumps(good()), "malformed", "format"),
    "torch.save": (torch_save_bytes(), "malformed", "format"),
    "gigantic header": (struct.pack("<Q", 2**62) + b"{}", "malformed", "format"),
    "header past end": (struct.pack("<Q", 1000) + b"{}", "malformed", "format"),
    "not json": (struct.pack("<Q", 4) + b"abcd", "malformed", "format"),
    "json list": (raw_header([]), "malformed", "format"),
    "offsets outside": (
        raw_header(
            {
                "w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
                "b": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]},
            },
            b"\0" * 20,
        ),
        "malformed",
        "format",
    ),
    "gigantic shape": (
        raw_header({"w": {"dtype": "F32", "shape": [2**39, 2**39], "data_offsets": [0, 48]}}, b"\0" * 48),
        "malformed",
        "format",
    ),
    "overlapping": (
        raw_header(
            {
                "w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
                "b": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
            },
            b"\0" * 48,
        ),
        "malformed",
        "format",
    ),
    "unknown dtype": (
        raw_header({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
        "malformed",
        "format",
    ),
    "bad metadata": (raw_header({"__metadata__": {"a": 1}}), "malformed", "format"),
    "not bytes": ("a string", "malformed", "format"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_updates_are_refused_without_raising(name):
    data, reason, failed_check = BAD[name]
    result = validate_update(data, LAYOUT, max_bytes=10_000, max_abs=1e4)
    assert not result.ok
    assert result.reason == reason
    assert result.checks.get(failed_check) is False, result.detail
    assert result.tensors is None
    assert result.detail
    json.dumps(result.summary())


def test_size_cap():
    result = validate_update(save_weights(good()), LAYOUT, max_bytes=100)
    assert not result.ok and result.checks["size"] is False


def test_pickle_gets_a_helpful_message():
    assert "pickle" in validate_update(pickle.dumps(good()), LAYOUT).detail


def test_a_good_update_passes_every_check_and_keeps_layout_order():
    data = save_weights(good(), {"project": 1, "round": 0, "trainer": "0xabc", "base": "bafy"})
    result = validate_update(data, LAYOUT)
    assert result.ok and result.reason is None
    assert all(result.checks.values()) and len(result.checks) == 9
    assert list(result.tensors) == ["w", "b"]
    assert result.metadata["trainer"] == "0xabc"


def test_reference_writer_output_is_accepted_too():
    assert validate_update(st_save(good(), metadata={"round": "1"}), LAYOUT).ok


def test_a_global_model_with_a_hostile_header_is_a_clear_error():
    import struct

    from backend.errors import ConfigError
    from backend.models.serialization import load_weights

    header = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ConfigError, match="nests 100001 levels deep"):
        load_weights(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ConfigError, match="metadata does not map names to strings"):
        load_weights(struct.pack("<Q", 26) + b'{"__metadata__":{"a":[1]}}')
