"""A trainer takes part in a round through the REST API: the trainer client fetches the global
model from the API, trains, uploads the signed update to the API and commits its CID on-chain."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from backend.errors import ConfigError, IntegrityError
from backend.trainer.api_client import ApiClient
from backend.trainer.client import commit_store, fetch_spec, train_round

pytestmark = pytest.mark.timeout(120)


def random_digits(seed: int, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, size=n)


def test_train_round_through_the_api(world):
    pid, market = world["pid"], world["market"]
    alice = market.trainers[0]
    X, y = random_digits(0)
    with ApiClient(world["url"], private_key=alice.account) as api:
        cid = train_round(alice, pid, X, y, store=world["store"], api=api, log=lambda *_: None)
        # committed on-chain, nothing public yet; the salt that will reveal it is on disk
        assert market.owner.submitters(pid, 0) == [alice.account.address]
        assert market.owner.submissions(pid, 0) == []
        pending = commit_store(alice).get(pid, 0)
        assert pending.cid == cid and len(pending.salt) == 32
        assert world["store"].has(cid)
        assert api.round(pid, 0)["submissions"] == 1


def test_a_trainer_with_no_storage_at_all_takes_part_through_the_api(world):
    """Spec, model and upload all go through the API, each checked against the chain."""
    pid, market = world["pid"], world["market"]
    bob = market.trainers[1]
    X, y = random_digits(1)
    with ApiClient(world["url"], private_key=bob.account) as api:
        spec_cid = bob.config(pid).specCid
        data, cid = api.spec(pid, expected_cid=spec_cid)
        assert cid == spec_cid and data == world["store"].get_bytes(spec_cid)
        with pytest.raises(IntegrityError, match="the chain says"):
            api.spec(pid, expected_cid=bob.config(pid).initialModelCid)
        cid = train_round(bob, pid, X, y, store=None, api=api, log=lambda *_: None)
    assert bob.account.address in market.owner.submitters(pid, 0)
    assert commit_store(bob).get(pid, 0).cid == cid


def test_a_spec_that_does_not_hash_to_its_cid_is_refused(world):
    pid, market = world["pid"], world["market"]
    spec_cid = market.owner.config(pid).specCid
    real = world["store"].get_bytes(spec_cid)
    forged = real.replace(b'"lr"', b'"lr" ', 1)
    assert forged != real

    def lying_server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=forged, headers={"X-Merit-CID": spec_cid})

    with ApiClient("http://api.test", transport=httpx.MockTransport(lying_server)) as api:
        with pytest.raises(IntegrityError, match="model spec bytes from the API do not match CID"):
            api.spec(pid, expected_cid=spec_cid)
    with pytest.raises(ConfigError, match="needs content storage or a Merit API"):
        fetch_spec(market.owner, pid)


def test_an_oversized_spec_is_refused_before_it_fills_memory():
    sent = []

    def flood(request: httpx.Request) -> httpx.Response:
        def body():
            for _ in range(64):  # 4 MiB in 64 KiB chunks, more than the 1 MiB a spec may be
                sent.append(1)
                yield b"x" * 65536

        return httpx.Response(
            200, content=body(), headers={"X-Merit-CID": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}
        )

    with ApiClient("http://api.test", transport=httpx.MockTransport(flood)) as api:
        with pytest.raises(IntegrityError, match="more than the 1048576 bytes allowed"):
            api.spec(1)
    assert len(sent) <= 17  # reading stopped just past the cap

    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{}", headers={"Content-Length": str(5 << 20), "X-Merit-CID": "x"})

    with ApiClient("http://api.test", transport=httpx.MockTransport(declared)) as api:
        with pytest.raises(IntegrityError, match="offers a model spec of 5242880 bytes"):
            api.spec(1)
