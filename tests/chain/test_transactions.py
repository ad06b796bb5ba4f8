"""Retries of transient RPC failures, the local nonce manager, and revert decoding, in isolation."""

from __future__ import annotations

import pytest
import requests
from web3.exceptions import Web3RPCError

from backend.chain.client import MarketClient
from backend.chain.compile import load_artifact
from backend.chain.connection import connect, dev_account
from backend.chain.transactions import ContractRevert, ErrorDecoder, with_retries
from backend.errors import ChainError


def test_transient_failures_are_retried_with_backoff_then_succeed():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise requests.ConnectionError("connection reset")
        return "ok"

    assert with_retries(flaky, retries=3, what="test", base_delay=0.001) == "ok"
    assert len(calls) == 3


def test_persistent_failures_become_a_chain_error_that_says_what_to_do():
    def down():
        raise requests.ConnectionError("refused")

    with pytest.raises(ChainError, match="did not answer after 3 tries"):
        with_retries(down, retries=2, what="eth_call", base_delay=0.001)


def test_non_transient_rpc_errors_are_not_retried():
    calls = []

    def refused():
        calls.append(1)
        raise Web3RPCError("insufficient funds for gas")

    with pytest.raises(Web3RPCError):
        with_retries(refused, retries=5, what="send", base_delay=0.001)
    assert len(calls) == 1


def test_nonce_manager_resyncs_after_a_transaction_sent_behind_its_back():
    chain = connect("embedded")
    market = MarketClient.deploy(chain, dev_account(0))
    funder = dev_account(0)
    market.tx.transfer(funder, dev_account(5).address, 1)
    # a transaction the manager does not know about: its next nonce is now stale
    raw = funder.sign_transaction(
        {
            "to": dev_account(6).address,
            "value": 1,
            "gas": 21_000,
            "chainId": chain.chain_id,
            "nonce": chain.w3.eth.get_transaction_count(funder.address),
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    chain.w3.eth.send_raw_transaction(raw.raw_transaction)
    with pytest.raises(Exception, match="nonce"):
        market.tx.transfer(funder, dev_account(5).address, 1)
    # the failure made the manager re-read the node's count: the next send goes through
    market.tx.transfer(funder, dev_account(5).address, 1)


def test_error_decoder_names_errors_enums_and_panics():
    decoder = ErrorDecoder(load_artifact("Marketplace")["abi"])
    wrong_phase = decoder.decode("0x" + _selector("WrongPhase(uint8,uint8)") + "00" * 31 + "01" + "00" * 31 + "02")
    assert isinstance(wrong_phase, ContractRevert)
    assert wrong_phase.name == "WrongPhase" and wrong_phase.arguments == {"expected": "Open", "actual": "Aggregating"}
    panic = decoder.decode("0x4e487b71" + "00" * 31 + "11")
    assert panic.name == "Panic" and panic.arguments["meaning"] == "arithmetic overflow or underflow"
    unknown = decoder.decode("0xdeadbeef")
    assert unknown.name == "UnknownError"


def _selector(signature: str) -> str:
    from eth_utils import keccak

    return keccak(text=signature)[:4].hex()
