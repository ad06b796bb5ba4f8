"""The one retry policy for network calls: the chain's JSON-RPC, the Kubo RPC, the aggregator's
fetches and steps, and the trainer's API client all retry through :func:`retry_call`.

It is tenacity's exponential backoff with a cap on attempts (and, where a caller waits on a service
that is starting, a deadline). Callers say which failures are transient; anything else propagates at
once, and a call that was never transient (a non-idempotent upload whose connection was made) is
never repeated. How many tries and how long each may take stay in :class:`backend.config.Settings`.

web3's HTTP provider has retries of its own; Merit turns them off (``connection.rpc_provider``) so
that one JSON-RPC call is tried exactly ``rpc_retries + 1`` times, not that times web3's six.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    stop_never,
    wait_exponential,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. ``retries`` None retries until ``deadline`` (or, with
    neither, forever: the aggregator daemon's loop); delays double from ``base_delay`` up to ``max_delay``."""

    retries: int | None = 3
    base_delay: float = 0.25
    max_delay: float = 8.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    def stop(self):
        """tenacity's stop condition: after retries + 1 tries, or before a sleep that would pass the deadline."""
        stops = [stop_after_attempt(self.retries + 1)] if self.retries is not None else []
        if self.deadline is not None:
            stops.append(stop_before_delay(self.deadline))
        return stop_any(*stops) if stops else stop_never


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool],
    give_up: Callable[[BaseException, int], BaseException] | None = None,
    before_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """``fn()``, retried while it raises an exception that ``transient`` accepts.

    ``give_up(last_exception, attempts)`` builds the error raised when the policy runs out (default:
    the last exception itself). ``before_retry(exception, delay)`` runs before each sleep: to log, or
    to rewind a body that the failed try consumed.
    """

    def _before_sleep(state: RetryCallState) -> None:
        if before_retry is not None and state.outcome is not None:
            before_retry(state.outcome.exception(), state.upcoming_sleep)

    retrying = Retrying(
        stop=policy.stop(),
        wait=wait_exponential(multiplier=policy.base_delay, max=policy.max_delay),
        retry=retry_if_exception(transient),
        before_sleep=_before_sleep,
    )
    try:
        return retrying(fn)  # a failure that is not transient propagates from here as it was raised
    except RetryError as stopped:  # transient to the end
        last = stopped.last_attempt.exception()
        error = give_up(last, stopped.last_attempt.attempt_number) if give_up is not None else last
        if error is last:
            raise last from None
        raise error from last
