"""Run by test_streaming.py in a fresh process: add and read back SIZE bytes through the embedded
store, then print JSON with the peak RSS growth over the RSS before the work.

The peak is VmHWM from /proc, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``execve``, so
in a child of a large pytest process it reports the parent's size at fork time.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
from pathlib import Path

from backend.storage.embedded import EmbeddedStore
from backend.storage.unixfs import CHUNK_SIZE


class Synthetic(io.RawIOBase):
    """``size`` bytes of distinct 256 KiB chunks (windows into one random buffer), never all in memory."""

    def __init__(self, size: int):
        self.left = size
        self.base = random.Random(7).randbytes(2 * CHUNK_SIZE)
        self.offset = 0
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, CHUNK_SIZE if n < 0 else n, CHUNK_SIZE)
        start = self.offset % CHUNK_SIZE
        piece = self.base[start : start + n]
        self.offset += 4099  # a prime step: every chunk differs
        self.left -= n
        self.sha.update(piece)
        return piece


def memory_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def main(root: str, size: int) -> None:
    store = EmbeddedStore(Path(root))
    source = Synthetic(size)
    before = memory_mb("VmRSS")
    cid = store.add_stream(source)
    after_add = memory_mb("VmHWM")
    read = hashlib.sha256()
    total = 0
    for piece in store.get_stream(cid):
        read.update(piece)
        total += len(piece)
    store.close()
    peak = memory_mb("VmHWM")
    print(
        json.dumps(
            {
                "cid": cid,
                "bytes": total,
                "same": read.digest() == source.sha.digest(),
                "rss_before_mb": before,
                "add_growth_mb": after_add - before,
                "peak_growth_mb": peak - before,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
