"""JSON from strangers, parsed with bounded size and depth whatever the recursion limit.

Python's C JSON parser recurses once per nesting level and checks only the interpreter's recursion
limit, which the Ethereum libraries (py_ecc) raise to 100,000 at import: a header nested 80,000 deep
then overflows the thread's C stack and the process dies with a segmentation fault, not an
exception. So the nesting depth is measured first, without recursion, and only JSON within
``max_depth`` reaches the parser. Merit's own documents (safetensors headers, specs, reports, RPC
answers) nest fewer than ten levels.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
"""Deepest nesting accepted in JSON a stranger controls."""

# A JSON string, possessive so that the regex engine never backtracks; one that never closes runs
# to the end, so no later quote starts a rescan (which would make hostile input quadratic). Escapes may
# hide quotes and brackets, so strings are blanked before brackets are counted.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_OPEN, _CLOSE = np.zeros(256, np.int8), np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE[[ord("]"), ord("}")]] = 1


class UntrustedJSONError(ValueError):
    """JSON from a stranger that is refused before (or while) it is parsed; the message says why."""


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object that names a key twice is refused: Python keeps the last value, another parser of
    the same bytes (safetensors' Rust one, a contract's indexer) may keep the first, and a stranger
    can then show each reader a different document."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def nesting_depth(raw: bytes | str) -> int:
    """The deepest bracket nesting of ``raw``, counting no bracket inside a string (no recursion)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    codes = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    if not codes.size:
        return 0
    steps = _OPEN[codes].astype(np.int64) - _CLOSE[codes]
    return int(max(np.cumsum(steps).max(), 0))


def loads(raw: bytes | str, *, what: str, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for bytes a stranger controls; raises ``UntrustedJSONError`` naming ``what``."""
    size = len(raw)
    if max_bytes is not None and size > max_bytes:
        raise UntrustedJSONError(f"{what} is {size} bytes, more than the {max_bytes} allowed")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise UntrustedJSONError(f"{what} nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise UntrustedJSONError(f"{what} names {str(exc)[:80]!r} twice") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers longer than Python's digit limit
        raise UntrustedJSONError(f"{what} is not valid JSON: {exc}") from None
