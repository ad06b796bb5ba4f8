"""The demo end to end on the embedded chain and store, then an independent audit with `verify`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aggregator.verify import verify_project
from backend.simulate.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    audit = {}

    def on_finish(chain, market, store, pid):
        audit["verdicts"] = verify_project(market, store, pid)
        # tamper with nothing: the posted results must match an independent recomputation
        audit["market"], audit["store"], audit["pid"] = market, store, pid

    report = run_demo(
        DemoConfig(
            trainers=4,
            rounds=2,
            attackers="sign_flip:1",
            out=out,
            samples_per_trainer=300,
            validation_samples=500,
            epochs=1,
        ),
        on_finish=on_finish,
    )
    return report, audit, out


def test_demo_report_has_every_promised_field(small_demo):
    report, _, out = small_demo
    assert set(report) >= {"config", "chain", "project_id", "rounds", "final"}
    assert set(report["chain"]) >= {"kind", "chain_id", "market"}
    for rnd in report["rounds"]:
        assert set(rnd) >= {
            "round",
            "global_model_cid",
            "report_cid",
            "accuracy",
            "loss",
            "aggregation_seconds",
            "gas",
            "trainers",
        }
        assert set(rnd["gas"]) >= {"commit_update", "reveal_update", "post_result", "finalize"}
        for t in rnd["trainers"]:
            assert set(t) >= {
                "address",
                "role",
                "cid",
                "score",
                "weight",
                "flagged",
                "reason",
                "reward_wei",
                "slashed_wei",
            }
    assert set(report["final"]) >= {
        "accuracy",
        "pool_wei",
        "rewards_total_wei",
        "slashed_total_wei",
        "refund_wei",
        "conservation_ok",
    }
    assert json.loads((out / "report.json").read_text())["project_id"] == report["project_id"]
    for name in ("accuracy.png", "rewards.png", "scores.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_conserves_funds_and_punishes_the_sign_flipper(small_demo):
    report, _, _ = small_demo
    assert report["final"]["conservation_ok"] is True
    assert (
        report["final"]["rewards_total_wei"] + report["final"]["refund_wei"]
        == report["final"]["pool_wei"] + report["final"]["slashed_total_wei"]
    )
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            if t["role"] == "sign_flip":
                assert t["flagged"] and t["reward_wei"] == 0 and t["slashed_wei"] > 0
    assert report["rounds"][-1]["accuracy"] > report["rounds"][0]["accuracy"] - 0.05


def test_every_round_verifies_independently(small_demo):
    _, audit, _ = small_demo
    verdicts = audit["verdicts"]
    assert [v.round for v in verdicts] == [0, 1]
    assert all(v.ok for v in verdicts), [(v.problems, v.differing) for v in verdicts]


def test_demo_cli_prints_the_report_path_last_with_json(tmp_path):
    out = tmp_path / "cli-demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend.cli.main",
            "demo",
            "--trainers",
            "3",
            "--rounds",
            "1",
            "--attackers",
            "free_rider:1",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out / "report.json")


def test_demo_refuses_bad_flags_in_one_line(tmp_path):
    for args, needle in (
        (["--attackers", "zombie:1"], "unknown attacker kind"),
        (["--trainers", "2", "--attackers", "noise:3"], "only 2 trainers"),
        (["--chain", "nonsense"], "http"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "backend.cli.main", "demo", *args, "--out", str(tmp_path / "x")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
