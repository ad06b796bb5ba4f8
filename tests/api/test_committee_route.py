"""GET /v1/projects/{id}/rounds/{r}/committee: members, their posts, the consensus and penalties."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from backend.api import create_app
from backend.api.chain_view import CommitteeInfo, MemberPostInfo
from backend.config import Settings
from backend.storage import open_store
from tests.api.conftest import generous_limits
from tests.api.fakes import FakeChain
from tests.api.server import serve

HONEST = ["0x" + "a1" * 20, "0x" + "a2" * 20]
LIAR = "0x" + "b1" * 20
BIG = 2**200  # a liar may post any uint256: it must come back exact, as a string


def _post(member, weights, flags, penalty=0, distance=None, disagreements=None):
    return MemberPostInfo(member, True, weights, flags, "bafymodel", "bafyreport", penalty, distance, disagreements)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("merit-home")
    chain = FakeChain()
    chain.add_project(1, "bafymodel0", rounds=3, open_round=2)
    chain.rounds[(1, 0)] = replace(chain.rounds[(1, 0)], submissions=3)
    chain.committees[(1, 0)] = CommitteeInfo(
        project_id=1,
        round=0,
        members=[
            _post(HONEST[0], [600_000_000, 400_000_000, 0], 0b100),
            _post(LIAR, [0, 0, BIG], 0b011, penalty=10**17, distance=20_000, disagreements=3),
            _post(HONEST[1], [600_000_001, 399_999_999, 0], 0b100),
        ],
        consensus_weights=[600_000_000, 399_999_999, 0],
        consensus_flags=0b100,
        consensus_model_cid="bafymodel",
    )
    chain.committees[(1, 1)] = CommitteeInfo(
        1,
        1,
        [MemberPostInfo(m, False, None, None, None, None, 0, None, None) for m in (*HONEST, LIAR)],
        None,
        None,
        None,
    )
    app = create_app(
        Settings(home=home), chain_view=chain, store=open_store("embedded", home=home), limits=generous_limits()
    )
    with serve(app) as url:
        yield url


def test_a_settled_round_shows_every_post_the_consensus_and_the_penalty(api):
    body = httpx.get(api + "/v1/projects/1/rounds/0/committee").json()
    assert [m["member"] for m in body["members"]] == [HONEST[0], LIAR, HONEST[1]]
    liar = body["members"][1]
    assert liar["weights"] == ["0", "0", str(BIG)]
    assert liar["flagged"] == [0, 1]
    assert (liar["penalty_wei"], liar["share_distance_bps"], liar["flag_disagreements"]) == (str(10**17), 20_000, 3)
    assert body["members"][0]["penalty_wei"] == "0" and body["members"][0]["flagged"] == [2]
    assert body["consensus"] == {"weights": ["600000000", "399999999", "0"], "flagged": [2], "model_cid": "bafymodel"}


def test_before_the_reveals_the_members_are_listed_with_nothing_posted(api):
    body = httpx.get(api + "/v1/projects/1/rounds/1/committee").json()
    assert body["consensus"] is None
    assert all(not m["revealed"] and m["weights"] is None and m["flagged"] is None for m in body["members"])


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/v1/projects/1/rounds/9/committee", 404, "round_not_found"),
        ("/v1/projects/7/rounds/0/committee", 404, "project_not_found"),
        ("/v1/projects/1/rounds/2/committee", 404, "committee_unavailable"),
        ("/v1/projects/1/rounds/-1/committee", 422, None),
    ],
)
def test_unknown_rounds_and_projects_get_a_named_error(api, path, status, code):
    response = httpx.get(api + path)
    assert response.status_code == status
    if code:
        assert response.json()["error"] == code


def test_the_route_is_in_the_openapi_contract(api):
    paths = httpx.get(api + "/openapi.json").json()["paths"]
    assert "/v1/projects/{project_id}/rounds/{round}/committee" in paths


def test_a_real_market_shows_its_drawn_committee(world):
    """On the embedded chain: a committee of one (the registered aggregator), nothing revealed yet."""
    body = httpx.get(f"{world['url']}/v1/projects/{world['pid']}/rounds/0/committee").json()
    assert [m["member"] for m in body["members"]] == [world["market"].aggregator.account.address]
    assert body["members"][0]["revealed"] is False and body["members"][0]["penalty_wei"] == "0"
    assert body["consensus"] is None
