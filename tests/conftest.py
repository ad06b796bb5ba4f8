"""Shared fixtures. Tests that need a real service start it and stop it themselves."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own MERIT_HOME so no test sees another's state or the user's."""
    monkeypatch.setenv("MERIT_HOME", str(tmp_path / "merit-home"))
    for var in ("MERIT_CHAIN", "MERIT_IPFS", "MERIT_MARKET", "MERIT_PRIVATE_KEY", "MERIT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    from backend.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def anvil_node():
    """A fresh Anvil on a free port, stopped after the test."""
    from backend.chain.anvil import AnvilProcess

    with AnvilProcess() as node:
        yield node


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request):
    """The same test on the in-process chain and on a real Anvil node."""
    from backend.chain.connection import connect

    if request.param == "embedded":
        yield connect("embedded")
    else:
        from backend.chain.anvil import AnvilProcess

        with AnvilProcess() as node:
            yield connect(node.url)
