"""Fuzz Merit's parsers of untrusted bytes, meant to run in a process of its own.

``python -m tests.fuzz.harness [--examples N] [--last PATH] [--timings PATH]``

A crash here is a segmentation fault or a stack overflow, which no ``try`` catches: run in the test
runner's own process it would take pytest down with it. So ``test_parsers.py`` starts this module as
a child and fails when the child does not exit 0. The Ethereum libraries are imported first, as the
aggregator node and the API server import them, because they raise the recursion limit to 100,000
and that is what turned a deep JSON header into a segfault.

Each parser must answer every input with a value or with its own, named error:

- ``update``: ``validate_update`` never raises; hostile inputs come back ``ok=False``;
- ``weights``: ``load_weights`` returns or raises ``ConfigError``;
- ``spec``: ``ModelSpec.from_json`` and ``round_spec`` return or raise ``ConfigError``;
- ``report``: ``parse_report`` returns or raises ``ReportError``;
- ``json``: ``safe_json.loads`` returns or raises ``UntrustedJSONError``.

Before each input is parsed it is written to ``--last``, so the input that killed the process can be
read back (and added, gzipped, to ``corpus/`` as ``TARGET-what-it-is.bin.gz``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import sys
import time
from pathlib import Path

import aggregator.node  # noqa: F401  the node's imports, recursion limit included
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.report import ReportError, parse_report
from backend.models.update_validation import validate_update
from backend import safe_json
from backend.errors import ConfigError
from backend.models.serialization import load_weights, save_weights
from backend.models.spec import ModelSpec, mnist_spec, round_spec
from backend.models.vectors import Layout

CORPUS = Path(__file__).resolve().parent / "corpus"
LAYOUT = Layout.of({"w": torch.zeros(3, 2), "b": torch.zeros(2)})
VALID_UPDATE = save_weights({"w": torch.ones(3, 2) * 0.01, "b": torch.zeros(2)}, {"round": 0})
VALID_SPEC = mnist_spec().to_json().encode()
VALID_REPORT = json.dumps(
    {
        "schema_version": "merit.round-report/1",
        "round": 0,
        "weights": [1, 0],
        "flags": 2,
        "trainers": [{"index": 0, "address": "0xa", "flagged": False}, {"index": 1, "address": "0xb", "flagged": True}],
    }
).encode()


def _update(data: bytes) -> None:
    result = validate_update(data, LAYOUT)
    assert result.ok in (True, False) and (result.ok or result.reason), result


def _weights(data: bytes) -> None:
    try:
        load_weights(data)
    except ConfigError:
        pass


def _spec(data: bytes) -> None:
    try:
        ModelSpec.from_json(data)
    except ConfigError:
        pass
    try:
        round_spec(mnist_spec(), {"hyperparams": data.decode("utf-8", "replace")})
    except ConfigError:
        pass


def _report(data: bytes) -> None:
    try:
        parse_report(data)
    except ReportError:
        pass


def _json(data: bytes) -> None:
    try:
        safe_json.loads(data, what="input")
    except safe_json.UntrustedJSONError:
        pass


TARGETS = {"update": _update, "weights": _weights, "spec": _spec, "report": _report, "json": _json}
SEEDS = {
    "update": VALID_UPDATE,
    "weights": VALID_UPDATE,
    "spec": VALID_SPEC,
    "report": VALID_REPORT,
    "json": VALID_REPORT,
}


# -- strategies: JSON documents, deep nestings, safetensors framings, byte-level mutations -------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@st.composite
def deep_nesting(draw) -> bytes:
    depth = draw(st.sampled_from([10, 70, 1_000, 60_000, 100_000, 200_000]))
    opener = draw(st.sampled_from([b"[", b'{"a":', b'[{"k":']))
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"k":': b"}]"}[opener]
    decoy = draw(st.sampled_from([b"", b'"' + b"]" * 1000 + b'",', b'"\\"]]",']))
    return b"{" + b'"x":' + opener * depth + decoy + b"1" + closer * draw(st.sampled_from([0, depth])) + b"}"


def _framed(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


@st.composite
def safetensors_like(draw) -> bytes:
    kind = draw(st.sampled_from(["json", "deep", "entry", "length"]))
    if kind == "json":
        return _framed(json.dumps(draw(json_values)).encode(), draw(st.binary(max_size=64)))
    if kind == "deep":
        return _framed(draw(deep_nesting()))
    if kind == "entry":
        entry = {
            "dtype": draw(st.sampled_from(["F32", "F64", "I8", "XX", 7])),
            "shape": draw(st.lists(st.integers(-2, 2**62), max_size=4) | json_values),
            "data_offsets": draw(st.lists(st.integers(-(2**63), 2**64), min_size=0, max_size=3)),
        }
        header = {"w": entry, "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
        if draw(st.booleans()):
            header["__metadata__"] = draw(json_values)
        return _framed(json.dumps(header).encode(), draw(st.binary(max_size=64)))
    declared = draw(st.integers(0, 2**64 - 1))
    return struct.pack("<Q", declared) + draw(st.binary(max_size=128))


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[position : position + draw(st.integers(1, 64))]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from([b"[" * 500, b'"\\']))
    return bytes(data)


def inputs(target: str):
    seed = SEEDS[target]
    strategies = [
        mutated(seed),
        deep_nesting(),
        st.binary(max_size=256),
        json_values.map(lambda v: json.dumps(v).encode()),
    ]
    if target in ("update", "weights"):
        strategies.append(safetensors_like())
    return st.one_of(strategies)


def run(examples: int, last: Path | None, timings: dict[str, float]) -> None:
    def check(target: str, data: bytes) -> None:
        if last is not None:
            last.write_bytes(f"{target}\n".encode() + data)
        start = time.perf_counter()
        TARGETS[target](data)
        elapsed = time.perf_counter() - start
        timings[target] = max(timings.get(target, 0.0), elapsed)

    for path in sorted(CORPUS.glob("*.bin.gz")):
        target, data = path.name.split("-", 1)[0], gzip.decompress(path.read_bytes())
        check(target, data)
        if target == "update":  # every corpus entry is hostile: none may pass as an update
            assert not validate_update(data, LAYOUT).ok, path.name
    for target in TARGETS:

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(inputs(target))
        def fuzz(data: bytes) -> None:
            check(target, data)

        fuzz()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="hypothesis examples per parser")
    parser.add_argument("--last", type=Path, help="write each input here before parsing it")
    parser.add_argument("--timings", type=Path, help="write the slowest parse per parser here, as JSON")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    run(args.examples, args.last, timings)
    if args.timings:
        args.timings.write_text(json.dumps(timings))
    print(
        f"fuzzed {len(TARGETS)} parsers, {args.examples} examples each, corpus of "
        f"{len(list(CORPUS.glob('*.bin.gz')))}; recursion limit {sys.getrecursionlimit()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
