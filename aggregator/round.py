"""One round of aggregation as a pure function: bytes in, bytes and numbers out.

``run_round`` is the list of the round's phases, each a function of its own, timed by ``_timed``:

    validate -> detect -> score -> aggregate -> the round report

It returns the new global weights, the fixed-point weights and flags the contract takes, and the
typed round report. The node calls it with what it fetched; ``merit verify`` calls it again with the
same inputs and must get the same answer, so everything random is seeded from (project, round) and
everything that could depend on timing or thread count is kept out of the results (timings live in
their own field).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import safetensors
import torch

from aggregator.aggregation import get_aggregator
from aggregator.config import AggregatorConfig
from aggregator.contribution import ENUMERATE_MAX_PLAYERS, ROUND_TRUNCATION, default_budget, minimum_budget, shapley
from aggregator.detectors import DetectionBatch, Verdict, run_detectors
from aggregator.fixed_point import fixed_point_weights
from aggregator.keep import clearly_harmful, select_kept, select_validated
from aggregator.payment import (
    Payment,
    pay_by_confidence,
    pay_over_rounds,
    round_value,
    significantly_harmful,
    standard_errors,
)
from aggregator.report import REPORT_SCHEMA_VERSION, RoundReport, TrainerEntry
from aggregator.schedule import next_hyperparams
from aggregator.utility import CoalitionUtility, SecantProxy, SubsetUtility
from backend.chain.types import WEIGHT_SCALE
from backend.errors import ConfigError
from backend.models.factory import build_model
from backend.models.serialization import save_weights
from backend.models.spec import ModelSpec, round_spec
from backend.models.training import train_local
from backend.models.update_validation import ValidationResult, validate_update
from backend.models.vectors import Layout, flatten_np, unflatten

PROXY_MAX_BYTES = 256 << 20  # the secant proxy's slopes (float64) at most; above it, no proxy
PHASES = ("validation", "detection", "scoring", "aggregation")
REFERENCE_DETECTORS = ("direction", "free_rider", "copy")  # detectors that use the FLTrust reference update


@dataclass
class RoundOutcome:
    global_weights: bytes  # new global model, safetensors
    weights: list[int]  # uint32 fixed point, submission order, sum 1e9 or 0
    flags: int  # bit i set: submission i is an offender
    report: RoundReport  # everything but timings is deterministic
    timings: dict[str, float] = field(default_factory=dict)
    new_metric: float | None = None


@dataclass(frozen=True)
class RoundInputs:
    """What a round is computed from; the same for the node and for ``merit verify``."""

    spec: ModelSpec
    global_weights: bytes
    submissions: Sequence[tuple[str, str, bytes | None]]
    X_val: np.ndarray
    y_val: np.ndarray
    config: AggregatorConfig
    project_id: int | str
    round: int
    global_cid: str
    executor: Any
    previous_global: bytes | None
    prior_shares: Sequence[dict[str, float]]
    seeds: dict[str, int]


@dataclass
class Validated:
    """The validation phase's output: the base model, each submission's checks, the valid updates."""

    layout: Layout
    base: ValidationResult
    global_vec: np.ndarray
    results: list[ValidationResult]
    valid: list[int]  # submission indices of the valid updates
    stack: np.ndarray  # (len(valid), d): the valid updates, flattened
    digests: list[str]
    last_step: np.ndarray | None


@dataclass
class Scored:
    """The scoring phase's output, over the unflagged updates (``unflagged``: positions in the stack)."""

    unflagged: list[int]
    utility: CoalitionUtility
    values: list[float]
    game: Any  # the game the final values come from (the utility, or a subset of it after rescoring)
    players: list[int]
    shapley_info: dict[str, Any]
    global_metric: float


@dataclass
class Aggregated:
    """The aggregation phase's output: the pay, the weights, what was kept and the new model."""

    scores: list[float | None]
    shares: list[float]
    weights: list[int]
    payment_info: dict[str, Any]
    kept: list[int]  # positions in the stack
    new_metric: float
    hyper: dict[str, Any]
    new_bytes: bytes


def derive_seed(project_id: int | str, round_index: int, purpose: str) -> int:
    """A 63-bit seed that depends only on (project, round, purpose)."""
    digest = hashlib.sha256(f"merit/{project_id}/{round_index}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def run_round(
    spec: ModelSpec,
    global_weights_bytes: bytes,
    submissions: Sequence[tuple[str, str, bytes | None]],
    validation: tuple[np.ndarray, np.ndarray],
    config: AggregatorConfig | None = None,
    project_id: int | str = 0,
    round: int = 0,
    global_cid: str = "",
    executor=None,
    previous_global: bytes | None = None,
    prior_shares: Sequence[dict[str, float]] = (),
) -> RoundOutcome:
    """Validate, detect, score and aggregate one round of ``submissions`` (trainer address, update
    CID, update bytes or None when it could not be fetched), in submission order.
    ``previous_global``: the global model before the base one (None in round 0), whose step to the
    base is what a delta free-rider replays. ``prior_shares``: for each earlier round, in order, each
    trainer's share of that round's pay under the within-round rule (``RoundReport.pay_shares`` of
    its report), which ``payment='cumulative'`` pays by."""
    X_val, y_val = validation
    inputs = RoundInputs(
        spec=spec,
        global_weights=global_weights_bytes,
        submissions=submissions,
        X_val=X_val,
        y_val=y_val,
        config=config or AggregatorConfig(),
        project_id=project_id,
        round=round,
        global_cid=global_cid,
        executor=executor,
        previous_global=previous_global,
        prior_shares=prior_shares,
        seeds={purpose: derive_seed(project_id, round, purpose) for purpose in ("shapley", "reference")},
    )
    timings = {phase: 0.0 for phase in PHASES}
    validated = _timed(timings, "validation", validate, inputs)
    verdicts = _timed(timings, "detection", detect, inputs, validated)
    scored = _timed(timings, "scoring", score, inputs, validated, verdicts)
    aggregated = _timed(timings, "aggregation", aggregate, inputs, validated, scored)
    report = round_report(inputs, validated, verdicts, scored, aggregated, timings)
    return RoundOutcome(aggregated.new_bytes, aggregated.weights, report.flags, report, timings, aggregated.new_metric)


def _timed(timings: dict[str, float], phase: str, step: Callable, *args):
    """Run one phase and record its wall time under ``phase``: the one place rounds are timed."""
    t0 = time.perf_counter()
    try:
        return step(*args)
    finally:
        timings[phase] = time.perf_counter() - t0


# -- validation ------------------------------------------------------------------------------------


def validate(inputs: RoundInputs) -> Validated:
    """Check the base model against the spec (a mismatch is the caller's error) and every submission
    against the model (a bad one is flagged, never raised)."""
    config = inputs.config
    layout = Layout.of(build_model(inputs.spec, seed=0).state_dict())
    base = _trusted_model(inputs.global_weights, layout, "global")
    global_vec = flatten_np(base.tensors, layout)
    results = [
        validate_update(data, layout, config.max_update_bytes, config.max_abs_value)
        for _, _, data in inputs.submissions
    ]
    valid = [i for i, r in enumerate(results) if r.ok]
    stack = (
        np.stack([flatten_np(results[i].tensors, layout) for i in valid])
        if valid
        else np.zeros((0, layout.size), dtype=np.float32)
    )
    digests = [hashlib.sha256(inputs.submissions[i][2]).hexdigest() for i in valid]
    last_step = _last_step(inputs.previous_global, layout, global_vec)
    return Validated(layout, base, global_vec, results, valid, stack, digests, last_step)


def _trusted_model(data: bytes, layout: Layout, which: str) -> ValidationResult:
    """A global model from the chain's own history: no size or magnitude cap, but it must fit the
    spec, and a model that does not is the caller's error."""
    checked = validate_update(data, layout, max_bytes=1 << 62, max_abs=float("inf"))
    if not checked.ok:
        raise ConfigError(f"the {which} model does not match the spec: {checked.detail}")
    return checked


def _last_step(previous_global: bytes | None, layout: Layout, global_vec: np.ndarray) -> np.ndarray | None:
    """The base model minus the one before it; None without one."""
    if previous_global is None:
        return None
    previous = _trusted_model(previous_global, layout, "previous global")
    return global_vec.astype(np.float64) - flatten_np(previous.tensors, layout).astype(np.float64)


# -- detection -------------------------------------------------------------------------------------


def detect(inputs: RoundInputs, validated: Validated) -> list[Verdict]:
    """One verdict per valid update (in stack order), from the configured detectors."""
    config = inputs.config
    reference = None
    if validated.valid and _wants_reference(config):
        reference = _reference_update(inputs, validated)
    batch = DetectionBatch(validated.stack, validated.digests, reference, validated.last_step)
    return run_detectors(batch, config.detectors, config.detector_params)


def _wants_reference(config: AggregatorConfig) -> bool:
    return config.fltrust_reference and any(
        name in config.detectors and config.detector_params.get(name, {}).get("use_reference", True)
        for name in REFERENCE_DETECTORS
    )


def _reference_update(inputs: RoundInputs, validated: Validated) -> np.ndarray:
    """FLTrust's server update: train the global model on (a slice of) the owner's data."""
    config = inputs.config
    take = min(config.reference_samples, len(inputs.y_val))
    # the thread count changes the order of float reductions in training, so the reference (and every
    # detector verdict built on it) is computed with the configured count, not the process's: an
    # aggregator and a verifier on busy and idle machines then agree (bench/reexecution.py)
    local = train_local(
        round_spec(inputs.spec, validated.base.metadata),
        validated.base.tensors,
        inputs.X_val[:take],
        inputs.y_val[:take],
        seed=inputs.seeds["reference"] % (2**63),
        epochs=config.reference_epochs,
        threads=config.eval_threads or 1,
    )
    return flatten_np(local, validated.layout) - validated.global_vec


# -- scoring ---------------------------------------------------------------------------------------


def score(inputs: RoundInputs, validated: Validated, verdicts: list[Verdict]) -> Scored:
    """Shapley values of the unflagged updates on the validation set; a second pass without the
    clearly harmful ones when configured; then the provisional flags settled (``settle_provisional``)."""
    unflagged = [pos for pos, v in enumerate(verdicts) if not v.flagged]  # positions in the stack
    utility = _utility(inputs, validated, unflagged)
    scored = Scored(
        unflagged=unflagged,
        utility=utility,
        values=[],
        game=utility,
        players=[],
        shapley_info={"method": inputs.config.shapley_method, "players": len(unflagged)},
        global_metric=0.0,
    )
    if unflagged:
        _estimate(inputs, scored, validated.valid)
    scored.global_metric = utility(frozenset())
    settle_provisional(inputs, validated, verdicts, scored)
    return scored


def _utility(inputs: RoundInputs, validated: Validated, rows: list[int]) -> CoalitionUtility:
    """The coalition utility over the given rows of the stack, on the validation set."""
    config = inputs.config
    return CoalitionUtility(
        inputs.spec,
        validated.global_vec,
        validated.stack[rows],
        inputs.X_val,
        inputs.y_val,
        config.metric,
        config.eval_batch_size,
        validated.layout,
        threads=config.eval_threads,
    )


def settle_provisional(inputs: RoundInputs, validated: Validated, verdicts: list[Verdict], scored: Scored) -> None:
    """Confirm or lift each provisional flag (``Verdict.provisional``) by what the update would do to
    this round's model: its marginal contribution joined to the round's scored updates,
    v(N + i) - v(N), a mean of per-sample terms with a standard error. Harmful beyond ``payment_z``
    standard errors: the flag stands (a slash). Otherwise the update is left out of the round's
    model and pay, unflagged: pointing away from the owner's reference is what an honest shard with
    skewed labels does too. Its effect *alone* on the global model is no evidence either: a shard of
    one class applied alone harms a model of ten, honest or not (measured: -0.03 to -0.41 for honest
    Dirichlet 0.1 shards whose Shapley values were positive). Costs 1 + (provisional updates)
    validation passes."""
    suspects = [pos for pos, v in enumerate(verdicts) if v.provisional]
    if not suspects:
        return
    z, k = inputs.config.payment_z, len(scored.unflagged)
    utility = _utility(inputs, validated, scored.unflagged + suspects)
    everyone = frozenset(range(k))
    top = utility.per_sample(everyone)
    for j, pos in enumerate(suspects):
        terms = utility.per_sample(everyone | {k + j}) - top
        value, se = float(terms.mean()), float(standard_errors(terms[None, :])[0])
        verdict = verdicts[pos]
        verdict.scores.update(joined_contribution=_round6(value), joined_contribution_se=_round6(se))
        measured = f"joined to the round's updates it changes the validation metric by {value:.4f} ± {se:.4f}"
        if significantly_harmful(value, se, z):
            verdict.confirm(f"harmful: {measured}, more than {z:g} standard errors below 0")
        else:
            verdict.exclude(f"no harm beyond the validation noise ({measured}): left out of this round, not flagged")
    scored.shapley_info["provisional"] = {
        "judged": [validated.valid[pos] for pos in suspects],
        "validation_passes": 1 + len(suspects),
    }


def _estimate(inputs: RoundInputs, scored: Scored, valid: list[int]) -> None:
    """Fill ``scored`` with the estimator's values, then rescore without clearly harmful updates."""
    config, utility, n = inputs.config, scored.utility, len(scored.unflagged)
    budget = None
    if config.shapley_method != "exact" and config.shapley_budget is not None:
        budget = max(config.shapley_budget, minimum_budget(n, config.shapley_method))
    proxy, budget = _scoring_proxy(utility, n, budget, config)
    result = _shapley(inputs, utility, n, budget, proxy)
    scored.values = [float(v) for v in result.values]
    scored.players = list(range(n))
    proxy_passes = proxy.cost if proxy is not None else 0
    scored.shapley_info.update(
        budget=budget,
        evaluations=result.evaluations,
        exact=bool(result.exact),
        truncated=bool(result.truncated),
        proxy="secant" if proxy is not None else None,
        proxy_passes=proxy_passes,
        validation_passes=result.evaluations + proxy_passes,
    )
    harmful = clearly_harmful(scored.values, config.harmful_ratio) if config.rescore_without_harmful else []
    if harmful and len(harmful) < n:
        _rescore_without(inputs, scored, harmful, valid, budget, proxy)


def _rescore_without(inputs: RoundInputs, scored: Scored, harmful: list[int], valid: list[int], budget, proxy) -> None:
    # Shapley values depend on who else plays: beside an update that does clear damage, the others
    # earn credit for undoing it. Score them again without it (weight 0 either way).
    utility, values = scored.utility, scored.values
    rest = [j for j in range(len(values)) if j not in harmful]
    before = utility.evaluated
    game = SubsetUtility(utility, rest)
    again = _shapley(inputs, game, len(rest), budget, proxy.subset(rest) if proxy is not None else None)
    for j, value in zip(rest, again.values):
        values[j] = float(value)
    scored.game, scored.players = game, rest
    scored.shapley_info["rescored"] = {
        "without": [valid[scored.unflagged[j]] for j in harmful],
        "evaluations": again.evaluations,
        "exact": bool(again.exact),
        "new_passes": utility.evaluated - before,
    }
    scored.shapley_info["validation_passes"] += utility.evaluated - before


def _shapley(inputs: RoundInputs, game, players: int, budget: int | None, proxy):
    return shapley(
        game,
        players,
        method=inputs.config.shapley_method,
        seed=inputs.seeds["shapley"],
        budget=budget,
        executor=inputs.executor,
        proxy=proxy,
    )


def _scoring_proxy(utility: CoalitionUtility, n: int, budget: int | None, config: AggregatorConfig):
    """(the secant proxy or None, the coalition budget left for shapley). The proxy is built only
    where the stratified estimator samples (2^n above the budget, n small enough to enumerate the
    surrogate) and the round moved the model at all, and its passes come out of the budget."""
    if config.shapley_method != "stratified_cv" or config.shapley_proxy == "none" or n > ENUMERATE_MAX_PLAYERS:
        return None, budget
    total = budget if budget is not None else default_budget(n)
    cost = n * len(config.proxy_scales)
    if 2**n <= total or total - cost < minimum_budget(n, "stratified_cv") + 2:
        return None, budget
    if abs(utility(frozenset(range(n))) - utility(frozenset())) <= ROUND_TRUNCATION:
        return None, budget
    classes = utility.spec.num_classes
    if SecantProxy.footprint(n, len(config.proxy_scales), len(utility.y), classes) > PROXY_MAX_BYTES:
        return None, budget  # a huge validation set: the sampled estimate alone, not gigabytes of slopes
    return utility.secant_proxy(tuple(config.proxy_scales)), total - cost


# -- aggregation -----------------------------------------------------------------------------------


def aggregate(inputs: RoundInputs, validated: Validated, scored: Scored) -> Aggregated:
    """The pay (fixed-point weights), the updates kept, and the new global model with the next
    round's hyper-parameters in its metadata."""
    config, n, valid = inputs.config, len(inputs.submissions), validated.valid
    scores: list[float | None] = [None] * n
    for pos, value in zip(scored.unflagged, scored.values):
        scores[valid[pos]] = value
    pay, shares, payment_info = _pay(inputs, valid, scored, scores)
    weights = fixed_point_weights(pay)
    kept = _keep(config, scored)
    new_vec = _new_global(config, validated, kept, scores)
    new_metric = scored.utility.evaluate_vector(new_vec)
    hyper = next_hyperparams(inputs.spec, validated.base.metadata, config, inputs.round, new_metric)
    metadata = {"project": inputs.project_id, "round": inputs.round, "trainer": "aggregator", "base": inputs.global_cid}
    new_bytes = save_weights(unflatten(new_vec, validated.layout), {**metadata, **hyper.pop("metadata")})
    return Aggregated(scores, shares, weights, payment_info, kept, new_metric, hyper, new_bytes)


def _pay(
    inputs: RoundInputs, valid: list[int], scored: Scored, scores: list[float | None]
) -> tuple[list[float | None], list[float], dict[str, Any]]:
    """(each submission's pay, its within-round share, the report's payment record)."""
    config, n = inputs.config, len(inputs.submissions)
    payment_info: dict[str, Any] = {"rule": config.payment}
    if config.payment not in ("confidence", "cumulative") or not scored.values:
        return list(scores), [0.0] * n, payment_info
    payment = _confidence_payment(scored.game, scored.players, scored.values, config.payment_z)
    pay: list[float | None] = [None] * n
    eligible = [False] * n
    for j, pos in enumerate(scored.unflagged):
        pay[valid[pos]] = payment.pay[j]
        # over rounds, an unflagged update that did harm this round is paid its mean share, this
        # round's 0 included: one bad round of honest training costs a share, not the round
        eligible[valid[pos]] = True
    total = sum(p or 0.0 for p in pay)
    shares = [(p or 0.0) / total if total > 0 else 0.0 for p in pay]
    payment_info.update(
        z=config.payment_z,
        floor=payment.floor,
        groups=payment.groups,
        standard_errors=[_round6(s) for s in payment.standard_errors],
        harmful=payment.harmful,
        round_value=_round6(round_value(pay, payment.floor)),
    )
    if config.payment == "cumulative":
        addresses = [a for a, _, _ in inputs.submissions]
        prior = list(inputs.prior_shares)
        pay, over_rounds = pay_over_rounds(shares, addresses, eligible, prior, payment_info["round_value"])
        payment_info["over_rounds"] = over_rounds
    return pay, shares, payment_info


def _confidence_payment(game, players: list[int], values: list[float], z: float) -> Payment:
    """``pay_by_confidence`` over the unflagged updates. The per-sample terms come from the game the
    final scores were computed in (``players``: its members, as indices into ``values``); an update
    outside it (rescored away as clearly harmful) has its own score and is paid nothing either way."""
    k = len(players)
    full = frozenset(range(k))
    base, top = game.per_sample(frozenset()), game.per_sample(full)
    terms = np.zeros((len(values), len(base)))
    for local, j in enumerate(players):
        alone = game.per_sample(frozenset({local})) - base
        last = top - game.per_sample(full - {local})
        terms[j] = (alone + last) / 2
    outside = [j for j in range(len(values)) if j not in players]
    payment = pay_by_confidence(values, terms, z)
    for j in outside:  # no per-sample terms of their own: not a candidate for pay
        payment.pay[j], payment.groups[j] = 0.0, -1
        if j not in payment.harmful:
            payment.harmful.append(j)
    return payment


def _keep(config: AggregatorConfig, scored: Scored) -> list[int]:
    """The stack positions of the updates that enter the aggregate, by the keep policy."""
    if config.keep == "validated":
        chosen, selection = select_validated(scored.values, scored.utility)
        scored.shapley_info["selection"] = selection
        scored.shapley_info["selection_passes"] = len(selection)  # at most; prefixes already evaluated are reused
    else:
        chosen = select_kept(scored.values, config.keep, config.keep_margin)
    return [scored.unflagged[j] for j in chosen]


def _new_global(
    config: AggregatorConfig, validated: Validated, kept: list[int], scores: list[float | None]
) -> np.ndarray:
    """The base model plus the aggregation rule's step over the kept updates (voted by score)."""
    if not kept:
        return validated.global_vec.copy()
    rule = get_aggregator(config.aggregation)
    vote = [max(scores[validated.valid[pos]] or 0.0, 0.0) for pos in kept]
    delta = np.asarray(rule(validated.stack[kept], vote, **config.aggregation_params), dtype=np.float64)
    return (validated.global_vec.astype(np.float64) + delta).astype(np.float32)


# -- the report ------------------------------------------------------------------------------------


def round_report(
    inputs: RoundInputs,
    validated: Validated,
    verdicts: list[Verdict],
    scored: Scored,
    aggregated: Aggregated,
    timings: dict[str, float],
) -> RoundReport:
    """The round report: every input, seed, parameter and per-trainer judgement (DESIGN step 2.7)."""
    trainers = _trainer_entries(inputs, validated, verdicts, aggregated)
    config, spec = inputs.config, inputs.spec
    return RoundReport(
        schema_version=REPORT_SCHEMA_VERSION,
        project_id=inputs.project_id if isinstance(inputs.project_id, int) else str(inputs.project_id),
        round=int(inputs.round),
        base_model_cid=inputs.global_cid,
        new_model_sha256=hashlib.sha256(aggregated.new_bytes).hexdigest(),
        seeds=inputs.seeds,
        versions=_versions(),
        parameters=config.model_dump(mode="json"),
        model={"arch": spec.arch, "spec": spec.model_dump(mode="json"), "parameters": validated.layout.size},
        last_step_known=validated.last_step is not None,
        validation={
            "samples": int(len(inputs.y_val)),
            "metric": config.metric,
            "global_metric": scored.global_metric,
            "new_metric": aggregated.new_metric,
        },
        shapley=scored.shapley_info,
        payment=aggregated.payment_info,
        hyperparams=aggregated.hyper,
        weights=aggregated.weights,
        weight_scale=WEIGHT_SCALE,
        flags=sum(1 << t.index for t in trainers if t.flagged),
        trainers=trainers,
        timings={k: _round6(v) for k, v in timings.items()},
    )


def _trainer_entries(
    inputs: RoundInputs, validated: Validated, verdicts: list[Verdict], aggregated: Aggregated
) -> list[TrainerEntry]:
    kept_submissions = {validated.valid[pos] for pos in aggregated.kept}
    pos_of = {i: pos for pos, i in enumerate(validated.valid)}
    entries = []
    for i, (address, cid, _) in enumerate(inputs.submissions):
        checked = validated.results[i]
        if checked.ok:
            v = verdicts[pos_of[i]]
            flagged, reason, detail, det_scores = v.flagged, v.reason, v.detail, v.scores
        else:
            flagged, reason, detail, det_scores = True, checked.reason, checked.detail, {}
        entries.append(
            TrainerEntry(
                index=i,
                address=address,
                cid=cid,
                checks=checked.checks,
                detector_scores=det_scores,
                score=aggregated.scores[i],
                pay_share=_round6(aggregated.shares[i]),
                weight=aggregated.weights[i],
                flagged=flagged,
                reason=reason,
                detail=detail,
                aggregated=i in kept_submissions,
                excluded=checked.ok and verdicts[pos_of[i]].excluded,
            )
        )
    return entries


def _versions() -> dict[str, str]:
    try:
        merit = importlib.metadata.version("merit")
    except importlib.metadata.PackageNotFoundError:
        merit = "unknown"
    return {"merit": merit, "torch": torch.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__}


def _round6(value: float) -> float:
    # run_round's `round` parameter (the protocol's name) shadows the builtin there
    return float(f"{value:.6f}")
