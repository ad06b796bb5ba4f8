"""The Marketplace's whole lifecycle through the typed Python client, on the embedded chain and on Anvil."""

from __future__ import annotations

import pytest

from backend.chain.client import TestToken
from backend.chain.transactions import ContractRevert
from backend.chain.types import Phase, Status, WEIGHT_SCALE
from tests.chain.helpers import (
    ETHER,
    SALT,
    VALIDATION_CID,
    advance_past,
    commit,
    fund_tokens,
    make_market,
    reveal_all,
    start_project,
    committee_post,
)


def submit_all(market, pid, round_, trainers):
    """Every trainer commits during Open; ``reveal_all`` reveals them after the deadline."""
    for i, trainer in enumerate(trainers):
        commit(trainer, pid, round_, f"bafkreiupdate{round_}x{i}")


def to_challenge_end(market, pid, round_):
    advance_past(market.chain, market.owner.round(pid, round_).challenge_deadline)


def test_full_lifecycle_pays_by_weight_slashes_offenders_and_conserves_funds(chain):
    market = make_market(chain, trainers=3)
    cfg = market.config(rounds=2)
    pid = start_project(market, cfg)
    assert market.owner.project(pid).status == Status.RUNNING
    info = market.owner.round(pid, 0)
    assert info.phase == Phase.OPEN and info.budget == cfg.pool // 2

    submit_all(market, pid, 0, market.trainers)
    assert market.owner.submissions(pid, 0) == [], "nothing is public before the reveals"
    assert market.owner.submitters(pid, 0) == [t.account.address for t in market.trainers]
    advance_past(chain, info.submission_deadline)
    assert market.owner.round(pid, 0).phase == Phase.REVEALING
    reveal_all(chain, pid, 0)
    assert [a for a, _ in market.owner.submissions(pid, 0)] == [t.account.address for t in market.trainers]
    assert market.owner.round(pid, 0).phase == Phase.AGGREGATING
    # trainer 2 is an offender: flagged, its weight ignored, half its stake slashed into the budget
    committee_post(
        market.aggregator,
        pid,
        0,
        "bafkreimodel0",
        "bafkreireport0",
        [3 * WEIGHT_SCALE // 4, WEIGHT_SCALE // 4, 5],
        0b100,
    )
    assert market.owner.round(pid, 0).phase == Phase.CHALLENGE
    # (a flagged trainer gets weight 0 in the consensus)
    assert market.owner.result(pid, 0) == ([3 * WEIGHT_SCALE // 4, WEIGHT_SCALE // 4, 0], 0b100)
    to_challenge_end(market, pid, 0)
    market.outsider.finalize(pid)

    budget = cfg.pool // 2 + cfg.stake // 2
    assert market.owner.claimable(pid, market.trainers[0].account.address) == budget * 3 // 4
    assert market.owner.claimable(pid, market.trainers[1].account.address) == budget // 4
    assert market.owner.claimable(pid, market.trainers[2].account.address) == 0
    assert market.owner.trainer(pid, market.trainers[2].account.address).stake == cfg.stake // 2
    assert market.owner.global_model_cid(pid) == "bafkreimodel0"

    # round 1: nobody flagged, equal weights
    r1 = market.owner.round(pid, 1)
    assert r1.phase == Phase.OPEN
    submit_all(market, pid, 1, market.trainers)
    reveal_all(chain, pid, 1)
    committee_post(market.aggregator, pid, 1, "bafkreimodel1", "bafkreireport1", [1, 1, 1], 0)
    to_challenge_end(market, pid, 1)
    market.outsider.finalize(pid)
    assert market.owner.project(pid).status == Status.ENDED

    paid = 0
    for trainer in market.trainers:
        amount = market.owner.claimable(pid, trainer.account.address)
        trainer.claim(pid)
        paid += amount
        trainer.withdraw_stake(pid)
    with pytest.raises(ContractRevert) as err:
        market.trainers[0].claim(pid)
    assert err.value.name == "NothingToClaim"
    with pytest.raises(ContractRevert) as err:
        market.owner.withdraw_remainder(pid)
    assert err.value.name == "NothingToWithdraw", "rounds with submissions pay the owner nothing"
    market.owner.withdraw_bond(pid)
    stakes_back = sum(e["amount"] for e in market.owner.events("StakeWithdrawn", pid))
    slashed = sum(e["amount"] for e in market.owner.events("TrainerSlashed", pid))
    pot = sum(e["amount"] for e in market.owner.events("EndPotSet", pid))
    assert slashed == cfg.stake // 2
    # every wei of the pool and the stakes is accounted for (the rounding dust is the honest trainers'
    # end pot, paid with their stakes), and the contract is empty again
    assert paid + pot == cfg.pool + slashed
    assert stakes_back == 3 * cfg.stake - slashed + pot
    assert chain.w3.eth.get_balance(market.owner.address) == 0


def test_dispute_upheld_voids_the_result_and_slashes_the_aggregator(chain):
    market = make_market(chain, trainers=2)
    cfg = market.config(rounds=1)
    pid = start_project(market, cfg)
    submit_all(market, pid, 0, market.trainers)
    reveal_all(chain, pid, 0)
    committee_post(market.aggregator, pid, 0, "bafkreibad", "bafkreibadreport", [1, 0], 0)
    market.trainers[1].dispute(pid)
    assert market.owner.round(pid, 0).phase == Phase.DISPUTED
    with pytest.raises(ContractRevert) as err:
        market.outsider.resolve_dispute(pid, True)
    assert err.value.name == "NotArbiter"
    market.arbiter.resolve_dispute(pid, True)
    assert market.owner.round(pid, 0).phase == Phase.AGGREGATING
    assert market.owner.project(pid).bond_balance == 0
    assert market.owner.project(pid).carry == cfg.aggregatorBond
    assert market.owner.claimable(pid, market.trainers[1].account.address) == cfg.disputeBond
    # the owner re-bonds and the committee scores the re-opened round afresh
    market.owner.post_aggregator_bond(pid)
    committee_post(market.aggregator, pid, 0, "bafkreigood", "bafkreigoodreport", [1, 1], 0)
    to_challenge_end(market, pid, 0)
    market.owner.finalize(pid)
    # the slashed bond is the trainers': paid with the round, or in the end pot
    total = sum(market.owner.claimable(pid, t.account.address) for t in market.trainers)
    # (trainer 1 also has its upheld dispute bond back)
    assert total + market.owner.end_pot(pid)[0] == cfg.pool + cfg.aggregatorBond + cfg.disputeBond
    assert market.owner.project(pid).status == Status.ENDED


def test_a_rejected_dispute_bond_joins_the_rounds_budget(chain):
    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config(rounds=1))
    submit_all(market, pid, 0, market.trainers)
    reveal_all(chain, pid, 0)
    committee_post(market.aggregator, pid, 0, "bafkreim", "bafkreir", [1, 1], 0)
    budget = market.owner.round(pid, 0).budget
    market.owner.dispute(pid)
    market.arbiter.resolve_dispute(pid, False)
    assert market.owner.round(pid, 0).phase == Phase.CHALLENGE
    # nothing is credited to the committee's address, which could not claim it
    assert market.owner.claimable(pid, market.owner.committee_address()) == 0
    assert market.owner.round(pid, 0).budget == budget + market.config().disputeBond
    chain.advance(market.owner.round(pid, 0).challenge_deadline - chain.now() + 1)
    market.outsider.finalize(pid)
    paid = [market.owner.claimable(pid, t.account.address) for t in market.trainers]
    assert paid == [(budget + market.config().disputeBond) // 2] * 2


def test_expiry_slashes_the_aggregator_and_cancel_refunds_only_rounds_without_submissions(chain):
    market = make_market(chain, trainers=2)
    cfg = market.config(rounds=3, pool=9 * ETHER)
    pid = start_project(market, cfg)
    submit_all(market, pid, 0, market.trainers)
    reveal_all(chain, pid, 0)
    info = market.owner.round(pid, 0)
    with pytest.raises(ContractRevert) as err:
        market.outsider.expire(pid)
    assert err.value.name == "WrongPhase"
    advance_past(chain, info.aggregation_deadline)
    assert market.owner.round(pid, 0).phase == Phase.EXPIRED
    market.outsider.expire(pid)
    assert market.owner.project(pid).bond_balance == 0
    with pytest.raises(ContractRevert) as err:
        market.outsider.cancel(pid)
    assert err.value.name == "NotOwner"
    market.owner.cancel(pid)
    assert market.owner.liveness(pid)["cancelled"]
    assert market.owner.project(pid).status == Status.RUNNING, "the round with submissions still settles"
    # nobody posts: after the grace period anyone settles it, equally among the revealed trainers
    advance_past(chain, market.owner.liveness(pid)["grace_deadline"])
    market.outsider.finalize(pid)
    assert market.owner.project(pid).status == Status.CANCELLED
    market.owner.withdraw_remainder(pid)
    assert market.owner.events("RemainderWithdrawn", pid)[0]["amount"] == 2 * (cfg.pool // 3)
    for trainer in market.trainers:
        trainer.claim(pid)
        trainer.withdraw_stake(pid)
    assert chain.w3.eth.get_balance(market.owner.address) == 0


def test_cancel_before_start_refunds_everything(chain):
    market = make_market(chain, trainers=1)
    cfg = market.config()
    pid = market.owner.create_project(cfg)
    market.trainers[0].join(pid)
    market.owner.cancel(pid)
    market.owner.withdraw_remainder(pid)
    market.trainers[0].withdraw_stake(pid)
    assert chain.w3.eth.get_balance(market.owner.address) == 0


def test_erc20_project_lifecycle(chain):
    market = make_market(chain, trainers=2)
    token = TestToken.deploy(chain, market.owner.account)
    fund_tokens(market, token, 100 * ETHER)
    cfg = market.config(asset=token.address, rounds=1)
    pid = start_project(market, cfg)
    submit_all(market, pid, 0, market.trainers)
    reveal_all(chain, pid, 0)
    committee_post(market.aggregator, pid, 0, "bafkreim", "bafkreir", [1, 3], 0)
    to_challenge_end(market, pid, 0)
    market.owner.finalize(pid)
    before = token.balance_of(market.trainers[1].account.address)
    market.trainers[1].claim(pid)
    assert token.balance_of(market.trainers[1].account.address) - before == cfg.pool * 3 // 4
    market.trainers[0].claim(pid)
    for trainer in market.trainers:
        trainer.withdraw_stake(pid)
    market.owner.withdraw_bond(pid)
    assert token.balance_of(market.owner.address) == 0


def test_reverts_carry_the_custom_error_name_and_arguments(chain):
    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config())
    salt = b"\x33" * 32
    with pytest.raises(ContractRevert) as err:
        market.outsider.commit_update(pid, 0, "bafkreix", salt)
    assert err.value.name == "NotTrainer"
    assert err.value.arguments["caller"] == market.outsider.account.address
    assert "merit trainer join" in str(err.value)
    market.trainers[0].commit_update(pid, 0, "bafkreix", salt)
    with pytest.raises(ContractRevert) as err:
        market.trainers[0].commit_update(pid, 0, "bafkreiy", salt)
    assert err.value.name == "AlreadySubmitted"
    with pytest.raises(ContractRevert) as err:
        market.trainers[1].commit_update(pid, 5, "bafkreiy", salt)
    assert err.value.name == "WrongRound"
    assert (err.value.arguments["expected"], err.value.arguments["actual"]) == (0, 5)
    advance_past(chain, market.owner.round(pid, 0).submission_deadline)
    with pytest.raises(ContractRevert) as err:
        market.trainers[0].reveal_update(pid, 0, "bafkreiy", salt)
    assert err.value.name == "RevealMismatch"
    assert "do not match" in str(err.value)


def test_validation_reveal_checks_the_commitment(chain):
    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config())
    with pytest.raises(ContractRevert) as err:
        market.owner.reveal_validation(pid, VALIDATION_CID, b"\x22" * 32)
    assert err.value.name == "BadReveal"
    market.owner.reveal_validation(pid, VALIDATION_CID, SALT)
    assert market.owner.project(pid).validation_cid == VALIDATION_CID
    events = market.owner.events("ValidationRevealed", pid)
    assert events[0]["validationCid"] == VALIDATION_CID


def test_a_restarted_trainer_reveals_from_the_salt_kept_on_disk(chain, tmp_path):
    """The trainer client writes the salt before committing; a new process (a new CommitStore on the
    same directory) reveals with it, and the revealed CID is the one committed."""
    from backend.trainer.client import Uploader, reveal, submit
    from backend.trainer.commits import CommitStore

    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config())
    trainer = market.trainers[0]
    uploader = Uploader(store=type("Store", (), {"add_bytes": staticmethod(lambda data: "bafkreiupdatefromdisk")})())
    cid = submit(trainer, uploader, pid, 0, b"update bytes", CommitStore(tmp_path / "commits"))
    assert trainer.submissions(pid, 0) == []
    with pytest.raises(Exception, match="still open"):
        reveal(trainer, pid, 0, CommitStore(tmp_path / "commits"), log=lambda m: None)
    advance_past(chain, trainer.round(pid, 0).submission_deadline)
    restarted = CommitStore(tmp_path / "commits")
    assert reveal(trainer, pid, 0, restarted, log=lambda m: None) == cid
    assert trainer.submissions(pid, 0) == [(trainer.account.address, cid)]
    assert restarted.get(pid, 0) is None, "revealed: nothing pending any more"
    assert reveal(trainer, pid, 0, restarted, log=lambda m: None) is None


def test_a_squatter_is_evicted_after_two_missed_rounds_and_keeps_its_stake(chain):
    market = make_market(chain, trainers=3)
    cfg = market.config(rounds=3, maxTrainers=3, minTrainers=2)
    pid = start_project(market, cfg)
    squatter = market.trainers[2].account.address
    with pytest.raises(ContractRevert) as err:
        market.outsider.evict(pid, squatter)
    assert err.value.name == "NotEvictable" and "2 rounds" in str(err.value)
    for r in range(2):
        submit_all(market, pid, r, market.trainers[:2])
        reveal_all(chain, pid, r)
        committee_post(market.aggregator, pid, r, f"bafkreimodel{r}", f"bafkreireport{r}", [1, 1, 0][:2], 0)
        to_challenge_end(market, pid, r)
        market.outsider.finalize(pid)
    market.outsider.evict(pid, squatter)
    assert not market.owner.trainer(pid, squatter).joined
    assert market.owner.project(pid).trainer_count == 2
    with pytest.raises(ContractRevert) as err:
        market.trainers[2].commit_update(pid, 2, "bafkreix", b"\x05" * 32)
    assert err.value.name == "NotTrainer"
    # the last round, then the squatter takes its stake back (no share of the honest trainers' pot)
    submit_all(market, pid, 2, market.trainers[:2])
    reveal_all(chain, pid, 2)
    committee_post(market.aggregator, pid, 2, "bafkreimodel2", "bafkreireport2", [1, 1], 0)
    to_challenge_end(market, pid, 2)
    market.outsider.finalize(pid)
    assert market.trainers[2].withdraw_stake_paid(pid) == cfg.stake
