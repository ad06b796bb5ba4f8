"""Property-based fuzzing of every operation in /openapi.json against a live uvicorn server on the
embedded chain with a real Marketplace:
no 5xx for valid or invalid input, and every response matches its documented status codes and schema.

Schemathesis' pytest plugin does not work under pytest 9, so each operation's hypothesis
strategy is driven directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.timeout(180)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_openapi_fuzzing_finds_no_server_errors(world):
    schema = schemathesis.openapi.from_url(world["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10  # health, metrics, projects, project, spec, model, round, committee, rewards, upload
    for operation, mode in (
        (op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid input
