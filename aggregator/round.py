"""One round of aggregation as a pure function: bytes in, bytes and numbers out.

``run_round`` does validate -> detect -> score -> aggregate and returns the new global weights,
the fixed-point weights and flags the contract takes, and the round report. The node loop calls
it with what it fetched; ``merit verify`` calls it again with the same inputs and must get the
same answer, so everything random is seeded from (project, round) and everything that could
depend on timing or thread count is kept out of the results (timings live in their own field).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aggregator.aggregation import AGGREGATORS, get_aggregator
from aggregator.payment import Payment, pay_by_confidence, pay_over_rounds, round_value
from aggregator.detectors import DEFAULT_DETECTORS, DETECTORS, DetectionBatch, run_detectors
from aggregator.utility import CoalitionUtility, SecantProxy, SubsetUtility
from aggregator.validation import DEFAULT_MAX_ABS, DEFAULT_MAX_BYTES, validate_update
from backend.errors import ConfigError
from backend.models.factory import build_model
from backend.models.serialization import save_weights
from backend.models.spec import BEST_METRIC_KEY, FOREIGN_MODEL_HINT, ROUND_HYPERPARAMS_KEY, ModelSpec, round_spec
from backend.models.vectors import Layout, flatten_np, unflatten

REPORT_SCHEMA_VERSION = "merit.round-report/1"
PROXY_MAX_BYTES = 256 << 20  # the secant proxy's slopes (float64) at most; above it, no proxy
WEIGHT_SCALE = 10**9  # fixed-point weights of one round sum to this (or to 0)
PHASES = ("validation", "detection", "scoring", "aggregation")
REFERENCE_DETECTORS = ("direction", "free_rider", "copy")  # detectors that use the FLTrust reference update


class AggregatorConfig(BaseModel):
    """How the aggregator judges a round. Detectors and the aggregation rule are chosen by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    detector_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    aggregation: str = "mean"
    aggregation_params: dict[str, Any] = Field(default_factory=dict)
    keep: Literal["positive", "tolerant", "unflagged", "validated"] = Field(
        "positive",
        description="which unflagged updates enter the aggregate: those with a positive contribution; "
        "'tolerant': also those whose score is above -keep_margin x the best score (estimation "
        "noise around zero), so only clearly harmful updates are left out; 'unflagged': all; "
        "'validated': the best-scoring updates, as many as make the mean score highest on the "
        "validation data (ties: more updates). Falls back to all unflagged when none qualifies",
    )
    keep_margin: float = Field(
        0.5, ge=0, description="for keep='tolerant': the margin, as a fraction of the best score"
    )
    rescore_without_harmful: bool = Field(
        True,
        description="score the unflagged updates a second time without those that do clear damage (a score "
        "below -harmful_ratio x the best score), so an attacker the detectors missed cannot shift "
        "the others' scores; it reuses every coalition already evaluated",
    )
    harmful_ratio: float = Field(1.0, gt=0)
    shapley_method: Literal["gtg", "exact", "tmc", "loo"] = "gtg"
    shapley_budget: int | None = Field(
        300,
        ge=1,
        description="validation passes for scoring: distinct coalition "
        "evaluations plus the proxy's passes; None: the estimator's default",
    )
    shapley_proxy: Literal["secant", "none"] = Field(
        "secant",
        description="gtg's extra control variate: 'secant' spends n x len(proxy_scales) of the budget on "
        "validation passes along each update, then approximates every coalition from them",
    )
    proxy_scales: tuple[float, ...] = Field(
        (0.5, 0.2),
        min_length=1,
        max_length=4,
        description="step fractions of each update at which the secant proxy is taken",
    )
    metric: Literal["accuracy", "neg_loss"] = Field(
        "neg_loss",
        description="the validation metric of the coalition utility. 'neg_loss' (minus the mean "
        "cross-entropy) sees how much better the model got on every sample, where accuracy "
        "moves only when an answer flips: pay follows label quality far more closely with it",
    )
    payment: Literal["cumulative", "confidence", "proportional"] = Field(
        "cumulative",
        description="how scores become the posted weights (aggregator.payment): 'confidence' pays scores "
        "the validation set cannot tell apart alike and harmful ones nothing; 'cumulative' "
        "(from the second round) pays each eligible trainer its share of the value bought so far "
        "(its 'confidence' shares weighted by each round's value), shrunk toward the average by "
        "as much as the round-to-round spread says is noise; "
        "'proportional' posts the positive scores as they are",
    )
    payment_z: float = Field(
        2.0, ge=0, allow_inf_nan=False, description="for payment='confidence': standard errors that make a difference"
    )
    fltrust_reference: bool = Field(
        True, description="train a reference update on the validation data for the direction and free-rider detectors"
    )
    reference_samples: int = Field(500, ge=1)
    reference_epochs: int = Field(1, ge=1)
    max_update_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0)
    max_abs_value: float = Field(DEFAULT_MAX_ABS, gt=0)
    lr_schedule: Literal["constant", "step", "plateau"] = Field(
        "constant",
        description="how the aggregator sets the next round's learning rate (DESIGN step 2.6): "
        "'step' multiplies the spec's lr by lr_factor every lr_step_rounds rounds; 'plateau' "
        "multiplies the current lr by lr_factor after a round whose validation metric did not "
        "beat the best so far by lr_min_delta. Never below lr_min",
    )
    lr_factor: float = Field(0.5, gt=0, le=1)
    lr_step_rounds: int = Field(1, ge=1)
    lr_min: float = Field(1e-5, gt=0)
    lr_min_delta: float = Field(0.0, ge=0)
    eval_batch_size: int = Field(128, ge=1)
    eval_threads: int | None = Field(
        1,
        ge=1,
        description="torch threads per utility evaluation (None: torch's default); scale out with an executor instead",
    )

    @field_validator("proxy_scales")
    @classmethod
    def _scales_in_unit_interval(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (0 < t <= 1) for t in scales):
            raise ValueError(f"proxy_scales must each be in (0, 1], got {list(scales)}")
        return tuple(scales)

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; known: {sorted(DETECTORS)}")
        return tuple(names)

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, name: str) -> str:
        if name not in AGGREGATORS:
            raise ValueError(f"unknown aggregation {name!r}; known: {sorted(AGGREGATORS)}")
        return name

    @model_validator(mode="after")
    def _known_parameters(self) -> "AggregatorConfig":
        """Parameters the named detectors and aggregation rule do not take are refused here, with
        the names they do take, rather than failing inside a round."""
        for name, params in self.detector_params.items():
            if name not in DETECTORS:
                raise ValueError(f"detector_params names unknown detector {name!r}; known: {sorted(DETECTORS)}")
            _check_keywords(f"detector {name!r}", DETECTORS[name], params, skip=2)
        _check_keywords(
            f"aggregation {self.aggregation!r}", AGGREGATORS[self.aggregation], self.aggregation_params, skip=2
        )
        return self


def _check_keywords(what: str, fn: Callable, params: dict[str, Any], skip: int) -> None:
    """Refuse keyword ``params`` that ``fn`` does not take after its first ``skip`` arguments."""
    import inspect

    signature = list(inspect.signature(fn).parameters.values())[skip:]
    taken = [p.name for p in signature]
    unknown = sorted(set(params) - set(taken))
    if unknown:
        raise ValueError(
            f"{what} takes no parameter {', '.join(map(repr, unknown))}; it takes: {', '.join(taken) or 'none'}"
        )
    for p in signature:  # the type of each default is the type the parameter takes
        if p.name in params and p.default is not inspect.Parameter.empty and p.default is not None:
            accepts, kind = _accepts(p.default)
            if not accepts(params[p.name]):
                raise ValueError(f"{what}: parameter {p.name!r} must be {kind}, got {params[p.name]!r}")


def _accepts(default: Any) -> tuple[Callable[[Any], bool], str]:
    """A check for values of the same kind as ``default``, and its name for errors."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return (lambda v: number(v) and float(v).is_integer()), "a whole number"
    if isinstance(default, float):
        return number, "a finite number"
    return (lambda v: isinstance(v, type(default))), f"a {type(default).__name__}"


@dataclass
class RoundOutcome:
    global_weights: bytes  # new global model, safetensors
    weights: list[int]  # uint32 fixed point, submission order, sum 1e9 or 0
    flags: int  # bit i set: submission i is an offender
    report: dict[str, Any]  # JSON-serializable; everything but timings is deterministic
    timings: dict[str, float] = field(default_factory=dict)
    new_metric: float | None = None


def derive_seed(project_id: int | str, round_index: int, purpose: str) -> int:
    """A 63-bit seed that depends only on (project, round, purpose)."""
    digest = hashlib.sha256(f"merit/{project_id}/{round_index}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fixed_point_weights(scores: Sequence[float | None], total: int = WEIGHT_SCALE) -> list[int]:
    """Scores -> non-negative integers summing to ``total`` (0 everywhere if nothing is positive).
    None and negative scores get 0. Largest-remainder rounding in exact rational arithmetic, ties to
    the earlier submission, so the result does not depend on float summation order."""
    positive = [Fraction(s) if s is not None and s > 0 else Fraction(0) for s in scores]
    denom = sum(positive)
    if denom == 0:
        return [0] * len(scores)
    shares = [p * total / denom for p in positive]
    floors = [int(s) for s in shares]
    left = total - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def select_kept(values: Sequence[float], keep: str = "positive", margin: float = 0.5) -> list[int]:
    """Indices (into ``values``, the unflagged updates' scores) that enter the aggregate.

    ``positive``: score > 0. ``tolerant``: score > -margin x the best score, so updates whose score
    is estimation noise around zero stay in and only clearly harmful ones leave. ``unflagged``: all.
    Whenever nothing qualifies, all of them: a round never discards every unflagged update."""
    best = max(values, default=0.0)
    if keep == "positive":
        kept = [i for i, v in enumerate(values) if v > 0]
    elif keep == "tolerant" and best > 0:
        kept = [i for i, v in enumerate(values) if v > -margin * best]
    else:
        kept = []
    return kept or list(range(len(values)))


def _scoring_proxy(utility: CoalitionUtility, n: int, budget: int | None, config: AggregatorConfig):
    """(the secant proxy or None, the coalition budget left for shapley). The proxy is built only
    where gtg samples (2^n above the budget, n small enough to enumerate the surrogate) and the
    round moved the model at all, and its passes come out of the budget."""
    from aggregator.contribution import ENUMERATE_MAX_PLAYERS, ROUND_TRUNCATION, default_budget, minimum_budget

    if config.shapley_method != "gtg" or config.shapley_proxy == "none" or n > ENUMERATE_MAX_PLAYERS:
        return None, budget
    total = budget if budget is not None else default_budget(n)
    cost = n * len(config.proxy_scales)
    if 2**n <= total or total - cost < minimum_budget(n, "gtg") + 2:
        return None, budget
    if abs(utility(frozenset(range(n))) - utility(frozenset())) <= ROUND_TRUNCATION:
        return None, budget
    classes = utility.spec.num_classes
    if SecantProxy.footprint(n, len(config.proxy_scales), len(utility.y), classes) > PROXY_MAX_BYTES:
        return None, budget  # a huge validation set: the sampled estimate alone, not gigabytes of slopes
    return utility.secant_proxy(tuple(config.proxy_scales)), total - cost


def next_hyperparams(
    spec: ModelSpec, base_metadata: dict[str, str], config: AggregatorConfig, round: int, new_metric: float
) -> dict[str, Any]:
    """DESIGN step 2.6: the hyper-parameters of the next round, from the schedule, the spec, the base
    model's metadata and this round's validation metric only (so ``merit verify`` recomputes them).
    Returns the report's record, with the new model's metadata under ``metadata``."""
    import json

    current = round_spec(spec, base_metadata).hyperparams.lr
    record: dict[str, Any] = {"schedule": config.lr_schedule, "lr": current, "next_lr": current, "metadata": {}}
    if config.lr_schedule == "constant":
        return record
    if config.lr_schedule == "step":
        nxt = spec.hyperparams.lr * config.lr_factor ** ((round + 1) // config.lr_step_rounds)
    else:
        raw = base_metadata.get(BEST_METRIC_KEY) or ""
        try:
            best = float(raw) if raw else float("-inf")
        except ValueError:
            best = float("nan")
        if math.isnan(best) or best == float("inf"):
            raise ConfigError(
                f"the global model's best_metric metadata is not a finite number: {raw!r}", FOREIGN_MODEL_HINT
            )
        improved = new_metric > best + config.lr_min_delta
        nxt = current if improved else current * config.lr_factor
        record["best_metric"] = max(best, new_metric)
        record["improved"] = improved
        record["metadata"][BEST_METRIC_KEY] = repr(record["best_metric"])
    nxt = max(float(nxt), min(config.lr_min, spec.hyperparams.lr))  # the floor never raises the spec's own rate
    record["next_lr"] = nxt
    record["metadata"][ROUND_HYPERPARAMS_KEY] = json.dumps({"lr": nxt})
    return record


def clearly_harmful(values: Sequence[float], ratio: float = 1.0) -> list[int]:
    """Indices whose score is below -ratio x the best positive score: removing the update gains
    more than the best one adds. Estimation noise around zero stays well above that line."""
    best = max(values, default=0.0)
    return [j for j, v in enumerate(values) if best > 0 and v < -ratio * best]


def select_validated(values: Sequence[float], utility: Callable[[frozenset], float]) -> tuple[list[int], list[float]]:
    """The prefix of the updates ranked by score (ties: lower index first) whose coalition value is
    highest, the longest among equals; and the value of every prefix (for the report). Costs at most
    one utility evaluation per update, fewer when the estimator already evaluated a prefix."""
    order = sorted(range(len(values)), key=lambda j: (-values[j], j))
    curve = [float(utility(frozenset(order[:k]))) for k in range(1, len(order) + 1)]
    if not curve:
        return [], []
    best = max(range(len(curve)), key=lambda k: (curve[k], k))
    return sorted(order[: best + 1]), curve


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    import safetensors
    import torch

    try:
        merit = md.version("merit")
    except md.PackageNotFoundError:
        merit = "unknown"
    return {"merit": merit, "torch": torch.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__}


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
    trainer's share of that round's pay under the within-round rule (``payment.round_shares`` of its
    report), which ``payment='cumulative'`` pays by."""
    from aggregator.contribution import minimum_budget, shapley

    config = config or AggregatorConfig()
    timings = {phase: 0.0 for phase in PHASES}
    X_val, y_val = validation
    n = len(submissions)
    seeds = {
        "shapley": derive_seed(project_id, round, "shapley"),
        "reference": derive_seed(project_id, round, "reference"),
    }

    # -- validation --------------------------------------------------------------------------
    t0 = time.perf_counter()
    layout = Layout.of(build_model(spec, seed=0).state_dict())
    base = validate_update(global_weights_bytes, layout, max_bytes=1 << 62, max_abs=float("inf"))
    if not base.ok:
        raise ConfigError(f"the global model does not match the spec: {base.detail}")
    global_vec = flatten_np(base.tensors, layout)
    results = [
        validate_update(data, layout, config.max_update_bytes, config.max_abs_value) for _, _, data in submissions
    ]
    valid = [i for i, r in enumerate(results) if r.ok]
    stack = (
        np.stack([flatten_np(results[i].tensors, layout) for i in valid])
        if valid
        else np.zeros((0, layout.size), dtype=np.float32)
    )
    digests = [hashlib.sha256(submissions[i][2]).hexdigest() for i in valid]
    last_step = _last_step(previous_global, layout, global_vec)
    timings["validation"] = time.perf_counter() - t0

    # -- detection ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    reference = None
    if (
        valid
        and config.fltrust_reference
        and any(
            name in config.detectors and config.detector_params.get(name, {}).get("use_reference", True)
            for name in REFERENCE_DETECTORS
        )
    ):
        reference = _reference_update(
            round_spec(spec, base.metadata), base.tensors, X_val, y_val, config, seeds["reference"], layout, global_vec
        )
    verdicts = run_detectors(
        DetectionBatch(stack, digests, reference, last_step), config.detectors, config.detector_params
    )
    timings["detection"] = time.perf_counter() - t0

    # -- scoring -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    unflagged = [pos for pos, v in enumerate(verdicts) if not v.flagged]  # positions in `stack`
    utility = CoalitionUtility(
        spec,
        global_vec,
        stack[unflagged],
        X_val,
        y_val,
        config.metric,
        config.eval_batch_size,
        layout,
        threads=config.eval_threads,
    )
    shapley_info: dict[str, Any] = {"method": config.shapley_method, "players": len(unflagged)}
    values: list[float] = []
    if unflagged:
        budget = None
        if config.shapley_method != "exact" and config.shapley_budget is not None:
            budget = max(config.shapley_budget, minimum_budget(len(unflagged), config.shapley_method))
        proxy, budget = _scoring_proxy(utility, len(unflagged), budget, config)

        def score(game, players: int, game_proxy):
            return shapley(
                game,
                players,
                method=config.shapley_method,
                seed=seeds["shapley"],
                budget=budget,
                executor=executor,
                proxy=game_proxy,
            )

        result = score(utility, len(unflagged), proxy)
        values = [float(v) for v in result.values]
        game, players = utility, list(range(len(values)))  # the game the final values come from
        proxy_passes = proxy.cost if proxy is not None else 0
        shapley_info.update(
            budget=budget,
            evaluations=result.evaluations,
            exact=bool(result.exact),
            truncated=bool(result.truncated),
            proxy="secant" if proxy is not None else None,
            proxy_passes=proxy_passes,
            validation_passes=result.evaluations + proxy_passes,
        )
        harmful = clearly_harmful(values, config.harmful_ratio) if config.rescore_without_harmful else []
        if harmful and len(harmful) < len(values):
            # Shapley values depend on who else plays: beside an update that does clear damage, the
            # others earn credit for undoing it. Score them again without it (weight 0 either way).
            rest = [j for j in range(len(values)) if j not in harmful]
            before = utility.evaluated
            again = score(SubsetUtility(utility, rest), len(rest), proxy.subset(rest) if proxy is not None else None)
            for j, value in zip(rest, again.values):
                values[j] = float(value)
            game, players = SubsetUtility(utility, rest), rest
            shapley_info["rescored"] = {
                "without": [valid[unflagged[j]] for j in harmful],
                "evaluations": again.evaluations,
                "exact": bool(again.exact),
                "new_passes": utility.evaluated - before,
            }
            shapley_info["validation_passes"] += utility.evaluated - before
    global_metric = utility(frozenset())
    timings["scoring"] = time.perf_counter() - t0

    # -- aggregation -------------------------------------------------------------------------
    t0 = time.perf_counter()
    scores: list[float | None] = [None] * n
    for pos, value in zip(unflagged, values):
        scores[valid[pos]] = value
    pay: list[float | None] = list(scores)
    payment_info: dict[str, Any] = {"rule": config.payment}
    shares: list[float] = [0.0] * n
    if config.payment in ("confidence", "cumulative") and values:
        payment = _confidence_payment(game, players, values, config.payment_z)
        pay = [None] * n
        eligible = [False] * n
        for j, pos in enumerate(unflagged):
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
            pay, over_rounds = pay_over_rounds(
                shares, [a for a, _, _ in submissions], eligible, list(prior_shares), payment_info["round_value"]
            )
            payment_info["over_rounds"] = over_rounds
    weights = fixed_point_weights(pay)
    if config.keep == "validated":
        chosen, selection = select_validated(values, utility)
        shapley_info["selection"] = selection
        shapley_info["selection_passes"] = len(selection)  # at most; prefixes already evaluated are reused
    else:
        chosen = select_kept(values, config.keep, config.keep_margin)
    kept = [unflagged[j] for j in chosen]
    if kept:
        rule = get_aggregator(config.aggregation)
        vote = [max(scores[valid[pos]] or 0.0, 0.0) for pos in kept]
        delta = np.asarray(rule(stack[kept], vote, **config.aggregation_params), dtype=np.float64)
        new_vec = (global_vec.astype(np.float64) + delta).astype(np.float32)
    else:
        new_vec = global_vec.copy()
    new_tensors = unflatten(new_vec, layout)
    new_metric = utility.evaluate_vector(new_vec)
    hyper = next_hyperparams(spec, base.metadata, config, round, new_metric)
    new_bytes = save_weights(
        new_tensors,
        {"project": project_id, "round": round, "trainer": "aggregator", "base": global_cid, **hyper.pop("metadata")},
    )
    timings["aggregation"] = time.perf_counter() - t0

    flags = 0
    trainers = []
    kept_submissions = {valid[pos] for pos in kept}
    pos_of = {i: pos for pos, i in enumerate(valid)}
    for i, (address, cid, _) in enumerate(submissions):
        r = results[i]
        if not r.ok:
            flagged, reason, detail, det_scores = True, r.reason, r.detail, {}
        else:
            v = verdicts[pos_of[i]]
            flagged, reason, detail, det_scores = v.flagged, v.reason, v.detail, v.scores
        if flagged:
            flags |= 1 << i
        trainers.append(
            {
                "index": i,
                "address": address,
                "cid": cid,
                "checks": r.checks,
                "detector_scores": det_scores,
                "score": scores[i],
                "pay_share": _round6(shares[i]),
                "weight": weights[i],
                "flagged": flagged,
                "reason": reason,
                "detail": detail,
                "aggregated": i in kept_submissions,
            }
        )
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "project_id": project_id if isinstance(project_id, int) else str(project_id),
        "round": int(round),
        "base_model_cid": global_cid,
        "new_model_sha256": hashlib.sha256(new_bytes).hexdigest(),
        "seeds": seeds,
        "versions": _versions(),
        "parameters": config.model_dump(mode="json"),
        "model": {"arch": spec.arch, "spec": spec.model_dump(mode="json"), "parameters": layout.size},
        "last_step_known": last_step is not None,
        "validation": {
            "samples": int(len(y_val)),
            "metric": config.metric,
            "global_metric": global_metric,
            "new_metric": new_metric,
        },
        "shapley": shapley_info,
        "payment": payment_info,
        "hyperparams": hyper,
        "weights": weights,
        "weight_scale": WEIGHT_SCALE,
        "flags": flags,
        "trainers": trainers,
        "timings": {k: _round6(v) for k, v in timings.items()},
    }
    return RoundOutcome(new_bytes, weights, flags, report, timings, new_metric)


def _last_step(previous_global: bytes | None, layout: Layout, global_vec: np.ndarray) -> np.ndarray | None:
    """The base model minus the one before it; None without one. A previous model that does not fit
    the spec is the caller's error: it came from the chain's own history."""
    if previous_global is None:
        return None
    previous = validate_update(previous_global, layout, max_bytes=1 << 62, max_abs=float("inf"))
    if not previous.ok:
        raise ConfigError(f"the previous global model does not match the spec: {previous.detail}")
    return global_vec.astype(np.float64) - flatten_np(previous.tensors, layout).astype(np.float64)


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


def _reference_update(
    spec: ModelSpec,
    global_tensors,
    X_val,
    y_val,
    config: AggregatorConfig,
    seed: int,
    layout: Layout,
    global_vec: np.ndarray,
) -> np.ndarray:
    """FLTrust's server update: train the global model on (a slice of) the owner's data."""
    from backend.trainer.local import train_local

    take = min(config.reference_samples, len(y_val))
    # the thread count changes the order of float reductions in training, so the reference (and every
    # detector verdict built on it) is computed with the configured count, not the process's: an
    # aggregator and a verifier on busy and idle machines then agree (bench/reexecution.py)
    local = train_local(
        spec,
        global_tensors,
        X_val[:take],
        y_val[:take],
        seed=seed % (2**63),
        epochs=config.reference_epochs,
        threads=config.eval_threads or 1,
    )
    return flatten_np(local, layout) - global_vec


def _round6(value: float) -> float:
    # run_round's `round` parameter (the protocol's name) shadows the builtin there
    return float(f"{value:.6f}")
