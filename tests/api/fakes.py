"""An in-memory stand-in for the chain, for tests that exercise the API alone."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backend.api.chain_view import CommitteeInfo, ProjectView, RoundPhase, RoundView


@dataclass
class FakeChain:
    """A market with projects and rounds set by the test; satisfies ChainView."""

    projects: dict[int, ProjectView] = field(default_factory=dict)
    rounds: dict[tuple[int, int], RoundView] = field(default_factory=dict)
    joined: set[tuple[int, str]] = field(default_factory=set)
    submitted: set[tuple[int, int, str]] = field(default_factory=set)
    claims: dict[tuple[int, str], int] = field(default_factory=dict)
    committees: dict[tuple[int, int], CommitteeInfo] = field(default_factory=dict)
    chain_id: int = 31337
    market_address: str = "0x" + "ab" * 20

    def add_project(self, project_id: int, model_cid: str, rounds: int = 3, open_round: int = 0) -> None:
        self.projects[project_id] = ProjectView(
            project_id=project_id,
            owner="0x" + "11" * 20,
            status="Active",
            current_round=open_round,
            rounds=rounds,
            trainer_count=0,
            min_trainers=1,
            max_trainers=16,
            stake_wei=10**17,
            reward_pool_wei=10**18,
            reward_asset="ETH",
            spec_cid="bafkspec",
            global_model_cid=model_cid,
        )
        for r in range(rounds):
            phase = RoundPhase.FINAL if r < open_round else RoundPhase.OPEN if r == open_round else RoundPhase.PENDING
            self.rounds[(project_id, r)] = RoundView(
                project_id=project_id,
                round=r,
                phase=phase,
                submission_deadline=2_000_000_000,
                aggregation_deadline=2_000_000_100,
                challenge_deadline=None,
                submissions=0,
                budget_wei=10**18 // rounds,
                global_model_cid=None,
                report_cid=None,
            )

    def set_phase(self, project_id: int, round: int, phase: RoundPhase) -> None:
        self.rounds[(project_id, round)] = replace(self.rounds[(project_id, round)], phase=phase)

    def join(self, project_id: int, address: str) -> None:
        self.joined.add((project_id, address.lower()))

    # ChainView
    def project_ids(self) -> list[int]:
        return sorted(self.projects)

    def project(self, project_id: int) -> ProjectView | None:
        return self.projects.get(project_id)

    def round(self, project_id: int, round: int) -> RoundView | None:
        return self.rounds.get((project_id, round))

    def is_joined(self, project_id: int, address: str) -> bool:
        return (project_id, address.lower()) in self.joined

    def has_submitted(self, project_id: int, round: int, address: str) -> bool:
        return (project_id, round, address.lower()) in self.submitted

    def claimable(self, project_id: int, address: str) -> int:
        return self.claims.get((project_id, address.lower()), 0)

    def stake(self, project_id: int, address: str) -> int:
        return self.projects[project_id].stake_wei if self.is_joined(project_id, address) else 0

    def committee(self, project_id: int, round: int) -> CommitteeInfo | None:
        return self.committees.get((project_id, round))


def store_logreg_spec(store):
    """A logistic-regression spec and its initial weights, added to ``store``: (model, initial CID, spec CID)."""
    import json

    from backend.models import build_model, mnist_spec, save_weights

    spec = mnist_spec("logreg")
    model = build_model(spec)
    initial = store.add_bytes(save_weights(model.state_dict()))
    spec_cid = store.add_bytes(json.dumps({**json.loads(spec.to_json()), "initial_weights": initial}).encode())
    return model, initial, spec_cid
