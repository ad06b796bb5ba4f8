"""Reading files a user names with a cap (a spec that is really /dev/zero must not fill memory),
and writing files so that a reader never sees half of one. Storage, the chain client's deployment
records, the aggregator's state and the owner's secrets all write through ``atomic_output``."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from backend.errors import ConfigError, StorageError


@contextmanager
def atomic_output(target: Path) -> Iterator[BinaryIO]:
    """``with atomic_output(path) as f``: write to a temporary file beside ``path``, rename on success,
    remove it on any failure, so a reader never finds a partial file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise disk_error(exc, target) from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise disk_error(exc, target) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_error(exc: OSError, where: Path | str) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"disk full while writing {where}", "free some space, or set MERIT_HOME to a larger disk")
    return StorageError(f"cannot write {where}: {exc.strerror or exc}")


def read_capped(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``, refused (ConfigError) past ``max_bytes`` without reading further, or when
    it cannot be read: a directory, a missing file, no permission, a device that never ends."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is larger than the {max_bytes} bytes allowed")
    return data
