"""Compile ``contracts/`` with solc through py-solc-x and write the committed artifacts.

Artifacts (ABI, bytecode, and the hash of the sources they came from) live in
``backend/chain/artifacts/`` so users run Merit without a compiler. ``tests/chain/test_artifacts.py``
fails when they are stale. Regenerate with ``make artifacts`` (``python -m backend.chain.compile --write``).

Settings match ``foundry.toml`` so forge tests, gas benchmarks and the product use one bytecode.

Two builds of the same sources are kept, one per EVM that chains run today:

- ``cancun`` (``artifacts/*.json``): what forge tests; OpenZeppelin's transient-storage reentrancy
  guard (TSTORE/TLOAD) and MCOPY;
- ``shanghai`` (``artifacts/shanghai/*.json``): for chains that stop at Shanghai, Ganache 7 among
  them. The only source change is the guard: ``ReentrancyGuardTransient`` is compiled as OpenZeppelin's
  storage-slot ``ReentrancyGuard`` under the same name, so every contract keeps its code; solc emits
  no Cancun opcode for ``evmVersion: shanghai``. The guard costs more gas there (``bench/gas``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
NODE_MODULES = ROOT / "node_modules"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SOLC_VERSION = "0.8.37"
# The contracts the product deploys; test helpers under contracts/test are forge's business.
# The Marketplace deploys its two delegatecall modules itself; their artifacts are kept for their
# ABIs (merged into the Marketplace's: one address, one ABI) and for the EIP-170 size check.
PRODUCT_CONTRACTS = (
    "Marketplace",
    "MarketplaceViews",
    "MarketplaceSetup",
    "Committee",
    "AggregatorRegistry",
    "TestToken",
)
MODULES = {"Marketplace": ("MarketplaceViews", "MarketplaceSetup")}
# Errors that reach a contract's callers from the contracts it calls (the Marketplace's `start` draws
# through the committee and its registry; the committee's `settle` posts to the Marketplace): listed in
# the caller's ABI too, so that a revert is decoded by name whichever contract raised it.
FOREIGN_ERRORS = {
    "Marketplace": ("Committee", "AggregatorRegistry"),
    "Committee": ("AggregatorRegistry", "Marketplace"),
}
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}},
}
EVM_BUILDS = ("cancun", "shanghai")
"""The EVM versions Merit ships a build for, newest first (deploy takes the first a chain runs)."""
TRANSIENT_GUARD_UNIT = "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol"
STORAGE_GUARD_SHIM = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @dev Merit's Shanghai build: the transient guard's name and modifiers on OpenZeppelin's storage guard.
abstract contract ReentrancyGuardTransient is ReentrancyGuard {}
"""


def build_settings(evm: str = "cancun") -> dict:
    if evm not in EVM_BUILDS:
        raise ValueError(f"no {evm!r} build; builds: {', '.join(EVM_BUILDS)}")
    return {**SETTINGS, "evmVersion": evm}


def artifacts_dir(evm: str = "cancun") -> Path:
    return ARTIFACTS if evm == "cancun" else ARTIFACTS / evm


_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*from\s+)?["\']([^"\']+)["\']', re.M)


def _product_sources() -> list[Path]:
    return sorted(p for p in CONTRACTS.rglob("*.sol") if "test" not in p.relative_to(CONTRACTS).parts)


def _resolve(name: str, importer: str) -> tuple[str, Path]:
    """Source unit name and file for an import: relative to the importer, else OpenZeppelin
    (``@...``) from node_modules, else from the repository root."""
    unit = _normpath(f"{Path(importer).parent.as_posix()}/{name}") if name.startswith(".") else name
    return unit, (NODE_MODULES if unit.startswith("@") else ROOT) / unit


def _normpath(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def collect_sources(evm: str = "cancun") -> dict[str, str]:
    """Every product source plus, transitively, what it imports (OpenZeppelin from node_modules);
    for a pre-Cancun build, the storage guard stands in for the transient one."""
    sources: dict[str, str] = {}
    todo = [(str(p.relative_to(ROOT)), p) for p in _product_sources()]
    while todo:
        unit, path = todo.pop()
        if unit in sources:
            continue
        if not path.exists():
            hint = "run `npm ci`" if unit.startswith("@") else "check the import path"
            raise FileNotFoundError(f"solidity import {unit!r} not found at {path} ({hint})")
        text = STORAGE_GUARD_SHIM if unit == TRANSIENT_GUARD_UNIT and evm != "cancun" else path.read_text()
        sources[unit] = text
        for name in _IMPORT.findall(text):
            todo.append(_resolve(name, unit))
    return dict(sorted(sources.items()))


def source_hash(sources: dict[str, str] | None = None, evm: str = "cancun") -> str:
    sources = collect_sources(evm) if sources is None else sources
    digest = hashlib.sha256(
        json.dumps({"solc": SOLC_VERSION, "settings": build_settings(evm), "sources": sources}, sort_keys=True).encode()
    )
    return digest.hexdigest()


def compile_contracts(evm: str = "cancun") -> dict[str, dict]:
    """Compile with py-solc-x for ``evm``; returns {contract name: artifact dict}."""
    import solcx  # deferred: only `make artifacts` and the staleness test compile; users load artifacts

    sources = collect_sources(evm)
    settings = build_settings(evm)
    standard = {
        "language": "Solidity",
        "sources": {k: {"content": v} for k, v in sources.items()},
        "settings": settings,
    }
    try:
        out = solcx.compile_standard(standard, solc_version=SOLC_VERSION)
    except solcx.exceptions.SolcNotInstalled as exc:
        raise SystemExit(
            f"solc {SOLC_VERSION} is not installed: run `make setup` (or `python scripts/install_solc.py`)"
        ) from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    digest = source_hash(sources, evm)
    artifacts = {}
    for unit, contracts in out["contracts"].items():
        for name, data in contracts.items():
            if name not in PRODUCT_CONTRACTS or unit.startswith("@"):
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": {
                    "version": SOLC_VERSION,
                    "settings": {k: v for k, v in settings.items() if k != "outputSelection"},
                },
                "sourceHash": digest,
            }
    missing = set(PRODUCT_CONTRACTS) - set(artifacts)
    if missing:
        raise SystemExit(f"contracts not found in contracts/: {sorted(missing)}")
    for name, modules in MODULES.items():
        artifacts[name]["abi"] = merged_abi([artifacts[name]["abi"]] + [artifacts[m]["abi"] for m in modules])
    own = {name: artifacts[name]["abi"] for name in FOREIGN_ERRORS}
    for name, sources in FOREIGN_ERRORS.items():
        errors = [
            [item for item in own.get(src, artifacts[src]["abi"]) if item.get("type") == "error"] for src in sources
        ]
        artifacts[name]["abi"] = merged_abi([artifacts[name]["abi"], *errors])
    return artifacts


def merged_abi(abis: list[list[dict]]) -> list[dict]:
    """One ABI for a contract and the modules it delegatecalls: every function, event and error once
    (the first definition wins; fallback and constructor come from the contract itself)."""
    seen: set[tuple] = set()
    out: list[dict] = []
    for k, abi in enumerate(abis):
        for item in abi:
            if k > 0 and item.get("type") in ("constructor", "fallback", "receive"):
                continue
            key = (item.get("type"), item.get("name"), tuple(i.get("type") for i in item.get("inputs", [])))
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def write_artifacts(artifacts: dict[str, dict], evm: str = "cancun") -> None:
    directory = artifacts_dir(evm)
    directory.mkdir(parents=True, exist_ok=True)
    for name, art in artifacts.items():
        path = directory / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(art, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)


def load_artifact(name: str, evm: str = "cancun") -> dict:
    path = artifacts_dir(evm) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no artifact for {name} at {path}: run `make artifacts`")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write backend/chain/artifacts/*.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed artifacts are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = [
            f"{evm}/{n}"
            for evm in EVM_BUILDS
            for n in PRODUCT_CONTRACTS
            if not (artifacts_dir(evm) / f"{n}.json").exists()
            or load_artifact(n, evm)["sourceHash"] != source_hash(evm=evm)
        ]
        if stale:
            print(f"stale artifacts: {stale}; run `make artifacts`", file=sys.stderr)
            return 1
        print("artifacts are up to date")
        return 0
    for evm in EVM_BUILDS:
        artifacts = compile_contracts(evm)
        if args.write:
            write_artifacts(artifacts, evm)
        for name, art in artifacts.items():
            print(
                f"{evm} {name}: {len(art['bytecode']) // 2 - 1} bytes of init code, "
                f"{len(art['deployedBytecode']) // 2 - 1} deployed"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
