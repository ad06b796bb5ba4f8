"""Chain reads cached per block: dropped on a new head, clock-dependent ones reused for at most max_age,
one read for concurrent misses, and no cache at all for a view without a head."""

from __future__ import annotations

import threading
import time

from backend.api.chain_cache import HEAD_POLL_S, CachedChainView
from tests.api.fakes import FakeChain


class CountingChain(FakeChain):
    def __init__(self):
        super().__init__()
        self.block = 1
        self.reads = 0
        self.round_reads = 0
        self.slow = 0.0
        self.add_project(1, "bafkmodel")

    def head(self):
        return self.block

    def round(self, project_id, round):
        self.round_reads += 1
        return super().round(project_id, round)

    def project(self, project_id):
        self.reads += 1
        time.sleep(self.slow)
        return super().project(project_id)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_timed_reads_are_reused_within_a_block_and_for_at_most_max_age():
    chain, clock = CountingChain(), Clock()
    cached = CachedChainView(chain, max_age_s=1.0, clock=clock)
    first = cached.round(1, 0)
    assert first is not None and cached.round(1, 0) == first
    assert chain.round_reads == 1
    clock.now += 0.5
    cached.round(1, 0)
    assert chain.round_reads == 1
    chain.block = 2  # a new block: seen at the next head poll, and the cache starts over
    clock.now += 2 * HEAD_POLL_S
    cached.round(1, 0)
    assert chain.round_reads == 2
    clock.now += 1.0  # same block, but older than max_age: a phase may have moved with time
    cached.round(1, 0)
    assert chain.round_reads == 3
    assert cached.fresh is chain and (cached.chain_id, cached.market_address) == (chain.chain_id, chain.market_address)


def test_stored_state_serves_until_a_new_block_however_old():
    chain, clock = CountingChain(), Clock()
    cached = CachedChainView(chain, max_age_s=1.0, clock=clock)
    cached.project(1)
    clock.now += 3600  # a quiet chain: an hour and no block
    assert cached.project(1) == chain.projects[1] and cached.project_ids() == [1]
    assert chain.reads == 1
    chain.block = 2
    clock.now += 2 * HEAD_POLL_S
    cached.project(1)
    assert chain.reads == 2


def test_a_read_that_straddles_a_new_block_is_not_kept():
    """A read begun at block 1 and ended after another request saw block 2 (and cleared the cache)
    may hold block 1's state: kept as timeless, it would serve that old state until block 3."""
    chain, clock = CountingChain(), Clock()
    cached = CachedChainView(chain, max_age_s=1.0, clock=clock)
    original = chain.project

    def read_while_a_block_arrives(project_id):
        value = original(project_id)
        chain.block = 2
        clock.now += 2 * HEAD_POLL_S
        assert cached.head() == 2  # another request polls the head meanwhile
        return value

    chain.project = read_while_a_block_arrives
    cached.project(1)
    chain.project = original
    cached.project(1)
    assert chain.reads == 2  # read again: the straddling read was not cached


def test_concurrent_misses_share_one_read():
    chain = CountingChain()
    chain.slow = 0.3
    cached = CachedChainView(chain, max_age_s=5.0)
    threads = [threading.Thread(target=cached.project, args=(1,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert chain.reads == 1


def test_a_page_of_projects_fills_the_per_project_entries():
    chain, clock = CountingChain(), Clock()
    cached = CachedChainView(chain, max_age_s=1.0, clock=clock)
    assert cached.projects([1, 2]) == [chain.projects[1], None]
    cached.project(1)
    assert chain.reads == 2  # the page read both ids once; the single read came from the cache


def test_no_head_no_cache():
    chain = FakeChain()
    chain.add_project(1, "bafkmodel")
    cached = CachedChainView(chain, max_age_s=1.0)
    chain.projects.pop(1)
    assert cached.project(1) is None  # read through: the fake chain's changes show at once


def test_peek_serves_only_what_is_known_current_without_a_chain_read():
    chain, clock = CountingChain(), Clock()
    cached = CachedChainView(chain, max_age_s=1.0, clock=clock)
    assert cached.peek(("project", 1)) == (False, None)  # never read: nothing to serve
    cached.project(1)
    assert cached.peek(("project", 1)) == (True, chain.projects[1])
    chain.block = 2
    clock.now += 2 * HEAD_POLL_S  # the head may have moved: finding out takes a chain read, which peek never makes
    assert cached.peek(("project", 1)) == (False, None)
    assert chain.reads == 1
    cached.project(1)  # the read path polls the head, sees block 2 and reads again
    assert chain.reads == 2 and cached.peek(("project", 1)) == (True, chain.projects[1])
