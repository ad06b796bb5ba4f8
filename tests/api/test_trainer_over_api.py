"""A trainer takes part in a round through the REST API: the trainer client fetches the global
model from the API, trains, uploads the signed update to the API and commits its CID on-chain."""
from __future__ import annotations

import numpy as np
import pytest

from backend.trainer.api_client import ApiClient
from backend.trainer.client import train_round

pytestmark = pytest.mark.timeout(120)


def test_train_round_through_the_api(world):
    pid, market = world["pid"], world["market"]
    alice = market.trainers[0]
    rng = np.random.default_rng(0)
    X = rng.random((16, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=16)
    with ApiClient(world["url"], private_key=alice.account) as api:
        cid = train_round(alice, pid, X, y, store=world["store"], api=api, log=lambda *_: None)
        assert market.owner.submissions(pid, 0) == [(alice.account.address, cid)]
        assert world["store"].has(cid)
        assert api.round(pid, 0)["submissions"] == 1
