"""`merit demo --aggregators K --dishonest-aggregators M`: the options are checked before any work, and
the dishonest member's behaviour does what the simulation says it does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backend.chain.types import WEIGHT_SCALE
from backend.errors import ConfigError
from backend.simulate.demo import DemoConfig
from backend.simulate.members import DishonestMember, favoured_trainer, member_roles


@pytest.mark.parametrize(
    "k, m, attackers, needle",
    [
        (2, 0, "sign_flip:1", "--aggregators must be odd, from 1 to 7"),
        (0, 0, "sign_flip:1", "--aggregators must be odd"),
        (9, 0, "sign_flip:1", "--aggregators must be odd"),
        (3, 2, "sign_flip:1", "at most 1, got 2"),
        (1, 1, "sign_flip:1", "at most 0, got 1"),
        (5, -1, "sign_flip:1", "at most 2, got -1"),
        (3, 1, "", "needs a trainer the attacker controls"),
    ],
)
def test_bad_committee_options_are_refused_before_any_work(k, m, attackers, needle):
    cfg = DemoConfig(trainers=4, attackers=attackers, aggregators=k, dishonest_aggregators=m)
    with pytest.raises(ConfigError, match=needle):
        cfg.check()


@pytest.mark.parametrize("k, m", [(1, 0), (3, 1), (5, 2), (7, 3), (7, 0)])
def test_good_committee_options_pass(k, m):
    DemoConfig(trainers=4, attackers="free_rider:1", aggregators=k, dishonest_aggregators=m).check()


@dataclass(frozen=True)
class Post:  # the fields of backend.chain.types.MemberPost
    member: str
    weights: list[int]
    flags: int
    model_cid: str
    report_cid: str


ADDRESSES = ["0xh0", "0xa1", "0xh2", "0xa3", "0xh4"]
ROLES = ["honest", "sign_flip", "honest", "free_rider", "honest"]


def test_the_dishonest_member_flags_every_honest_trainer_and_pays_only_its_own():
    role_of = dict(zip(ADDRESSES, ROLES))
    favoured = favoured_trainer(ROLES, ADDRESSES)
    assert favoured == "0xa1"
    order = ["0xa3", "0xh0", "0xa1", "0xh4", "0xh2"]  # this round's submitter order, not the join order
    behaviour = DishonestMember(favoured, role_of, lambda: order)
    honest_post = Post("0xm", [0, 300_000_000, 0, 400_000_000, 300_000_000], 0b00101, "bafy-m", "bafy-r")
    lie = behaviour(honest_post)
    assert lie.weights == [0, 0, WEIGHT_SCALE, 0, 0]
    assert lie.flags == 0b11011  # the three honest trainers, plus the free-rider the honest post flagged
    assert lie.flags >> 2 & 1 == 0  # its own trainer is never flagged
    assert (lie.member, lie.model_cid, lie.report_cid) == ("0xm", "bafy-m", "bafy-r")


def test_the_dishonest_member_refuses_a_post_of_another_round():
    behaviour = DishonestMember("0xa1", dict(zip(ADDRESSES, ROLES)), lambda: ADDRESSES)
    with pytest.raises(ValueError, match="2 weights for 5 submitters"):
        behaviour(Post("0xm", [1, 2], 0, "a", "b"))


def test_an_honest_trainer_cannot_be_the_favoured_one():
    with pytest.raises(ConfigError, match="attacker-controlled"):
        DishonestMember("0xh0", dict(zip(ADDRESSES, ROLES)), lambda: ADDRESSES)
    with pytest.raises(ConfigError, match="--attackers"):
        favoured_trainer(["honest", "honest"], ["0x1", "0x2"])


def test_member_roles_put_the_dishonest_last():
    assert member_roles(5, 2) == ["honest", "honest", "honest", "dishonest", "dishonest"]


def _report(with_committee: bool) -> dict:
    trainer = {"address": "0xh0", "role": "honest", "score": 0.1, "flagged": False, "reward_wei": 10**18}
    rounds = []
    for r in range(2):
        rnd = {"round": r, "accuracy": 0.5, "loss": 1.0, "trainers": [trainer]}
        if with_committee:
            rnd["aggregators"] = [
                {"address": "0xm0", "role": "honest", "penalty_wei": 0},
                {"address": "0xm1", "role": "dishonest", "penalty_wei": 2 * 10**17},
            ]
        rounds.append(rnd)
    return {"rounds": rounds}


def test_the_plots_mark_penalties_when_there_is_a_committee(tmp_path):
    from backend.simulate.plots import write_plots

    paths = write_plots(_report(True), tmp_path)
    assert tmp_path / "committee.png" in paths and (tmp_path / "committee.png").stat().st_size > 0
    alone = tmp_path / "single"
    alone.mkdir()
    assert [p.name for p in write_plots(_report(False), alone)] == ["accuracy.png", "rewards.png", "scores.png"]


def _bench_report(rewards: dict[str, int], liar_penalties: list[int], favoured="0xa1") -> dict:
    roles = {"0xh0": "honest", "0xh2": "honest", "0xa1": "free_rider"}
    rounds = []
    for r, penalty in enumerate(liar_penalties):
        rounds.append(
            {
                "round": r,
                "trainers": [{"address": a, "role": roles[a], "reward_wei": w} for a, w in rewards.items()],
                "aggregators": [
                    {"address": "0xm0", "role": "honest", "penalty_wei": 0},
                    {"address": "0xm1", "role": "dishonest", "penalty_wei": penalty},
                ],
            }
        )
    return {"config": {"committee": {"favoured_trainer": favoured}}, "rounds": rounds, "final": {"accuracy": 0.9}}


def test_the_committee_bench_judges_each_target_from_the_reports():
    from bench.committee import compare

    fair = _bench_report({"0xh0": 1000, "0xh2": 2000, "0xa1": 0}, [0, 0])
    good = compare(_bench_report({"0xh0": 1015, "0xh2": 1990, "0xa1": 0}, [5, 5]), fair)
    assert good["honest_rewards_within_2pct"] and good["favoured_gains_nothing"]
    assert good["dishonest_penalised_every_round"] and good["honest_reward_max_deviation"] == 0.015
    bad = compare(_bench_report({"0xh0": 900, "0xh2": 2000, "0xa1": 100}, [5, 0]), fair)
    assert not bad["honest_rewards_within_2pct"] and bad["honest_reward_max_deviation"] == 0.1
    assert not bad["favoured_gains_nothing"] and bad["favoured_reward_wei"] == 200  # 100 in each of 2 rounds
    assert bad["dishonest_penalised_rounds"] == 1 and not bad["dishonest_penalised_every_round"]


@pytest.mark.slow
def test_a_demo_with_one_liar_of_three_records_and_verifies_it(tmp_path):
    """The whole stack: the liar is penalised every round, the consensus is the honest post, the trainer
    it favoured earns nothing, and `verify` re-derives each member's distance and the settlement."""
    from aggregator.verify import verify_project
    from backend.chain.session import committee_of
    from backend.simulate.demo import run_demo

    audit = {}

    def on_finish(chain, market, store, pid):
        audit["verdicts"] = verify_project(market, store, pid, committee=committee_of(market))

    report = run_demo(
        DemoConfig(
            trainers=4,
            rounds=2,
            attackers="free_rider:1",
            out=tmp_path,
            samples_per_trainer=300,
            validation_samples=500,
            epochs=1,
            aggregators=3,
            dishonest_aggregators=1,
        ),
        on_finish=on_finish,
    )
    assert (report["config"]["aggregators"], report["config"]["dishonest_aggregators"]) == (3, 1)
    favoured = report["config"]["committee"]["favoured_trainer"]
    for rnd in report["rounds"]:
        roles = {m["address"]: m["role"] for m in rnd["aggregators"]}
        assert sorted(roles.values()) == ["dishonest", "honest", "honest"]
        for m in rnd["aggregators"]:
            assert (m["penalty_wei"] > 0) == (m["role"] == "dishonest")
            if m["role"] == "honest":
                assert (m["weights"], m["flags"]) == (rnd["consensus"]["weights"], rnd["consensus"]["flags"])
        assert all(t["reward_wei"] == 0 for t in rnd["trainers"] if t["address"] == favoured)
        assert all(not t["flagged"] for t in rnd["trainers"] if t["role"] == "honest")
    assert (tmp_path / "committee.png").exists()
    for verdict in audit["verdicts"]:
        assert verdict.ok, verdict.problems
        by_role = {roles[m["address"]]: m for m in verdict.members}
        assert by_role["dishonest"]["honest"] is False and by_role["dishonest"]["penalised"]
        assert by_role["honest"]["honest"] and by_role["honest"]["share_distance_bps"] == 0
