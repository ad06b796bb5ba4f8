"""The round report: one typed model that the aggregator writes and every reader (`merit verify`, the
demo, `merit project status`, the node's later rounds) reads back.

A report comes from storage under a CID that the aggregator posted, so it is parsed as a stranger's
JSON and validated against ``RoundReport`` before anyone reads a field. Readers need only the fields
a report has carried since schema ``merit.round-report/1`` began (``schema_version``, ``round``,
``weights``, ``flags``, and each trainer's ``index``, ``address`` and ``flagged``); everything else has
a default, and keys a newer writer adds are kept, so every report written so far still reads.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from backend import safe_json
from backend.chain.types import WEIGHT_SCALE
from backend.errors import ConfigError
from backend.limits import REPORT_MAX_BYTES

REPORT_SCHEMA_PREFIX = "merit.round-report/"
REPORT_SCHEMA_VERSION = REPORT_SCHEMA_PREFIX + "1"
NOT_A_REPORT_HINT = "the aggregator posted something that is not a Merit round report"

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]


class ReportError(ConfigError):
    """A round report that cannot be read as one."""


class TrainerEntry(BaseModel):
    """One submission's line in the report, in submission order."""

    model_config = ConfigDict(extra="allow")

    index: StrictInt
    address: StrictStr
    flagged: StrictBool
    cid: str = ""
    checks: dict[str, bool] = Field(default_factory=dict)
    detector_scores: dict[str, Any] = Field(default_factory=dict)
    score: float | None = None
    pay_share: float | None = 0.0
    weight: int = 0
    reason: str | None = None
    detail: str = ""
    aggregated: bool = False
    excluded: bool = False  # left out of the round's model and pay without a flag (no slash)


class RoundReport(BaseModel):
    """What an aggregator did in one round, with every seed, version and parameter needed to redo it
    (DESIGN step 2.7). ``timings`` is the only field that is not a deterministic function of the
    round's inputs; ``chain`` and ``new_model_cid`` are added by the node that publishes it."""

    model_config = ConfigDict(extra="allow")

    schema_version: StrictStr
    round: StrictInt
    weights: list[NonNegativeInt]
    flags: StrictInt
    trainers: list[TrainerEntry]
    project_id: int | str = 0
    base_model_cid: str = ""
    new_model_sha256: str = ""
    seeds: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    last_step_known: bool = False
    validation: dict[str, Any] = Field(default_factory=dict)
    shapley: dict[str, Any] = Field(default_factory=dict)
    payment: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    weight_scale: int = WEIGHT_SCALE
    timings: dict[str, float] = Field(default_factory=dict)
    chain: dict[str, Any] | None = None
    new_model_cid: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, version: str) -> str:
        if not version.startswith(REPORT_SCHEMA_PREFIX):
            raise ValueError(f"unknown schema {version[:80]!r}")
        return version

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data: exactly the fields that were set (so a report read back gives the
        keys it was stored with, and the writer's bytes do not depend on this model's defaults)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def canonical_json(self) -> bytes:
        """The bytes this report is stored as (``canonical_json``)."""
        return canonical_json(self.to_dict())

    def pay_shares(self) -> dict[str, float]:
        """What each trainer bought in this round, in utility units: its share of the round's pay under
        the within-round rule times the round's value (0 when flagged or paid nothing): what the later
        rounds' payment reads. A report without ``payment.round_value`` counts as 1."""
        value = self.payment.get("round_value", 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ReportError(
                f"round {self.round}'s report has payment.round_value {value!r}, not a finite number >= 0",
                NOT_A_REPORT_HINT,
            )
        return {t.address: (0.0 if t.flagged else float(t.pay_share or 0.0) * value) for t in self.trainers}


def canonical_json(data: Any) -> bytes:
    """The bytes a report is stored as: sorted keys, no whitespace, so equal reports share a CID."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_report(data: bytes, source: str = "round report") -> RoundReport:
    """The report in ``data``, validated as a ``RoundReport``; ``ReportError`` otherwise."""
    try:
        raw = safe_json.loads(data, what=source, max_bytes=REPORT_MAX_BYTES)
    except safe_json.UntrustedJSONError as exc:
        raise ReportError(str(exc), NOT_A_REPORT_HINT) from None
    if not isinstance(raw, dict):
        raise ReportError(f"{source} is not a Merit round report: not a JSON object", NOT_A_REPORT_HINT)
    try:
        return RoundReport.model_validate(raw)
    except ValidationError as exc:
        raise ReportError(f"{source} is not a Merit round report: {_first_problem(exc)}", NOT_A_REPORT_HINT) from None


def fetch_report(store, cid: str) -> RoundReport:
    """The report stored under ``cid`` (bytes verified against the CID by the store)."""
    return parse_report(store.get_bytes(cid, max_size=REPORT_MAX_BYTES), f"report {cid}")


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    return f"'{where}': {error['msg'].removeprefix('Value error, ')}"
