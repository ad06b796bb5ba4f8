"""The API on the embedded chain with a deployed Marketplace, real joined trainers, the embedded
store and a real model, served by uvicorn on loopback. Trainers upload through the API client,
then commit the CID on-chain, as the protocol says."""

from __future__ import annotations

import httpx
import pytest
import torch

from backend.models import save_weights
from backend.storage import compute_cid
from backend.trainer.api_client import ApiClient, ApiRequestError
from tests.chain.helpers import advance_past

pytestmark = pytest.mark.timeout(180)


def update_for(world, trainer, scale=0.001, **metadata):
    state = {k: torch.randn_like(v) * scale for k, v in world["model"].state_dict().items()}
    meta = {
        "project": world["pid"],
        "round": 0,
        "trainer": trainer.account.address,
        "base": world["initial"],
        **metadata,
    }
    return save_weights(state, meta)


def test_reads_come_from_the_chain(world):
    pid, market = world["pid"], world["market"]
    with ApiClient(world["url"]) as client:
        project = client.project(pid)
        assert project["status"] == "Running" and project["trainer_count"] == 2 and project["stake_wei"] == str(10**18)
        assert project["global_model_cid"] == world["initial"]
        assert client.round(pid, 0)["phase"] == "Open" and client.round(pid, 1)["phase"] == "Pending"
        data, cid = client.model(pid, expected_cid=market.owner.global_model_cid(pid) or world["initial"])
        assert cid == world["initial"] and compute_cid(data) == cid
        rewards = client.rewards(pid, market.trainers[0].account.address)
        assert rewards["joined"] and rewards["stake_wei"] == str(10**18) and rewards["claimable_wei"] == "0"
        assert client.rewards(pid, market.outsider.account.address)["joined"] is False


def test_upload_commit_and_refusals(world):
    pid, market, url = world["pid"], world["market"], world["url"]
    alice, bob, carol = market.trainers  # carol has not joined
    with ApiClient(url, private_key=alice.account.key) as client:
        cid = client.upload_update(pid, 0, update_for(world, alice))
        alice.commit_update(pid, 0, cid, b"\x01" * 32)
        with pytest.raises(ApiRequestError) as err:
            client.upload_update(pid, 0, update_for(world, alice))
        assert (err.value.status, err.value.error) == (409, "duplicate_update")
    assert world["store"].has(cid)
    # bob committed on-chain without the API: the API treats him as having submitted
    bob.commit_update(pid, 0, cid, b"\x02" * 32)
    with ApiClient(url, private_key=bob.account.key) as client, pytest.raises(ApiRequestError) as err:
        client.upload_update(pid, 0, update_for(world, bob))
    assert (err.value.status, err.value.error) == (409, "duplicate_update")
    with ApiClient(url, private_key=carol.account.key) as client, pytest.raises(ApiRequestError) as err:
        client.upload_update(pid, 0, update_for(world, carol))
    assert (err.value.status, err.value.error) == (403, "not_joined")
    assert httpx.get(f"{url}/v1/projects/{pid}/rounds/0").json()["submissions"] == 2


def test_round_past_its_deadline_is_closed(world):
    pid, market, url = world["pid"], world["market"], world["url"]
    carol = market.trainers[2]
    carol.join(pid)  # joining is allowed while round 0 is Open
    deadline = market.owner.round(pid, 0).submission_deadline
    with market.chain.lock:
        advance_past(market.chain, deadline)
    assert httpx.get(f"{url}/v1/projects/{pid}/rounds/0").json()["phase"] == "Revealing"
    with ApiClient(url, private_key=carol.account.key) as client, pytest.raises(ApiRequestError) as err:
        client.upload_update(pid, 0, update_for(world, carol))
    assert (err.value.status, err.value.error) == (409, "round_not_open")
