"""The model spec: the JSON document a project pins on-chain by CID."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backend import safe_json
from backend.errors import ConfigError
from backend.limits import SPEC_MAX_BYTES


class Hyperparams(BaseModel):
    """Training settings. Extra keys are kept: architectures read their options (``hidden``, ...)
    from here through :meth:`option`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    lr: float = Field(0.05, gt=0, le=10)
    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=65536)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)

    def option(self, name: str, default: Any) -> Any:
        return (self.model_extra or {}).get(name, default)


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field(..., min_length=1, description="architecture name from the registry")
    input_shape: tuple[int, ...] = Field(..., description="shape of one example, e.g. [1, 28, 28]")
    num_classes: int = Field(..., ge=2, le=100000)
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    initial_weights: str = Field("", description="CID of the initial weights (safetensors)")

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(d < 1 for d in value):
            raise ValueError(f"input_shape must be non-empty with positive sizes, got {list(value)}")
        return value

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model spec") -> "ModelSpec":
        """Parse a spec someone else wrote (pydantic's Rust parser bounds the nesting depth);
        ``ConfigError`` naming the first problem if it is not one."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "the document"
            raise ConfigError(
                f"{source} is not a valid Merit model spec: {where}: {first.get('msg', exc)}"[:500],
                "the project's owner pinned a spec Merit cannot read",
            ) from None


ROUND_HYPERPARAMS_KEY = "hyperparams"
"""Metadata key of a global model: JSON of the hyper-parameters the aggregator set for the next round."""
BEST_METRIC_KEY = "best_metric"
"""Metadata key of a global model: the best validation metric so far ('plateau' schedule)."""
SCHEDULE_METADATA_KEYS = (ROUND_HYPERPARAMS_KEY, BEST_METRIC_KEY)
FOREIGN_MODEL_HINT = "the model was not written by a Merit aggregator; ask the project's aggregator"
ADJUSTABLE = ("lr",)
"""What an aggregator's schedule may change (``AggregatorConfig.lr_schedule``)."""


def round_spec(spec: ModelSpec, metadata: dict[str, str] | None) -> ModelSpec:
    """The spec a round trains with: ``spec`` with the overrides that the global model's metadata
    carries under ``hyperparams`` (written by the aggregator's schedule). No overrides: ``spec``."""
    raw = (metadata or {}).get(ROUND_HYPERPARAMS_KEY, "")
    if not raw:
        return spec

    try:
        overrides = safe_json.loads(raw, what="hyper-parameter metadata", max_bytes=4096)
    except safe_json.UntrustedJSONError:
        overrides = None
    if not isinstance(overrides, dict) or set(overrides) - set(ADJUSTABLE):
        raise ConfigError(
            f"the global model's '{ROUND_HYPERPARAMS_KEY}' metadata is not a JSON object of "
            f"{', '.join(ADJUSTABLE)}: {raw[:120]!r}",
            FOREIGN_MODEL_HINT,
        )
    try:
        merged = Hyperparams(**{**spec.hyperparams.model_dump(), **overrides})
    except ValueError as exc:
        raise ConfigError(f"the global model's hyper-parameters are invalid: {exc}") from None
    return spec.model_copy(update={"hyperparams": merged})


MNIST_HYPERPARAMS = {"lr": 0.05, "momentum": 0.9, "epochs": 1, "batch_size": 32}


def mnist_spec(arch: str = "cnn", **hyperparams: Any) -> ModelSpec:
    """The spec the demo and the benches use: 1x28x28 digits, 10 classes, SGD with momentum
    (reaches about 89% validation accuracy after 5 rounds of 10 trainers x 400 digits)."""
    hyperparams = {**MNIST_HYPERPARAMS, **hyperparams}
    return ModelSpec(arch=arch, input_shape=(1, 28, 28), num_classes=10, hyperparams=Hyperparams(**hyperparams))


def fetch_model_spec(store, spec_cid: str) -> ModelSpec:
    """A project's model spec, read (and verified) from storage by its on-chain CID."""
    return ModelSpec.from_json(store.get_bytes(spec_cid, max_size=SPEC_MAX_BYTES), f"model spec {spec_cid}")
