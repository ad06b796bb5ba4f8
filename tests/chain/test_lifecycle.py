"""The Marketplace's whole lifecycle through the typed Python client, on the embedded chain and on Anvil."""
from __future__ import annotations

import pytest

from backend.chain.client import TestToken
from backend.chain.transactions import ContractRevert
from backend.chain.types import Phase, Status, WEIGHT_SCALE
from tests.chain.helpers import ETHER, SALT, VALIDATION_CID, advance_past, fund_tokens, make_market, start_project


def submit_all(market, pid, round_, trainers):
    for i, trainer in enumerate(trainers):
        trainer.submit_update(pid, round_, f"bafkreiupdate{round_}x{i}")


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
    assert [a for a, _ in market.owner.submissions(pid, 0)] == [t.account.address for t in market.trainers]
    advance_past(chain, info.submission_deadline)
    assert market.owner.round(pid, 0).phase == Phase.AGGREGATING
    # trainer 2 is an offender: flagged, its weight ignored, half its stake slashed into the budget
    market.aggregator.post_result(pid, 0, "bafkreimodel0", "bafkreireport0", [3 * WEIGHT_SCALE // 4, WEIGHT_SCALE // 4, 5], 0b100)
    assert market.owner.round(pid, 0).phase == Phase.CHALLENGE
    assert market.owner.result(pid, 0) == ([3 * WEIGHT_SCALE // 4, WEIGHT_SCALE // 4, 5], 0b100)
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
    advance_past(chain, r1.submission_deadline)
    market.aggregator.post_result(pid, 1, "bafkreimodel1", "bafkreireport1", [1, 1, 1], 0)
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
    market.owner.withdraw_remainder(pid)
    market.aggregator.withdraw_bond(pid)
    remainder = market.owner.events("RemainderWithdrawn", pid)[0]["amount"]
    stakes_back = sum(e["amount"] for e in market.owner.events("StakeWithdrawn", pid))
    slashed = sum(e["amount"] for e in market.owner.events("TrainerSlashed", pid))
    assert slashed == cfg.stake // 2
    # every wei of the pool and the stakes is accounted for, and the contract is empty again
    assert paid + remainder == cfg.pool + slashed
    assert stakes_back == 3 * cfg.stake - slashed
    assert chain.w3.eth.get_balance(market.owner.address) == 0


def test_dispute_upheld_voids_the_result_and_slashes_the_aggregator(chain):
    market = make_market(chain, trainers=2)
    cfg = market.config(rounds=1)
    pid = start_project(market, cfg)
    submit_all(market, pid, 0, market.trainers)
    advance_past(chain, market.owner.round(pid, 0).submission_deadline)
    market.aggregator.post_result(pid, 0, "bafkreibad", "bafkreibadreport", [1, 0], 0)
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
    # the aggregator re-bonds and posts a corrected result
    with pytest.raises(ContractRevert) as err:
        market.aggregator.post_result(pid, 0, "bafkreigood", "bafkreigoodreport", [1, 1], 0)
    assert err.value.name == "BondNotPosted"
    market.aggregator.post_aggregator_bond(pid)
    market.aggregator.post_result(pid, 0, "bafkreigood", "bafkreigoodreport", [1, 1], 0)
    to_challenge_end(market, pid, 0)
    market.owner.finalize(pid)
    # the slashed bond joined the round's budget through the carry... or the owner's remainder
    total = sum(market.owner.claimable(pid, t.account.address) for t in market.trainers)
    assert total >= cfg.pool - 2
    assert market.owner.project(pid).status == Status.ENDED


def test_dispute_rejected_pays_the_bond_to_the_aggregator(chain):
    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config(rounds=1))
    submit_all(market, pid, 0, market.trainers)
    advance_past(chain, market.owner.round(pid, 0).submission_deadline)
    market.aggregator.post_result(pid, 0, "bafkreim", "bafkreir", [1, 1], 0)
    market.owner.dispute(pid)
    market.arbiter.resolve_dispute(pid, False)
    assert market.owner.round(pid, 0).phase == Phase.CHALLENGE
    assert market.owner.claimable(pid, market.aggregator.account.address) == market.config().disputeBond
    market.aggregator.claim(pid)


def test_expiry_slashes_the_aggregator_and_cancel_refunds_unproduced_budgets(chain):
    market = make_market(chain, trainers=2)
    cfg = market.config(rounds=3, pool=9 * ETHER)
    pid = start_project(market, cfg)
    submit_all(market, pid, 0, market.trainers)
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
    project = market.owner.project(pid)
    assert project.status == Status.CANCELLED
    market.owner.withdraw_remainder(pid)
    for trainer in market.trainers:
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
    advance_past(chain, market.owner.round(pid, 0).submission_deadline)
    market.aggregator.post_result(pid, 0, "bafkreim", "bafkreir", [1, 3], 0)
    to_challenge_end(market, pid, 0)
    market.owner.finalize(pid)
    before = token.balance_of(market.trainers[1].account.address)
    market.trainers[1].claim(pid)
    assert token.balance_of(market.trainers[1].account.address) - before == cfg.pool * 3 // 4
    market.trainers[0].claim(pid)
    for trainer in market.trainers:
        trainer.withdraw_stake(pid)
    market.aggregator.withdraw_bond(pid)
    if market.owner.project(pid).carry or True:
        try:
            market.owner.withdraw_remainder(pid)
        except ContractRevert as exc:
            assert exc.name == "NothingToWithdraw"
    assert token.balance_of(market.owner.address) == 0


def test_reverts_carry_the_custom_error_name_and_arguments(chain):
    market = make_market(chain, trainers=2)
    pid = start_project(market, market.config())
    with pytest.raises(ContractRevert) as err:
        market.outsider.submit_update(pid, 0, "bafkreix")
    assert err.value.name == "NotTrainer"
    assert err.value.arguments["caller"] == market.outsider.account.address
    assert "merit trainer join" in str(err.value)
    market.trainers[0].submit_update(pid, 0, "bafkreix")
    with pytest.raises(ContractRevert) as err:
        market.trainers[0].submit_update(pid, 0, "bafkreiy")
    assert err.value.name == "AlreadySubmitted"
    with pytest.raises(ContractRevert) as err:
        market.trainers[1].submit_update(pid, 5, "bafkreiy")
    assert err.value.name == "WrongRound"
    assert (err.value.arguments["expected"], err.value.arguments["actual"]) == (0, 5)


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
