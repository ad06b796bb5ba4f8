"""MarketClient: a typed Python client for every function and event of ``Marketplace``.

    chain = connect("embedded")
    market = MarketClient.deploy(chain, dev_account(0))
    pid = market.create_project(config)
    market.as_account(trainer).join(pid)

Writes sign locally (a ``LocalAccount``), take nonces from a local manager, retry transient RPC
failures, and raise ``ContractRevert`` (with the custom error's name and arguments) on a revert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rlp
from eth_abi import encode as abi_encode
from eth_utils import keccak
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from backend.chain.compile import EVM_BUILDS, load_artifact
from backend.chain.connection import Chain
from backend.chain.transactions import ContractRevert, ErrorDecoder, Receipt, Transactor, with_retries
from backend.chain.types import ETH, Phase, ProjectConfig, ProjectInfo, RoundInfo, Status, TrainerInfo
from backend.errors import ChainError, ConfigError
from backend.files import atomic_output


@dataclass
class Deployment:
    chain_id: int
    marketplace: str
    block: int
    deployer: str
    source_hash: str
    test_token: str | None = None
    evm: str = "cancun"  # which build was deployed (backend.chain.compile.EVM_BUILDS)
    committee: str = ""  # the aggregator of every project (also readable as the Marketplace's COMMITTEE)
    registry: str = ""  # where aggregators stake (the committee's registry)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"


def deployment_path(directory: Path, chain_id: int) -> Path:
    return directory / f"{chain_id}.json"


def save_deployment(directory: Path, deployment: Deployment) -> Path:
    path = deployment_path(directory, deployment.chain_id)
    with atomic_output(path) as out:
        out.write(deployment.to_json().encode())
    return path


def load_deployment(directory: Path, chain_id: int) -> Deployment:
    path = deployment_path(directory, chain_id)
    if not path.exists():
        raise ConfigError(
            f"no Marketplace deployment recorded for chain {chain_id} (looked for {path})",
            "run `merit deploy --chain URL`, or pass --market ADDRESS",
        )
    try:
        return Deployment(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a valid deployment file: {exc}", "delete it and run `merit deploy` again"
        ) from exc


class _Contract:
    """Shared plumbing for a deployed contract with an artifact."""

    artifact_name = ""

    def __init__(
        self,
        chain: Chain,
        address: str,
        account: LocalAccount | None = None,
        transactor: Transactor | None = None,
        retries: int = 5,
    ):
        self.chain = chain
        self.artifact = load_artifact(self.artifact_name)
        self.address = Web3.to_checksum_address(address)
        self.contract = chain.w3.eth.contract(address=self.address, abi=self.artifact["abi"])
        self.account = account
        self.tx = transactor or Transactor(chain, ErrorDecoder(self.artifact["abi"]), retries=retries)

    def check_code(self) -> None:
        code = with_retries(lambda: self.chain.w3.eth.get_code(self.address), self.tx.retries, "get_code")
        if len(code) == 0:
            raise ChainError(
                f"{self.address} is not a contract on chain {self.chain.chain_id}",
                "deploy with `merit deploy`, or pass the right --market address",
            )

    def _call(self, name: str, *args: Any) -> Any:
        return self.tx.call(getattr(self.contract.functions, name)(*args), name)

    def _signer(self, name: str, account: LocalAccount | None = None) -> LocalAccount:
        signer = account or self.account
        if signer is None:
            raise ConfigError(f"{name} needs a signing key", "set MERIT_PRIVATE_KEY or pass --key")
        return signer

    def _send(self, name: str, *args: Any, value: int = 0, account: LocalAccount | None = None) -> Receipt:
        signer = self._signer(name, account)
        return self.tx.send(getattr(self.contract.functions, name)(*args), signer, name, value=value)

    @classmethod
    def _deploy(
        cls, chain: Chain, account: LocalAccount, *ctor_args: Any, evm: str | None = None
    ) -> tuple[Any, Receipt]:
        """Deploy the build for ``evm`` (default: the newest build the chain runs)."""
        evm = evm or evm_build(chain)
        art = load_artifact(cls.artifact_name, evm)
        factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        transactor = Transactor(chain, ErrorDecoder(art["abi"]))
        receipt = transactor.send(factory.constructor(*ctor_args), account, f"deploy {cls.artifact_name}")
        address = receipt.raw["contractAddress"]
        client = cls(chain, address, account, transactor)
        client.artifact = art
        return client, receipt


# The registry's terms at deploy: a member waits a day between asking to exit and withdrawing, and stakes
# at least 0.1 ETH (each project may ask more of its committee).
DEFAULT_EXIT_COOLDOWN = 86_400
DEFAULT_MIN_MEMBER_STAKE = 10**17


def create_address(deployer: str, nonce: int) -> str:
    """The address of the contract that ``deployer``'s transaction number ``nonce`` creates."""
    raw = keccak(rlp.encode([bytes.fromhex(deployer[2:]), nonce]))[12:]
    return Web3.to_checksum_address(raw)


class _CommitteeDeployer(_Contract):
    """Deploys the committee (backend.chain.committee.CommitteeClient is its client)."""

    artifact_name = "Committee"


class TestToken(_Contract):
    """The ERC-20 used in tests and demos (mintable by anyone: a test asset, never real money)."""

    artifact_name = "TestToken"
    __test__ = False  # not a pytest class

    @classmethod
    def deploy(cls, chain: Chain, account: LocalAccount) -> "TestToken":
        return cls._deploy(chain, account)[0]

    def balance_of(self, who: str) -> int:
        return self._call("balanceOf", Web3.to_checksum_address(who))

    def mint(self, to: str, amount: int, account: LocalAccount | None = None) -> Receipt:
        return self._send("mint", Web3.to_checksum_address(to), amount, account=account)

    def approve(self, spender: str, amount: int, account: LocalAccount | None = None) -> Receipt:
        return self._send("approve", Web3.to_checksum_address(spender), amount, account=account)


# Init code that uses each build's newest opcodes, then stops: TSTORE, TLOAD and MCOPY for Cancun
# (OpenZeppelin's transient guard, solc's memory copies); PUSH0 for Shanghai.
EVM_PROBES = {"cancun": "0x600160005d60005c506000600060005e00", "shanghai": "0x5f5f5000"}


def evm_build(chain: Chain) -> str:
    """The newest of Merit's builds (``EVM_BUILDS``) that ``chain`` runs, found by running a few
    opcodes in an ``eth_call``. A chain older than every build is refused with what to do; a node that
    cannot run even an empty call gets the newest build and fails on its own terms."""
    reason = ""
    for evm in EVM_BUILDS:
        try:
            chain.w3.eth.call({"data": EVM_PROBES[evm]})
            return evm
        except Exception as exc:  # each node words it differently: "invalid opcode", "NotActivated"
            error = (getattr(exc, "rpc_response", None) or {}).get("error")
            reason = str(error.get("message", error)) if isinstance(error, dict) else str(exc)
    try:
        chain.w3.eth.call({"data": "0x00"})
    except Exception:
        return EVM_BUILDS[0]
    raise ChainError(
        f"the chain at {chain.url or chain.kind} runs neither Cancun nor Shanghai opcodes: {reason[:120]}",
        "Merit's contracts need Shanghai or newer: use Anvil (`merit chain up`), Ganache 7.9 "
        "(`merit chain up --engine ganache`), Hardhat, geth, or start the node with a newer hardfork",
    )


class MarketClient(_Contract):
    artifact_name = "Marketplace"

    # ---------------------------------------------------------------- construction
    @classmethod
    def deploy(
        cls,
        chain: Chain,
        account: LocalAccount,
        evm: str | None = None,
        exit_cooldown: int = DEFAULT_EXIT_COOLDOWN,
        min_member_stake: int = DEFAULT_MIN_MEMBER_STAKE,
    ) -> "MarketClient":
        """Deploy the committee (with its aggregator registry) and the Marketplace it scores for;
        ``evm`` picks a build (default: the newest the chain runs). The committee is built for the
        Marketplace's address, predicted from the deployer's next nonce; the Marketplace checks it."""
        evm = evm or evm_build(chain)
        nonce = chain.nonces.peek(chain, account.address)
        market_address = create_address(account.address, nonce + 1)
        committee, _ = _CommitteeDeployer._deploy(
            chain, account, market_address, exit_cooldown, min_member_stake, evm=evm
        )
        client, receipt = cls._deploy(chain, account, committee.address, evm=evm)
        if client.address != market_address:
            raise ChainError(
                f"the Marketplace landed at {client.address}, not at {market_address} as its committee expects",
                "another transaction from the deployer's key interleaved: deploy again from an idle key",
            )
        client.deploy_receipt = receipt
        return client

    def committee_address(self) -> str:
        """The committee: the aggregator of every project."""
        return self._call("COMMITTEE")

    def as_account(self, account: LocalAccount | None) -> "MarketClient":
        """The same contract seen by another signer (shares the nonce manager)."""
        return MarketClient(self.chain, self.address, account, self.tx)

    def deployment(self) -> Deployment:
        receipt = getattr(self, "deploy_receipt", None)
        committee = self.committee_address()
        return Deployment(
            chain_id=self.chain.chain_id,
            marketplace=self.address,
            block=receipt.block_number if receipt else 0,
            deployer=self.account.address if self.account else "",
            source_hash=self.artifact["sourceHash"],
            evm=self.artifact["compiler"]["settings"]["evmVersion"],
            committee=committee,
            registry=self.chain.w3.eth.contract(address=committee, abi=load_artifact("Committee")["abi"])
            .functions.registry()
            .call(),
        )

    # ---------------------------------------------------------------- asset handling
    def _pay(self, asset: str, amount: int, signer: LocalAccount | None) -> int:
        """For ETH, the value to attach; for an ERC-20, approve the market and attach nothing."""
        if amount == 0:
            return 0
        if int(asset, 16) == 0:
            return amount
        TestToken(self.chain, asset, transactor=self.tx).approve(self.address, amount, account=signer or self.account)
        return 0

    def token(self, asset: str) -> TestToken:
        return TestToken(self.chain, asset, self.account, self.tx)

    def balance(self, asset: str, who: str) -> int:
        who = Web3.to_checksum_address(who)
        if int(asset, 16) == 0:
            return self.chain.w3.eth.get_balance(who)
        return TestToken(self.chain, asset, transactor=self.tx).balance_of(who)

    # ---------------------------------------------------------------- writes
    def create_project(self, cfg: ProjectConfig) -> int:
        """Create a project and escrow its pool. Its aggregator is the committee: leave ``cfg.aggregator``
        as the zero address (or give the committee's address); any other address is refused."""
        committee = self.committee_address()
        if int(cfg.aggregator, 16) == 0:
            cfg = replace(cfg, aggregator=committee)
        elif Web3.to_checksum_address(cfg.aggregator) != committee:
            raise ConfigError(
                f"projects no longer name their aggregator ({cfg.aggregator}): the committee at {committee} "
                "draws the scorers from the staked registry at start",
                "drop aggregator.address from the project spec",
            )
        value = self._pay(cfg.asset, cfg.pool, None)
        receipt = self._send("createProject", cfg.as_tuple(), value=value)
        self.last_receipt = receipt
        (event,) = self.contract.events.ProjectCreated().process_receipt(receipt.raw, errors=DISCARD)
        return int(event["args"]["projectId"])

    def post_aggregator_bond(self, pid: int) -> Receipt:
        cfg = self.config(pid)
        return self._send("postAggregatorBond", pid, value=self._pay(cfg.asset, cfg.aggregatorBond, None))

    def join(self, pid: int) -> Receipt:
        cfg = self.config(pid)
        return self._send("join", pid, value=self._pay(cfg.asset, cfg.stake, None))

    def start(self, pid: int) -> Receipt:
        return self._send("start", pid)

    def commit_update(self, pid: int, round_: int, cid: str, salt: bytes) -> Receipt:
        """Commit to an update without revealing it (only while the round is Open). Keep ``salt``: the
        reveal needs it (``backend.trainer.commits`` keeps it on disk)."""
        signer = self._signer("commitUpdate")
        return self._send("commitUpdate", pid, round_, commitment_of(signer.address, pid, round_, cid, salt))

    def reveal_update(self, pid: int, round_: int, cid: str, salt: bytes) -> Receipt:
        """Reveal the committed update (after the submission deadline, before the reveal deadline)."""
        return self._send("revealUpdate", pid, round_, cid, salt)

    def evict(self, pid: int, trainer: str) -> Receipt:
        return self._send("evict", pid, Web3.to_checksum_address(trainer))

    def post_result(
        self, pid: int, round_: int, global_model_cid: str, report_cid: str, weights: list[int], flags: int
    ) -> Receipt:
        """``weights``: one per committer, in commit order (unrevealed ones are ignored by the contract)."""
        return self._send("postResult", pid, round_, global_model_cid, report_cid, pack_weights(weights), int(flags))

    def finalize(self, pid: int) -> Receipt:
        return self._send("finalize", pid)

    def dispute(self, pid: int) -> Receipt:
        cfg = self.config(pid)
        return self._send("dispute", pid, value=self._pay(cfg.asset, cfg.disputeBond, None))

    def resolve_dispute(self, pid: int, uphold: bool) -> Receipt:
        return self._send("resolveDispute", pid, uphold)

    def expire(self, pid: int) -> Receipt:
        return self._send("expire", pid)

    def cancel(self, pid: int) -> Receipt:
        return self._send("cancel", pid)

    def claim(self, pid: int) -> Receipt:
        return self._send("claim", pid)

    def withdraw_stake(self, pid: int) -> Receipt:
        return self._send("withdrawStake", pid)

    def withdraw_stake_paid(self, pid: int) -> int:
        """withdrawStake, returning what it paid: the stake left plus any share of the end pot."""
        receipt = self.withdraw_stake(pid)
        events = self.contract.events.StakeWithdrawn().process_receipt(receipt.raw, errors=DISCARD)
        return sum(int(e["args"]["amount"]) for e in events)

    def withdraw_bond(self, pid: int) -> Receipt:
        return self._send("withdrawBond", pid)

    def withdraw_remainder(self, pid: int) -> Receipt:
        return self._send("withdrawRemainder", pid)

    def reveal_validation(self, pid: int, validation_cid: str, salt: bytes) -> Receipt:
        return self._send("revealValidation", pid, validation_cid, salt)

    # ---------------------------------------------------------------- views
    def project_count(self) -> int:
        return int(self._call("projectCount"))

    def project_ids(self) -> list[int]:
        return list(range(1, self.project_count() + 1))

    def _check_project(self, pid: int) -> None:
        if not isinstance(pid, int) or pid < 1 or pid > self.project_count():
            raise ConfigError(f"project {pid} does not exist on this market", "list projects with `merit project list`")

    def config(self, pid: int) -> ProjectConfig:
        self._check_project(pid)
        return ProjectConfig.from_tuple(self._call("getConfig", pid))

    def project(self, pid: int) -> ProjectInfo:
        self._check_project(pid)
        owner, status, current, count, carry, bond, vcid = self._call("getProject", pid)
        return ProjectInfo(owner, Status(status), int(current), int(count), int(carry), int(bond), vcid)

    def round(self, pid: int, round_: int) -> RoundInfo:
        values = self._call("getRound", pid, round_)
        reveal_deadline, revealed = self._call("getReveals", pid, round_)
        return RoundInfo(
            Phase(values[0]), *[int(v) for v in values[1:7]], values[7], values[8], int(reveal_deadline), int(revealed)
        )

    def liveness(self, pid: int) -> dict:
        """The deadlines that release funds when someone is absent (0 where none applies)."""
        start, grace, ruling, cancelled = self._call("getLiveness", pid)
        return {
            "start_deadline": int(start),
            "grace_deadline": int(grace),
            "ruling_deadline": int(ruling),
            "cancelled": bool(cancelled),
        }

    def end_pot(self, pid: int) -> tuple[int, int, bool]:
        pot, shares, to_all = self._call("getEndPot", pid)
        return int(pot), int(shares), bool(to_all)

    def submitters(self, pid: int, round_: int) -> list[str]:
        return list(self._call("getSubmitters", pid, round_))

    def trainer(self, pid: int, address: str) -> TrainerInfo:
        joined, stake, slashed, joined_round = self._call("getTrainer", pid, Web3.to_checksum_address(address))
        return TrainerInfo(bool(joined), int(stake), int(slashed), int(joined_round))

    def is_joined(self, pid: int, address: str) -> bool:
        return self.trainer(pid, address).joined

    def claimable(self, pid: int, address: str) -> int:
        return int(self._call("claimable", pid, Web3.to_checksum_address(address)))

    def result(self, pid: int, round_: int) -> tuple[list[int], int]:
        weights, flags = self._call("getResult", pid, round_)
        return [int(w) for w in weights], int(flags)

    def global_model_cid(self, pid: int) -> str:
        return self._call("globalModelCid", pid)

    # ---------------------------------------------------------------- events
    def events(
        self, name: str, pid: int | None = None, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict]:
        """Decoded logs of one event, oldest first, optionally for one project."""
        event = getattr(self.contract.events, name)
        filters = {"projectId": pid} if pid is not None else None
        logs = with_retries(
            lambda: event.get_logs(from_block=from_block, to_block=to_block, argument_filters=filters),
            self.tx.retries,
            f"events {name}",
        )
        return [
            dict(log["args"], blockNumber=log["blockNumber"], transactionHash=log["transactionHash"].hex())
            for log in logs
        ]

    def revealed(self, pid: int, round_: int) -> list[tuple[int, str, str]]:
        """(commit index, trainer, cid) of every revealed update of a round, in commit order."""
        logs = [e for e in self.events("UpdateRevealed", pid) if int(e["round"]) == round_]
        return sorted((int(e["index"]), e["trainer"], e["cid"]) for e in logs)

    def submissions(self, pid: int, round_: int) -> list[tuple[str, str]]:
        """(trainer, cid) of a round's revealed updates, in commit order (the copy check's order).
        Committed but unrevealed updates are not submissions: they are missed rounds."""
        return [(trainer, cid) for _, trainer, cid in self.revealed(pid, round_)]


def commitment_of(trainer: str, pid: int, round_: int, cid: str, salt: bytes) -> bytes:
    """keccak256(abi.encode(trainer, projectId, round, cid, salt)): what commitUpdate takes."""
    if len(salt) != 32:
        raise ConfigError("a commitment salt is 32 bytes", "use os.urandom(32)")
    return Web3.keccak(
        abi_encode(
            ["address", "uint256", "uint32", "string", "bytes32"],
            [Web3.to_checksum_address(trainer), pid, round_, cid, salt],
        )
    )


def pack_weights(weights: list[int]) -> list[int]:
    """uint32 weights packed 8 per word, weight i in bits [32 (i % 8), 32 (i % 8) + 32) of word i // 8."""
    words = [0] * ((len(weights) + 7) // 8)
    for i, w in enumerate(weights):
        w = int(w)
        if not 0 <= w < 2**32:
            raise ConfigError(f"weight {i} is {w}: weights are uint32", "scale weights to WEIGHT_SCALE")
        words[i // 8] |= w << (32 * (i % 8))
    return words


def unpack_weights(words: list[int], n: int) -> list[int]:
    return [(int(words[i // 8]) >> (32 * (i % 8))) & 0xFFFFFFFF for i in range(n)]


def expand_result(weights: list[int], flags: int, indices: list[int], n: int) -> tuple[list[int], int]:
    """Weights and flags over the revealed updates (in commit order, at commit ``indices``) spread to all
    ``n`` committers, as postResult takes them: unrevealed committers get weight 0 and no flag."""
    full = [0] * n
    full_flags = 0
    for k, i in enumerate(indices):
        full[i] = int(weights[k])
        if (int(flags) >> k) & 1:
            full_flags |= 1 << i
    return full, full_flags


def compact_result(weights: list[int], flags: int, indices: list[int]) -> tuple[list[int], int]:
    """The inverse of ``expand_result``: the posted weights and flags of the revealed updates only."""
    compact_flags = 0
    for k, i in enumerate(indices):
        if (int(flags) >> i) & 1:
            compact_flags |= 1 << k
    return [int(weights[i]) for i in indices], compact_flags


__all__ = [
    "MarketClient",
    "TestToken",
    "Deployment",
    "ContractRevert",
    "ProjectConfig",
    "Phase",
    "Status",
    "ETH",
    "save_deployment",
    "load_deployment",
]
