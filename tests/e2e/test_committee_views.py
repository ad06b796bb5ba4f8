"""What the stack shows of a committee, over a fake committee client: `merit verify`'s check (each
member's distance from the recomputed post, the settled consensus and the penalties against the rule),
`merit project status`'s table, the demo's per-round record and the API's view."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.verify import check_committee

HONEST = ["0xA1", "0xA2"]
LIAR = "0xB1"
RECOMPUTED = ([600_000_000, 400_000_000, 0], 0b100)  # what re-execution gives for the round


@dataclass(frozen=True)
class Post:  # backend.chain.types.MemberPost
    member: str
    weights: list[int]
    flags: int
    model_cid: str = "bafy-new"
    report_cid: str = "bafy-report"


@dataclass(frozen=True)
class Penalty:  # backend.chain.types.MemberPenalty
    member: str
    amount: int
    share_distance_bps: int
    flag_disagreements: int


@dataclass
class Round:  # the round_history record fields the check reads
    round: int = 0
    submissions: tuple = (("0xt0", "c0"), ("0xt1", "c1"), ("0xt2", "c2"))
    base_model_cid: str = "bafy-prev"


class FakeCommittee:
    def __init__(self, posts, consensus, penalised, members=(*HONEST, LIAR)):
        self._posts, self._consensus, self._penalised, self._members = posts, consensus, penalised, list(members)

    def members_of(self, pid):
        return self._members

    def posts(self, pid, round_):
        return self._posts

    def consensus(self, pid, round_):
        return self._consensus

    def penalties(self, pid, round_):
        return [Penalty(m, 10**17, 20_000, 3) for m in self._penalised]


def _honest_and_liar():
    return [
        Post(HONEST[0], *RECOMPUTED),
        Post(LIAR, [0, 0, 10**9], 0b011, model_cid="bafy-lie"),
        Post(HONEST[1], [600_000_001, 399_999_999, 0], 0b100),
    ]


def test_a_correct_settlement_passes_and_names_the_liar():
    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    problems, rows = check_committee(FakeCommittee(_honest_and_liar(), consensus, [LIAR]), 1, Round(), *RECOMPUTED)
    assert problems == []
    by = {r["address"]: r for r in rows}
    assert by[LIAR]["honest"] is False and by[LIAR]["penalised"] and by[LIAR]["flag_disagreements"] == 3
    assert by[HONEST[0]]["honest"] and by[HONEST[0]]["share_distance_bps"] == 0
    assert by[HONEST[1]]["honest"] and not by[HONEST[1]]["penalised"]


def test_a_consensus_other_than_the_median_is_caught():
    wrong = Post("0xcommittee", [0, 0, 10**9], 0b011, "bafy-lie")
    problems, _ = check_committee(FakeCommittee(_honest_and_liar(), wrong, [LIAR]), 1, Round(), *RECOMPUTED)
    assert problems == ["the consensus settled on-chain is not the median and majority of the revealed posts"]


def test_penalties_that_miss_the_liar_or_hit_the_honest_are_caught():
    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    problems, _ = check_committee(FakeCommittee(_honest_and_liar(), consensus, [HONEST[0]]), 1, Round(), *RECOMPUTED)
    assert len(problems) == 1 and "penalised ['0xa1'] but the rule penalises ['0xb1']" in problems[0]


def test_a_member_that_never_revealed_must_be_penalised():
    posts = [Post(HONEST[0], *RECOMPUTED), Post(HONEST[1], *RECOMPUTED)]
    consensus = Post("0xcommittee", *RECOMPUTED, "bafy-new")
    problems, rows = check_committee(FakeCommittee(posts, consensus, []), 1, Round(), *RECOMPUTED)
    assert "the rule penalises ['0xb1']" in problems[0]
    assert [r["revealed"] for r in rows] == [True, True, False]
    assert check_committee(FakeCommittee(posts, consensus, [LIAR]), 1, Round(), *RECOMPUTED)[0] == []


def test_project_status_shows_each_member_its_penalty_and_the_consensus():
    from rich.console import Console

    from backend.cli.project import committee_table

    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    console = Console(record=True, width=200)
    console.print(committee_table(FakeCommittee(_honest_and_liar()[:2], consensus, [LIAR]), 1, 0))
    lines = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "│" in line}
    assert "#0: 60%" in lines[HONEST[0]] and "│ 2 " in lines[HONEST[0]]
    assert "#2: 100%" in lines[LIAR] and "0,1" in lines[LIAR] and "20000 bps, 3 flags" in lines[LIAR]
    assert "│ no " in lines[HONEST[1]]  # never revealed
    assert "consensus" in lines and "#0: 60%" in lines["consensus"]


def test_the_demo_records_each_member_with_its_role_post_and_penalty():
    from backend.simulate.demo import committee_record

    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    roles = {HONEST[0].lower(): "honest", HONEST[1].lower(): "honest", LIAR.lower(): "dishonest"}
    record = committee_record(FakeCommittee(_honest_and_liar()[:2], consensus, [LIAR]), 1, 0, roles)
    by = {m["address"]: m for m in record["aggregators"]}
    assert [m["address"] for m in record["aggregators"]] == [*HONEST, LIAR]
    assert by[LIAR] == {
        "address": LIAR,
        "role": "dishonest",
        "revealed": True,
        "weights": [0, 0, 10**9],
        "flags": 0b011,
        "model_cid": "bafy-lie",
        "penalty_wei": 10**17,
    }
    assert by[HONEST[1]]["revealed"] is False and by[HONEST[1]]["penalty_wei"] == 0
    assert record["consensus"] == {"weights": [600_000_000, 399_999_999, 0], "flags": 0b100, "model_cid": "bafy-new"}


def test_the_api_view_maps_the_committee_client():
    from backend.api.chain_connect import committee_info

    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    info = committee_info(FakeCommittee(_honest_and_liar()[:2], consensus, [LIAR]), 1, 0)
    assert [m.member for m in info.members] == [*HONEST, LIAR]
    liar = info.members[2]
    assert (liar.weights, liar.flags, liar.penalty_wei, liar.share_distance_bps) == (
        [0, 0, 10**9],
        0b011,
        10**17,
        20_000,
    )
    assert not info.members[1].revealed and info.members[1].weights is None
    assert (info.consensus_weights, info.consensus_flags) == ([600_000_000, 399_999_999, 0], 0b100)


def test_merit_verify_prints_one_line_per_member():
    from rich.console import Console

    from backend.cli.toplevel import _print_members

    consensus = Post("0xcommittee", [600_000_000, 399_999_999, 0], 0b100, "bafy-new")
    _, rows = check_committee(FakeCommittee(_honest_and_liar()[:2], consensus, [LIAR]), 1, Round(), *RECOMPUTED)
    console = Console(record=True, width=200)
    _print_members(console, rows)
    lines = console.export_text().splitlines()
    assert len(lines) == 3
    assert HONEST[0] in lines[0] and "0 bps of shares and 0 flags" in lines[0] and "(honest); not penalised" in lines[0]
    assert LIAR in lines[2] and "DEVIATES" in lines[2] and "; penalised" in lines[2]
    assert HONEST[1] in lines[1] and "never revealed" in lines[1] and "the rule says otherwise" in lines[1]
