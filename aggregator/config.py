"""How the aggregator judges a round: one typed, frozen configuration, fixed in the project's model
spec (``aggregator_config``) so that ``merit verify`` re-runs a round under the same rules.

It sits at the bottom of the aggregator: the phases read it, and it reads only the tables it checks
names against (the detectors, the aggregation rules, the estimators' former names) and the caps it
defaults to, so a misspelt name or parameter fails when a project is created, never inside a round.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aggregator.aggregation import AGGREGATORS
from aggregator.contribution import METHOD_ALIASES
from aggregator.detectors import DEFAULT_DETECTORS, DETECTORS
from backend.limits import UPDATE_MAX_ABS, UPDATE_MAX_BYTES


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
    shapley_method: Literal["stratified_cv", "exact", "tmc", "loo"] = Field(
        "stratified_cv",
        description="the Shapley estimator (aggregator.contribution); 'gtg', its former name, is read as "
        "'stratified_cv' so that projects created before the rename still load and verify",
    )
    shapley_budget: int | None = Field(
        300,
        ge=1,
        description="validation passes for scoring: distinct coalition "
        "evaluations plus the proxy's passes; None: the estimator's default",
    )
    shapley_proxy: Literal["secant", "none"] = Field(
        "secant",
        description="stratified_cv's extra control variate: 'secant' spends n x len(proxy_scales) of the budget on "
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
    max_update_bytes: int = Field(UPDATE_MAX_BYTES, gt=0)
    max_abs_value: float = Field(UPDATE_MAX_ABS, gt=0)
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

    @field_validator("shapley_method", mode="before")
    @classmethod
    def _current_method_name(cls, name: Any) -> Any:
        return METHOD_ALIASES.get(name, name) if isinstance(name, str) else name

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


def canonical_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Configuration ``parameters`` as JSON with every former name replaced by the current one, so
    that a report written before a rename compares equal to the same configuration read today."""
    method = parameters.get("shapley_method")
    if isinstance(method, str) and method in METHOD_ALIASES:
        return {**parameters, "shapley_method": METHOD_ALIASES[method]}
    return parameters


def aggregator_config_of(model_spec) -> AggregatorConfig:
    """The AggregatorConfig a project fixed in its model spec (a ``backend.models.spec.ModelSpec``;
    defaults if none)."""
    return AggregatorConfig(**(model_spec.hyperparams.option("aggregator", None) or {}))
