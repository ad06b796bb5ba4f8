"""`merit verify`: re-execute rounds from chain and storage data alone, and compare with what was posted.

For each round with a posted result it fetches the model spec (and the aggregator configuration
fixed in it), the base model, every update, and the validation set (revealed on-chain, or given),
re-runs validation, detection, scoring and aggregation with the seeds derived from (project, round),
and compares:

- flags: exactly;
- weights: each within ``WEIGHT_TOLERANCE`` of the round's total weight (1e-3, i.e. 0.1 %);
- the new global model: the same CID, or tensors within ``MODEL_TOLERANCE`` (max abs difference);
- the report: its weights and flags must be the ones posted on-chain.

On the machine that aggregated, the recomputation is bit-identical; the tolerances absorb float
differences between CPUs and library builds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from aggregator.config import aggregator_config_of, canonical_parameters
from aggregator.node import earlier_rounds
from aggregator.report import ReportError, RoundReport, fetch_report
from aggregator.round import run_round
from backend.chain.history import round_history
from backend.chain.types import WEIGHT_SCALE
from backend.data import load_validation
from backend.errors import ConfigError, StorageError
from backend.limits import GLOBAL_MODEL_MAX_BYTES
from backend.models.serialization import load_weights
from backend.models.spec import SCHEDULE_METADATA_KEYS, fetch_model_spec
from backend.storage import is_cid_of

WEIGHT_TOLERANCE = 1e-3
MODEL_TOLERANCE = 1e-5


@dataclass
class RoundVerdict:
    round: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)  # per trainer: index, address, field, posted, recomputed


def _fetch_or_none(store, cid: str, cap: int) -> bytes | None:
    try:
        return store.get_bytes(cid, max_size=cap)
    except StorageError:
        return None


def verify_project(
    market, store, pid: int, validation=None, rounds: list[int] | None = None, progress=None
) -> list[RoundVerdict]:
    cfg = market.config(pid)
    spec = fetch_model_spec(store, cfg.specCid)
    config = aggregator_config_of(spec)
    if validation is None:
        revealed = market.project(pid).validation_cid
        if not revealed:
            raise ConfigError(
                f"project {pid}'s validation set is not revealed yet",
                "ask the owner to run `merit project reveal`, or pass --validation FILE",
            )
        validation = load_validation(store.get_bytes(revealed, max_size=1 << 31), spec)
    everything = round_history(market, pid)
    history = [rec for rec in everything if rec.global_model_cid and rec.report_cid]
    if rounds is not None:
        unknown = sorted(set(rounds) - {rec.round for rec in history})
        if unknown:
            raise ConfigError(f"round(s) {unknown} of project {pid} have no posted result to verify")
        history = [rec for rec in history if rec.round in rounds]
    verdicts = []
    for rec in history:
        problems, differing = [], []
        report: RoundReport | None = None
        try:
            report = fetch_report(store, rec.report_cid)
        except (ReportError, StorageError) as exc:
            problems.append(f"the posted report cannot be read: {exc}")
        if report is not None and (report.weights != rec.weights or report.flags != rec.flags):
            problems.append("the report's weights/flags differ from those posted on-chain")
        if report is not None and canonical_parameters(report.parameters) != json.loads(config.model_dump_json()):
            problems.append("the report declares parameters other than the project's aggregator configuration")
        base = store.get_bytes(rec.base_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
        blobs = [(addr, cid, _fetch_or_none(store, cid, config.max_update_bytes)) for addr, cid in rec.submissions]
        try:
            previous, prior_shares = earlier_rounds(store, everything, rec.round)
        except (ReportError, StorageError) as exc:
            problems.append(f"cannot recompute the pay: an earlier round's report or model cannot be read: {exc}")
            verdicts.append(RoundVerdict(rec.round, ok=False, problems=problems))
            if progress is not None:
                progress(rec.round)
            continue
        outcome = run_round(
            spec,
            base,
            blobs,
            validation,
            config,
            project_id=pid,
            round=rec.round,
            global_cid=rec.base_model_cid,
            previous_global=previous,
            prior_shares=prior_shares,
        )
        for i, (addr, _cid) in enumerate(rec.submissions):
            posted_flag, new_flag = bool(rec.flags >> i & 1), bool(outcome.flags >> i & 1)
            if posted_flag != new_flag:
                differing.append(
                    {"index": i, "address": addr, "field": "flag", "posted": posted_flag, "recomputed": new_flag}
                )
            posted_w = rec.weights[i] if i < len(rec.weights) else None
            if posted_w is None or abs(posted_w - outcome.weights[i]) > WEIGHT_TOLERANCE * WEIGHT_SCALE:
                differing.append(
                    {
                        "index": i,
                        "address": addr,
                        "field": "weight",
                        "posted": posted_w,
                        "recomputed": outcome.weights[i],
                    }
                )

        if not is_cid_of(outcome.global_weights, rec.global_model_cid):
            try:
                a, meta_a = load_weights(store.get_bytes(rec.global_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES))
            except (ConfigError, StorageError) as exc:
                problems.append(f"the posted model cannot be read: {exc}")
                a, meta_a = None, {}
            b, meta_b = load_weights(outcome.global_weights)
            for key in SCHEDULE_METADATA_KEYS:  # the schedule's output must match exactly
                if meta_a.get(key, "") != meta_b.get(key, ""):
                    problems.append(
                        f"the posted model's {key} metadata {meta_a.get(key, '')!r} differs from the "
                        f"recomputed {meta_b.get(key, '')!r}"
                    )
            if a is None:
                pass
            elif set(a) != set(b):
                problems.append("the posted model has different tensors from the recomputed one")
            else:
                diff = max(
                    float(np.max(np.abs(a[k].double().numpy() - b[k].double().numpy()))) if a[k].numel() else 0.0
                    for k in a
                )
                if diff > MODEL_TOLERANCE:
                    problems.append(f"the posted model differs from the recomputed one (max abs difference {diff:.3g})")
        verdicts.append(
            RoundVerdict(rec.round, ok=not problems and not differing, problems=problems, differing=differing)
        )
        if progress is not None:
            progress(rec.round)
    return verdicts
