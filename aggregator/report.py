"""Reading a round report back: the one loader that the node's readers (`merit verify`, the demo,
`merit project status`) share. A report comes from storage under a CID that the aggregator posted,
so it is parsed as a stranger's JSON and its shape is checked before anyone indexes into it."""

from __future__ import annotations

from typing import Any

from backend import safe_json
from backend.errors import ConfigError
from backend.limits import REPORT_MAX_BYTES

REPORT_SCHEMA_PREFIX = "merit.round-report/"
# key -> the type every reader relies on
_SHAPE: dict[str, type | tuple[type, ...]] = {
    "schema_version": str,
    "round": int,
    "weights": list,
    "flags": int,
    "trainers": list,
}
_TRAINER_SHAPE: dict[str, type | tuple[type, ...]] = {"index": int, "address": str, "flagged": bool}


class ReportError(ConfigError):
    """A round report that cannot be read as one."""


def parse_report(data: bytes, source: str = "round report") -> dict[str, Any]:
    """The report in ``data``, checked for the fields its readers use; ``ReportError`` otherwise."""
    try:
        report = safe_json.loads(data, what=source, max_bytes=REPORT_MAX_BYTES)
    except safe_json.UntrustedJSONError as exc:
        raise ReportError(str(exc), "the aggregator posted something that is not a Merit round report") from None
    problem = _shape_problem(report)
    if problem:
        raise ReportError(
            f"{source} is not a Merit round report: {problem}",
            "the aggregator posted something that is not a Merit round report",
        )
    return report


def fetch_report(store, cid: str) -> dict[str, Any]:
    """The report stored under ``cid`` (bytes verified against the CID by the store)."""
    return parse_report(store.get_bytes(cid, max_size=REPORT_MAX_BYTES), f"report {cid}")


def _shape_problem(report: Any) -> str | None:
    if not isinstance(report, dict):
        return "not a JSON object"
    for key, kind in _SHAPE.items():
        if not _is(report.get(key), kind):
            return f"'{key}' is missing or not a {_name(kind)}"
    if not report["schema_version"].startswith(REPORT_SCHEMA_PREFIX):
        return f"unknown schema {report['schema_version'][:80]!r}"
    if not all(_is(w, int) and w >= 0 for w in report["weights"]):
        return "'weights' are not whole numbers >= 0"
    for position, trainer in enumerate(report["trainers"]):
        if not isinstance(trainer, dict):
            return f"trainers[{position}] is not an object"
        for key, kind in _TRAINER_SHAPE.items():
            if not _is(trainer.get(key), kind):
                return f"trainers[{position}].{key} is missing or not a {_name(kind)}"
    return None


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    # JSON true/false are Python bools, which are ints too: a flag of `true` is no bitmap
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _name(kind: type | tuple[type, ...]) -> str:
    return {str: "string", int: "whole number", list: "list", bool: "true/false"}.get(kind, str(kind))
