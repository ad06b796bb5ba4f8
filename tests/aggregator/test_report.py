"""The round report model: what every reader accepts, and what it refuses with a clear error."""

from __future__ import annotations

import json

import pytest

from aggregator.report import REPORT_SCHEMA_VERSION, ReportError, RoundReport, canonical_json, parse_report

MINIMAL = {
    "schema_version": "merit.round-report/1",
    "round": 0,
    "weights": [3, 0],
    "flags": 2,
    "trainers": [{"index": 0, "address": "0xa", "flagged": False}, {"index": 1, "address": "0xb", "flagged": True}],
}


def test_report_loader_names_what_is_wrong():
    assert parse_report(json.dumps(MINIMAL).encode()).weights == [3, 0]
    for change, message in [
        ({"weights": [1, -1]}, r"'weights\[1\]': Input should be greater than or equal to 0"),
        ({"flags": True}, "'flags': Input should be a valid integer"),
        ({"round": None}, "'round': Input should be a valid integer"),
        ({"schema_version": "other/1"}, "unknown schema 'other/1'"),
        ({"trainers": [{"index": "0", "address": "0xa", "flagged": False}]}, r"'trainers\[0\].index'"),
        ({"trainers": [{"index": 0, "address": "0xa", "flagged": 0}]}, r"'trainers\[0\].flagged'"),
        ({"trainers": [{"index": 0, "flagged": False}]}, r"'trainers\[0\].address': Field required"),
    ]:
        with pytest.raises(ReportError, match=message):
            parse_report(json.dumps({**MINIMAL, **change}).encode())
    with pytest.raises(ReportError, match="not a JSON object"):
        parse_report(b"[1, 2]")
    with pytest.raises(ReportError, match="nests 100000 levels deep"):
        parse_report(b"[" * 100_000 + b"]" * 100_000)


def test_a_report_keeps_what_it_was_stored_with():
    """A report from another writer (older, or newer with fields this one does not know) reads, and
    gives back exactly its keys: nothing invented from defaults, nothing dropped."""
    stored = {**MINIMAL, "something_new": {"a": [1, 2]}}
    stored["trainers"] = [{**t, "future_field": 1} for t in MINIMAL["trainers"]]
    report = parse_report(canonical_json(stored))
    assert report.to_dict() == stored
    assert report.canonical_json() == canonical_json(stored)
    assert report.trainers[1].score is None and report.trainers[1].pay_share == 0.0  # defaults for readers


def test_pay_shares_reads_a_report():
    report = RoundReport(
        schema_version=REPORT_SCHEMA_VERSION,
        round=1,
        weights=[7, 0, 3],
        flags=2,
        trainers=[
            {"index": 0, "address": "0xa", "flagged": False, "pay_share": 0.7},
            {"index": 1, "address": "0xb", "flagged": True, "pay_share": None},
            {"index": 2, "address": "0xc", "flagged": False, "pay_share": 0.3},
        ],
    )
    assert report.pay_shares() == {"0xa": 0.7, "0xb": 0.0, "0xc": 0.3}
