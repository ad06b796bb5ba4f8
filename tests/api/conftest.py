from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from eth_account import Account
from safetensors.numpy import save

from backend import signing
from backend.api import create_app
from backend.api.limits import ApiLimits
from backend.config import Settings
from backend.storage import open_store
from tests.api.fakes import FakeChain, store_logreg_spec
from tests.api.server import serve

LAYOUT = {"fc1.weight": (16, 12), "fc1.bias": (16,), "fc2.weight": (4, 16), "fc2.bias": (4,)}
CAP = 256 * 1024


def tensors(scale: float = 0.01, seed: int = 0, layout=LAYOUT, dtype=np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.standard_normal(shape) * scale).astype(dtype) for name, shape in layout.items()}


def update_bytes(seed: int = 1, metadata: dict[str, str] | None = None, **kw) -> bytes:
    return save(tensors(seed=seed, **kw), metadata=metadata)


def generous_limits(**overrides) -> ApiLimits:
    """Rate limits out of the way, for servers whose tests are not about them (tests/api/test_hostile.py
    runs the defaults)."""
    return ApiLimits(
        **{
            **dict(
                writes_per_minute=6000,
                write_burst=1000,
                ip_writes_per_minute=6000,
                ip_write_burst=1000,
                reads_per_minute=60000,
                read_burst=10000,
            ),
            **overrides,
        }
    )


def signed(url: str, key, path: str, body: bytes = b"", **kw) -> dict[str, str]:
    """Headers that sign a POST of ``body`` to ``path`` at the server ``url`` over a FakeChain market."""
    audience = signing.Audience(FakeChain.chain_id, FakeChain.market_address, url)
    return signing.sign_request(key, audience, "POST", path, body, **kw)


@dataclass
class Market:
    url: str
    chain: FakeChain
    store: object  # the embedded store
    home: object
    model_cid: str
    trainer: object  # eth_account LocalAccount, joined to project 1
    outsider: object  # not joined


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Market:
    """A real uvicorn server on loopback over a fake chain: project 1, round 0 Open."""
    home = tmp_path_factory.mktemp("merit-home")
    store = open_store("embedded", home=home)
    model_cid = store.add_bytes(save(tensors(scale=0.1, seed=0)))
    chain = FakeChain()
    chain.add_project(1, model_cid, rounds=4, open_round=1)
    trainer, outsider = Account.create(), Account.create()
    chain.join(1, trainer.address)
    settings = Settings(home=home, chain="embedded", ipfs="embedded", max_update_bytes=CAP)
    app = create_app(settings, chain_view=chain, store=store, limits=generous_limits(max_body_bytes=CAP))
    with serve(app) as url:
        yield Market(url, chain, store, home, model_cid, trainer, outsider)


def stored_blocks(market: Market) -> set[str]:
    return {p.name for p in (market.home / "ipfs" / "blocks").rglob("*.data")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The embedded chain with a deployed Marketplace, a Running project (logistic regression on
    MNIST shapes) with two joined trainers, the embedded store, and the API on loopback."""
    from backend.api.chain_connect import MarketChainView
    from backend.chain.connection import connect
    from tests.chain.helpers import make_market, start_project

    home = tmp_path_factory.mktemp("merit-home")
    store = open_store("embedded", home=home)
    model, initial, spec_cid = store_logreg_spec(store)
    market = make_market(connect("embedded"), trainers=3)
    pid = start_project(market, market.config(specCid=spec_cid, initialModelCid=initial, minTrainers=1), joiners=2)
    app = create_app(
        Settings(home=home), chain_view=MarketChainView(market.owner), store=store, limits=generous_limits()
    )
    with serve(app) as url:
        yield {"url": url, "market": market, "pid": pid, "store": store, "initial": initial, "model": model}
