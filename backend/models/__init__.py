"""Models: the architecture registry, the model spec, safetensors (de)serialization and the
state-dict <-> vector helpers the aggregator works with."""

from backend.models.factory import build_model, initial_weights, parameter_count
from backend.models.registry import available_architectures, get_architecture, register_architecture
from backend.models.serialization import METADATA_KEYS, load_weights, save_weights
from backend.models.spec import Hyperparams, ModelSpec, mnist_spec
from backend.models.vectors import Layout, flatten, flatten_np, unflatten

__all__ = [
    "Hyperparams",
    "Layout",
    "METADATA_KEYS",
    "ModelSpec",
    "available_architectures",
    "build_model",
    "flatten",
    "flatten_np",
    "get_architecture",
    "initial_weights",
    "load_weights",
    "mnist_spec",
    "parameter_count",
    "register_architecture",
    "save_weights",
    "unflatten",
]
