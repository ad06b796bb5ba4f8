"""Files a stranger (or a careless user) hands Merit are refused by name: validation sets
(``--validation FILE``, the owner's revealed set), trainer data, safetensors headers."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from backend import safe_json
from backend.data import load_trainer_data, load_validation
from backend.errors import ConfigError
from backend.limits import VALIDATION_MAX_BYTES
from backend.models.serialization import load_weights
from backend.models.spec import mnist_spec
from backend.models.update_validation import validate_update
from backend.models.vectors import Layout


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _declared_only(path, shape):
    """An .npz of a few hundred bytes whose X declares ``shape`` (float32) and holds 100 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.zeros(2, np.int64))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + b"\0" * 100)
        archive.writestr("y.npy", labels.getvalue())
    return path


GOOD_X = np.zeros((2, 784), np.float32)
GOOD_Y = np.zeros(2, np.int64)

# name -> (make the file in tmp_path, words the error must contain)
HOSTILE = {
    "bare .npy": (
        lambda d: (np.save(d / "v.npz.npy", GOOD_X), (d / "v.npz.npy").rename(d / "v.npz"))[1],
        "one bare array",
    ),
    "not a zip": (lambda d: _write(d / "v.npz", b"PK\x03\x04" + b"\0" * 20), "BadZipFile"),
    "empty file": (lambda d: _write(d / "v.npz", b""), "cannot read"),
    "pickle": (lambda d: _write(d / "v.npz", pickle.dumps({"X": 1})), "cannot read"),
    "object arrays": (lambda d: _npz(d / "v.npz", X=np.array([1, None], dtype=object), y=GOOD_Y), "cannot read"),
    "scalar features": (lambda d: _npz(d / "v.npz", X=np.float32(1), y=np.zeros(1, np.int64)), "single number"),
    "complex features": (lambda d: _npz(d / "v.npz", X=GOOD_X.astype(np.complex64), y=GOOD_Y), "real numbers"),
    "labels past uint64's sign": (
        lambda d: _npz(d / "v.npz", X=GOOD_X, y=np.array([2**64 - 1, 0], np.uint64)),
        "found 0..18446744073709551615",
    ),
    "labels 1e300": (lambda d: _npz(d / "v.npz", X=GOOD_X, y=np.array([1e300, 0.0])), "labels must lie in [0, 9]"),
    "labels NaN": (lambda d: _npz(d / "v.npz", X=GOOD_X, y=np.array([np.nan, 0.0])), "integer class indices"),
    "no y": (lambda d: _npz(d / "v.npz", X=GOOD_X), "lacks array(s) ['y']"),
    "a directory": (lambda d: (d / "v.npz").mkdir() or d / "v.npz", "v.npz"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_validation_file_is_refused_by_name(tmp_path, case):
    make, needle = HOSTILE[case]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_validation(path, mnist_spec())
    assert needle in str(error.value), str(error.value)
    if path.is_file():  # the same bytes fetched from storage
        with pytest.raises(ConfigError):
            load_validation(path.read_bytes(), mnist_spec())
        with pytest.raises(ConfigError):
            load_trainer_data(path, mnist_spec())


def test_declared_sizes_are_checked_before_the_arrays_are_read(tmp_path):
    """A 500-byte file declaring 4 TB was allocated (MemoryError at best); one that declares just over
    the cap is refused by its header, without unpacking it."""
    for shape in ((10**6, 10**6), (VALIDATION_MAX_BYTES // (4 * 784) + 1, 784)):
        path = _declared_only(tmp_path / "bomb.npz", shape)
        assert path.stat().st_size < 1000
        with pytest.raises(ConfigError, match="declares .* bytes of arrays, more than the"):
            load_validation(path, mnist_spec())
        with pytest.raises(ConfigError, match="declares"):
            load_validation(path.read_bytes(), mnist_spec())


def test_a_good_validation_set_still_loads(tmp_path):
    X, y = load_validation(_npz(tmp_path / "v.npz", X=GOOD_X, y=np.array([3, 9], np.uint8)), mnist_spec())
    assert X.shape == (2, 1, 28, 28) and X.dtype == np.float32 and y.tolist() == [3, 9] and y.dtype == np.int64


def _framed(header: bytes, body: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def test_a_tensor_named_twice_is_refused():
    """Python's JSON parser keeps the last entry and another reader may keep the first: a header that
    names a tensor twice (here with two dtypes over the same bytes) is malformed, not ok."""
    layout = Layout.of({"w": torch.zeros(3, 2), "b": torch.zeros(2)})
    header = (
        b'{"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},'
        b'"b":{"dtype":"I32","shape":[2],"data_offsets":[24,32]},"b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}'
    )
    result = validate_update(_framed(header, b"\0" * 32), layout)
    assert not result.ok and result.reason == "malformed" and "'b' twice" in result.detail, result
    with pytest.raises(safe_json.UntrustedJSONError, match="names 'round' twice"):
        safe_json.loads(b'{"round": 0, "round": 1}', what="report")


def test_a_weights_file_header_is_capped():
    header = json.dumps({f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(40_000)})
    with pytest.raises(ConfigError, match="header of .* bytes exceeds"):
        load_weights(_framed(header.encode(), b"\0" * 40_000))
