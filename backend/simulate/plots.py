"""The demo's pictures: accuracy per round, cumulative reward per trainer by role, and a
trainer x round heat map of contribution scores with flagged submissions marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROLE_COLOURS = {
    "honest": "#2b8a3e",
    "label_flip": "#e8590c",
    "sign_flip": "#c92a2a",
    "noise": "#862e9c",
    "scale": "#1864ab",
    "free_rider": "#868e96",
    "copycat": "#f08c00",
}


def _trainers(report: dict) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            seen.setdefault(t["address"], t["role"])
    return list(seen.items())


def write_plots(report: dict, out: Path) -> list[Path]:
    out = Path(out)
    paths = [
        _accuracy(report, out / "accuracy.png"),
        _rewards(report, out / "rewards.png"),
        _scores(report, out / "scores.png"),
    ]
    if any(rnd.get("aggregators") for rnd in report["rounds"]):
        paths.append(_committee(report, out / "committee.png"))
    plt.close("all")
    return paths


def _accuracy(report: dict, path: Path) -> Path:
    rounds = [r["round"] for r in report["rounds"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [r["accuracy"] for r in report["rounds"]], marker="o", color="#1864ab", label="accuracy")
    ax.set_xlabel("round")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.set_xticks(rounds)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(rounds, [r["loss"] for r in report["rounds"]], marker="s", color="#e8590c", alpha=0.6, label="loss")
    ax2.set_ylabel("validation loss")
    ax.set_title("Global model after each round")
    fig.legend(loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    return path


def _rewards(report: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rounds = [r["round"] for r in report["rounds"]]
    shown_roles = set()
    for address, role in _trainers(report):
        per_round = []
        for rnd in report["rounds"]:
            per_round.append(sum(t["reward_wei"] for t in rnd["trainers"] if t["address"] == address) / 1e18)
        label = role if role not in shown_roles else None
        shown_roles.add(role)
        ax.plot(
            rounds,
            np.cumsum(per_round),
            marker="o",
            color=ROLE_COLOURS.get(role, "black"),
            label=label,
            linestyle="-" if role == "honest" else "--",
        )
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative reward (ETH)")
    ax.set_xticks(rounds)
    ax.grid(alpha=0.3)
    ax.legend(title="role", fontsize=8)
    ax.set_title("Rewards per trainer")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _scores(report: dict, path: Path) -> Path:
    trainers = _trainers(report)
    rounds = report["rounds"]
    grid = np.full((len(trainers), len(rounds)), np.nan)
    flagged = np.zeros_like(grid, dtype=bool)
    index = {a: i for i, (a, _) in enumerate(trainers)}
    for j, rnd in enumerate(rounds):
        for t in rnd["trainers"]:
            i = index[t["address"]]
            grid[i, j] = t["score"] if t["score"] is not None else np.nan
            flagged[i, j] = t["flagged"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(rounds), 1.0 + 0.45 * len(trainers)))
    finite = grid[np.isfinite(grid)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    for i in range(len(trainers)):
        for j in range(len(rounds)):
            if flagged[i, j]:
                ax.text(j, i, "✕", ha="center", va="center", color="black", fontsize=12, fontweight="bold")
            elif np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(rounds)), [str(r["round"]) for r in rounds])
    ax.set_yticks(range(len(trainers)), [f"{a[:8]}… {role}" for a, role in trainers], fontsize=8)
    ax.set_xlabel("round")
    ax.set_title("Shapley contribution per round (✕ = flagged)")
    fig.colorbar(image, ax=ax, label="score (accuracy units)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


MEMBER_COLOURS = {"honest": "#2b8a3e", "dishonest": "#c92a2a"}


def _members(report: dict) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for rnd in report["rounds"]:
        for m in rnd.get("aggregators", []):
            seen.setdefault(m["address"], m["role"])
    return list(seen.items())


def _committee(report: dict, path: Path) -> Path:
    """Each member's stake lost per round, one bar group per round; a penalty is labelled in ETH and a
    round without one says so, so a reader sees at a glance who was penalised when."""
    members, rounds = _members(report), report["rounds"]
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(rounds), 4))
    width = 0.8 / max(len(members), 1)
    for k, (address, role) in enumerate(members):
        xs = [j + (k - (len(members) - 1) / 2) * width for j in range(len(rounds))]
        lost = [
            sum(m["penalty_wei"] for m in rnd.get("aggregators", []) if m["address"] == address) / 1e18
            for rnd in rounds
        ]
        ax.bar(xs, lost, width, color=MEMBER_COLOURS.get(role, "black"), label=f"{address[:8]}… {role}")
        for x, value in zip(xs, lost):
            ax.text(x, value, f"{value:.2g}" if value else "0", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rounds)), [str(r["round"]) for r in rounds])
    ax.set_xlabel("round")
    ax.set_ylabel("stake penalised (ETH)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(title="committee member", fontsize=8)
    ax.set_title("Committee penalties per round")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
