"""The ChainView over the real Marketplace: ``MarketClient`` reads mapped to the API's types."""

from __future__ import annotations


from eth_abi import decode
from web3 import Web3

from backend.api.chain_view import (
    ChainView,
    CommitteeInfo,
    MemberPostInfo,
    ProjectView,
    RoundPhase,
    RoundView,
    UploadState,
    generic_upload_state,
)
from backend.chain.client import MarketClient
from backend.chain.connection import connect, dev_account
from backend.chain.session import attach, committee_of
from backend.chain.types import Phase, ProjectConfig, ProjectInfo, RoundInfo, Status
from backend.config import Settings
from backend.errors import ChainError

_PHASES = {
    "NONE": RoundPhase.PENDING,
    "OPEN": RoundPhase.OPEN,
    "AGGREGATING": RoundPhase.AGGREGATING,
    "CHALLENGE": RoundPhase.CHALLENGE,
    "DISPUTED": RoundPhase.DISPUTED,
    "FINAL": RoundPhase.FINAL,
    "EXPIRED": RoundPhase.EXPIRED,
    "REVEALING": RoundPhase.REVEALING,
}
_BATCH_CALLS = 300  # eth_calls per JSON-RPC batch: one HTTP request, a bounded response
_VIEWS = {
    "projectCount": (),
    "getConfig": (0,),
    "getProject": (0,),
    "globalModelCid": (0,),
    "getRound": (0, 0),
    "getTrainer": (0, "0x" + "00" * 20),
    "getSubmitters": (0, 0),
}  # name: sample arguments
_UINT32 = 2**32


def _project_info(project_id: int, cfg: ProjectConfig, info: ProjectInfo, model: str) -> ProjectView:
    return ProjectView(
        project_id=project_id,
        owner=info.owner,
        status=info.status.label,
        current_round=info.current_round,
        rounds=cfg.rounds,
        trainer_count=info.trainer_count,
        min_trainers=cfg.minTrainers,
        max_trainers=cfg.maxTrainers,
        stake_wei=cfg.stake,
        reward_pool_wei=cfg.pool,
        reward_asset="ETH" if cfg.is_eth else cfg.asset,
        spec_cid=cfg.specCid,
        global_model_cid=(model or cfg.initialModelCid) or None,
    )


class MarketChainView:
    """Adapts ``backend.chain.client.MarketClient`` to ``ChainView``.

    Unknown ids become None here, before they reach the contract: the ABI would refuse a round
    past uint32, and the client raises for an unknown project.

    Over JSON-RPC the reads need no lock (each is one HTTP request) and pages of projects are read
    in JSON-RPC batches pinned to one block. The embedded chain (py-evm) is not thread-safe: there
    ``lock`` is the chain's own, so the API's reads and this process's transactions take turns.

    A project's configuration is fixed at creation, so it is read once and kept, until the chain
    looks restarted (its head or its project count went down: a development chain started over).
    """

    def __init__(self, client):
        self.client = client
        self.embedded = client.chain.kind == "embedded"
        self.lock = client.chain.lock if self.embedded else None
        self.chain_id = int(client.chain.chain_id)
        self.market_address = client.address
        self.market_key = f"{self.chain_id}-{client.address.lower()}"
        self._contract = client.contract
        self._views = {name: _ViewCall(client.contract, name, args) for name, args in _VIEWS.items()}
        self._configs: dict[int, ProjectConfig] = {}
        self._seen = (0, 0)  # (highest head, highest project count) seen: lower ones mean a restarted chain

    def _observe(self, head: int | None = None, count: int | None = None) -> None:
        top_head, top_count = self._seen
        if (head is not None and head < top_head) or (count is not None and count < top_count):
            self._configs = {}
            top_head, top_count = 0, 0
        self._seen = (max(top_head, head or 0), max(top_count, count or 0))

    def committee(self, project_id: int, round: int) -> CommitteeInfo | None:
        """The round's committee; None where the market has no committee or the project does not exist."""
        committee = committee_of(self.client)
        if committee is None or not self._exists(project_id):
            return None
        return committee_info(committee, project_id, round)

    def _config(self, project_id: int) -> ProjectConfig:
        cfg = self._configs.get(project_id)
        if cfg is None:
            cfg = self._configs[project_id] = self.client.config(project_id)
        return cfg

    def head(self) -> int | None:
        """The latest block number, the key of the API's read cache; None on the embedded chain,
        where time travel changes what a read returns without a new block."""
        if self.embedded:
            return None
        head = int(self.client.chain.w3.eth.block_number)
        self._observe(head=head)
        return head

    def _count(self) -> int:
        count = self.client.project_count()
        self._observe(count=count)
        return count

    def project_ids(self) -> list[int]:
        return list(range(1, self._count() + 1))

    def _exists(self, project_id: int) -> bool:
        return 1 <= project_id <= self._count()

    def project(self, project_id: int) -> ProjectView | None:
        if not self._exists(project_id):
            return None
        return _project_info(
            project_id,
            self._config(project_id),
            self.client.project(project_id),
            self.client.global_model_cid(project_id),
        )

    def projects(self, project_ids: list[int]) -> list[ProjectView | None]:
        """Many projects at once: over JSON-RPC three eth_calls each, sent in batches at one block."""
        if self.embedded or not project_ids:
            return [self.project(pid) for pid in project_ids]
        count = self._count()
        known = [pid for pid in project_ids if 1 <= pid <= count]
        block = hex(self.client.chain.w3.eth.block_number)
        calls = [("getConfig", (pid,)) for pid in known if pid not in self._configs]
        calls += [(name, (pid,)) for pid in known for name in ("getProject", "globalModelCid")]
        results = {}
        for start in range(0, len(calls), _BATCH_CALLS):
            chunk = calls[start : start + _BATCH_CALLS]
            results.update(zip(chunk, self._batch(chunk, block)))
        found = {
            pid: self._info(pid, results, results[("getProject", (pid,))], results[("globalModelCid", (pid,))])
            for pid in known
        }
        return [found.get(pid) for pid in project_ids]

    def _info(self, pid: int, results: dict, project: tuple, model: str) -> ProjectView:
        """A project from batch results; its config from them when it was read, else the kept one."""
        read = results.get(("getConfig", (pid,)))
        cfg = ProjectConfig.from_tuple(read) if read is not None else self._config(pid)
        self._configs[pid] = cfg
        owner, status, current, trainers, carry, bond, vcid = project
        return _project_info(
            pid,
            cfg,
            ProjectInfo(owner, Status(status), int(current), int(trainers), int(carry), int(bond), vcid),
            model,
        )

    def upload_state(self, project_id: int, round: int, address: str) -> UploadState:
        """What an upload's pre-checks need, read fresh in one JSON-RPC batch at one block (the
        project, the round, joined, submitted) instead of nine round trips."""
        if self.embedded:
            return generic_upload_state(self, project_id, round, address)
        block = hex(self.client.chain.w3.eth.block_number)
        (count,) = self._batch([("projectCount", ())], block)
        self._observe(count=count)
        if not 1 <= project_id <= count:
            return UploadState(None, None, False, False)
        calls = [] if project_id in self._configs else [("getConfig", (project_id,))]
        calls += [
            ("getProject", (project_id,)),
            ("globalModelCid", (project_id,)),
            ("getTrainer", (project_id, address)),
        ]
        if round < _UINT32:
            calls += [("getRound", (project_id, round)), ("getSubmitters", (project_id, round))]
        results = dict(zip(calls, self._batch(calls, block)))
        project = self._info(
            project_id, results, results[("getProject", (project_id,))], results[("globalModelCid", (project_id,))]
        )
        joined = bool(results[("getTrainer", (project_id, address))][0])
        if round >= min(project.rounds, _UINT32):
            return UploadState(project, None, joined, False)
        info = _round_info(
            project_id,
            round,
            RoundInfo(
                Phase(results[("getRound", (project_id, round))][0]), *results[("getRound", (project_id, round))][1:]
            ),
        )
        who = address.lower()
        submitted = any(s.lower() == who for s in results[("getSubmitters", (project_id, round))])
        return UploadState(project, info, joined, submitted)

    def _batch(self, calls: list[tuple[str, tuple]], block: str) -> list:
        """Decoded results of view calls, sent as one JSON-RPC batch."""
        requests = [
            ("eth_call", [{"to": self.market_address, "data": self._views[name].data(*args)}, block])
            for name, args in calls
        ]
        responses = self.client.chain.w3.provider.make_batch_request(requests)
        if not isinstance(responses, list) or len(responses) != len(requests):
            raise ChainError(
                f"the node answered a batch of {len(requests)} calls with {responses!r:.200}",
                "check that the JSON-RPC endpoint supports batch requests",
            )
        out = []
        for (name, _), response in zip(calls, responses):
            if "error" in response or "result" not in response:
                raise ChainError(f"{name} failed in a batch: {response.get('error')!r:.200}")
            out.append(self._views[name].decode(response["result"]))
        return out

    def round(self, project_id: int, round: int) -> RoundView | None:
        if not self._exists(project_id) or round >= self._config(project_id).rounds:
            return None
        return _round_info(project_id, round, self.client.round(project_id, round))

    def is_joined(self, project_id: int, address: str) -> bool:
        return self._exists(project_id) and self.client.is_joined(project_id, address)

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        if not self._exists(project_id) or round >= self._config(project_id).rounds:
            return False
        who = address.lower()
        return any(s.lower() == who for s in self.client.submitters(project_id, round))

    def claimable(self, project_id: int, address: str) -> int:
        return self.client.claimable(project_id, address) if self._exists(project_id) else 0

    def stake(self, project_id: int, address: str) -> int:
        if not self._exists(project_id):
            return 0
        trainer = self.client.trainer(project_id, address)
        return trainer.stake if trainer.joined else 0


def _round_info(project_id: int, round: int, r: RoundInfo) -> RoundView:
    return RoundView(
        project_id=project_id,
        round=round,
        phase=_PHASES[r.phase.name],
        submission_deadline=int(r.submission_deadline),
        aggregation_deadline=int(r.aggregation_deadline),
        challenge_deadline=int(r.challenge_deadline) or None,
        submissions=int(r.submissions),
        budget_wei=int(r.budget),
        global_model_cid=r.global_model_cid or None,
        report_cid=r.report_cid or None,
    )


class _ViewCall:
    """A view function of static arguments (uint, address), encoded and decoded without web3's
    per-call machinery (which costs a millisecond a call: a page of 1,000 projects is 3,000 calls)."""

    def __init__(self, contract, name: str, sample: tuple):
        fn = getattr(contract.functions, name)(*sample)
        self.selector = fn._encode_transaction_data()[:10]
        self.types = [_abi_type(o) for o in fn.abi["outputs"]]

    def data(self, *args: int | str) -> str:
        words = (int(a, 16) if isinstance(a, str) else a for a in args)  # addresses are uint160 words
        return self.selector + "".join(f"{w:064x}" for w in words)

    def decode(self, result: str):
        values = decode(self.types, bytes.fromhex(result[2:]))
        return _normalise(values[0] if len(values) == 1 else values)


def _abi_type(output: dict) -> str:
    """The eth_abi type string of an ABI output (tuples spelled out)."""
    kind = output["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in output["components"]) + ")" + kind[len("tuple") :]
    return kind


def _normalise(value):
    """web3's return conventions: checksummed addresses, tuples for structs."""
    if isinstance(value, tuple):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x") and Web3.is_address(value):
        return Web3.to_checksum_address(value)
    return value


def open_chain_view(settings: Settings) -> ChainView:
    """The configured market. On the embedded chain (which lives only in this process) a fresh
    Marketplace is deployed by the first development account, so the API can be tried at once."""
    if settings.chain == "embedded" and settings.market is None:
        client = MarketClient.deploy(connect("embedded"), dev_account(0))
    else:
        client = attach(settings)
    return MarketChainView(client)


__all__ = ["MarketChainView", "open_chain_view"]


def committee_info(committee, project_id: int, round: int) -> CommitteeInfo:
    """A round's committee as the API shows it, from a ``backend.chain.committee.CommitteeClient``
    (members in drawn order, their revealed posts, MemberPenalized events, the settled consensus)."""
    posts = {p.member.lower(): p for p in committee.posts(project_id, round)}
    penalties = {p.member.lower(): p for p in committee.penalties(project_id, round)}
    members = []
    for address in committee.members_of(project_id):
        post, penalty = posts.get(address.lower()), penalties.get(address.lower())
        members.append(
            MemberPostInfo(
                member=address,
                revealed=post is not None,
                weights=None if post is None else list(post.weights),
                flags=None if post is None else post.flags,
                model_cid=None if post is None else post.model_cid,
                report_cid=None if post is None else post.report_cid,
                penalty_wei=0 if penalty is None else penalty.amount,
                share_distance_bps=None if penalty is None else penalty.share_distance_bps,
                flag_disagreements=None if penalty is None else penalty.flag_disagreements,
            )
        )
    settled = committee.consensus(project_id, round)
    return CommitteeInfo(
        project_id=project_id,
        round=round,
        members=members,
        consensus_weights=None if settled is None else list(settled.weights),
        consensus_flags=None if settled is None else settled.flags,
        consensus_model_cid=None if settled is None else settled.model_cid,
    )
