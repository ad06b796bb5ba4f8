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

from aggregator import committee as rules
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
from backend.release import release
from backend.storage import is_cid_of

WEIGHT_TOLERANCE = 1e-3
MODEL_TOLERANCE = 1e-5


@dataclass
class RoundVerdict:
    round: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)  # per trainer: index, address, field, posted, recomputed
    # per committee member: address, revealed, share_distance_bps and flag_disagreements from the recomputed
    # post, honest (within the tolerance of it), penalised (on-chain), penalised_by_rule (the replica's)
    members: list[dict] = field(default_factory=list)


def _fetch_or_none(store, cid: str, cap: int) -> bytes | None:
    try:
        return store.get_bytes(cid, max_size=cap)
    except StorageError:
        return None


def verify_project(
    market, store, pid: int, validation=None, rounds: list[int] | None = None, progress=None, committee=None
) -> list[RoundVerdict]:
    """Re-execute the project's posted rounds (or ``rounds``) and compare. With ``committee`` (a
    ``backend.chain.committee.CommitteeClient``) each member's post, the consensus the contract settled and
    its penalties are checked too."""
    spec = fetch_model_spec(store, market.config(pid).specCid)
    config = aggregator_config_of(spec)
    if validation is None:
        validation = _revealed_validation(market, store, pid, spec)
    everything = round_history(market, pid)
    verdicts = []
    for rec in _rounds_to_verify(everything, pid, rounds):
        verdicts.append(_verify_round(store, pid, spec, config, validation, everything, rec, committee))
        if progress is not None:
            progress(rec.round)
    return verdicts


def _revealed_validation(market, store, pid: int, spec):
    revealed = market.project(pid).validation_cid
    if not revealed:
        raise ConfigError(
            f"project {pid}'s validation set is not revealed yet",
            "ask the owner to run `merit project reveal`, or pass --validation FILE",
        )
    return load_validation(store.get_bytes(revealed, max_size=1 << 31), spec)


def _rounds_to_verify(everything: list, pid: int, rounds: list[int] | None) -> list:
    """The rounds with a posted result, or those of ``rounds`` (each must have one)."""
    history = [rec for rec in everything if rec.global_model_cid and rec.report_cid]
    if rounds is None:
        return history
    unknown = sorted(set(rounds) - {rec.round for rec in history})
    if unknown:
        raise ConfigError(f"round(s) {unknown} of project {pid} have no posted result to verify")
    return [rec for rec in history if rec.round in rounds]


def _verify_round(store, pid: int, spec, config, validation, everything: list, rec, committee=None) -> RoundVerdict:
    """Re-execute one round and compare it with its report, its posted weights and flags, its model."""
    problems, report = _check_report(store, config, rec)
    base = store.get_bytes(rec.base_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
    blobs = [(addr, cid, _fetch_or_none(store, cid, config.max_update_bytes)) for addr, cid in rec.submissions]
    try:
        previous, prior_shares = earlier_rounds(store, everything, rec.round)
    except (ReportError, StorageError) as exc:
        problems.append(f"cannot recompute the pay: an earlier round's report or model cannot be read: {exc}")
        return RoundVerdict(rec.round, ok=False, problems=problems)
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
    differing = _compare_weights_and_flags(rec, outcome.weights, outcome.flags)
    problems += _compare_model(store, rec.global_model_cid, outcome.global_weights)
    note = release_note(report.versions.get("merit") if report else None, release())
    if note and (differing or problems):
        problems.append(note)
    members: list[dict] = []
    if committee is not None:
        found, members = check_committee(committee, pid, rec, outcome.weights, outcome.flags)
        problems += found
    verdict = RoundVerdict(rec.round, ok=not problems and not differing, problems=problems, differing=differing)
    verdict.members = members
    return verdict


def check_committee(committee, pid: int, rec, weights: list[int], flags: int) -> tuple[list[str], list[dict]]:
    """The committee's side of a round: each member's distance from the recomputed (honest) post, and
    whether the consensus and the penalties the contract settled are what its rules give for the posts
    revealed (the replica in ``aggregator.committee``). Returns (problems, one row per member)."""
    posts, members = committee.posts(pid, rec.round), committee.members_of(pid)
    n = len(rec.submissions)
    problems = []
    if posts:
        agreed = rules.consensus(posts, n, rec.base_model_cid, seats=len(members))
        settled = committee.consensus(pid, rec.round)
        if settled is None:
            problems.append("the committee's consensus is not settled on-chain")
        elif (settled.weights, settled.flags, settled.model_cid) != (agreed.weights, agreed.flags, agreed.model_cid):
            problems.append("the consensus settled on-chain is not the median and majority of the revealed posts")
        expected = {d.member.lower() for d in rules.deviations(posts, agreed, members, n) if d.penalised}
    else:
        expected = set()
    penalised = {p.member.lower(): p for p in committee.penalties(pid, rec.round)}
    if set(penalised) != expected:
        problems.append(
            f"the contract penalised {sorted(penalised) or 'nobody'} but the rule penalises {sorted(expected) or 'nobody'}"
        )
    return problems, _member_rows(posts, members, weights, flags, n, penalised, expected)


def _member_rows(posts, members, weights, flags, n, penalised, expected) -> list[dict]:
    """Each member's distance from the recomputed post: what an honest member would have revealed."""
    by_member = {p.member.lower(): p for p in posts}
    rows = []
    for member in members:
        post = by_member.get(member.lower())
        row = {"address": member, "revealed": post is not None, "penalised": member.lower() in penalised}
        row["penalised_by_rule"] = member.lower() in expected
        if post is not None and len(post.weights) == n:
            l1, disagreements = rules.distance(
                rules.judged_weights(post.weights, post.flags), post.flags, weights, flags
            )
            deviation = rules.Deviation(member, l1, disagreements)
            row.update(
                share_distance_bps=deviation.share_distance_bps,
                flag_disagreements=disagreements,
                honest=not deviation.penalised,
            )
        rows.append(row)
    return rows


def _check_report(store, config, rec) -> tuple[list[str], RoundReport | None]:
    """The posted report must be readable, carry the posted weights and flags and the project's
    parameters. Returns the problems, and the report when it could be read."""
    try:
        report = fetch_report(store, rec.report_cid)
    except (ReportError, StorageError) as exc:
        return [f"the posted report cannot be read: {exc}"], None
    problems = []
    if report.weights != rec.weights or report.flags != rec.flags:
        problems.append("the report's weights/flags differ from those posted on-chain")
    if canonical_parameters(report.parameters) != json.loads(config.model_dump_json()):
        problems.append("the report declares parameters other than the project's aggregator configuration")
    return problems, report


def release_note(scored_by: str | None, running: str) -> str | None:
    """What to add when a recomputation differs and the round was scored by another Merit release:
    scoring rules change between releases (a default, a detector), and a round is only wrong if the
    release that scored it disagrees too."""
    if not scored_by or scored_by == "unknown" or running == "unknown" or scored_by == running:
        return None
    return (
        f"this round was scored by merit {scored_by} and this is merit {running}: scoring rules may differ "
        f"between releases, so re-run `merit verify` with merit {scored_by} before calling the round wrong"
    )


def _compare_weights_and_flags(rec, weights: list[int], flags: int) -> list[dict]:
    """Per trainer, each posted flag that differs and each posted weight off by more than the tolerance."""
    differing = []
    for i, (addr, _cid) in enumerate(rec.submissions):
        posted_flag, new_flag = bool(rec.flags >> i & 1), bool(flags >> i & 1)
        if posted_flag != new_flag:
            differing.append(
                {"index": i, "address": addr, "field": "flag", "posted": posted_flag, "recomputed": new_flag}
            )
        posted_w = rec.weights[i] if i < len(rec.weights) else None
        if posted_w is None or abs(posted_w - weights[i]) > WEIGHT_TOLERANCE * WEIGHT_SCALE:
            differing.append(
                {"index": i, "address": addr, "field": "weight", "posted": posted_w, "recomputed": weights[i]}
            )
    return differing


def _compare_model(store, posted_cid: str, recomputed: bytes) -> list[str]:
    """The same CID, or the same schedule metadata and tensors within ``MODEL_TOLERANCE``."""
    if is_cid_of(recomputed, posted_cid):
        return []
    problems = []
    try:
        a, meta_a = load_weights(store.get_bytes(posted_cid, max_size=GLOBAL_MODEL_MAX_BYTES))
    except (ConfigError, StorageError) as exc:
        problems.append(f"the posted model cannot be read: {exc}")
        a, meta_a = None, {}
    b, meta_b = load_weights(recomputed)
    for key in SCHEDULE_METADATA_KEYS:  # the schedule's output must match exactly
        if meta_a.get(key, "") != meta_b.get(key, ""):
            problems.append(
                f"the posted model's {key} metadata {meta_a.get(key, '')!r} differs from the "
                f"recomputed {meta_b.get(key, '')!r}"
            )
    if a is None:
        return problems
    if set(a) != set(b):
        return problems + ["the posted model has different tensors from the recomputed one"]
    diff = max(float(np.max(np.abs(a[k].double().numpy() - b[k].double().numpy()))) if a[k].numel() else 0.0 for k in a)
    if diff > MODEL_TOLERANCE:
        problems.append(f"the posted model differs from the recomputed one (max abs difference {diff:.3g})")
    return problems
