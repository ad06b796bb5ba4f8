"""Sending transactions: local signing, a local nonce manager, retries of transient RPC errors, and
reverts turned into exceptions that carry the custom error's name and decoded arguments."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, TimeExhausted, Web3RPCError

from backend.chain.connection import Chain
from backend.chain.types import SOLIDITY_ENUMS
from backend.errors import ChainError, MeritError, shorten
from backend.retry import RetryPolicy, retry_call

try:  # the embedded chain's own failure type
    from eth_tester.exceptions import TransactionFailed
except ImportError:  # pragma: no cover
    TransactionFailed = ContractLogicError

T = TypeVar("T")

PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


class ContractRevert(MeritError):
    """A transaction or call reverted. ``name`` is the Solidity custom error, ``args`` its decoded arguments."""

    def __init__(self, name: str, args: dict[str, Any], function: str | None = None):
        self.name = name
        self.args_ = args
        self.function = function
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        where = f"{function}: " if function else ""
        super().__init__(f"{where}contract refused with {name}({shown})", REVERT_HINTS.get(name))

    @property
    def arguments(self) -> dict[str, Any]:
        return self.args_


# What a user can do about each refusal; the error names come from contracts/Marketplace.sol.
REVERT_HINTS = {
    "NotTrainer": "join the project first: `merit trainer join PROJECT`",
    "AlreadyJoined": "this address has already joined the project",
    "ProjectFull": "the project has reached its maximum number of trainers",
    "AlreadySubmitted": "one update per trainer per round; wait for the next round",
    "WrongPhase": "the round is not in the state this needs; check `merit project status PROJECT`",
    "WrongRound": "that is not the project's current round; check `merit project status PROJECT`",
    "NotOwner": "only the project's owner can do this: use the owner's key",
    "NotAggregator": "only the project's aggregator can do this: use the aggregator's key",
    "NotArbiter": "only the project's arbiter can do this",
    "NothingToClaim": "there is nothing to claim (yet): rewards are credited when a round is finalized",
    "WrongValue": "the ETH sent does not match the amount required",
    "AlreadyCancelled": "the owner already cancelled: the current round is the project's last",
    "StartPeriodNotOver": "only the owner may cancel a Pending project before its start deadline",
    "GracePeriodNotOver": "no result yet: the round settles without one after the aggregation deadline plus its grace period",
    "RulingPeriodNotOver": "the arbiter may still rule; after the ruling deadline the dispute is rejected by default",
    "RulingPeriodOver": "the ruling deadline has passed: `finalize` rejects the dispute by default",
    "NotEvictable": "a trainer can be evicted only after missing 2 rounds in a row",
    "NoCommitment": "commit an update during the round's Open phase before revealing it",
    "RevealMismatch": "the CID and salt do not match this trainer's commitment for the round",
    "UpdateAlreadyRevealed": "the update is already revealed",
    "EmptyCommitment": "a commitment is a nonzero 32-byte hash",
    "FlagsOnUnrevealed": "only revealed updates can be flagged",
    "WeightsBeyondSubmitters": "there are more weights than committed submitters",
    "TooManySubmissions": "a round takes at most 256 commitments",
    "AssetShortfall": "the market holds less of this token than it owes (a rebasing token?): payouts resume once the balance is restored",
    "NoSubmissions": "the round has no revealed update to aggregate",
    "InvalidConfig": "the project configuration breaks a rule; the reason names which",
    # The aggregator committee and its registry
    "CommitteeUnavailable": "too few registered aggregators hold the committee's minimum stake: "
    "more must `merit aggregator register --stake ...` before the project can start",
    "StakeTooSmall": "stake at least the registry's minimum: `merit aggregator register --stake AMOUNT`",
    "Exiting": "this aggregator asked to exit: it can no longer add stake or be drawn",
    "StakeLocked": "withdraw only after `merit aggregator exit`, its cooling-off period, and the end of "
    "every project whose committee holds you",
    "NotMember": "this address is not a member of that committee (or not registered): "
    "`merit aggregator register --stake AMOUNT` first",
    "NotProjectOwner": "only the project's owner can do this: use the owner's key",
    "BadCommittee": "the committee size must be odd, 1 to 7, and its minimum stake at least the registry's",
    "NotAggregating": "the committee scores a round only while it is Aggregating (after the trainers' reveals)",
    "CommitClosed": "the members' commit window for this round has closed",
    "RevealNotOpen": "reveal after the commit window (or once every member committed)",
    "RevealClosed": "the members' reveal window for this round has closed",
    "SettleNotOpen": "settle after the reveal window (or once every member revealed)",
    "AlreadyCommitted": "this member already committed its scores for the round",
    "AlreadyRevealed": "already revealed (a member reveals its scores once per round; an owner its validation set once)",
    "CommitmentMismatch": "the scores and salt do not match this member's commitment",
    "WeightCount": "a post carries one weight per committed submitter",
    "BadFlags": "flags only on submitters that revealed an update",
    "NoPosts": "no member revealed: the round settles by the no-result rules after its grace period",
    "PostCount": "settle with every revealed post of the current window",
    "PostMismatch": "a post given to settle is not what its member revealed",
}


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class ErrorDecoder:
    """Maps 4-byte selectors of an ABI's custom errors to names and decoded arguments."""

    def __init__(self, abi: list[dict]):
        self._errors: dict[bytes, tuple[str, list[str], list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            names = [i.get("name") or f"arg{n}" for n, i in enumerate(item.get("inputs", []))]
            internal = [i.get("internalType", "") for i in item.get("inputs", [])]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            self._errors[selector] = (item["name"], names, types, internal)

    def decode(self, data: str | bytes | None, function: str | None = None) -> ContractRevert | None:
        if data is None:
            return None
        try:
            raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else bytes(data)
        except ValueError:  # revert "data" that is not hex
            return None
        if len(raw) < 4:
            return None
        selector, payload = raw[:4], raw[4:]
        try:  # the node chose these bytes: a Panic or Error whose payload does not decode is still a revert
            if selector == bytes.fromhex("4e487b71"):  # Panic(uint256)
                (code,) = abi_decode(["uint256"], payload)
                return ContractRevert(
                    "Panic", {"code": hex(code), "meaning": PANIC_CODES.get(code, "unknown")}, function
                )
            if selector == bytes.fromhex("08c379a0"):  # Error(string)
                (reason,) = abi_decode(["string"], payload)
                return ContractRevert("Error", {"reason": shorten(reason)}, function)
        except Exception:
            return ContractRevert("UnknownError", {"data": raw[:68]}, function)
        if selector not in self._errors:
            return ContractRevert("UnknownError", {"data": raw}, function)
        name, names, types, internal = self._errors[selector]
        try:
            values = abi_decode(types, payload)
        except Exception:
            return ContractRevert(name, {"data": payload}, function)
        values = [_readable(t, i, v) for t, i, v in zip(types, internal, values)]
        return ContractRevert(name, dict(zip(names, values)), function)


def _readable(abi_type: str, internal_type: str, value: Any) -> Any:
    """Checksummed addresses and enum member names instead of raw numbers."""
    if abi_type == "address":
        return to_checksum_address(value)
    enum = SOLIDITY_ENUMS.get(internal_type)
    if enum is not None:
        try:
            return enum(value).label
        except ValueError:
            return value
    return value


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


def _revert_data(exc: Exception) -> str | bytes | None:
    """Revert data from the shapes web3.py and the various nodes raise."""
    text = str(exc)
    if text.startswith("execution reverted: b'") or text.startswith('execution reverted: b"'):
        # eth-tester (the embedded chain) puts the raw revert bytes' repr in the message
        try:
            return ast.literal_eval(text[len("execution reverted: ") :])
        except (ValueError, SyntaxError):
            return None
    data = getattr(exc, "data", None)
    if isinstance(data, (str, bytes)) and data:
        return data
    if isinstance(data, dict) and _hex_in(data):
        return _hex_in(data)
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            return arg
        if isinstance(arg, dict):
            inner = arg.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return inner
            if isinstance(inner, dict) and _hex_in(inner):
                return _hex_in(inner)
    return None


def _hex_in(error_data: dict) -> str | None:
    """The revert bytes of an RPC error's ``data`` object: geth and Anvil call them ``data``,
    Ganache ``result`` (beside its ``reason`` and ``programCounter``)."""
    for key in ("data", "result"):
        value = error_data.get(key)
        if isinstance(value, str) and value.startswith("0x"):
            return value
    return None


REVERTS = (ContractLogicError, ContractCustomError, ContractPanicError, Web3RPCError, TransactionFailed)
BUSY_STATUS = {429, 502, 503, 504}
TRANSIENT = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, TimeExhausted)


def _transient_rpc(exc: BaseException) -> bool:
    """Connection trouble, timeouts, and a node that says it is busy; never a refusal."""
    if isinstance(exc, TRANSIENT):
        return True
    if isinstance(exc, requests.HTTPError):  # a proxy or gateway in front of the node
        return exc.response is not None and exc.response.status_code in BUSY_STATUS
    if isinstance(exc, Web3RPCError):
        message = str(exc).lower()
        return any(s in message for s in ("429", "rate limit", "timeout", "temporarily", "502", "503"))
    return False


def with_retries(fn: Callable[[], T], retries: int, what: str, base_delay: float = 0.25) -> T:
    """Call ``fn`` under the one retry policy (backend.retry): transient RPC failures back off and
    retry up to ``retries`` times; a node that stays down becomes a ChainError that says what to do."""

    def give_up(exc: BaseException, attempts: int) -> BaseException:
        if isinstance(exc, Web3RPCError):  # the node answered, busy to the end: its own words are clearest
            return exc
        return ChainError(
            f"{what}: the chain did not answer after {attempts} tries ({type(exc).__name__})",
            "check that the node is running and --chain points at it",
        )

    return retry_call(
        fn, RetryPolicy(retries=retries, base_delay=base_delay), transient=_transient_rpc, give_up=give_up
    )


@dataclass
class Receipt:
    tx_hash: str
    gas_used: int
    block_number: int
    logs: list
    raw: Any


class Transactor:
    """Builds, signs and sends contract transactions for one chain, decoding reverts."""

    def __init__(self, chain: Chain, decoder: ErrorDecoder, retries: int = 5, receipt_timeout: float = 120.0):
        self.chain = chain
        self.decoder = decoder
        self.retries = retries
        self.receipt_timeout = receipt_timeout
        self.nonces = chain.nonces  # one per chain, shared by every contract client

    def _fees(self) -> dict[str, int]:
        block = self.chain.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        if base == 0 and self.chain.kind != "embedded":
            return {"gasPrice": int(self.chain.w3.eth.gas_price)}
        tip = 10**9
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def revert_from(self, exc: Exception, function: str) -> Exception:
        decoded = self.decoder.decode(_revert_data(exc), function)
        if decoded is not None:
            return decoded
        if isinstance(exc, (ContractLogicError, ContractPanicError, ContractCustomError)):
            return ContractRevert("Reverted", {"message": str(exc)}, function)
        return exc

    def unreadable(self, exc: Exception, function: str) -> ChainError:
        """A node's answer that web3 could not turn into a value or a revert (garbage return data, a
        revert with a panic code no compiler emits): named, with the endpoint, in one bounded line."""
        where = f"the JSON-RPC node at {self.chain.url}" if self.chain.url else f"the {self.chain.kind} chain"
        return ChainError(
            f"{function}: {where} answered with something Merit cannot read ({type(exc).__name__}: {shorten(str(exc))})",
            "check that --chain points at an Ethereum node you trust, and --market at a Merit market",
        )

    def call(self, fn: Any, function: str) -> Any:
        try:
            return with_retries(lambda: fn.call(), self.retries, function)
        except REVERTS as exc:
            raise self.revert_from(exc, function) from None
        except MeritError:
            raise
        except Exception as exc:
            raise self.unreadable(exc, function) from exc

    def send(self, fn: Any, account: LocalAccount, function: str, value: int = 0) -> Receipt:
        """Estimate (which surfaces reverts with their data), sign locally, send, wait for the receipt."""
        w3 = self.chain.w3
        with self.chain.lock:
            params = {"from": account.address, "value": value, "chainId": self.chain.chain_id, **self._fees()}
            try:
                gas = with_retries(lambda: fn.estimate_gas(params), self.retries, function)
            except REVERTS as exc:
                raise self.revert_from(exc, function) from None
            except MeritError:
                raise
            except Exception as exc:
                raise self.unreadable(exc, function) from exc
            params["gas"] = int(gas * 1.2) + 10_000
            params["nonce"] = self.nonces.take(self.chain, account.address)
            try:
                tx = fn.build_transaction(params)
                signed = account.sign_transaction(tx)
                tx_hash = with_retries(
                    lambda: w3.eth.send_raw_transaction(signed.raw_transaction), self.retries, function
                )
            except Exception as exc:
                self.nonces.reset(account.address)
                if isinstance(exc, REVERTS):
                    raise self.revert_from(exc, function) from None
                raise
        receipt = with_retries(
            lambda: w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout), self.retries, function
        )
        if receipt["status"] != 1:
            # Replay as a call at the receipt's block to recover the revert reason.
            try:
                fn.call({"from": account.address, "value": value}, block_identifier=receipt["blockNumber"])
            except Exception as exc:
                raise self.revert_from(exc, function) from None
            raise ContractRevert("Reverted", {"tx": tx_hash.hex()}, function)
        return Receipt(
            tx_hash="0x" + bytes(tx_hash).hex().removeprefix("0x"),
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            logs=list(receipt["logs"]),
            raw=receipt,
        )

    def transfer(self, account: LocalAccount, to: str, value: int) -> Receipt:
        """A plain ETH transfer (used to fund accounts)."""
        w3 = self.chain.w3
        with self.chain.lock:
            tx = {
                "to": to,
                "value": value,
                "gas": 21_000,
                "chainId": self.chain.chain_id,
                "nonce": self.nonces.take(self.chain, account.address),
                **self._fees(),
            }
            try:
                tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
            except Exception:
                self.nonces.reset(account.address)  # re-read from the node next time
                raise
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
        return Receipt(
            tx_hash=bytes(tx_hash).hex(),
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            logs=[],
            raw=receipt,
        )
