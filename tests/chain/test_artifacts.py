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
