"""Built-in architectures. Options beyond the spec's shape come from ``spec.hyperparams``
(``hidden``, ``channels``), so one spec JSON describes the whole model."""

from __future__ import annotations

import math

from torch import nn

from backend.errors import ConfigError
from backend.models.registry import register_architecture
from backend.models.spec import ModelSpec


def _flat_size(spec: ModelSpec) -> int:
    return math.prod(spec.input_shape)


@register_architecture("logreg")
def logistic_regression(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat_size(spec), spec.num_classes))


@register_architecture("mlp")
def mlp(spec: ModelSpec) -> nn.Module:
    hidden = spec.hyperparams.option("hidden", [128])
    hidden = [hidden] if isinstance(hidden, int) else list(hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat_size(spec)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


@register_architecture("cnn")
def cnn(spec: ModelSpec) -> nn.Module:
    """Two 5x5 conv + pool blocks and two dense layers: about 97k parameters on 1x28x28."""
    if len(spec.input_shape) != 3:
        raise ConfigError(f"cnn needs input_shape [channels, height, width], got {list(spec.input_shape)}")
    channels, height, width = spec.input_shape
    c1, c2 = spec.hyperparams.option("channels", [16, 32])
    hidden = int(spec.hyperparams.option("hidden", 160))
    h, w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
    if h < 1 or w < 1:
        raise ConfigError(f"cnn input {height}x{width} is too small", "use at least 16x16 images")
    return nn.Sequential(
        nn.Conv2d(channels, c1, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * h * w, hidden),
        nn.ReLU(),
        nn.Linear(hidden, spec.num_classes),
    )
