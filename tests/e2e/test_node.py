"""The aggregator node in-process on the embedded chain: unavailable and flaky updates, and posting."""

from __future__ import annotations

import json

import pytest

from aggregator.node import AggregatorNode
from backend.chain.client import DEFAULT_MIN_MEMBER_STAKE, MarketClient
from backend.chain.committee import CommitteeClient
from backend.chain.connection import connect, dev_account
from backend.chain.types import Phase
from backend.config import get_settings
from backend.data import load_trainer_data
from backend.errors import StorageError
from backend.data import load_validation
from backend.project import create_project, write_example
from backend.storage import compute_cid, open_store
from backend.trainer.client import load_round, make_update
from tests.chain.helpers import commit, committee_post, reveal_all


class FlakyStore:
    """A store whose first reads of chosen CIDs fail like an unreachable node."""

    def __init__(self, store, failures: int):
        self.store, self.failures, self.calls, self.flaky = store, failures, {}, set()

    def __getattr__(self, name):
        return getattr(self.store, name)

    def get_bytes(self, cid, **kw):
        if cid in self.flaky:
            self.calls[cid] = self.calls.get(cid, 0) + 1
            if self.calls[cid] <= self.failures:
                raise StorageError("connection refused (simulated)")
        return self.store.get_bytes(cid, **kw)


def _project(tmp_path, trainers: int, rounds: int, aggregator_config: dict | None = None):
    """A project on a fresh embedded chain with ``trainers`` joined (dev accounts 3, 4, ...)."""
    import yaml

    settings = get_settings()
    chain = connect("embedded")
    owner = MarketClient.deploy(chain, dev_account(0))
    CommitteeClient.of(owner.as_account(dev_account(1))).register(DEFAULT_MIN_MEMBER_STAKE)
    store = open_store("embedded", home=settings.home)
    files = write_example(tmp_path / "data", trainers=trainers, rounds=rounds, submission_window=600)
    if aggregator_config:
        spec = yaml.safe_load(files[0].read_text())
        spec["aggregator_config"] = aggregator_config
        files[0].write_text(yaml.safe_dump(spec))
    pid, _ = create_project(owner, store, files[0], settings.home)
    joined = [owner.as_account(dev_account(3 + i)) for i in range(trainers)]
    for t in joined:
        t.join(pid)
    return chain, owner, store, pid, joined, files, tmp_path


@pytest.fixture
def project(tmp_path):
    return _project(tmp_path, trainers=3, rounds=1)


def _node(owner, store, pid, files, tmp_path):
    node = AggregatorNode(owner.as_account(dev_account(1)), store, pid, None, tmp_path / "state", log=lambda m: None)
    node.validation = load_validation(files[1], node.spec)
    return node


def _two_honest_commitments(project) -> AggregatorNode:
    """The node bonded and started round 0, in which the first two trainers committed real updates."""
    chain, owner, store, pid, trainers, files, tmp_path = project
    node = _node(owner, store, pid, files, tmp_path)
    node.step()  # start (the owner bonded at creation): dev:1 is drawn
    ctx = load_round(owner, pid, 0, store=store)
    for i, t in enumerate(trainers[:2]):
        X, y = load_trainer_data(files[2 + i], ctx.spec)
        commit(t, pid, 0, store.add_bytes(make_update(ctx, pid, t.account.address, X[:100], y[:100], seed=i)))
    return node


def test_unavailable_update_is_flagged_and_flaky_reads_are_retried(project):
    chain, owner, store, pid, trainers, files, tmp_path = project
    flaky = FlakyStore(store, failures=2)
    node = _node(owner, store, pid, files, tmp_path)
    node.store = flaky
    node.step()  # start (the owner bonded at creation): dev:1 is drawn
    ctx = load_round(owner, pid, 0, store=store)
    for i, t in enumerate(trainers[:2]):
        X, y = load_trainer_data(files[2 + i], ctx.spec)
        cid = store.add_bytes(make_update(ctx, pid, t.account.address, X[:150], y[:150], seed=i))
        commit(t, pid, 0, cid)
        flaky.flaky.add(cid)
    missing = compute_cid(b"an update that was never uploaded")
    commit(trainers[2], pid, 0, missing)
    reveal_all(chain, pid, 0)
    assert "consensus settled" in node.step()
    assert owner.round(pid, 0).phase == Phase.CHALLENGE
    weights, flags = owner.result(pid, 0)
    assert flags == 0b100 and weights[2] == 0
    report = json.loads(store.get_bytes(owner.round(pid, 0).report_cid))
    assert report["trainers"][2]["flagged"] and report["trainers"][2]["reason"] == "unavailable"
    assert not report["trainers"][0]["flagged"] and not report["trainers"][1]["flagged"]
    # the two real updates were fetched on their third try despite the failures
    assert sorted(flaky.calls.values()) == [3, 3]
    chain.advance(owner.round(pid, 0).challenge_deadline - chain.now() + 1)
    assert node.step() == "round 0 finalized"
    assert node.step() == "done"


def test_node_refuses_a_key_that_was_not_drawn(project):
    chain, owner, store, pid, trainers, files, tmp_path = project
    from backend.errors import MeritError

    node = AggregatorNode(owner, store, pid, None, tmp_path / "state", log=lambda m: None)
    assert node.step() == "started round 0"  # anyone may start a ready project
    with pytest.raises(MeritError, match="was not drawn for project 1's committee"):
        node.step()


def test_the_aggregators_lr_schedule_reaches_the_next_rounds_trainers(tmp_path):
    chain, owner, store, pid, trainers, files, _ = _project(
        tmp_path, trainers=2, rounds=2, aggregator_config={"lr_schedule": "step", "lr_factor": 0.5}
    )
    node = _node(owner, store, pid, files, tmp_path)
    node.step()  # start (the owner bonded at creation): dev:1 is drawn
    ctx = load_round(owner, pid, 0, store=store)
    assert ctx.spec.hyperparams.lr == 0.05
    for i, t in enumerate(trainers):
        X, y = load_trainer_data(files[2 + i], ctx.spec)
        commit(t, pid, 0, store.add_bytes(make_update(ctx, pid, t.account.address, X[:100], y[:100], seed=i)))
    reveal_all(chain, pid, 0)
    assert "consensus settled" in node.step()
    chain.advance(owner.round(pid, 0).challenge_deadline - chain.now() + 1)
    assert node.step() == "round 0 finalized"
    report = json.loads(store.get_bytes(owner.round(pid, 0).report_cid))
    assert report["hyperparams"]["schedule"] == "step" and report["hyperparams"]["next_lr"] == 0.025
    assert load_round(owner, pid, 1, store=store).spec.hyperparams.lr == 0.025
    from aggregator.verify import verify_project

    [verdict] = verify_project(owner, store, pid, validation=node.validation)
    assert verdict.ok, verdict
    # round 1: a result whose model is right but whose learning rate for round 2 is not
    from aggregator.round import run_round
    from backend.models.serialization import load_weights, save_weights

    ctx = load_round(owner, pid, 1, store=store)
    subs = []
    for i, t in enumerate(trainers):
        X, y = load_trainer_data(files[2 + i], ctx.spec)
        cid = store.add_bytes(make_update(ctx, pid, t.account.address, X[:100], y[:100], seed=10 + i))
        commit(t, pid, 1, cid)
        subs.append((t.account.address, cid, store.get_bytes(cid)))
    reveal_all(chain, pid, 1)
    honest = run_round(
        node.spec,
        store.get_bytes(ctx.global_cid),
        subs,
        node.validation,
        node.config,
        project_id=pid,
        round=1,
        global_cid=ctx.global_cid,
    )
    tensors, meta = load_weights(honest.global_weights)
    assert json.loads(meta["hyperparams"]) == {"lr": 0.0125}
    forged = save_weights({k: v.clone() for k, v in tensors.items()}, {**meta, "hyperparams": json.dumps({"lr": 0.5})})
    aggregator = owner.as_account(dev_account(1))
    committee_post(
        aggregator,
        pid,
        1,
        store.add_bytes(forged),
        store.add_bytes(json.dumps(honest.report.to_dict()).encode()),
        honest.weights,
        honest.flags,
    )
    verdicts = verify_project(owner, store, pid, validation=node.validation)
    assert verdicts[0].ok and not verdicts[1].ok
    assert any("hyperparams metadata" in p for p in verdicts[1].problems), verdicts[1].problems


def test_node_settles_a_dispute_the_arbiter_never_rules_on(project):
    """Commit-reveal through the node, then an unanswered dispute: at the ruling deadline the node
    finalizes, the dispute is rejected by default and the posted result pays the trainers."""
    chain, owner, store, pid, trainers, files, tmp_path = project
    node = _two_honest_commitments(project)
    assert node.step().startswith("round 0 open (2 commitments")
    chain.advance(owner.round(pid, 0).submission_deadline - chain.now() + 1)
    assert node.step() == "round 0 revealing (0/2 revealed)"
    reveal_all(chain, pid, 0)
    assert "consensus settled" in node.step()
    budget = owner.round(pid, 0).budget
    trainers[0].dispute(pid)
    assert node.step().startswith("round 0 disputed; waiting for the arbiter")
    chain.advance(owner.liveness(pid)["ruling_deadline"] - chain.now() + 1)
    assert node.step() == "round 0: dispute lapsed at its ruling deadline; finalized"
    assert owner.events("DisputeLapsed", pid)[0]["disputer"] == trainers[0].account.address
    # the lapsed dispute's bond joins the round's budget: the trainers are paid it with the result
    assert owner.claimable(pid, owner.committee_address()) == 0
    assert owner.round(pid, 0).budget == budget + owner.config(pid).disputeBond
    assert owner.claimable(pid, trainers[1].account.address) > 0


def test_a_poison_update_is_flagged_malformed_and_the_round_goes_on(project):
    """An update whose safetensors header nests 100,000 deep once segfaulted every aggregator that
    fetched it (and `merit verify`): it must cost its sender a flag, nothing more."""
    import struct

    chain, owner, store, pid, trainers, files, tmp_path = project
    node = _two_honest_commitments(project)
    header = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    commit(trainers[2], pid, 0, store.add_bytes(struct.pack("<Q", len(header)) + header))
    reveal_all(chain, pid, 0)
    assert "consensus settled" in node.step()
    weights, flags = owner.result(pid, 0)
    assert flags == 0b100 and weights[2] == 0 and weights[0] + weights[1] > 0
    report = json.loads(store.get_bytes(owner.round(pid, 0).report_cid))
    poison = report["trainers"][2]
    assert poison["reason"] == "malformed" and "nests 100001 levels deep" in poison["detail"]
    from aggregator.verify import verify_project

    [verdict] = verify_project(owner, store, pid, validation=node.validation)
    assert verdict.ok, verdict
