"""The aggregator node: a committee member that follows one project on-chain and scores each round.

The project's aggregator is the Marketplace's committee, which draws its members from the staked
registry when the project starts (``merit aggregator register`` first). One ``step()`` looks at the
chain and does the next thing the project needs:

    Pending      start the project once the owner's bond is posted and enough trainers joined
    Open         nothing: trainers are submitting
    Aggregating  fetch -> validate, detect, score, aggregate (aggregator.round) -> publish model and
                 report -> commit to the scores -> reveal them -> settle the committee's consensus
                 (each as soon as the committee's windows allow)
    Challenge    finalize once the challenge period is over
    Expired      finalize once the grace period is over (the owner may re-post its bond before)
    Ended        done

A ``behaviour`` hook (``MemberPost -> MemberPost``, identity by default) sees the scores before they
are committed: the demo uses it to play a dishonest member.

Restart safety: the outcome of a round, then the member's post and commitment salt, are written to a
state file (atomically) *before* they are committed, and the committee's progress is read before every
transaction. A node killed at any point resumes from the file, or recomputes the same outcome (it is
deterministic), and never commits, reveals or settles twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from aggregator.config import aggregator_config_of
from aggregator.report import fetch_report
from aggregator.round import run_round
from backend.chain.client import MarketClient, expand_result
from backend.chain.committee import CommitteeClient
from backend.chain.history import round_history
from backend.chain.transactions import ContractRevert
from backend.chain.types import MemberPost, Phase, Status
from backend.errors import ChainError, IntegrityError, MeritError, StorageError
from backend.files import atomic_output
from backend.limits import GLOBAL_MODEL_MAX_BYTES
from backend.models.spec import fetch_model_spec
from backend.retry import RetryPolicy, retry_call
from backend.storage import MalformedCidError

STATE_SCHEMA = "merit.aggregator-state/1"
Log = Callable[[str], None]
Behaviour = Callable[[MemberPost], MemberPost]


def honest(post: MemberPost) -> MemberPost:
    """The default behaviour: post the scores as computed."""
    return post


def _default_log(message: str) -> None:
    Console(stderr=True).print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False)


@dataclass
class PublishedRound:
    round: int
    inputs: str  # digest of (base model, submissions): a recompute is needed if it changes
    global_model_cid: str
    report_cid: str
    weights: list[int]
    flags: int
    posted: bool = False
    timings: dict[str, float] | None = None
    post_gas: int | None = None  # saved beside the round once posted; read back when a round is re-aggregated
    member: dict | None = None  # the post this node committed, its salt and its members' window
    member_gas: dict | None = None  # gas of this node's commit and reveal


class FaultInjected(SystemExit):
    """Raised by --fail-after in tests that kill the node mid-round."""


class AggregatorNode:
    def __init__(
        self,
        market: MarketClient,
        store,
        pid: int,
        validation,
        state_dir: Path,
        executor=None,
        log: Log | None = None,
        fetch_retries: int = 3,
        fail_after: str | None = None,
        busy: Callable[[str], Any] | None = None,
        behaviour: Behaviour = honest,
    ):
        self.market, self.store, self.pid = market, store, pid
        self.validation = validation
        self.executor = executor
        self.log = log or _default_log
        self.fetch_retries = fetch_retries
        self.fail_after = fail_after
        self.busy = busy or (lambda message: contextlib.nullcontext())  # e.g. a Rich spinner
        self.cfg = market.config(pid)
        if market.account is None:
            raise MeritError("the aggregator node needs a signing key", "pass --key or set MERIT_PRIVATE_KEY")
        self.committee = CommitteeClient.of(market)
        self.behaviour = behaviour
        self.spec = fetch_model_spec(store, self.cfg.specCid)
        self.config = aggregator_config_of(self.spec)
        self.state_path = Path(state_dir) / f"{market.chain.chain_id}-{market.address.lower()}-{pid}.json"
        self.state = self._load_state()
        self.last_outcome = None  # the RoundOutcome computed in this process, if any

    # ------------------------------------------------------------------ state file
    def _load_state(self) -> dict[str, Any]:
        if self.state_path.exists():
            try:
                data = json.loads(self.state_path.read_text())
                if data.get("schema") == STATE_SCHEMA:
                    return data
            except ValueError:
                pass
            self.log(f"[yellow]ignoring unreadable state file {self.state_path}[/yellow]")
        return {"schema": STATE_SCHEMA, "project_id": self.pid, "rounds": {}}

    def _save_state(self) -> None:
        with atomic_output(self.state_path) as out:
            out.write(json.dumps(self.state, indent=1, sort_keys=True).encode())
            out.flush()
            os.fsync(out.fileno())

    def _checkpoint(self, phase: str) -> None:
        if self.fail_after == phase:
            raise FaultInjected(f"fault injected after {phase}")

    # ------------------------------------------------------------------ the loop
    def run(self, poll_seconds: float = 2.0, max_backoff: float = 60.0, stop: Callable[[], bool] | None = None) -> None:
        """Step until the project ends; transient chain and storage failures back off and retry."""
        last = None
        policy = RetryPolicy(retries=None, base_delay=poll_seconds, max_delay=max_backoff)
        while True:
            what = retry_call(
                self.step,
                policy,
                transient=lambda exc: isinstance(exc, (ChainError, StorageError)),
                before_retry=lambda exc, delay: self.log(f"[yellow]retrying in {delay:.0f}s: {exc}[/yellow]"),
            )
            if what != last:
                self.log(what)
                last = what
            if what == "done" or (stop is not None and stop()):
                return
            time.sleep(poll_seconds)

    def step(self) -> str:
        market, pid = self.market, self.pid
        project = market.project(pid)
        if project.status in (Status.ENDED, Status.CANCELLED):
            return "done"
        if project.status == Status.PENDING:
            if project.bond_balance == 0:
                return "waiting for the owner's bond"
            if project.trainer_count >= self.cfg.minTrainers:
                market.start(pid)
                return "started round 0"
            return f"waiting for trainers ({project.trainer_count}/{self.cfg.minTrainers} joined)"
        seat = self._seat()
        r = project.current_round
        info = market.round(pid, r)
        if info.phase == Phase.OPEN:
            return f"round {r} open ({info.submissions} commitments so far)"
        if info.phase == Phase.REVEALING:
            return f"round {r} revealing ({info.revealed_count}/{info.submissions} revealed)"
        if info.phase in (Phase.AGGREGATING, Phase.EXPIRED) and info.revealed_count == 0:
            market.finalize(pid)
            return f"round {r} had no revealed update; finalized (the model carries forward)"
        if info.phase == Phase.EXPIRED:
            grace = market.liveness(pid)["grace_deadline"]
            if self.market.chain.now() >= grace:
                market.finalize(pid)
                return f"round {r} expired; settled without a result after its grace period"
            return f"round {r} expired; waiting for the owner's bond or the grace period (until {grace})"
        if info.phase == Phase.AGGREGATING:
            published = self._publish(r)
            self._checkpoint("published")
            return self._post(r, published, seat)
        if info.phase == Phase.CHALLENGE:
            if self.market.chain.now() >= info.challenge_deadline:
                try:
                    market.finalize(pid)
                except ContractRevert as exc:
                    # a node whose next block is stamped before the deadline (Ganache's clock): next step
                    if exc.name != "ChallengePeriodNotOver":
                        raise
                    return f"round {r} in its challenge period"
                return f"round {r} finalized"
            return f"round {r} in its challenge period"
        if info.phase == Phase.DISPUTED:
            ruling = market.liveness(pid)["ruling_deadline"]
            if self.market.chain.now() >= ruling:
                market.finalize(pid)  # the arbiter let its deadline pass: rejected by default
                return f"round {r}: dispute lapsed at its ruling deadline; finalized"
            return f"round {r} disputed; waiting for the arbiter (until {ruling})"
        return f"round {r}: {info.phase.label}"

    # ------------------------------------------------------------------ phases
    def _seat(self) -> int:
        """This node's seat in the project's committee (drawn at start)."""
        me = self.market.account.address
        members = self.committee.members_of(self.pid)
        if me not in members:
            raise MeritError(
                f"{me} was not drawn for project {self.pid}'s committee ({', '.join(members) or 'none'})",
                "run nodes for the projects `merit aggregator run` lists as yours",
            )
        return members.index(me)

    def _inputs_digest(self, base_cid: str, submissions: list[tuple[str, str]]) -> str:
        return hashlib.sha256(json.dumps([base_cid, submissions]).encode()).hexdigest()

    def _fetch(self, cid: str) -> bytes | None:
        """An update's bytes, or None if it cannot be had (it will be flagged, never fatal).
        A lying node or a malformed CID is final; anything else is retried with backoff."""

        def fetch() -> bytes | None:
            size = self.store.size(cid)
            if size > self.config.max_update_bytes:  # oversize is final: no retries, no download
                self.log(
                    f"[yellow]update {cid} refused: {size} bytes, over the cap of "
                    f"{self.config.max_update_bytes}[/yellow]"
                )
                return None
            return self.store.get_bytes(cid, max_size=self.config.max_update_bytes)

        try:
            return retry_call(
                fetch,
                RetryPolicy(retries=self.fetch_retries, base_delay=0.5),
                transient=lambda exc: isinstance(exc, StorageError)
                and not isinstance(exc, (IntegrityError, MalformedCidError)),
            )
        except (IntegrityError, MalformedCidError) as exc:
            self.log(f"[yellow]update {cid} refused: {exc}[/yellow]")
        except StorageError as exc:
            self.log(f"[yellow]update {cid} unavailable: {exc}[/yellow]")
        return None

    def _earlier_rounds(self, r: int) -> tuple[bytes | None, list[dict[str, float]]]:
        """What round r takes from the rounds before it, from the chain's history and storage, as
        ``merit verify`` finds it: the global model round r - 1 started from (the delta free-rider
        check replays its step to the base; None in round 0), and each earlier round's pay shares
        from its report (the cumulative payment)."""
        if r == 0:
            return None, []
        records = round_history(self.market, self.pid)
        return earlier_rounds(self.store, records, r)

    def _publish(self, r: int) -> PublishedRound:
        base_cid = self.market.global_model_cid(self.pid)
        # Revealed updates only, in commit order: the copy check's "earliest" is the earliest commitment.
        revealed = self.market.revealed(self.pid, r)
        indices = [i for i, _, _ in revealed]
        submissions = [(trainer, cid) for _, trainer, cid in revealed]
        commitments = self.market.round(self.pid, r).submissions
        digest = self._inputs_digest(base_cid, [indices, commitments, submissions])
        saved = self.state["rounds"].get(str(r))
        if saved and saved["inputs"] == digest:
            return PublishedRound(**saved)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.log(f"round {r}: fetching {len(submissions)} updates")
        blobs = [(addr, cid, self._fetch(cid)) for addr, cid in submissions]
        missing = sum(1 for _, _, b in blobs if b is None)
        timings["fetch"] = time.perf_counter() - t0
        self.log(f"round {r}: fetched {len(blobs) - missing}/{len(blobs)}; validating, detecting, scoring, aggregating")
        base_bytes = self.store.get_bytes(base_cid, max_size=GLOBAL_MODEL_MAX_BYTES)
        previous, prior_shares = self._earlier_rounds(r)
        with self.busy(f"round {r}: validating, detecting, scoring {len(blobs)} updates, aggregating"):
            outcome = run_round(
                self.spec,
                base_bytes,
                blobs,
                self.validation,
                self.config,
                project_id=self.pid,
                round=r,
                global_cid=base_cid,
                executor=self.executor,
                previous_global=previous,
                prior_shares=prior_shares,
            )
        timings.update({k: float(v) for k, v in outcome.timings.items()})
        flagged = bin(outcome.flags).count("1")
        self.log(
            f"round {r}: {flagged} flagged, metric {outcome.new_metric:.4f}; "
            + ", ".join(f"{k} {v:.2f}s" for k, v in outcome.timings.items())
        )
        t0 = time.perf_counter()
        model_cid = self.store.add_bytes(outcome.global_weights)
        chain = {"chain_id": self.market.chain.chain_id, "market": self.market.address}
        report = outcome.report.model_copy(update={"chain": chain, "new_model_cid": model_cid})
        report_cid = self.store.add_bytes(report.canonical_json())
        timings["publish"] = time.perf_counter() - t0
        self.log(f"round {r}: published model {model_cid} and report {report_cid}")
        self.last_outcome = outcome
        # postResult takes one weight per commitment: unrevealed ones get 0 and no flag.
        weights, flags = expand_result(list(outcome.weights), int(outcome.flags), indices, commitments)
        published = PublishedRound(
            round=r,
            inputs=digest,
            global_model_cid=model_cid,
            report_cid=report_cid,
            weights=weights,
            flags=flags,
            timings=timings,
        )
        self.state["rounds"][str(r)] = published.__dict__
        self._save_state()
        return published

    def _post(self, r: int, published: PublishedRound, seat: int) -> str:
        """Commit, reveal and settle as the committee's windows allow; each at most once per window."""
        pid, committee = self.pid, self.committee
        info = self.market.round(pid, r)
        if info.phase != Phase.AGGREGATING:  # settled by an earlier incarnation, or the window moved on
            return f"round {r} already {info.phase.label.lower()}"
        opens, commit_by, reveal_by, settle_by = committee.deadlines(pid, r)
        progress = committee.progress(pid)
        current = progress if progress and progress["round"] == r and progress["opens"] == opens else None
        committed = current["committed"] if current else 0
        revealed = current["revealed"] if current else 0
        full = (1 << len(committee.members_of(pid))) - 1
        me = 1 << seat
        now = self.market.chain.now()
        post, salt = self._member_post(r, published, opens)
        gas = self.state["rounds"][str(r)].setdefault("member_gas", {})
        if not committed & me:
            if now >= commit_by:
                return f"round {r}: the commit window closed at {commit_by} before this node committed"
            gas["commit"] = committee.commit_scores(pid, r, post, salt).gas_used
            committed |= me
            self._save_state()
            self._checkpoint("committed")
        if not revealed & me:
            if now < commit_by and committed != full:
                return f"round {r}: scores committed; waiting for the other members' commitments"
            if now >= reveal_by:
                return f"round {r}: the reveal window closed at {reveal_by} before this node revealed"
            gas["reveal"] = committee.reveal_scores(pid, r, post, salt).gas_used
            revealed |= me
            self._save_state()
        if now < reveal_by and revealed != full:
            return f"round {r}: scores revealed; waiting for the other members' reveals"
        try:
            receipt = committee.settle(pid, r)
        except ContractRevert as exc:
            if exc.name in ("AlreadySettled", "NotAggregating"):
                return f"round {r} already settled"
            raise
        state = self.state["rounds"][str(r)]
        state["posted"] = True
        state["post_gas"] = receipt.gas_used
        self._save_state()
        return f"round {r}: committee consensus settled (gas {receipt.gas_used:,}, settle by {settle_by})"

    def _member_post(self, r: int, published: PublishedRound, opens: int) -> tuple[MemberPost, bytes]:
        """The post this node commits in the members' window that opened at ``opens`` (after the
        behaviour hook) and its salt: made once and kept in the state file, so that a restarted node
        reveals exactly what it committed."""
        state = self.state["rounds"][str(r)]
        saved = state.get("member")
        if saved and saved["opens"] == opens:
            return MemberPost(**saved["post"]), bytes.fromhex(saved["salt"])
        computed = MemberPost(
            member=self.market.account.address,
            weights=list(published.weights),
            flags=int(published.flags),
            model_cid=published.global_model_cid,
            report_cid=published.report_cid,
        )
        post = self.behaviour(computed)
        salt = os.urandom(32)
        state["member"] = {"opens": opens, "salt": salt.hex(), "post": post.__dict__}
        state.pop("member_gas", None)
        self._save_state()
        return post, salt


def earlier_rounds(store, records, r: int) -> tuple[bytes | None, list[dict[str, float]]]:
    """(the base model of round r - 1, or None; each earlier posted round's pay shares, in order).
    ``records`` is the chain's round history. A report that cannot be read is a hard error: the
    payment of round r depends on it, and guessing would post a result nobody can verify."""
    by_round = {rec.round: rec for rec in records}
    parent = by_round.get(r - 1)
    previous = store.get_bytes(parent.base_model_cid, max_size=GLOBAL_MODEL_MAX_BYTES) if parent else None
    shares = []
    for t in range(r):
        rec = by_round.get(t)
        if rec is not None and rec.report_cid:
            shares.append(fetch_report(store, rec.report_cid).pay_shares())
    return previous, shares
