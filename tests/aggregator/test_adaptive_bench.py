"""The adaptive-attack benchmark's machinery: kinds with parameters, the training cache (a hit is what a
fresh training returns), reuse of finished jobs only under the same code, and the per-kind summary
with its worst seed."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

import bench.adaptive as adaptive
from backend.data import load_mnist
from backend.models import flatten, initial_weights, mnist_spec
from backend.models.training import train_local
from bench.aggregator import behaviour

SPEC = mnist_spec("mlp", hidden=[16])


def test_kinds_take_parameters():
    assert behaviour("alie") == ("alie", {})
    assert behaviour("noisy_copycat(noise=0.5)") == ("noisy_copycat", {"noise": 0.5})
    for bad in ("noisy_copycat(noise=abc)", "noisy_copycat(noise=0.5", "noisy_copycat(=1)", "noisy_copycat(noise)"):
        with pytest.raises(ValueError, match="bench kind"):
            behaviour(bad)


def test_bench_kinds_default_and_refusals():
    kinds = adaptive.bench_kinds(None)
    assert kinds[0] == "none" and "backdoor" in kinds
    assert [k for k in kinds if behaviour(k)[0] == "noisy_copycat"] == [
        "noisy_copycat",
        "noisy_copycat(noise=0.2)",
        "noisy_copycat(noise=0.5)",
    ]
    assert adaptive.bench_kinds("ipm, none,ipm") == ["none", "ipm"]
    with pytest.raises(SystemExit, match="unknown kind 'teleport'"):
        adaptive.bench_kinds("teleport")
    with pytest.raises(SystemExit, match="takes no parameter"):
        adaptive.bench_kinds("ipm(noise=0.2)")
    with pytest.raises(SystemExit, match="not param=number"):
        adaptive.bench_kinds("noisy_copycat(noise=lots)")


def test_scale_knobs_refuse_what_is_not_a_positive_integer(monkeypatch):
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("MERIT_BENCH_JOBS", bad)
        with pytest.raises(SystemExit, match="MERIT_BENCH_JOBS must be"):
            adaptive._env_int("MERIT_BENCH_JOBS", 1)
    monkeypatch.setenv("MERIT_BENCH_JOBS", "")
    assert adaptive._env_int("MERIT_BENCH_JOBS", 1) == 1
    monkeypatch.setenv("MERIT_ADAPTIVE_PARTS", "merit,everything")
    with pytest.raises(SystemExit, match="MERIT_ADAPTIVE_PARTS"):
        adaptive.run(pathlib.Path("/nonexistent"))


def test_a_cache_hit_is_what_training_returns(tmp_path):
    X, y = load_mnist(n=64, seed=0)
    g = initial_weights(SPEC, 0)
    calls = []

    def spy(*args):
        calls.append(args[4])
        return train_local(*args)

    cache = adaptive.TrainingCache(tmp_path, spy, salt="code")
    fresh = train_local(SPEC, g, X, y, 3)
    cold, warm = cache(SPEC, g, X, y, 3), cache(SPEC, g, X, y, 3)
    assert (cache.hits, cache.misses, calls) == (1, 1, [3])
    for got in (cold, warm):
        assert list(got) == list(fresh)  # the order the attacks flatten in
        assert all(torch.equal(got[k], fresh[k]) for k in fresh)
    # anything training reads is in the key: the seed, the data, the base model, the code
    cache(SPEC, g, X, y, 4)
    cache(SPEC, g, X[:32], y[:32], 3)
    cache(SPEC, initial_weights(SPEC, 1), X, y, 3)
    adaptive.TrainingCache(tmp_path, spy, salt="other code")(SPEC, g, X, y, 3)
    assert calls == [3, 4, 3, 3, 3]


def test_simulated_trainers_train_through_the_cache_and_send_the_same_updates(tmp_path):
    from bench.aggregator import Setup, _kinds, _round_updates, _shards

    setup = Setup()
    shards = [s[:40] for s in _shards(setup, 0, skew=False)]
    kinds = _kinds("alie")
    plain = _round_updates(setup, initial_weights(setup.spec, 0), shards, kinds, 0, 0)
    with adaptive.cached_training(adaptive.TrainingCache(tmp_path, train_local, "code")) as cache:
        first = _round_updates(setup, initial_weights(setup.spec, 0), shards, kinds, 0, 0)
        second = _round_updates(setup, initial_weights(setup.spec, 0), shards, kinds, 0, 0)
    assert cache.misses == 10 and cache.hits == 10  # 7 honest, 3 colluders' benign updates
    for got in (first, second):
        assert all(torch.equal(flatten(a), flatten(b)) for a, b in zip(got, plain))
    import backend.simulate.attacks as attacks

    assert attacks.train_local is train_local  # put back


def _merit_run(kind, seed, share, flagged=1.0, honest=0.0, accuracy=0.8, **extra):
    return {
        "attack": kind,
        "seed": seed,
        "attacker_flag_rate": None if kind == "none" else flagged,
        "honest_flag_rate": honest,
        "attacker_budget_share": share,
        "final_accuracy": accuracy,
        **extra,
    }


def test_summary_reports_the_worst_seed_and_its_targets():
    merit = {
        "none": [_merit_run("none", 0, 0.0, accuracy=0.80), _merit_run("none", 1, 0.0, accuracy=0.82)],
        "noisy_copycat(noise=0.2)": [
            _merit_run("noisy_copycat(noise=0.2)", 0, 0.0, accuracy=0.80),
            _merit_run("noisy_copycat(noise=0.2)", 1, 0.03, flagged=0.5, accuracy=0.79),
        ],
        "alie": [
            _merit_run("alie", 0, 0.3, honest=0.1, accuracy=0.78),  # pay 0.1 of the budget each = honest's
            _merit_run("alie", 1, 0.0, accuracy=0.82),
        ],
        "backdoor": [
            _merit_run("backdoor", 0, 0.0, backdoor_success=0.02),
            _merit_run("backdoor", 1, 0.0, backdoor_success=0.15),
        ],
    }
    summary = adaptive.summarize(merit, {}, seeds=[0, 1])
    copy = summary["noisy_copycat(noise=0.2)"]["merit"]
    assert copy["attacker_budget_share"] == {"mean": 0.015, "worst": 0.03}
    assert copy["attacker_flag_rate"] == {"mean": 0.75, "worst": 0.5}
    assert copy["accuracy_drop_vs_clean"] == {"mean": 0.015, "worst": 0.03}
    assert summary["alie"]["merit"]["attacker_pay_per_honest_pay"] == {"mean": 0.5, "worst": 1.0}
    checks = adaptive.targets(summary)
    assert checks["noisy_copycat(noise=0.2)"]["mean"] == {
        "honest_flagged_le_0.05": True,
        "accuracy_within_2_points": True,
        "budget_share_le_0.02": True,
    }
    assert checks["noisy_copycat(noise=0.2)"]["worst"]["budget_share_le_0.02"] is False
    assert checks["noisy_copycat(noise=0.2)"]["worst"]["accuracy_within_2_points"] is False
    assert checks["alie"]["mean"]["honest_flagged_le_0.05"] is True  # 0.05
    assert checks["alie"]["worst"]["honest_flagged_le_0.05"] is False
    assert checks["alie"]["worst"]["paid_le_honest"] is True  # exactly an honest trainer's pay
    assert checks["backdoor"]["mean"]["backdoor_success_le_0.10"] is True
    assert checks["backdoor"]["worst"]["backdoor_success_le_0.10"] is False
    # a seed left out is left out of every figure
    assert adaptive.summarize(merit, {}, seeds=[0])["alie"]["merit"]["honest_flag_rate"] == {"mean": 0.1, "worst": 0.1}


def test_damage_is_also_measured_against_the_honest_trainers_alone():
    merit = {
        "none": [_merit_run("none", 0, 0.0, accuracy=0.80)],
        "ipm": [_merit_run("ipm", 0, 0.0, accuracy=0.77)],  # every attacker excluded: the honest model
        "alie": [_merit_run("alie", 0, 0.05, flagged=0.67, accuracy=0.74)],
        "backdoor": [_merit_run("backdoor", 0, 0.0, flagged=1.0, honest=0.1, accuracy=0.70)],
    }
    summary = adaptive.summarize(merit, {}, seeds=[0])
    assert summary["alie"]["merit"]["accuracy_drop_vs_clean"]["worst"] == pytest.approx(0.06)
    assert summary["alie"]["merit"]["accuracy_drop_vs_attackers_excluded"]["worst"] == pytest.approx(0.03)
    assert summary["ipm"]["merit"]["accuracy_drop_vs_attackers_excluded"]["worst"] == 0
    # a run that flagged an honest trainer aggregated other updates: not the reference
    assert summary["backdoor"]["merit"]["accuracy_drop_vs_attackers_excluded"]["worst"] == pytest.approx(0.07)
    assert (
        "accuracy_drop_vs_attackers_excluded"
        not in adaptive.summarize({"alie": merit["alie"]}, {}, [0])["alie"]["merit"]
    )


def test_the_best_paid_attacker_is_held_to_an_honest_trainers_pay():
    # one ALIE attacker takes 3 honest trainers' worth in round 0, nothing after: 1.0x on average
    rounds = [{"weights": [100] * 7 + [300, 0, 0]}, {"weights": [100] * 7 + [0, 0, 0]}]
    alie = _merit_run("alie", 0, 0.15, rounds=rounds)
    sybil = _merit_run("sybil", 0, 0.15, rounds=rounds)
    summary = adaptive.summarize({"alie": [alie], "sybil": [sybil]}, {}, seeds=[0])
    row = summary["alie"]["merit"]
    assert row["attacker_pay_per_honest_pay"]["worst"] == pytest.approx((0.15 / 3) / (0.85 / 7), abs=1e-3)
    assert row["top_attacker_pay_per_honest_pay"]["worst"] == pytest.approx(0.3 / (0.1 + 1 / 7), abs=1e-3)
    assert summary["sybil"]["merit"]["sybils_together_per_honest_pay"] == row["top_attacker_pay_per_honest_pay"]
    checks = adaptive.targets(summary)
    assert checks["alie"]["worst"]["paid_le_honest"] is False
    assert checks["sybil"]["worst"]["sybils_together_paid_le_honest"] is False
    # a round nobody is paid in carries its budget: it adds to nobody's pay
    idle = _merit_run("alie", 0, 0.0, rounds=[{"weights": [0] * 10}, {"weights": [100] * 10}])
    assert adaptive.summarize({"alie": [idle]}, {}, seeds=[0])["alie"]["merit"]["top_attacker_pay_per_honest_pay"][
        "worst"
    ] == pytest.approx(1.0)


def test_plain_rules_summary_names_the_best_robust_rule():
    def plain(kind, seed, fedavg, median, krum):
        rules = {"fedavg": {"accuracy": fedavg}, "median": {"accuracy": median}, "krum": {"accuracy": krum}}
        return {"attack": kind, "seed": seed, "rules": rules}

    runs = {"none": [plain("none", 0, 0.8, 0.78, 0.6)], "ipm": [plain("ipm", 0, 0.5, 0.7, 0.72)]}
    summary = adaptive.summarize({}, runs, seeds=[0])
    assert summary["ipm"]["plain"]["best_robust_rule"] == "krum"
    assert summary["ipm"]["plain"]["rules"]["median"]["accuracy_drop_vs_own_clean"]["worst"] == pytest.approx(0.08)
    assert summary["none"]["plain"]["best_robust_rule"] == "median"


def _fake_run(tmp_path, monkeypatch, partial: dict | None, fresh: bool = False):
    monkeypatch.setenv("MERIT_ADAPTIVE_SEEDS", "1")
    monkeypatch.setenv("MERIT_BENCH_ROUNDS", "1")
    monkeypatch.setenv("MERIT_BENCH_ATTACKS", "ipm")
    monkeypatch.setenv("MERIT_ADAPTIVE_PARTS", "plain")
    monkeypatch.setenv("MERIT_ADAPTIVE_FRESH", "1" if fresh else "0")
    monkeypatch.setattr(adaptive, "plain_rules", lambda: (["fedavg"], {"python": None}))
    if partial is not None:
        (tmp_path / adaptive.PARTIAL).write_text(json.dumps(partial))
    ran = []

    def run_jobs(plan, jobs, init, done):
        for job in plan:
            ran.append(job[:4])
            done(
                job,
                {
                    "attack": job[1],
                    "seed": job[2],
                    "rules": {"fedavg": {"accuracy": 0.5}},
                    "job_seconds": 0,
                    "training_cache": {"hits": 0, "misses": 0},
                },
            )

    monkeypatch.setattr(adaptive, "run_jobs", run_jobs)
    return adaptive.run(tmp_path), ran


def test_finished_jobs_are_reused_only_under_the_same_code(tmp_path, monkeypatch):
    result, ran = _fake_run(tmp_path, monkeypatch, None)
    assert ran == [("plain", "none", 0, 1), ("plain", "ipm", 0, 1)]
    assert result["setup"]["seeds"] == {"merit": [], "plain": [0]}
    assert result["summary"]["ipm"]["plain"]["rules"]["fedavg"]["final_accuracy"]["mean"] == 0.5
    saved = json.loads((tmp_path / adaptive.PARTIAL).read_text())
    # the run that ran them is on record
    assert [h["jobs_run"] for h in saved["history"]] == [{"plain": 2}]
    assert result["note"].startswith("plain: seeds [0] x 1 rounds, 2 jobs in a run of")
    # the same code: nothing runs again, the report is the same, and the record does not grow
    again, ran = _fake_run(tmp_path, monkeypatch, saved)
    assert ran == [] and again["summary"] == result["summary"] and again["runs"]["plain"] == saved["history"]
    # results of other code (another fingerprint) are not taken
    stale = {key.rsplit("|", 1)[0] + "|0000000000000000": value for key, value in saved["jobs"].items()}
    assert len(_fake_run(tmp_path, monkeypatch, {"jobs": stale})[1]) == 2


def test_a_fresh_run_reuses_nothing(tmp_path, monkeypatch):
    _fake_run(tmp_path, monkeypatch, None)
    saved = json.loads((tmp_path / adaptive.PARTIAL).read_text())
    assert len(_fake_run(tmp_path, monkeypatch, saved, fresh=True)[1]) == 2


def test_the_plain_rules_fingerprint_ignores_the_aggregator_and_the_merit_one_does_not(monkeypatch):
    before = adaptive.fingerprints(["fedavg"], {})
    real = adaptive._sources_digest
    monkeypatch.setattr(adaptive, "_sources_digest", lambda *f: real(*f) + ("x" if "aggregator" in f else ""))
    after = adaptive.fingerprints(["fedavg"], {})
    assert after["plain"] == before["plain"] and after["merit"] != before["merit"]
    assert adaptive.fingerprints(["fedavg", "flwr.Krum"], {})["plain"] != after["plain"]
