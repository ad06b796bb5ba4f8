"""`merit demo --sizes/--label-noise/--partition`: checked up front, applied to the honest trainers in
order, recorded in report.json; the reported accuracy is on held-out digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from backend.errors import ConfigError
from backend.simulate.demo import DemoConfig, _roles, _trainer_data, run_demo


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"sizes": "100,abc"}, "'abc' is not a whole number"),
        ({"sizes": "100,0"}, "'0' is not a whole number >= 1"),
        ({"sizes": "100,,200"}, "comma-separated list"),
        ({"sizes": "1,2"}, "--sizes gives 2 values but there are 3 honest trainers"),
        ({"sizes": "3000"}, "only 3500 are left"),
        ({"label_noise": "0.1,1.5,0"}, "'1.5' is not a fraction in [0, 1]"),
        ({"label_noise": "nan"}, "'nan' is not a fraction"),
        ({"partition": "dirichlet:-1"}, "ALPHA > 0"),
        ({"partition": "dirichlet:x"}, "ALPHA > 0"),
        ({"partition": "random"}, "iid or dirichlet:ALPHA"),
        ({"partition": "dirichlet:0.5", "sizes": "100"}, "--partition iid only"),
    ],
)
def test_bad_data_options_are_refused_before_any_work(options, needle):
    cfg = DemoConfig(trainers=4, attackers="sign_flip:1", **options)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        cfg.check()


def _data(**options):
    cfg = DemoConfig(trainers=5, attackers="free_rider:1", **options)
    counts = cfg.check()
    roles = _roles(cfg, counts)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 3500)
    X = np.arange(3500, dtype=np.float32)[:, None]
    return roles, _trainer_data(cfg, roles, X, y), y


def test_sizes_and_label_noise_go_to_the_honest_trainers_in_order():
    roles, data, _ = _data(sizes="100,200,300,400", label_noise="0,0.2,0.4,0.6")
    honest = [d for d in data if d["role"] == "honest"]
    assert [d["samples"] for d in honest] == [100, 200, 300, 400]
    assert [d["label_noise"] for d in honest] == [0, 0.2, 0.4, 0.6]
    seen = set()
    for d in data:  # disjoint shards
        rows = set(d["X"][:, 0].astype(int).tolist())
        assert not rows & seen
        seen |= rows


def test_label_noise_changes_that_fraction_of_labels():
    _, data, y = _data(label_noise="0.5")
    for d in data:
        if d["role"] == "honest":
            clean = y[d["X"][:, 0].astype(int)]
            assert np.mean(clean != d["y"]) == pytest.approx(0.5, abs=1 / d["samples"])


def test_dirichlet_partition_skews_labels():
    _, data, _ = _data(partition="dirichlet:0.1")
    shares = [np.bincount(d["y"], minlength=10).max() / len(d["y"]) for d in data]
    assert np.median(shares) > 0.4  # IID shards sit near 0.1


@pytest.mark.slow
def test_demo_records_its_data_options_and_held_out_accuracy(tmp_path):
    report = run_demo(
        DemoConfig(
            trainers=3,
            rounds=1,
            attackers="free_rider:1",
            out=tmp_path,
            samples_per_trainer=200,
            validation_samples=300,
            test_samples=400,
            epochs=1,
            sizes="150,250",
            label_noise="0,0.3",
        )
    )
    cfg = report["config"]
    assert cfg["sizes"] == "150,250" and cfg["label_noise"] == "0,0.3" and cfg["partition"] == "iid"
    honest = [d for d in cfg["trainer_data"] if d["role"] == "honest"]
    assert [(d["samples"], d["label_noise"]) for d in honest] == [(150, 0.0), (250, 0.3)]
    rnd = report["rounds"][0]
    assert 0 <= rnd["accuracy"] <= 1 and 0 <= rnd["validation_accuracy"] <= 1
    assert "held-out" in cfg["accuracy_on"] and cfg["test_samples"] == 400
    assert report["final"]["validation_accuracy"] == rnd["validation_accuracy"]


def test_cli_refuses_bad_data_options_in_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend.cli.main",
            "demo",
            "--trainers",
            "3",
            "--attackers",
            "noise:1",
            "--sizes",
            "10,x",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "'x' is not a whole number" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_demo_with_thieves_verifies_and_pays_them_nothing(tmp_path):
    """A delta free-rider (which needs the last global step, read from the chain's history by the
    node and by verify alike) and a noisy copycat: flagged, paid nothing, and every round verifies."""
    from aggregator.verify import verify_project

    audit = {}
    report = run_demo(
        DemoConfig(
            trainers=5,
            rounds=2,
            attackers="delta_free_rider:1,noisy_copycat:1",
            out=tmp_path,
            samples_per_trainer=250,
            validation_samples=300,
            test_samples=300,
            epochs=1,
        ),
        on_finish=lambda chain, market, store, pid: audit.update(v=verify_project(market, store, pid)),
    )
    for rnd in report["rounds"]:
        for t in rnd["trainers"]:
            if t["role"] != "honest":
                assert t["flagged"] and t["reward_wei"] == 0, (rnd["round"], t)
    assert all(v.ok for v in audit["v"]), [(v.problems, v.differing) for v in audit["v"]]
    assert report["final"]["conservation_ok"]
