"""Local training and the behaviours the simulation uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.data import load_mnist
from backend.errors import ConfigError
from backend.models import flatten, initial_weights, mnist_spec, save_weights
from backend.simulate.attacks import ADAPTIVE_KINDS, BEHAVIOURS, AttackContext, make_update, parse_attackers
from backend.models.training import apply_update, compute_update, evaluate, train_local

SPEC = mnist_spec("mlp", hidden=[32])


@pytest.fixture(scope="module")
def data():
    return load_mnist(n=400, seed=0)


def test_training_is_deterministic_and_improves_the_model(data):
    X, y = data
    g = initial_weights(SPEC, 0)
    a = train_local(SPEC, g, X, y, seed=5, epochs=2)
    b = train_local(SPEC, save_weights(g), X, y, seed=5, epochs=2)  # bytes are accepted too
    c = train_local(SPEC, g, X, y, seed=6, epochs=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert evaluate(SPEC, a, X, y)[0] > evaluate(SPEC, g, X, y)[0] + 0.2


def test_progress_threads_and_rng_isolation(data):
    X, y = data
    seen = []
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    train_local(
        SPEC,
        initial_weights(SPEC, 0),
        X,
        y,
        seed=1,
        epochs=2,
        progress=lambda e, n, loss: seen.append((e, n)),
        threads=1,
    )
    assert seen == [(1, 2), (2, 2)]
    assert torch.get_num_threads() == threads
    assert torch.rand(1) == expected


def test_update_round_trip(data):
    X, y = data
    g = initial_weights(SPEC, 0)
    local = train_local(SPEC, g, X, y, seed=1)
    delta = compute_update(local, g)
    back = apply_update(g, delta)
    assert all(torch.allclose(back[k], local[k], atol=1e-6) for k in local)
    with pytest.raises(ConfigError):
        compute_update({"a": torch.zeros(1)}, g)


def test_training_rejects_empty_data():
    with pytest.raises(ConfigError):
        train_local(SPEC, initial_weights(SPEC, 0), np.zeros((0, 784)), np.zeros(0), seed=0)


def test_behaviours_shape_their_updates(data):
    X, y = data
    g = initial_weights(SPEC, 0)
    ctx = AttackContext(SPEC, g, X[:100], y[:100], seed=3)
    honest = flatten(make_update("honest", ctx))
    assert torch.allclose(flatten(make_update("sign_flip", ctx)), -honest)
    assert torch.allclose(flatten(make_update("scale", ctx)), 10 * honest)
    assert flatten(make_update("free_rider", ctx, std=0)).abs().max() == 0
    assert flatten(make_update("noise", ctx)).std() == pytest.approx(0.05, rel=0.05)
    flipped = flatten(make_update("label_flip", ctx))
    assert not torch.allclose(flipped, honest)
    victim = make_update("honest", ctx)
    copy = flatten(make_update("copycat", AttackContext(SPEC, g, X, y, seed=4, previous=[victim])))
    assert (copy - flatten(victim)).norm() / flatten(victim).norm() < 1e-3
    assert set(BEHAVIOURS) == {
        "honest",
        "label_flip",
        "sign_flip",
        "noise",
        "scale",
        "free_rider",
        "copycat",
        *ADAPTIVE_KINDS,
    }


def test_parse_attackers():
    assert parse_attackers("label_flip:2, noise:1,noise") == {"label_flip": 2, "noise": 2}
    with pytest.raises(ConfigError):
        parse_attackers("teleport:1")
    with pytest.raises(ConfigError):
        parse_attackers("noise:x")
    with pytest.raises(ConfigError):
        make_update("teleport", None)
