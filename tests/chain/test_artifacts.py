"""The committed ABI and bytecode must be what contracts/ compiles to today."""

import pytest

from backend.chain.compile import EVM_BUILDS, PRODUCT_CONTRACTS, compile_contracts, load_artifact, source_hash


@pytest.mark.parametrize("evm", EVM_BUILDS)
def test_committed_artifacts_match_a_fresh_compile(evm):
    fresh = compile_contracts(evm)
    digest = source_hash(evm=evm)
    for name in PRODUCT_CONTRACTS:
        committed = load_artifact(name, evm)
        assert committed["sourceHash"] == digest, f"{evm} {name}: artifacts are stale, run `make artifacts`"
        assert committed["abi"] == fresh[name]["abi"], f"{evm} {name}: ABI differs, run `make artifacts`"
        assert committed["bytecode"] == fresh[name]["bytecode"], f"{evm} {name}: bytecode differs, run `make artifacts`"


def test_the_builds_differ_only_where_the_evm_does():
    """Same ABI everywhere (a client attaches to either); no Cancun opcode in the Shanghai build's code."""
    from backend.chain.opcodes import opcodes_in

    for name in PRODUCT_CONTRACTS:
        cancun, shanghai = load_artifact(name, "cancun"), load_artifact(name, "shanghai")
        assert cancun["abi"] == shanghai["abi"], name
        # runtime code only: init code carries the modules' creation code (and their metadata) as data
        used = opcodes_in(shanghai["deployedBytecode"])
        assert not used & {"TLOAD", "TSTORE", "MCOPY", "BLOBHASH", "BLOBBASEFEE"}, (name, used)
    assert {"TLOAD", "TSTORE"} <= opcodes_in(load_artifact("Marketplace", "cancun")["deployedBytecode"])


def test_python_enums_mirror_the_solidity_enums():
    """Revert messages name enum members; the names must be the contract's, in its order."""
    import re
    from pathlib import Path

    from backend.chain.types import SOLIDITY_ENUMS

    source = (Path(__file__).resolve().parents[2] / "contracts" / "MarketplaceStorage.sol").read_text()
    for internal, enum in SOLIDITY_ENUMS.items():
        name = internal.split(".")[-1]
        body = re.search(rf"enum {name} \{{([^}}]*)\}}", source).group(1)
        members = [m.strip() for m in body.split(",") if m.strip()]
        assert [e.label for e in enum] == members, name


EIP170_LIMIT = 24_576  # bytes of runtime code a contract may have (EIP-170)


def test_every_deployed_contract_fits_eip170_with_margin():
    """The Marketplace and the two modules it deploys must stay deployable on any EVM chain; keep 1 KB
    of margin so that a small change does not tip one over."""
    for name in PRODUCT_CONTRACTS:
        runtime = (len(load_artifact(name)["deployedBytecode"]) - 2) // 2
        assert runtime <= EIP170_LIMIT - 1024, f"{name}: {runtime} bytes of runtime code (EIP-170: {EIP170_LIMIT})"


def test_the_deployed_market_and_its_modules_fit_eip170(chain):
    """What is actually deployed (the modules the constructor creates included) is within EIP-170."""
    from backend.chain.client import MarketClient
    from backend.chain.connection import dev_account

    market = MarketClient.deploy(chain, dev_account(0))
    for address in (market.address, market._call("VIEWS"), market._call("SETUP")):
        code = chain.w3.eth.get_code(address)
        assert 0 < len(code) <= EIP170_LIMIT, f"{address}: {len(code)} bytes"
