"""The adaptive attacks of the simulator (backend.simulate.attacks): each builds what the paper says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.data import load_mnist
from backend.models import flatten, initial_weights, mnist_spec
from backend.simulate.attacks import (
    ADAPTIVE_KINDS,
    AttackContext,
    global_step,
    make_update,
    parse_attackers,
    prepare_round,
    stamp_trigger,
)
from backend.models.training import apply_update, evaluate

SPEC = mnist_spec("mlp", hidden=[32])


@pytest.fixture(scope="module")
def data():
    return load_mnist(n=600, seed=0)


@pytest.fixture(scope="module")
def market(data):
    """Five trainers' contexts on disjoint shards; the last three of the given kind collude."""
    X, y = data
    g = initial_weights(SPEC, 0)

    def build(kind):
        previous: list = []
        contexts = [
            AttackContext(SPEC, g, X[i * 100 : (i + 1) * 100], y[i * 100 : (i + 1) * 100], seed=i, previous=previous)
            for i in range(5)
        ]
        kinds = ["honest", "honest", kind, kind, kind]
        prepare_round(kinds, contexts)
        for k, ctx in zip(kinds, contexts):
            previous.append(make_update(k, ctx))
        return contexts, previous

    return g, build


def test_every_adaptive_kind_is_an_attacker_kind():
    assert parse_attackers(",".join(f"{k}:1" for k in ADAPTIVE_KINDS)) == {k: 1 for k in ADAPTIVE_KINDS}


def test_prepare_round_gives_colluders_their_benign_updates_and_ranks(market):
    _, build = market
    contexts, _ = build("alie")
    assert [c.rank for c in contexts[2:]] == [0, 1, 2]
    assert all(len(c.colluders) == 3 and c.colluders is contexts[2].colluders for c in contexts[2:])
    assert contexts[0].colluders == [] and all(c.trainers == 5 for c in contexts)
    own = flatten(contexts[3].train())
    assert torch.allclose(flatten(contexts[3].colluders[1]), own)


def _benign(ctx):
    return torch.stack([flatten(u).double() for u in [*ctx.colluders, *ctx.previous]])


def test_alie_is_the_mean_minus_z_deviations(market):
    _, build = market
    contexts, _ = build("alie")
    ctx = contexts[2]
    ctx_view = AttackContext(
        ctx.spec,
        ctx.global_weights,
        ctx.X,
        ctx.y,
        ctx.seed,
        previous=ctx.previous[:2],
        colluders=ctx.colluders,
        rank=0,
        trainers=5,
    )
    stack = _benign(ctx_view)
    expected = stack.mean(0) - 1.5 * stack.std(0, unbiased=False)
    assert torch.allclose(flatten(make_update("alie", ctx_view, z=1.5)).double(), expected, atol=1e-6)


def test_ipm_is_minus_epsilon_times_the_mean(market):
    _, build = market
    contexts, _ = build("ipm")
    ctx = AttackContext(
        SPEC,
        contexts[2].global_weights,
        contexts[2].X,
        contexts[2].y,
        0,
        previous=contexts[2].previous[:2],
        colluders=contexts[2].colluders,
    )
    assert torch.allclose(
        flatten(make_update("ipm", ctx, epsilon=0.7)).double(), -0.7 * _benign(ctx).mean(0), atol=1e-6
    )


def test_min_max_stays_within_the_benign_spread_but_moves_away_from_the_mean(market):
    _, build = market
    contexts, updates = build("min_max")
    ctx = AttackContext(
        SPEC,
        contexts[2].global_weights,
        contexts[2].X,
        contexts[2].y,
        0,
        previous=updates[:2],
        colluders=contexts[2].colluders,
    )
    stack = _benign(ctx)
    bad = flatten(make_update("min_max", ctx)).double()
    assert torch.cdist(bad[None], stack).max() <= torch.cdist(stack, stack).max() * (1 + 1e-4)
    assert (bad - stack.mean(0)).norm() > 0.1 * stack.mean(0).norm()


@pytest.mark.parametrize("noise", [0.2, 0.5])
def test_noisy_copycat_is_the_victim_plus_noise_of_that_rms(market, noise):
    _, build = market
    _, updates = build("honest")
    ctx = AttackContext(SPEC, initial_weights(SPEC, 0), np.zeros((1, 784)), np.zeros(1), seed=9, previous=updates[:2])
    victim = flatten(updates[0])
    diff = flatten(make_update("noisy_copycat", ctx, noise=noise)) - victim
    assert float(diff.pow(2).mean().sqrt() / victim.pow(2).mean().sqrt()) == pytest.approx(noise, rel=0.05)


def test_delta_free_rider_replays_the_last_global_step(data):
    X, y = data
    g0 = initial_weights(SPEC, 0)
    g1 = apply_update(g0, make_update("honest", AttackContext(SPEC, g0, X[:100], y[:100], seed=1)))
    step = global_step(g1, g0)
    ctx = AttackContext(SPEC, g1, X[:10], y[:10], seed=2, last_step=step)
    replay = flatten(make_update("delta_free_rider", ctx, noise=0.1))
    assert float((replay - flatten(step)).pow(2).mean().sqrt() / flatten(step).pow(2).mean().sqrt()) == pytest.approx(
        0.1, rel=0.05
    )
    first = flatten(make_update("delta_free_rider", AttackContext(SPEC, g0, X[:10], y[:10], seed=2)))
    assert first.abs().max() < 0.01  # round 0: nothing to replay, a plain free-rider
    assert global_step(g1, None) is None


def test_sybils_split_one_honest_update(market):
    _, build = market
    contexts, updates = build("sybil")
    pieces = torch.stack([flatten(u) for u in updates[2:]])
    whole = flatten(contexts[2].colluders[0])
    assert torch.allclose(pieces.mean(0), whole, atol=1e-6)
    support = (pieces != 0).sum(0)
    assert int(support.max()) <= 1  # disjoint coordinates


def test_backdoor_teaches_the_trigger(data):
    X, y = data
    g = initial_weights(SPEC, 0)
    ctx = AttackContext(SPEC, g, X[:400], y[:400], seed=0, epochs=5)
    poisoned = apply_update(g, make_update("backdoor", ctx, target=0, fraction=0.5, boost=1.0))
    clean = apply_update(g, make_update("honest", ctx))
    Xo = stamp_trigger(X[400:][y[400:] != 0])
    target = np.zeros(len(Xo), dtype=np.int64)
    assert evaluate(SPEC, poisoned, Xo, target)[0] > evaluate(SPEC, clean, Xo, target)[0] + 0.3
    assert stamp_trigger(X[:1])[0, 0, -2, -2] == 1.0 and X[0, 0, -2, -2] == 0.0


def test_attacks_read_updates_by_name_whatever_order_their_tensors_come_in(market):
    """Updates read back from storage list their tensors in another order than the global model (it
    was safetensors' per-process hash order): an attack must combine them tensor by tensor, by name."""
    _, build = market
    for kind in ("alie", "ipm", "min_max"):
        contexts, _ = build(kind)
        ctx = contexts[2]
        shuffled = [dict(reversed(list(u.items()))) for u in ctx.previous[:2]]
        same = AttackContext(ctx.spec, ctx.global_weights, ctx.X, ctx.y, ctx.seed, previous=ctx.previous[:2])
        reordered = AttackContext(ctx.spec, ctx.global_weights, ctx.X, ctx.y, ctx.seed, previous=shuffled)
        for c in (same, reordered):
            c.colluders, c.rank, c.trainers = ctx.colluders, 0, 5
        a, b = make_update(kind, same), make_update(kind, reordered)
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a), kind
