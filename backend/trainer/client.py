"""The trainer's side of a round: fetch and verify the global model, train locally, upload the
update (to storage, or through the REST API), commit to its CID on-chain while the round is Open, and
reveal the CID after the submission deadline (so that nobody can copy it before the round closes).

The data never leaves this machine; only the update Δ = local − global does, as safetensors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend.chain.client import MarketClient
from backend.chain.transactions import ContractRevert
from backend.chain.types import Phase, Status
from backend.config import get_settings
from backend.data import validate_data
from backend.errors import ConfigError, IntegrityError, MeritError
from backend.limits import GLOBAL_MODEL_MAX_BYTES
from backend.models.serialization import load_weights, non_finite, save_weights
from backend.models.spec import ModelSpec, fetch_model_spec, round_spec
from backend.models.training import compute_update, train_local
from backend.trainer.api_client import ApiRequestError
from backend.trainer.commits import CommitStore

Log = Callable[[str], None]


@dataclass
class RoundContext:
    round: int
    spec: object  # ModelSpec
    global_cid: str
    global_weights: dict  # tensors


class Uploader:
    """Where updates go: the content store directly, or the REST API (signed by the trainer)."""

    def __init__(self, store=None, api=None):
        if (store is None) == (api is None):
            raise ValueError("give exactly one of store or api")
        self.store, self.api = store, api

    def upload(self, pid: int, round_: int, data: bytes) -> str:
        if self.api is not None:
            return self.api.upload_update(pid, round_, data)
        return self.store.add_bytes(data)


def require_joined(market: MarketClient, pid: int) -> None:
    me = market.account.address
    if not market.trainer(pid, me).joined:
        raise MeritError(f"{me} has not joined project {pid}", f"join first: merit trainer join {pid}")


def open_round(market: MarketClient, pid: int) -> int:
    """The current round if it is Open, else a clear error."""
    project = market.project(pid)
    if project.status != Status.RUNNING:
        raise MeritError(
            f"project {pid} is {project.status.label.lower()}, not running",
            "wait for it to start" if project.status == Status.PENDING else "it takes no more updates",
        )
    info = market.round(pid, project.current_round)
    if info.phase != Phase.OPEN:
        raise MeritError(
            f"round {project.current_round} of project {pid} is {info.phase.label.lower()}, not open",
            "wait for the next round (merit project status shows the deadlines)",
        )
    return project.current_round


def fetch_spec(market: MarketClient, pid: int, store=None, api=None, spec_cid: str | None = None):
    """The project's model spec, from the API when one is given, else from storage. Both paths
    verify it against the spec CID on-chain (``spec_cid``, read from the chain when not given)."""
    _require_source(store, api)
    spec_cid = spec_cid or market.config(pid).specCid
    if api is not None:
        return ModelSpec.from_json(api.spec(pid, expected_cid=spec_cid)[0])
    return fetch_model_spec(store, spec_cid)


def _require_source(store, api) -> None:
    if store is None and api is None:
        raise ConfigError(
            "fetching the model spec and the global model needs content storage or a Merit API",
            "pass --ipfs embedded, a Kubo URL, or --api URL",
        )


def load_round(market: MarketClient, pid: int, round_: int, store=None, api=None) -> RoundContext:
    """The model spec and the verified global model the round starts from."""
    _require_source(store, api)
    cfg = market.config(pid)
    cid = market.global_model_cid(pid) or cfg.initialModelCid
    # Both paths verify: the store re-derives the CID from the blocks, the API client checks the
    # bytes against the CID the chain names.
    data = (
        api.model(pid, expected_cid=cid)[0]
        if api is not None
        else store.get_bytes(cid, max_size=GLOBAL_MODEL_MAX_BYTES)
    )
    tensors, metadata = load_weights(data)
    _require_finite(tensors, pid, cid)
    spec = round_spec(fetch_spec(market, pid, store, api, cfg.specCid), metadata)  # the aggregator's schedule, if any
    return RoundContext(round=round_, spec=spec, global_cid=cid, global_weights=tensors)


def _require_finite(tensors: dict, pid: int, cid: str) -> None:
    """A global model with NaN or infinite values would make every update garbage (and every honest
    trainer look like a poisoner): refuse to train on it, and say what the trainer can do."""
    bad = sorted(non_finite(tensors))
    if bad:
        raise IntegrityError(
            f"the global model {cid} of project {pid} holds NaN or infinite values (in {', '.join(bad[:3])})",
            "do not train on it: the round that posted it can be disputed in its challenge period "
            "(the Marketplace's dispute), or wait for the next round's model",
        )


def make_update(
    ctx: RoundContext,
    pid: int,
    trainer: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    progress: Callable[[int, int, float], None] | None = None,
) -> bytes:
    """Train locally and serialize Δ as safetensors with its provenance metadata."""
    local = train_local(ctx.spec, ctx.global_weights, X, y, seed=seed, progress=progress)
    delta = compute_update(local, ctx.global_weights)
    return serialize_update(delta, pid, ctx.round, trainer, ctx.global_cid)


def serialize_update(delta: dict, pid: int, round_: int, trainer: str, base_cid: str) -> bytes:
    return save_weights(delta, {"project": str(pid), "round": str(round_), "trainer": trainer, "base": base_cid})


def commit_store(market: MarketClient) -> CommitStore:
    """Where this trainer's unrevealed commitments live: under MERIT_HOME, per chain, market and address."""
    return CommitStore.for_trainer(get_settings().home, market.chain.chain_id, market.address, market.account.address)


def submit(
    market: MarketClient, uploader: Uploader, pid: int, round_: int, update: bytes, commits: CommitStore | None = None
) -> str:
    """Upload the update, then commit to its CID on-chain (the salt is on disk first). Returns the CID."""
    commits = commits or commit_store(market)
    cid = uploader.upload(pid, round_, update)
    pending = commits.new(pid, round_, cid)
    market.commit_update(pid, round_, cid, pending.salt)
    return cid


def reveal(
    market: MarketClient, pid: int, round_: int, commits: CommitStore | None = None, log: Log = print
) -> str | None:
    """Reveal this trainer's commitment for ``round_`` if one is pending (after the submission deadline,
    before the reveal deadline). Returns the revealed CID, or None if nothing was pending."""
    commits = commits or commit_store(market)
    pending = commits.get(pid, round_)
    if pending is None:
        return None
    info = market.round(pid, round_)
    if info.phase == Phase.OPEN:
        raise MeritError(
            f"round {round_} is still open: reveals start at its submission deadline",
            "wait for the deadline (merit project status shows it)",
        )
    try:
        market.reveal_update(pid, round_, pending.cid, pending.salt)
    except ContractRevert as exc:
        if exc.name != "UpdateAlreadyRevealed":
            raise
    commits.done(pid, round_)
    log(f"round {round_}: revealed update {pending.cid}")
    return pending.cid


def train_round(
    market: MarketClient,
    pid: int,
    X: np.ndarray,
    y: np.ndarray,
    store=None,
    api=None,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
    log: Log = print,
    commits: CommitStore | None = None,
) -> str:
    """One round's participation: check, fetch, train, upload, commit. The reveal comes after the
    submission deadline (``reveal``; ``run_trainer`` does it by itself)."""
    require_joined(market, pid)
    round_ = open_round(market, pid)
    if market.account.address in market.submitters(pid, round_):
        raise MeritError(f"already committed an update for round {round_}", "wait for the next round")
    ctx = load_round(market, pid, round_, store=store, api=api)

    X, y = validate_data(X, y, ctx.spec, source="training data")
    update = make_update(ctx, pid, market.account.address, X, y, seed=seed + round_, progress=progress)
    cid = submit(market, Uploader(api=api) if api is not None else Uploader(store=store), pid, round_, update, commits)
    log(f"round {round_}: committed update {cid}; reveal it after the submission deadline")
    return cid


def run_trainer(
    market: MarketClient,
    pid: int,
    X: np.ndarray,
    y: np.ndarray,
    store=None,
    api=None,
    seed: int = 0,
    poll_seconds: float = 2.0,
    log: Log = print,
    progress_factory=None,
    claim_at_end: bool = True,
) -> dict:
    """Take part in every remaining round, then claim rewards and withdraw the stake."""
    require_joined(market, pid)
    commits = commit_store(market)
    done: set[int] = set()
    while True:
        project = market.project(pid)
        if project.status in (Status.ENDED, Status.CANCELLED):
            break
        if project.status == Status.RUNNING:
            r = project.current_round
            info = market.round(pid, r)
            if info.phase == Phase.REVEALING and commits.get(pid, r) is not None:
                reveal(market, pid, r, commits, log=log)
                continue
            if info.phase == Phase.OPEN and r not in done and market.account.address not in market.submitters(pid, r):
                progress = progress_factory(r) if progress_factory else None
                done.add(r)
                try:
                    train_round(
                        market, pid, X, y, store=store, api=api, seed=seed, progress=progress, log=log, commits=commits
                    )
                except (ContractRevert, ApiRequestError) as exc:
                    # the chain refuses a late commit; the API refuses a late upload before that
                    if getattr(exc, "name", getattr(exc, "error", "")) not in (
                        "WrongPhase",
                        "WrongRound",
                        "round_not_open",
                    ):
                        raise
                    log(
                        f"round {r}: the submission window closed before the update was ready; "
                        "waiting for the next round (train faster, or ask for a longer window)"
                    )
                continue
        time.sleep(poll_seconds)
    result = {"claimed": 0, "stake_returned": 0}
    if claim_at_end:
        result.update(claim_and_withdraw(market, pid, log=log))
    return result


def claim_and_withdraw(market: MarketClient, pid: int, log: Log = print, withdraw: bool = True) -> dict:
    me = market.account.address
    out = {"claimed": 0, "stake_returned": 0}
    amount = market.claimable(pid, me)
    if amount:
        market.claim(pid)
        out["claimed"] = amount
        log(f"claimed {amount} wei")
    if withdraw and market.project(pid).status in (Status.ENDED, Status.CANCELLED):
        info = market.trainer(pid, me)
        # An evicted trainer no longer holds a seat but still has its stake; a fully slashed one may
        # still have a share of the end pot.
        if info.joined or info.stake or info.slashed:
            try:
                paid = market.withdraw_stake_paid(pid)
                out["stake_returned"] = min(paid, info.stake)
                out["end_pot_share"] = paid - out["stake_returned"]
                log(
                    f"withdrew stake {info.stake} wei"
                    + (f" and an end-pot share of {out['end_pot_share']} wei" if out["end_pot_share"] else "")
                )
            except MeritError as exc:
                if getattr(exc, "name", "") != "AlreadyWithdrawn":
                    raise
    return out
