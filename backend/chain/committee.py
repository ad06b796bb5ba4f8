"""CommitteeClient: the aggregator committee (contracts/committee/Committee.sol) and its staked registry.

    committee = CommitteeClient.of(market)            # the Marketplace's COMMITTEE, same signer
    committee.register(10**17)                         # stake in the registry (anyone)
    committee.members_of(pid)                          # who was drawn at start
    committee.commit_scores(pid, r, post, salt)        # a member: commit, then reveal
    committee.reveal_scores(pid, r, post, salt)
    committee.settle(pid, r)                           # anyone: the consensus goes to the Marketplace

Posts travel as ``MemberPost`` (one weight per committed submitter, unpacked); the contract takes the
weights packed 8 per word, as ``postResult`` does.
"""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3

from backend.chain.client import MarketClient, _Contract, pack_weights, unpack_weights
from backend.chain.transactions import Receipt
from backend.chain.types import MemberPenalty, MemberPost, RegistryMember
from backend.errors import ConfigError


def scores_commitment(member: str, pid: int, round_: int, post: MemberPost, salt: bytes) -> bytes:
    """keccak256(abi.encode(member, projectId, round, packedWeights, flags, modelCid, reportCid, salt)):
    what ``commitScores`` takes (the same as Committee.scoresCommitment)."""
    if len(salt) != 32:
        raise ConfigError("a commitment salt is 32 bytes", "use os.urandom(32)")
    return Web3.keccak(
        abi_encode(
            ["address", "uint256", "uint32", "uint256[]", "uint256", "string", "string", "bytes32"],
            [
                Web3.to_checksum_address(member),
                pid,
                round_,
                pack_weights(post.weights),
                int(post.flags),
                post.model_cid,
                post.report_cid,
                salt,
            ],
        )
    )


def _scores(post: MemberPost) -> tuple:
    return (pack_weights(post.weights), int(post.flags), post.model_cid, post.report_cid)


class RegistryClient(_Contract):
    artifact_name = "AggregatorRegistry"


class CommitteeClient(_Contract):
    artifact_name = "Committee"

    @classmethod
    def of(cls, market: MarketClient) -> "CommitteeClient":
        """The committee of ``market``, with the market's signer and transactor."""
        client = cls(market.chain, market.committee_address(), market.account, market.tx)
        client.market = market
        return client

    def as_account(self, account: LocalAccount | None) -> "CommitteeClient":
        return CommitteeClient.of(self.market.as_account(account))

    @property
    def registry(self) -> RegistryClient:
        if not hasattr(self, "_registry"):
            self._registry = RegistryClient(self.chain, self._call("registry"), self.account, self.tx)
        return self._registry

    # ---------------------------------------------------------------- registry
    def register(self, stake_wei: int) -> Receipt:
        """Join the registry (or add stake) with ``stake_wei`` of ETH."""
        if stake_wei <= 0:
            raise ConfigError("the stake must be positive", "pass --stake, e.g. --stake '0.1 ether'")
        return self.registry._send("register", value=int(stake_wei), account=self.account)

    def request_exit(self) -> Receipt:
        return self.registry._send("requestExit", account=self.account)

    def withdraw(self) -> Receipt:
        return self.registry._send("withdraw", account=self.account)

    def member(self, address: str) -> RegistryMember:
        address = Web3.to_checksum_address(address)
        stake, exit_at, locks = self.registry._call("memberOf", address)
        return RegistryMember(address, int(stake), int(exit_at), int(locks))

    def minimum_stake(self) -> int:
        return int(self.registry._call("minimumStake"))

    def cooldown(self) -> int:
        return int(self.registry._call("cooldown"))

    # ---------------------------------------------------------------- the owner's terms
    def configure(self, pid: int, size: int, min_stake: int, fee_per_round: int = 0) -> Receipt:
        """The project's committee size (odd, 1..7), members' minimum stake and fee per round (escrowed
        for every round now). Only the owner, before start."""
        rounds = self.market.config(pid).rounds
        return self._send("configure", pid, int(size), int(min_stake), int(fee_per_round), value=fee_per_round * rounds)

    def terms(self, pid: int) -> dict:
        size, min_stake, fee, fee_left, released = self._call("termsOf", pid)
        return {
            "size": int(size) or 1,
            "min_stake": int(min_stake) or self.minimum_stake(),
            "fee_per_round": int(fee),
            "fee_left": int(fee_left),
            "released": bool(released),
        }

    # ---------------------------------------------------------------- members
    def members_of(self, pid: int) -> list[str]:
        return [Web3.to_checksum_address(a) for a in self._call("membersOf", pid)]

    def projects_of(self, address: str) -> list[int]:
        """Projects whose committee drew ``address``, from the draw events."""
        address = Web3.to_checksum_address(address)
        return [int(e["projectId"]) for e in self.events("CommitteeDrawn") if address in e["members"]]

    def commit_scores(self, pid: int, round_: int, post: MemberPost, salt: bytes) -> Receipt:
        return self._send("commitScores", pid, round_, scores_commitment(self._me(), pid, round_, post, salt))

    def reveal_scores(self, pid: int, round_: int, post: MemberPost, salt: bytes) -> Receipt:
        return self._send("revealScores", pid, round_, _scores(post), salt)

    def settle(self, pid: int, round_: int) -> Receipt:
        """Settle with every revealed post, read back from the reveal events, in seat order."""
        seats = {m: i for i, m in enumerate(self.members_of(pid))}
        progress = self.progress(pid)
        revealed = progress["revealed"] if progress and progress["round"] == round_ else 0
        # (progress of an older window of this round would only name stale reveals: settle refuses those)
        # Only the reveals of the current aggregation (a re-opened round was scored afresh).
        posts = [p for p in self.posts(pid, round_) if (revealed >> seats[p.member]) & 1]
        posts.sort(key=lambda p: seats[p.member])
        return self._send("settle", pid, round_, [(p.member, _scores(p)) for p in posts])

    def progress(self, pid: int) -> dict | None:
        """The latest members' window with activity: its round, when it opened (``deadlines`` tells the
        current one: an older window's masks are stale), the seats (bit = seat) that committed and
        revealed, and whether it settled; None before any."""
        any_, round_, opens, committed, revealed, settled = self._call("progressOf", pid)
        if not any_:
            return None
        return {
            "round": int(round_),
            "opens": int(opens),
            "committed": int(committed),
            "revealed": int(revealed),
            "settled": bool(settled),
        }

    def deadlines(self, pid: int, round_: int) -> tuple[int, int, int, int]:
        """(when the members' window opened, commit deadline, reveal deadline, settle deadline) of a round
        being aggregated."""
        opens, commit, reveal, settle = self._call("deadlinesOf", pid, round_)
        return int(opens), int(commit), int(reveal), int(settle)

    # ---------------------------------------------------------------- history (events)
    def events(self, name: str, pid: int | None = None) -> list[dict]:
        event = getattr(self.contract.events, name)
        filters = {"projectId": pid} if pid is not None else None
        logs = event.get_logs(from_block=0, to_block="latest", argument_filters=filters)
        return [dict(log["args"], blockNumber=log["blockNumber"], logIndex=log["logIndex"]) for log in logs]

    def _submissions(self, pid: int, round_: int) -> int:
        return sum(1 for e in self.market.events("UpdateCommitted", pid) if int(e["round"]) == round_)

    def posts(self, pid: int, round_: int) -> list[MemberPost]:
        """Each member's latest revealed post of the round (a round whose aggregation re-opened is scored
        afresh), in reveal order."""
        latest = {e["member"]: e for e in self.events("MemberRevealed", pid) if int(e["round"]) == round_}
        logs = sorted(latest.values(), key=lambda e: (e["blockNumber"], e.get("logIndex", 0)))
        n = self._submissions(pid, round_) if logs else 0
        return [
            MemberPost(
                member=Web3.to_checksum_address(e["member"]),
                weights=unpack_weights(list(e["weights"]), n),
                flags=int(e["flags"]),
                model_cid=e["modelCid"],
                report_cid=e["reportCid"],
            )
            for e in logs
        ]

    def consensus(self, pid: int, round_: int) -> MemberPost | None:
        """The settled consensus (``member`` is the committee's address), or None before settlement."""
        logs = [e for e in self.events("ConsensusSettled", pid) if int(e["round"]) == round_]
        if not logs:
            return None
        e = logs[-1]
        posted = [r for r in self.market.events("ResultPosted", pid) if int(r["round"]) == round_]
        return MemberPost(
            member=self.address,
            weights=unpack_weights(list(e["weights"]), self._submissions(pid, round_)),
            flags=int(e["flags"]),
            model_cid=e["modelCid"],
            report_cid=posted[-1]["reportCid"] if posted else "",
        )

    def penalties(self, pid: int, round_: int) -> list[MemberPenalty]:
        return [
            MemberPenalty(
                member=Web3.to_checksum_address(e["member"]),
                amount=int(e["amount"]),
                share_distance_bps=int(e["shareDistanceBps"]),
                flag_disagreements=int(e["flagDisagreements"]),
            )
            for e in self.events("MemberPenalized", pid)
            if int(e["round"]) == round_
        ]

    # ---------------------------------------------------------------- payouts
    def owed(self, address: str) -> int:
        return int(self._call("owed", Web3.to_checksum_address(address)))

    def claim(self) -> Receipt:
        return self._send("claim")

    def release(self, pid: int) -> Receipt:
        return self._send("release", pid)

    def refund_fee(self, pid: int) -> Receipt:
        return self._send("refundFee", pid)

    def _me(self) -> str:
        return self._signer("commitScores").address
