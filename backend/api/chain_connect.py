"""The ChainView over the real Marketplace: ``MarketClient`` reads mapped to the API's types."""
from __future__ import annotations


from backend.api.chain_view import ChainView, ProjectInfo, RoundInfo, RoundPhase
from backend.config import Settings

_PHASES = {"NONE": RoundPhase.PENDING, "OPEN": RoundPhase.OPEN, "AGGREGATING": RoundPhase.AGGREGATING,
           "CHALLENGE": RoundPhase.CHALLENGE, "DISPUTED": RoundPhase.DISPUTED, "FINAL": RoundPhase.FINAL,
           "EXPIRED": RoundPhase.EXPIRED, "REVEALING": RoundPhase.REVEALING}


class MarketChainView:
    """Adapts ``backend.chain.client.MarketClient`` to ``ChainView``.

    Unknown ids become None here, before they reach the contract: the ABI would refuse a round
    past uint32, and the client raises for an unknown project.
    """

    def __init__(self, client):
        self.client = client
        self.lock = client.chain.lock  # py-evm is not thread-safe: readers share the senders' lock
        self.market_key = f"{client.chain.chain_id}-{client.address.lower()}"

    def project_ids(self) -> list[int]:
        return self.client.project_ids()

    def _exists(self, project_id: int) -> bool:
        return 1 <= project_id <= self.client.project_count()

    def project(self, project_id: int) -> ProjectInfo | None:
        if not self._exists(project_id):
            return None
        cfg = self.client.config(project_id)
        info = self.client.project(project_id)
        model = self.client.global_model_cid(project_id) or cfg.initialModelCid
        return ProjectInfo(
            project_id=project_id, owner=info.owner, status=info.status.label, current_round=info.current_round,
            rounds=cfg.rounds, trainer_count=info.trainer_count, min_trainers=cfg.minTrainers,
            max_trainers=cfg.maxTrainers, stake_wei=cfg.stake, reward_pool_wei=cfg.pool,
            reward_asset="ETH" if cfg.is_eth else cfg.asset, spec_cid=cfg.specCid, global_model_cid=model or None)

    def round(self, project_id: int, round: int) -> RoundInfo | None:
        if not self._exists(project_id) or round >= self.client.config(project_id).rounds:
            return None
        r = self.client.round(project_id, round)
        return RoundInfo(
            project_id=project_id, round=round, phase=_PHASES[r.phase.name], submission_deadline=r.submission_deadline,
            aggregation_deadline=r.aggregation_deadline, challenge_deadline=r.challenge_deadline or None,
            submissions=r.submissions, budget_wei=r.budget, global_model_cid=r.global_model_cid or None,
            report_cid=r.report_cid or None)

    def is_joined(self, project_id: int, address: str) -> bool:
        return self._exists(project_id) and self.client.is_joined(project_id, address)

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        if not self._exists(project_id) or round >= self.client.config(project_id).rounds:
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


def open_chain_view(settings: Settings) -> ChainView:
    """The configured market. On the embedded chain (which lives only in this process) a fresh
    Marketplace is deployed by the first development account, so the API can be tried at once."""
    from backend.chain.client import MarketClient
    from backend.chain.connection import connect, dev_account
    from backend.chain.session import attach

    if settings.chain == "embedded" and settings.market is None:
        client = MarketClient.deploy(connect("embedded"), dev_account(0))
    else:
        client = attach(settings)
    return MarketChainView(client)


__all__ = ["MarketChainView", "open_chain_view"]
