"""The learning-rate schedule (DESIGN step 2.6): the aggregator sets the next round's learning rate
from the spec, the base model's metadata and this round's validation metric, and writes it into the
new global model's metadata, where trainers read it and ``merit verify`` checks it."""

from __future__ import annotations

import json
import math
from typing import Any

from aggregator.config import AggregatorConfig
from backend.errors import ConfigError
from backend.models.spec import BEST_METRIC_KEY, FOREIGN_MODEL_HINT, ROUND_HYPERPARAMS_KEY, ModelSpec, round_spec


def next_hyperparams(
    spec: ModelSpec, base_metadata: dict[str, str], config: AggregatorConfig, round: int, new_metric: float
) -> dict[str, Any]:
    """DESIGN step 2.6: the hyper-parameters of the next round, from the schedule, the spec, the base
    model's metadata and this round's validation metric only (so ``merit verify`` recomputes them).
    Returns the report's record, with the new model's metadata under ``metadata``."""
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
