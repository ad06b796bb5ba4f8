"""The committed ABI and bytecode must be what contracts/ compiles to today."""
from backend.chain.compile import PRODUCT_CONTRACTS, compile_contracts, load_artifact, source_hash


def test_committed_artifacts_match_a_fresh_compile():
    fresh = compile_contracts()
    digest = source_hash()
    for name in PRODUCT_CONTRACTS:
        committed = load_artifact(name)
        assert committed["sourceHash"] == digest, f"{name}: artifacts are stale, run `make artifacts`"
        assert committed["abi"] == fresh[name]["abi"], f"{name}: ABI differs, run `make artifacts`"
        assert committed["bytecode"] == fresh[name]["bytecode"], f"{name}: bytecode differs, run `make artifacts`"


def test_python_enums_mirror_the_solidity_enums():
    """Revert messages name enum members; the names must be the contract's, in its order."""
    import re
    from pathlib import Path

    from backend.chain.types import SOLIDITY_ENUMS

    source = (Path(__file__).resolve().parents[2] / "contracts" / "Marketplace.sol").read_text()
    for internal, enum in SOLIDITY_ENUMS.items():
        name = internal.split(".")[-1]
        body = re.search(rf"enum {name} \{{([^}}]*)\}}", source).group(1)
        members = [m.strip() for m in body.split(",") if m.strip()]
        assert [e.label for e in enum] == members, name
