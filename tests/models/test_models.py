"""Architectures, spec, safetensors round-trips, vectors."""

from __future__ import annotations

import json

import pytest
import torch

from backend.errors import ConfigError
from backend.models import (
    Layout,
    ModelSpec,
    available_architectures,
    build_model,
    flatten,
    initial_weights,
    load_weights,
    mnist_spec,
    parameter_count,
    register_architecture,
    save_weights,
    unflatten,
)
from backend.models import registry


def test_builtin_architectures_are_registered():
    assert {"cnn", "mlp", "logreg"} <= set(available_architectures())


@pytest.mark.parametrize("arch", ["cnn", "mlp", "logreg"])
def test_architectures_produce_logits_for_mnist(arch):
    spec = mnist_spec(arch)
    out = build_model(spec, seed=0)(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_cnn_is_about_100k_parameters():
    assert 80_000 <= parameter_count(mnist_spec("cnn")) <= 120_000


def test_unknown_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown architecture"):
        build_model(ModelSpec(arch="nope", input_shape=(4,), num_classes=2))


def test_register_architecture_adds_a_builder():
    @register_architecture("test-tiny")
    def tiny(spec):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, spec.num_classes))

    try:
        model = build_model(ModelSpec(arch="test-tiny", input_shape=(4,), num_classes=3))
        assert model(torch.zeros(1, 4)).shape == (1, 3)
    finally:
        registry._REGISTRY.pop("test-tiny")


def test_entry_point_architectures_are_loaded(monkeypatch):
    class FakeEntryPoint:
        name = "from-plugin"

        def load(self):
            return lambda spec: torch.nn.Linear(2, spec.num_classes)

    monkeypatch.setattr(
        registry, "entry_points", lambda group: [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else []
    )
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert isinstance(
            registry.get_architecture("from-plugin")(ModelSpec(arch="x", input_shape=(2,), num_classes=2)),
            torch.nn.Linear,
        )
    finally:
        registry._REGISTRY.pop("from-plugin", None)


def test_spec_round_trips_through_json_and_rejects_bad_fields():
    spec = mnist_spec("mlp", hidden=[64], lr=0.1)
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec and again.hyperparams.option("hidden", None) == [64]
    with pytest.raises(ValueError):
        ModelSpec(arch="cnn", input_shape=(0, 28), num_classes=10)
    with pytest.raises(ValueError):
        ModelSpec.model_validate({"arch": "cnn", "input_shape": [1], "num_classes": 10, "surprise": 1})


def test_initialization_is_deterministic_and_leaves_global_rng_alone():
    spec = mnist_spec("cnn")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = initial_weights(spec, seed=7)
    after = torch.rand(1)
    b = initial_weights(spec, seed=7)
    c = initial_weights(spec, seed=8)
    assert before == after
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_safetensors_round_trip_keeps_tensors_and_metadata():
    weights = initial_weights(mnist_spec("mlp"), seed=1)
    data = save_weights(weights, {"project": 3, "round": 2, "trainer": "0xabc", "base": "bafy..."})
    tensors, meta = load_weights(data)
    assert meta == {"project": "3", "round": "2", "trainer": "0xabc", "base": "bafy..."}
    assert all(torch.equal(tensors[k], weights[k]) for k in weights)
    assert save_weights(weights, {"round": 2}) == save_weights(weights, {"round": 2})  # byte-stable


def test_load_weights_refuses_garbage():
    with pytest.raises(ConfigError):
        load_weights(b"\x80\x04not safetensors at all")


def test_flatten_unflatten_round_trip():
    weights = initial_weights(mnist_spec("cnn"), seed=0)
    layout = Layout.of(weights)
    vec = flatten(weights, layout)
    assert vec.shape == (layout.size,) and vec.dtype == torch.float32
    back = unflatten(vec, layout)
    assert list(back) == list(weights)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    with pytest.raises(ValueError):
        unflatten(vec[:-1], layout)


def test_load_weights_gives_the_tensors_in_the_files_order():
    """safetensors hands tensors back in a per-process hash order; Merit reads them in the file's order,
    so that whatever walks a model's values in order sees the same order in every process."""
    names = [f"layer{i}.weight" for i in range(24)]
    data = save_weights({name: torch.full((2,), float(i)) for i, name in enumerate(names)})
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    loaded, _ = load_weights(data)
    assert list(loaded) == [k for k in header if k != "__metadata__"]
    assert sorted(loaded) == sorted(names)
