"""The committee replica (aggregator/committee.py): its rules on hand-made cases, and bit for bit the
same answers as contracts/committee/Consensus.sol on random vectors, run on the embedded EVM."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from aggregator import committee as c


@dataclass(frozen=True)
class Post:  # the fields of backend.chain.types.MemberPost the replica reads
    member: str
    weights: list[int]
    flags: int
    model_cid: str = "bafy-model"
    report_cid: str = "bafy-report"


def test_one_liar_moves_neither_the_median_nor_the_flags():
    honest_a = Post("0xa", [500_000_000, 500_000_000, 0], 0b100)
    honest_b = Post("0xb", [500_000_001, 499_999_999, 0], 0b100)
    liar = Post("0xc", [0, 0, 10**9], 0b011, model_cid="bafy-lie")
    agreed = c.consensus([honest_a, liar, honest_b], 3, previous_model="bafy-prev")
    assert agreed.flags == 0b100
    assert agreed.weights == [500_000_000, 499_999_999, 0]
    assert (agreed.model_cid, agreed.report_cid) == ("bafy-model", "bafy-report")
    by_member = {d.member: d for d in c.deviations([honest_a, liar, honest_b], agreed)}
    assert by_member["0xc"].flag_disagreements == 3 and by_member["0xc"].share_distance_bps >= 19_999
    assert by_member["0xc"].penalised
    assert not by_member["0xa"].penalised and not by_member["0xb"].penalised
    assert by_member["0xa"].share_distance_bps == 1  # off by 1 wei of 1e9 shares: rounded up to a basis point


def test_the_model_cid_needs_a_strict_majority_else_the_previous_model_stays():
    assert c.majority_cid(["x", "y", "x"], "prev") == "x"
    assert c.majority_cid(["x", "y", "z"], "prev") == "prev"
    assert c.majority_cid(["x"], "prev") == "x"
    assert c.majority_cid([], "prev") == "prev"


def test_the_tolerance_separates_float_noise_from_a_shifted_share():
    edge = c.SHARE_TOLERANCE_BPS * c.L1_PER_BPS
    assert not c.deviates(edge, c.FLAG_TOLERANCE)
    assert c.deviates(edge + 1, 0)  # compared exactly, not after rounding to basis points
    assert c.deviates(0, c.FLAG_TOLERANCE + 1)
    assert c.Deviation("0xm", edge + 1, 0).share_distance_bps == c.SHARE_TOLERANCE_BPS + 1  # reported rounded up


def test_absent_members_count_as_not_flagging_and_are_penalised():
    a = Post("0xa", [3, 1], 0b01)
    b = Post("0xb", [1, 3], 0b01, model_cid="bafy-other")
    agreed = c.consensus([a, b], 2, "bafy-prev", seats=3)
    assert agreed.flags == 0b01  # two of three seats flag trainer 0
    assert agreed.weights == [0, 1]  # lower middle of (1, 3) for trainer 1; trainer 0 is flagged
    assert (agreed.model_cid, agreed.report_cid) == ("bafy-prev", "")  # one vote each of three seats
    alone = c.consensus([a], 2, "bafy-prev", seats=3)
    assert alone.flags == 0 and alone.model_cid == "bafy-prev"  # one flag of three seats is no majority
    absent = c.deviations([a, b], agreed, members=["0xa", "0xB", "0xc"], n=2)[-1]
    assert (absent.member, absent.revealed, absent.penalised) == ("0xc", False, True)
    assert (absent.share_distance_bps, absent.flag_disagreements) == (c.ABSENT_DISTANCE_BPS, 2)
    assert len(c.deviations([a, b], agreed, members=["0xA", "0xb"], n=2)) == 2  # addresses in any case


@pytest.mark.parametrize("k", [0, 2, 4, 8])
def test_a_committee_of_even_or_impossible_size_is_refused(k):
    with pytest.raises(c.CommitteeError, match="odd number"):
        c.settle([[1, 2]] * k, [0] * k, 2)


def test_a_post_with_the_wrong_number_of_weights_is_named():
    with pytest.raises(c.CommitteeError, match="member 1 posted 1 weights for a round with 2"):
        c.settle([[1, 2], [1], [1, 2]], [0, 0, 0], 2)


def test_zero_posts_are_at_distance_zero_from_a_zero_consensus():
    assert c.distance([0, 0], 0, [0, 0], 0) == (0, 0)
    # a member that pays nobody against a consensus that pays someone is as far as can be
    assert c.distance([0, 0], 0, [1, 3], 0) == (10**9, 0)


# --- bit for bit against the Solidity library -------------------------------------------------------

HARNESS = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import {Consensus} from "contracts/committee/Consensus.sol";
contract ConsensusReplicaHarness {
    function settle(uint256[][] memory w, uint256[] memory f, uint256 n) external pure returns (uint256[] memory, uint256) {
        return Consensus.settle(w, f, n);
    }
    function distance(uint256[] memory p, uint256 pf, uint256[] memory m, uint256 mf, uint256 scale)
        external pure returns (uint256, uint256) {
        return Consensus.distance(p, pf, m, mf, scale);
    }
}
"""


@pytest.fixture(scope="module")
def harness():
    import solcx
    from web3 import Web3

    from backend.chain.compile import CONTRACTS, ROOT, SETTINGS, SOLC_VERSION
    from backend.chain.connection import connect, dev_account

    sources = {
        "contracts/committee/Consensus.sol": (CONTRACTS / "committee" / "Consensus.sol").read_text(),
        "Harness.sol": HARNESS,
    }
    assert ROOT.exists()
    out = solcx.compile_standard(
        {"language": "Solidity", "sources": {k: {"content": v} for k, v in sources.items()}, "settings": SETTINGS},
        solc_version=SOLC_VERSION,
    )
    art = out["contracts"]["Harness.sol"]["ConsensusReplicaHarness"]
    chain = connect("embedded")
    w3: Web3 = chain.w3
    deployer = dev_account(0)
    factory = w3.eth.contract(abi=art["abi"], bytecode="0x" + art["evm"]["bytecode"]["object"])
    tx_hash = factory.constructor().transact({"from": deployer.address})
    address = w3.eth.wait_for_transaction_receipt(tx_hash).contractAddress
    return w3.eth.contract(address=address, abi=art["abi"])


def _random_committee(rng: random.Random):
    k = rng.choice([1, 3, 5, 7])
    n = rng.choice([1, 2, 3, 8, 16, 40, 64, 255, 256])
    honest = [rng.randrange(0, 10**9) for _ in range(n)]
    weights, flags = [], []
    for _ in range(k):
        style = rng.random()
        if style < 0.4:  # an honest member: the same vector up to float noise
            weights.append([max(0, w + rng.randint(-3, 3)) for w in honest])
        elif style < 0.6:  # a liar: everything to one trainer
            lone = [0] * n
            lone[rng.randrange(n)] = 10**9
            weights.append(lone)
        elif style < 0.7:  # pays nobody
            weights.append([0] * n)
        else:  # anything at all, up to values far above the scale
            weights.append([rng.randrange(0, 10 ** rng.randint(1, 18)) for _ in range(n)])
        flags.append(rng.getrandbits(n) if rng.random() < 0.7 else rng.getrandbits(256))
    return k, n, weights, flags


def test_the_replica_settles_and_measures_exactly_as_the_contract(harness):
    rng = random.Random(20261202)
    for _ in range(60):
        k, n, weights, flags = _random_committee(rng)
        median, majority = c.settle(weights, flags, n)
        on_chain = harness.functions.settle(weights, flags, n).call()
        assert (list(on_chain[0]), on_chain[1]) == (median, majority), (k, n)
        scale = rng.choice([c.WEIGHT_SCALE, c.BPS])
        for m in range(k):
            expected = harness.functions.distance(weights[m], flags[m], median, majority, scale).call()
            assert tuple(expected) == c.distance(weights[m], flags[m], median, majority, scale), (k, n, m)


def test_weight_on_a_trainer_the_member_flags_is_judged_as_zero():
    """Committee._judge: flagging a trainer and weighting it are not counted twice."""
    a = Post("0xa", [500, 500, 0], 0b100)
    b = Post("0xb", [500, 500, 7_000], 0b100)  # weight on the trainer it flags: never paid
    agreed = c.consensus([a, b, a], 3, "bafy-prev")
    assert all(not d.penalised and d.l1 == 0 for d in c.deviations([a, b, a], agreed))
    assert c.judged_weights([1, 2, 3], 0b101) == [0, 2, 0]
