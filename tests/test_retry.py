"""The one retry policy (backend/retry.py) and what it promises every network call: transient failures
are retried with backoff, a service that stays down gives up with a clear error, a refusal is never
retried, and web3's own retries are not stacked on top of Merit's."""

from __future__ import annotations

import http.server
import threading

import pytest
import requests

from backend.chain.connection import rpc_chain, rpc_provider
from backend.chain.transactions import with_retries
from backend.errors import ChainError
from backend.retry import RetryPolicy, retry_call

FAST = dict(base_delay=0.001, max_delay=0.002)


class Flaky:
    def __init__(self, failures: int, exc: type[BaseException] = ConnectionError):
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return "ok"


def transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def test_transient_failures_are_retried_until_success():
    fn = Flaky(failures=3)
    assert retry_call(fn, RetryPolicy(retries=3, **FAST), transient=transient) == "ok"
    assert fn.calls == 4


def test_gives_up_after_retries_plus_one_tries_with_the_callers_error():
    fn = Flaky(failures=100)
    with pytest.raises(RuntimeError, match="down after 3 tries: failure 3") as err:
        retry_call(
            fn,
            RetryPolicy(retries=2, **FAST),
            transient=transient,
            give_up=lambda exc, n: RuntimeError(f"down after {n} tries: {exc}"),
        )
    assert fn.calls == 3
    assert isinstance(err.value.__cause__, ConnectionError)


def test_without_give_up_the_last_failure_is_raised():
    fn = Flaky(failures=100)
    with pytest.raises(ConnectionError, match="failure 2"):
        retry_call(fn, RetryPolicy(retries=1, **FAST), transient=transient)


def test_a_failure_that_is_not_transient_is_never_retried():
    fn = Flaky(failures=100, exc=ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        retry_call(fn, RetryPolicy(retries=5, **FAST), transient=transient, give_up=lambda exc, n: AssertionError())
    assert fn.calls == 1


def test_zero_retries_is_one_try():
    fn = Flaky(failures=1)
    with pytest.raises(ConnectionError):
        retry_call(fn, RetryPolicy(retries=0, **FAST), transient=transient)
    assert fn.calls == 1


def test_backoff_doubles_up_to_the_cap_and_before_retry_sees_each_delay():
    delays = []
    fn = Flaky(failures=5)
    retry_call(
        fn,
        RetryPolicy(retries=5, base_delay=0.001, max_delay=0.004),
        transient=transient,
        before_retry=lambda exc, delay: delays.append(delay),
    )
    assert delays == pytest.approx([0.001, 0.002, 0.004, 0.004, 0.004])


def test_a_deadline_bounds_unlimited_retries():
    fn = Flaky(failures=10**9)
    with pytest.raises(TimeoutError, match="gave up"):
        retry_call(
            fn,
            RetryPolicy(retries=None, base_delay=0.01, max_delay=0.02, deadline=0.2),
            transient=transient,
            give_up=lambda exc, n: TimeoutError(f"gave up after {n}"),
        )
    assert 3 <= fn.calls < 100


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


# -- the chain: one policy, not stacked on web3's ------------------------------------------------
class _Busy(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC endpoint behind a gateway that answers 503 to everything, counting requests."""

    hits = 0

    def do_POST(self):  # noqa: N802 (http.server's naming)
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def busy_node():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    _Busy.hits = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_node_gets_retries_plus_one_requests_not_web3s_on_top(busy_node):
    from web3 import Web3

    w3 = Web3(rpc_provider(busy_node, timeout=2))
    with pytest.raises(ChainError, match="did not answer after 3 tries"):
        with_retries(lambda: w3.eth.block_number, retries=2, what="eth_blockNumber", base_delay=0.001)
    assert _Busy.hits == 3  # web3's own retries (5 per call) would make this 18


def test_connecting_to_a_busy_node_fails_fast_with_what_to_do(busy_node):
    with pytest.raises(ChainError, match="cannot reach a JSON-RPC node") as err:
        rpc_chain(busy_node, timeout=2)
    assert "merit chain up" in str(err.value)
    assert _Busy.hits == 1


def test_chain_refusals_are_not_retried():
    calls = []

    def refused():
        calls.append(1)
        raise requests.HTTPError("400 Client Error", response=_response(400))

    with pytest.raises(requests.HTTPError):
        with_retries(refused, retries=4, what="eth_call", base_delay=0.001)
    assert calls == [1]


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


# -- the aggregator daemon: a step that fails transiently is retried, with backoff, forever ------
class _Daemon:
    """What AggregatorNode.run uses of a node: step() and log()."""

    def __init__(self, failures: list[BaseException]):
        self.failures, self.logged = failures, []

    def step(self) -> str:
        if self.failures:
            raise self.failures.pop(0)
        return "done"

    def log(self, message: str) -> None:
        self.logged.append(message)


def test_the_aggregator_loop_backs_off_on_chain_and_storage_failures():
    from aggregator.node import AggregatorNode
    from backend.errors import StorageError

    daemon = _Daemon([ChainError("node restarting"), StorageError("kubo restarting"), ChainError("still")])
    AggregatorNode.run(daemon, poll_seconds=0.001, max_backoff=0.002)
    retries = [m for m in daemon.logged if "retrying in" in m]
    assert len(retries) == 3 and "node restarting" in retries[0] and "kubo restarting" in retries[1]
    assert daemon.logged[-1] == "done"


def test_the_aggregator_loop_does_not_retry_a_bug():
    from aggregator.node import AggregatorNode

    daemon = _Daemon([KeyError("a bug")])
    with pytest.raises(KeyError):
        AggregatorNode.run(daemon, poll_seconds=0.001)
    assert not any("retrying" in m for m in daemon.logged)


# -- waiting for a node we started -----------------------------------------------------------------
def test_waiting_for_a_node_gives_up_at_the_deadline_with_a_chain_error():
    import time

    from backend.chain.anvil import free_port
    from backend.chain.connection import wait_for_rpc

    start = time.monotonic()
    with pytest.raises(ChainError, match="no JSON-RPC node answered at http://127.0.0.1:.* within 1s"):
        wait_for_rpc(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    assert 0.8 < time.monotonic() - start < 10


def test_waiting_stops_at_once_when_the_process_we_started_is_gone():
    from backend.chain.anvil import free_port
    from backend.chain.connection import wait_for_rpc

    asked = []

    def alive() -> bool:
        asked.append(1)
        return False

    with pytest.raises(ChainError, match="no JSON-RPC node answered"):
        wait_for_rpc(f"http://127.0.0.1:{free_port()}", timeout=60, alive=alive)
    assert asked == [1]


def test_waiting_returns_once_the_node_answers(busy_node):
    """A node that answers 503 is up but busy: wait_for_rpc keeps polling it until the deadline."""
    from backend.chain.connection import wait_for_rpc

    with pytest.raises(ChainError):
        wait_for_rpc(busy_node, timeout=0.5)
    assert _Busy.hits >= 3
