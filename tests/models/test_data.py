"""MNIST loading, splits, partitions, and a trainer's own data files."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data import (
    add_label_noise,
    load_mnist,
    load_trainer_data,
    partition,
    partition_sizes,
    train_validation_split,
)
from backend.errors import ConfigError
from backend.models import ModelSpec, mnist_spec


def test_mnist_is_normalized_shuffled_and_deterministic():
    X, y = load_mnist(n=500, seed=3)
    assert X.shape == (500, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert len(np.unique(y)) == 10  # shuffled: the file itself is sorted by label
    X2, y2 = load_mnist(n=500, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)


def test_split_is_stratified_disjoint_and_deterministic():
    X, y = load_mnist(n=1000)
    (Xt, yt), (Xv, yv) = train_validation_split(X, y, 0.2, seed=1)
    assert len(yt) + len(yv) == 1000 and 190 <= len(yv) <= 210
    assert np.all(np.abs(np.bincount(yv, minlength=10) / len(yv) - np.bincount(y, minlength=10) / 1000) < 0.02)
    (_, yt2), (_, yv2) = train_validation_split(X, y, 0.2, seed=1)
    assert np.array_equal(yv, yv2)


@pytest.mark.parametrize("scheme", ["iid", "size", "label"])
def test_partitions_are_disjoint_and_deterministic(scheme):
    _, y = load_mnist(n=1000)
    parts = partition(y, 5, scheme, seed=2)
    joined = np.concatenate(parts)
    assert len(parts) == 5 and len(joined) == len(np.unique(joined))
    assert all(len(p) >= 10 for p in parts)
    assert all(np.array_equal(a, b) for a, b in zip(parts, partition(y, 5, scheme, seed=2)))


def test_label_skew_skews_labels():
    _, y = load_mnist(n=2000)
    parts = partition(y, 5, "label", seed=0, alpha=0.1)
    dominant = [np.bincount(y[p], minlength=10).max() / len(p) for p in parts]
    assert np.mean(dominant) > 0.3


def test_partition_errors_are_config_errors():
    with pytest.raises(ConfigError):
        partition(np.zeros(10, dtype=int), 20)
    with pytest.raises(ConfigError):
        partition_sizes(10, [8, 8])
    with pytest.raises(ConfigError):
        partition(np.zeros(100, dtype=int), 2, "weird")


def test_label_noise_changes_the_requested_fraction():
    y = np.arange(1000) % 10
    noisy = add_label_noise(y, 0.3, 10, seed=0)
    assert (noisy != y).mean() == pytest.approx(0.3, abs=0.001)


SPEC = mnist_spec("logreg")


def test_npz_loads_and_reshapes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.random.rand(6, 784), y=np.arange(6))
    X, y = load_trainer_data(path, SPEC)
    assert X.shape == (6, 1, 28, 28) and X.dtype == np.float32 and y.tolist() == list(range(6))


def test_csv_loads_label_column(tmp_path):
    path = tmp_path / "d.csv"
    header = ",".join(["label"] + [f"p{i}" for i in range(784)])
    rows = [",".join([str(i % 10)] + ["0.5"] * 784) for i in range(4)]
    path.write_text("\n".join([header, *rows]) + "\n")
    X, y = load_trainer_data(path, SPEC)
    assert X.shape == (4, 1, 28, 28) and y.tolist() == [0, 1, 2, 3]


def test_image_folder_loads_class_subfolders(tmp_path):
    from PIL import Image

    for label in (0, 3):
        (tmp_path / str(label)).mkdir()
        Image.fromarray(np.full((28, 28), 255 * label // 3, dtype=np.uint8)).save(tmp_path / str(label) / "a.png")
    X, y = load_trainer_data(tmp_path, SPEC)
    assert X.shape == (2, 1, 28, 28) and sorted(y.tolist()) == [0, 3] and X.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((3, 10)), np.zeros(3), "expects"),
        (np.zeros((3, 784)), np.zeros(2), "3 examples but 2 labels"),
        (np.zeros((2, 784)), np.array([0, 10]), "labels must lie"),
        (np.full((2, 784), np.nan), np.zeros(2), "NaN"),
        (np.zeros((2, 784)), np.array([0.5, 1.0]), "integer"),
    ],
)
def test_bad_npz_gives_clear_config_errors(tmp_path, X, y, message):
    path = tmp_path / "bad.npz"
    np.savez(path, X=X, y=y)
    with pytest.raises(ConfigError, match=message):
        load_trainer_data(path, SPEC)


def test_missing_arrays_unknown_formats_and_wrong_image_sizes(tmp_path):
    from PIL import Image

    np.savez(tmp_path / "nox.npz", features=np.zeros(3))
    with pytest.raises(ConfigError, match="lacks"):
        load_trainer_data(tmp_path / "nox.npz", SPEC)
    (tmp_path / "d.parquet").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unsupported"):
        load_trainer_data(tmp_path / "d.parquet", SPEC)
    with pytest.raises(ConfigError, match="does not exist"):
        load_trainer_data(tmp_path / "missing.npz", SPEC)
    folder = tmp_path / "imgs"
    (folder / "1").mkdir(parents=True)
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(folder / "1" / "x.png")
    with pytest.raises(ConfigError, match="resize"):
        load_trainer_data(folder, SPEC)
    with pytest.raises(ConfigError, match="image model"):
        load_trainer_data(folder, ModelSpec(arch="logreg", input_shape=(784,), num_classes=10))
