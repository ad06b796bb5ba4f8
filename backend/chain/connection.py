"""Connecting to a chain: the in-process embedded EVM or any JSON-RPC node (Anvil, geth, a testnet).

Both kinds of chain have the same development accounts: those of the well-known test mnemonic that
Anvil and Hardhat use (``m/44'/60'/0'/0/i``), so addresses in docs and tests agree everywhere.
"""

from __future__ import annotations

import threading
import time
from typing import Callable
from dataclasses import dataclass, field

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.providers.rpc import HTTPProvider

from backend import safe_json
from backend.errors import ChainError, shorten
from backend.limits import RPC_MAX_RESPONSE_BYTES
from backend.retry import RetryPolicy, retry_call

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_HD_PATH = "m/44'/60'/0'/0"
DEV_ACCOUNTS = 20
Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """The index-th development account (funded on the embedded chain and on `merit chain up`)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"{DEV_HD_PATH}/{index}")


class NonceManager:
    """Hands out nonces locally so that many transactions can be sent without waiting on the node;
    re-reads the node's count after any failure."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, chain: "Chain", address: str) -> int:
        with self._lock:
            if address not in self._next:
                self._next[address] = chain.w3.eth.get_transaction_count(address, "pending")
            nonce = self._next[address]
            self._next[address] = nonce + 1
            return nonce

    def peek(self, chain: "Chain", address: str) -> int:
        """The nonce `take` will hand out next (a deployer predicts a contract's address from it)."""
        with self._lock:
            if address not in self._next:
                self._next[address] = chain.w3.eth.get_transaction_count(address, "pending")
            return self._next[address]

    def reset(self, address: str) -> None:
        with self._lock:
            self._next.pop(address, None)


@dataclass
class Chain:
    """A connected chain: the web3 handle plus what differs between kinds of chain."""

    w3: Web3
    kind: str  # "embedded" or "rpc"
    url: str | None = None
    _tester: object | None = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    nonces: NonceManager = field(default_factory=NonceManager, repr=False)

    @property
    def chain_id(self) -> int:
        return check_chain_id(self.w3.eth.chain_id, self.url)

    def now(self) -> int:
        """The contract's clock: the latest block's timestamp. A node that mines only on demand
        (Anvil's default) lets that fall behind real time, which its next block will catch up to."""
        latest = int(self.w3.eth.get_block("latest")["timestamp"])
        return latest if self.kind == "embedded" else max(latest, int(time.time()))

    def advance(self, seconds: int) -> int:
        """Move the chain's clock forward and mine a block (embedded chain and dev nodes only)."""
        seconds = int(seconds)
        with self.lock:
            if self.kind == "embedded":
                target = self.now() + seconds
                self._tester.time_travel(target)
                return target
            try:
                self.w3.provider.make_request("evm_increaseTime", [seconds])
                self.w3.provider.make_request("evm_mine", [])
            except Exception as exc:  # a real network: time only moves by waiting
                raise ChainError(
                    f"cannot move time on {self.url}: {exc}", "time travel works only on the embedded chain or Anvil"
                ) from exc
            return self.now()

    @property
    def supports_time_travel(self) -> bool:
        if self.kind == "embedded":
            return True
        try:
            version = self.w3.client_version.lower()
        except Exception:
            return False
        return "anvil" in version or "ganache" in version or "hardhat" in version


def embedded_chain(accounts: int = DEV_ACCOUNTS) -> Chain:
    """A fresh in-process EVM (py-evm) whose dev accounts hold 1,000,000 ETH each."""
    # deferred: eth-tester and py-evm serve only the embedded chain (0.3 s to import, measured beside web3)
    from eth_tester import EthereumTester
    from eth_tester.backends.pyevm.main import PyEVMBackend
    from web3 import EthereumTesterProvider

    backend = PyEVMBackend.from_mnemonic(DEV_MNEMONIC, num_accounts=accounts, hd_path=DEV_HD_PATH)
    tester = EthereumTester(backend)
    return Chain(w3=Web3(EthereumTesterProvider(tester)), kind="embedded", _tester=tester)


class BoundedHTTPProvider(HTTPProvider):
    """web3's HTTP provider, bounded against a node that lies or stalls: an answer larger than
    ``RPC_MAX_RESPONSE_BYTES``, one that takes longer than the timeout in all (requests' own timeout
    bounds each read, so a node that sends a byte a second never timed out), and one nested deeper than
    any JSON-RPC result are refused by name before Python's JSON parser sees them (a deep one could
    otherwise crash the process)."""

    def _make_request(self, method, request_data: bytes) -> bytes:
        kwargs = dict(self.get_request_kwargs())
        timeout = float(kwargs.pop("timeout", 30.0))
        kwargs.pop("stream", None)
        deadline = time.monotonic() + timeout
        session = self._request_session_manager.cache_and_return_session(self.endpoint_uri, request_timeout=timeout)
        with session.post(self.endpoint_uri, data=request_data, timeout=timeout, stream=True, **kwargs) as response:
            response.raise_for_status()
            return self._read_bounded(response, deadline, timeout)

    def _read_bounded(self, response, deadline: float, timeout: float) -> bytes:
        chunks, size = [], 0
        while True:
            # read1 returns as soon as any bytes arrive, so the deadline is checked between trickles
            chunk = response.raw.read1(1 << 16, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > RPC_MAX_RESPONSE_BYTES:
                raise ChainError(
                    f"the JSON-RPC node at {self.endpoint_uri} answered with more than "
                    f"{RPC_MAX_RESPONSE_BYTES >> 20} MiB; refusing it",
                    "point --chain at an Ethereum node you trust",
                )
            if time.monotonic() > deadline:
                raise ChainError(
                    f"the JSON-RPC node at {self.endpoint_uri} did not finish its answer within {timeout:g}s",
                    "check the node, or raise MERIT_RPC_TIMEOUT",
                )
            chunks.append(chunk)

    def decode_rpc_response(self, raw_response: bytes):
        try:
            answer = safe_json.loads(raw_response, what="its answer")
        except safe_json.UntrustedJSONError as exc:
            raise ChainError(
                f"the JSON-RPC node at {self.endpoint_uri} answered with something that is not JSON-RPC: "
                f"{shorten(str(exc))}",
                "point --chain at an Ethereum node you trust",
            ) from None
        return answer


def _describe(value: object) -> str:
    """A short description of a value a stranger sent (repr of a 100,000-digit integer raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return shorten(repr(value), 60)


def rpc_provider(url: str, timeout: float) -> "BoundedHTTPProvider":
    """An HTTP provider without web3's own retries: Merit's one policy (``with_retries``,
    ``MERIT_RPC_RETRIES``) decides how often a call is tried; stacked on web3's, one dead node cost
    up to 36 tries."""
    return BoundedHTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)


def rpc_chain(url: str, timeout: float = 30.0) -> Chain:
    """Connect to a JSON-RPC node, failing with a message that says what to do."""
    w3 = Web3(rpc_provider(url, timeout))
    try:
        chain_id = w3.eth.chain_id
    except ChainError:
        raise
    except (requests.RequestException, ConnectionError, TimeoutError) as exc:  # down, busy, or behind a failing proxy
        raise ChainError(
            f"cannot reach a JSON-RPC node at {url} ({type(exc).__name__})",
            "start one with `merit chain up`, or pass the right --chain URL",
        ) from exc
    except Exception as exc:  # it answered, but not as an Ethereum node does
        raise ChainError(
            f"the JSON-RPC node at {url} answered eth_chainId with something Merit cannot read "
            f"({type(exc).__name__}: {shorten(str(exc))})",
            "check that --chain points at an Ethereum JSON-RPC node",
        ) from exc
    check_chain_id(chain_id, url)
    return Chain(w3=w3, kind="rpc", url=url)


def check_chain_id(chain_id: object, url: str | None) -> int:
    """A chain id is a positive integer below 2**64 (EIP-2294); anything else came from a broken or
    hostile node, and would otherwise end up in file names and signed transactions."""
    if isinstance(chain_id, int) and not isinstance(chain_id, bool) and 0 < chain_id < 2**64:
        return chain_id
    raise ChainError(
        f"the JSON-RPC node at {url} gave {_describe(chain_id)} as its chain id, not a positive 64-bit integer",
        "check that --chain points at an Ethereum JSON-RPC node",
    )


def connect(spec: str, timeout: float = 30.0) -> Chain:
    """``"embedded"`` for the in-process chain, else a JSON-RPC URL."""
    if spec == "embedded":
        return embedded_chain()
    if spec.startswith(("http://", "https://")):
        return rpc_chain(spec, timeout=timeout)
    raise ChainError(f"unknown chain {spec!r}", "use 'embedded' or an http(s):// JSON-RPC URL")


def wait_for_rpc(url: str, timeout: float = 20.0, alive: Callable[[], bool] | None = None) -> None:
    """Block until a node answers at ``url`` (for processes we just started), polling every 0.1 s
    under the one retry policy. ``alive``: stop waiting as soon as it returns False (the process we
    started has exited)."""

    def answers() -> None:
        Web3(rpc_provider(url, timeout=2)).eth.chain_id

    def failed(last: BaseException, _attempts: int = 0) -> ChainError:
        return ChainError(f"no JSON-RPC node answered at {url} within {timeout:.0f}s ({last})")

    def still_starting(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and (alive is None or alive())

    try:
        retry_call(
            answers,
            RetryPolicy(retries=None, base_delay=0.1, max_delay=0.1, deadline=timeout),
            transient=still_starting,
            give_up=failed,
        )
    except ChainError:
        raise
    except Exception as exc:  # the process we started is gone
        raise failed(exc) from exc
