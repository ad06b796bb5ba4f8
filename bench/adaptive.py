"""Adaptive attacks (3 of 10 trainers, real MNIST digits, the CNN): for each kind, how often the
attackers are flagged, the share of the budget they are paid (and the best-paid attacker's pay
against an honest trainer's), honest trainers flagged, final test accuracy against a clean run, and
for the backdoor its attack success rate, each as the mean over seeds and its worst seed, with the
issue's targets; beside FedAvg and the robust rules of Flower and ByzFL on the same attack (run in
the bench virtualenv, ``MERIT_BENCH_PYTHON``; without it, the coordinate-wise median and trimmed
mean they compute, in process).

The Merit side is the landed round function, round after round (``bench.aggregator.drive_market``);
nothing here changes what it computes. Two things make the bench fit a small machine:

- **jobs**: each (kind, seed) market is one job; ``MERIT_BENCH_JOBS`` run at once, in worker processes.
  Jobs are seeded, so the results do not depend on how many run at once.
- **a training cache**: the simulated trainers' local training (``train_local``) is memoised by the
  content of everything it reads (spec, global weights, data, labels, seed, epochs, torch threads,
  the backend's source). The honest trainers of a seed train on the same global model in round 0
  for every kind and every plain rule, and colluders' benign updates are the clean run's; a hit
  returns the bytes a fresh training returned.

Finished jobs are kept in ``adaptive.partial.json.tmp`` under a fingerprint of the code they ran
(the backend's and aggregator's sources, the bench functions they call, the rules); a later run
reuses those whose fingerprint still matches (``MERIT_ADAPTIVE_FRESH=1``: none), so plain-rule
baselines measured before a detector change are not run again, and Merit jobs are.

Scale knobs: ``MERIT_ADAPTIVE_SEEDS`` (5), ``MERIT_BENCH_ROUNDS`` (3), ``MERIT_BENCH_ATTACKS``
(comma-separated kinds, ``name(param=value)`` for a variant; default: the adaptive ones, the noisy
copycat at 0.2, 0.3 and 0.5), ``MERIT_ADAPTIVE_PARTS`` (merit,plain), ``MERIT_BENCH_JOBS`` (1),
``MERIT_BENCH_THREADS`` (1), ``MERIT_BENCH_TRAIN_CACHE`` (a directory to keep the cache in; default:
a temporary one).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import pathlib
import shutil
import tempfile
import time
from typing import Callable, Iterator

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import backend.simulate.attacks as attacks
import bench.aggregator as agg
from aggregator.aggregation import median, trimmed_mean
from aggregator.round import AggregatorConfig
from backend.models.training import as_weights
from backend.simulate.attacks import ADAPTIVE_KINDS, ATTACK_KINDS, BEHAVIOURS, NOTHING_TRAINED_KINDS

ROOT = pathlib.Path(__file__).resolve().parent.parent
PARTIAL = "adaptive.partial.json.tmp"
# the noisy copycat copies with 20-50 % noise: the default (0.3) and both ends
KINDS = ("none", *ADAPTIVE_KINDS, "noisy_copycat(noise=0.2)", "noisy_copycat(noise=0.5)")
IN_PROCESS_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fedavg": lambda s: s.mean(axis=0),
    "median": lambda s: np.asarray(median(s)),
    "trimmed_mean_0.2": lambda s: np.asarray(trimmed_mean(s, beta=0.2)),
}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def bench_kinds(spec: str | None) -> list[str]:
    """The kinds to run, "none" (the clean run every drop is measured against) first. Each is a
    simulator attack, optionally with parameters: ``noisy_copycat(noise=0.5)``."""
    kinds = [k.strip() for k in (spec or "").split(",") if k.strip()] or list(KINDS)
    for kind in kinds:
        if kind == "none":
            continue
        try:
            name, params = agg.behaviour(kind)
        except ValueError as exc:
            raise SystemExit(f"MERIT_BENCH_ATTACKS: {exc}") from None
        if name not in ATTACK_KINDS:
            raise SystemExit(f"MERIT_BENCH_ATTACKS: unknown kind {name!r}; known: {', '.join(ATTACK_KINDS)}")
        unknown = set(params) - set(inspect.signature(BEHAVIOURS[name]).parameters)
        if unknown:
            raise SystemExit(f"MERIT_BENCH_ATTACKS: {name} takes no parameter {sorted(unknown)}")
    return ["none", *dict.fromkeys(k for k in kinds if k != "none")]


# -- the training cache --------------------------------------------------------------------------


class TrainingCache:
    """``train_local`` memoised on disk by the content of everything it reads. Worker processes share
    the directory; a file is written whole (then renamed), so a reader never sees half of one."""

    def __init__(self, directory: pathlib.Path, train: Callable, salt: str):
        self.directory, self.train, self.salt = directory, train, salt
        self.hits = self.misses = 0

    def key(self, spec, global_weights, X, y, seed, epochs, threads) -> str:
        h = hashlib.sha256(self.salt.encode())
        h.update(spec.model_dump_json().encode())
        weights = as_weights(global_weights)
        for name in sorted(weights):
            t = weights[name].detach().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        for array in (np.ascontiguousarray(X), np.ascontiguousarray(y)):
            h.update(f"{array.dtype}|{array.shape}".encode())
            h.update(array.tobytes())
        # training is deterministic for a seed on one machine and thread count (train_local's promise)
        h.update(json.dumps([int(seed), epochs, threads, torch.get_num_threads()]).encode())
        return h.hexdigest()

    def __call__(self, spec, global_weights, X, y, seed, epochs=None, progress=None, threads=None):
        if progress is not None:  # a caller that watches epochs go by gets a real training
            return self.train(spec, global_weights, X, y, seed, epochs, progress, threads)
        path = self.directory / f"{self.key(spec, global_weights, X, y, seed, epochs, threads)}.safetensors"
        if path.exists():
            self.hits += 1
            return _load_ordered(path)
        self.misses += 1
        local = self.train(spec, global_weights, X, y, seed, epochs, None, threads)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in local.items()}, str(tmp), metadata={"order": json.dumps(list(local))})
        tmp.replace(path)
        return local


def _load_ordered(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """A cached state dict in the order training returned it (safetensors files store names sorted)."""
    with safe_open(str(path), "pt") as f:
        order = json.loads(f.metadata()["order"])
    tensors = load_file(str(path))
    return {k: tensors[k] for k in order}


@contextlib.contextmanager
def cached_training(cache: TrainingCache) -> Iterator[TrainingCache]:
    """Route the simulated trainers' local training (and only theirs: the round function's own
    reference training is untouched) through ``cache``."""
    original = attacks.train_local
    attacks.train_local = cache
    try:
        yield cache
    finally:
        attacks.train_local = original


# -- fingerprints: which code a finished job ran -------------------------------------------------


def _sources_digest(*folders: str) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _bench_digest(*objects) -> str:
    h = hashlib.sha256()
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    h.update(json.dumps([agg.N_TRAINERS, agg.N_ATTACKERS, agg.VALIDATION, agg.HELD_OUT]).encode())
    return h.hexdigest()


def fingerprints(rules: list[str], versions: dict) -> dict[str, str]:
    """A short digest per part of the code a job's result depends on."""
    backend = _sources_digest("backend") + torch.__version__
    market = _bench_digest(agg.Setup, agg._round_updates, agg.behaviour, agg._kinds, agg._shards)
    merit = _bench_digest(agg.drive_market, agg.run_merit, agg._flag_reasons, AggregatorConfig)
    plain = _bench_digest(agg.run_plain) + agg.WORKER + json.dumps([rules, versions])
    digest = lambda *parts: hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]  # noqa: E731
    return {
        "backend": digest(backend),
        "merit": digest(backend, market, merit, _sources_digest("aggregator")),
        "plain": digest(backend, market, plain),
    }


def job_id(part: str, kind: str, seed: int, rounds: int, prints: dict[str, str]) -> str:
    return f"{part}|{kind}|seed={seed}|rounds={rounds}|{prints[part]}"


# -- the plain rules -----------------------------------------------------------------------------


def plain_rules() -> tuple[list[str], dict]:
    """FedAvg and the Flower/ByzFL rules the bench virtualenv offers (bench.aggregator.BASELINES);
    without it, the coordinate-wise median and trimmed mean computed in process."""
    python = os.environ.get("MERIT_BENCH_PYTHON", str(ROOT / ".venv-bench" / "bin" / "python"))
    if pathlib.Path(python).exists():
        try:
            with tempfile.TemporaryDirectory() as tmp:
                worker = agg.BaselineWorker(python, pathlib.Path(tmp))
                worker.close()
        except Exception as exc:  # a broken virtualenv: say so in the results, run the in-process rules
            return list(IN_PROCESS_RULES), {"python": None, "note": f"{python} failed to start: {exc}"}
        available = worker.info["available"]
        rules = [m for m in agg.BASELINES if m.split(".")[0] in available]
        if rules:
            return ["fedavg", *rules], {"python": python, **available, "import_errors": worker.info["errors"]}
    return list(IN_PROCESS_RULES), {"python": None, "note": f"{python} not found or without flwr/byzfl"}


class Worker:
    """One process's state: the data, the training cache and, for the Flower/ByzFL rules, a baseline
    worker in the bench virtualenv."""

    def __init__(self, cache_dir: pathlib.Path, salt: str, python: str | None):
        torch.set_num_threads(_env_int("MERIT_BENCH_THREADS", 1))
        self.setup = agg.Setup()
        self.cache = TrainingCache(cache_dir, attacks.train_local, salt)
        self.python = python
        self._baseline: agg.BaselineWorker | None = None
        self._tmp = tempfile.TemporaryDirectory()

    def rule(self, name: str) -> Callable[[np.ndarray], np.ndarray]:
        if name in IN_PROCESS_RULES:
            return IN_PROCESS_RULES[name]
        if self._baseline is None:
            self._baseline = agg.BaselineWorker(self.python, pathlib.Path(self._tmp.name))
        return lambda s: self._baseline.aggregate(name, s.astype(np.float32), agg.N_ATTACKERS)

    def run(self, part: str, kind: str, seed: int, rounds: int, rules: list[str]) -> dict:
        attack = None if kind == "none" else kind
        start, hits, misses = time.perf_counter(), self.cache.hits, self.cache.misses
        with cached_training(self.cache):
            if part == "merit":
                result = agg.run_merit(self.setup, attack, seed, rounds, AggregatorConfig())
            else:
                result = {
                    "attack": kind,
                    "seed": seed,
                    "rules": {name: agg.run_plain(self.setup, attack, seed, rounds, self.rule(name)) for name in rules},
                }
        result["job_seconds"] = round(time.perf_counter() - start, 1)
        result["training_cache"] = {"hits": self.cache.hits - hits, "misses": self.cache.misses - misses}
        return result

    def close(self) -> None:
        if self._baseline is not None:
            self._baseline.close()
        self._tmp.cleanup()


_WORKER: Worker | None = None


def _start_worker(cache_dir: str, salt: str, python: str | None) -> None:
    global _WORKER
    _WORKER = Worker(pathlib.Path(cache_dir), salt, python)


def _pool_job(job: tuple) -> dict:
    assert _WORKER is not None
    return _WORKER.run(*job)


def run_jobs(plan: list[tuple], jobs: int, init: tuple, done: Callable[[tuple, dict], None]) -> None:
    """Every job of ``plan``, ``jobs`` at once; ``done(job, result)`` as each finishes."""
    if jobs == 1:
        _start_worker(*init)
        try:
            for job in plan:
                done(job, _pool_job(job))
        finally:
            _WORKER.close()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker, initargs=init) as pool:
        futures = {pool.submit(_pool_job, job): job for job in plan}
        for future in as_completed(futures):
            done(futures[future], future.result())


# -- summary -------------------------------------------------------------------------------------


def _pay_per_honest(share: float, attackers: int = agg.N_ATTACKERS, trainers: int = agg.N_TRAINERS) -> float:
    """One attacker's pay against one honest trainer's (each holds a shard of the same size)."""
    return (share / attackers) / max((1 - share) / (trainers - attackers), 1e-12)


def _pay_totals(run: dict) -> list[float]:
    """Each trainer's pay over the run, in round budgets (equal budgets; the contract pays each round
    budget x w_i / sum w, and a round with sum w = 0 carries its budget forward)."""
    totals = [0.0] * len(run["rounds"][0]["weights"])
    for rnd in run["rounds"]:
        total = sum(rnd["weights"])
        for i, w in enumerate(rnd["weights"]):
            totals[i] += w / total if total else 0.0
    return totals


def _top_attacker_per_honest(kind: str, run: dict, together: bool = False) -> float:
    """The best-paid attacker's pay (``together``: all attackers') against the mean honest trainer's."""
    pay = _pay_totals(run)
    roles = agg._kinds(kind)
    attackers = [p for p, role in zip(pay, roles) if role != "honest"]
    honest = [p for p, role in zip(pay, roles) if role == "honest"]
    return (sum(attackers) if together else max(attackers)) / max(float(np.mean(honest)), 1e-12)


def _nothing_trained(kind: str) -> bool:
    return agg.behaviour(kind)[0] in NOTHING_TRAINED_KINDS


def summarize(
    merit: dict[str, list[dict]], plain: dict[str, list[dict]], seeds: list[int], plain_seeds: list[int] | None = None
) -> dict:
    """Per kind, over ``seeds`` (the plain rules over ``plain_seeds``, default the same): each figure's
    mean and its worst seed, FedAvg and the best plain rule."""
    plain_seeds = seeds if plain_seeds is None else plain_seeds
    clean = {r["seed"]: r["final_accuracy"] for r in merit.get("none", [])}
    excluded = _attackers_excluded(merit)
    plain_clean = {r["seed"]: r["rules"] for r in plain.get("none", [])}
    out: dict = {}
    for kind in dict.fromkeys([*merit, *plain]):
        row: dict = {}
        rs = sorted((r for r in merit.get(kind, []) if r["seed"] in seeds), key=lambda r: r["seed"])
        if rs:
            row["merit"] = _merit_row(kind, rs, clean)
            if kind != "none" and all(r["seed"] in excluded for r in rs):
                # what the attackers the detectors let through cost, apart from the shards they withheld
                drops = [excluded[r["seed"]] - r["final_accuracy"] for r in rs]
                row["merit"]["accuracy_drop_vs_attackers_excluded"] = _stat(drops)
        ps = [r for r in plain.get(kind, []) if r["seed"] in plain_seeds]
        if ps:
            row["plain"] = _plain_row(ps, plain_clean)
        out[kind] = row
    return out


def _attackers_excluded(merit: dict[str, list[dict]]) -> dict[int, float]:
    """Per seed, the final accuracy of the honest trainers' model alone: that of a run whose attackers
    were all flagged (so left out of the model) in every round and whose honest trainers never were.
    Such runs aggregate the same updates, so any of them gives it (the first kind, in order)."""
    out: dict[int, float] = {}
    for kind, rs in merit.items():
        for r in rs:
            if kind != "none" and r["attacker_flag_rate"] == 1.0 and r["honest_flag_rate"] == 0.0:
                out.setdefault(r["seed"], r["final_accuracy"])
    return out


def _stat(values: list[float], worst: Callable = max, digits: int = 4) -> dict:
    return {"mean": round(float(np.mean(values)), digits), "worst": round(float(worst(values)), digits)}


def _merit_row(kind: str, rs: list[dict], clean: dict[int, float]) -> dict:
    row = {
        "seeds": [r["seed"] for r in rs],
        "honest_flag_rate": _stat([r["honest_flag_rate"] for r in rs]),
        "final_accuracy": _stat([r["final_accuracy"] for r in rs], min),
    }
    if all(r["seed"] in clean for r in rs):
        row["accuracy_drop_vs_clean"] = _stat([clean[r["seed"]] - r["final_accuracy"] for r in rs])
    if kind != "none":
        shares = [r["attacker_budget_share"] for r in rs]
        row["attacker_flag_rate"] = _stat([r["attacker_flag_rate"] for r in rs], min)
        row["attacker_budget_share"] = _stat(shares, digits=5)
        row["attacker_pay_per_honest_pay"] = _stat([_pay_per_honest(s) for s in shares])
        if all(r.get("rounds") and all("weights" in rd for rd in r["rounds"]) for r in rs):
            row["top_attacker_pay_per_honest_pay"] = _stat([_top_attacker_per_honest(kind, r) for r in rs])
            if agg.behaviour(kind)[0] == "sybil":  # the sybils hold one trainer's update: together vs one
                row["sybils_together_per_honest_pay"] = _stat([_top_attacker_per_honest(kind, r, True) for r in rs])
    if any("backdoor_success" in r for r in rs):
        row["backdoor_success"] = _stat([r["backdoor_success"] for r in rs])
    return row


def _plain_row(ps: list[dict], clean: dict[int, dict]) -> dict:
    rules = list(ps[0]["rules"])
    per_rule: dict = {}
    for name in rules:
        accs = [p["rules"][name]["accuracy"] for p in ps]
        entry = {"final_accuracy": _stat(accs, min)}
        if all(p["seed"] in clean for p in ps):
            entry["accuracy_drop_vs_own_clean"] = _stat(
                [clean[p["seed"]][name]["accuracy"] - p["rules"][name]["accuracy"] for p in ps]
            )
        if "backdoor_success" in ps[0]["rules"][name]:
            entry["backdoor_success"] = _stat([p["rules"][name]["backdoor_success"] for p in ps])
        per_rule[name] = entry
    robust = [n for n in rules if n != "fedavg"]
    best = max(robust, key=lambda n: per_rule[n]["final_accuracy"]["mean"]) if robust else None
    return {"seeds": sorted(p["seed"] for p in ps), "rules": per_rule, "best_robust_rule": best}


def targets(summary: dict) -> dict:
    """The issue's targets per kind, on the mean over seeds and on the worst seed (None: not run)."""
    out: dict = {}
    for kind, row in summary.items():
        m = row.get("merit")
        if m is None:
            continue
        checks: dict = {}
        for stat in ("mean", "worst"):
            c = {"honest_flagged_le_0.05": m["honest_flag_rate"][stat] <= 0.05}
            if "accuracy_drop_vs_clean" in m:
                c["accuracy_within_2_points"] = m["accuracy_drop_vs_clean"][stat] <= 0.02
            if kind != "none" and _nothing_trained(kind):
                c["budget_share_le_0.02"] = m["attacker_budget_share"][stat] <= 0.02
            elif kind != "none":
                # the best-paid attacker where the runs say who was paid what, else the average one
                pay = m.get("top_attacker_pay_per_honest_pay", m["attacker_pay_per_honest_pay"])
                c["paid_le_honest"] = pay[stat] <= 1.0
                if "sybils_together_per_honest_pay" in m:
                    c["sybils_together_paid_le_honest"] = m["sybils_together_per_honest_pay"][stat] <= 1.0
            if "backdoor_success" in m:
                c["backdoor_success_le_0.10"] = m["backdoor_success"][stat] <= 0.10
            checks[stat] = c
        out[kind] = checks
    return out


# -- the run -------------------------------------------------------------------------------------


def _load_partial(path: pathlib.Path) -> dict:
    """The finished jobs (by id) and the history of the runs that ran them, from an earlier run."""
    empty = {"jobs": {}, "history": []}
    if os.environ.get("MERIT_ADAPTIVE_FRESH") == "1" or not path.exists():
        return empty
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return empty  # a file cut short by a stopped run: start over
    return {"jobs": saved.get("jobs", {}), "history": saved.get("history", [])}


def run(out_dir: pathlib.Path) -> dict:
    torch.set_num_threads(_env_int("MERIT_BENCH_THREADS", 1))
    seeds, rounds = _env_int("MERIT_ADAPTIVE_SEEDS", 5), _env_int("MERIT_BENCH_ROUNDS", 3)
    kinds = bench_kinds(os.environ.get("MERIT_BENCH_ATTACKS"))
    parts = [p for p in os.environ.get("MERIT_ADAPTIVE_PARTS", "merit,plain").split(",") if p]
    if set(parts) - {"merit", "plain"}:
        raise SystemExit(f"MERIT_ADAPTIVE_PARTS: known parts are merit and plain, got {parts}")
    jobs = _env_int("MERIT_BENCH_JOBS", 1)
    rules, rule_info = plain_rules()
    prints = fingerprints(rules, {k: v for k, v in rule_info.items() if k in ("flwr", "byzfl")})
    partial_path = out_dir / PARTIAL
    saved = _load_partial(partial_path)
    # seed by seed, every kind each: a run stopped early still compares every kind on the same seeds
    plan = [(part, kind, s, rounds, tuple(rules)) for part in parts for s in range(seeds) for kind in kinds]
    ids = {job: job_id(*job[:4], prints) for job in plan}
    results = {ids[job]: saved["jobs"][ids[job]] for job in plan if ids[job] in saved["jobs"]}
    todo = [job for job in plan if ids[job] not in results]
    print(f"   adaptive: {len(plan)} jobs, {len(plan) - len(todo)} reused, {jobs} at once", flush=True)
    started, loads = time.perf_counter(), [os.getloadavg()[0]]
    this_run = {"fingerprints": prints, "jobs_at_once": jobs, "cores": os.cpu_count(), "jobs_run": {}}

    def done(job: tuple, result: dict) -> None:
        results[ids[job]] = result
        loads.append(os.getloadavg()[0])
        print(f"   adaptive: {job[0]} {job[1]} seed {job[2]}: {result['job_seconds']} s", flush=True)
        this_run["jobs_run"][job[0]] = this_run["jobs_run"].get(job[0], 0) + 1
        this_run["wall_seconds"] = round(time.perf_counter() - started, 1)
        this_run["load_average"] = {"min": min(loads), "max": max(loads), "mean": round(float(np.mean(loads)), 2)}
        this_run["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # keep what is done (and what earlier runs did) if the run is stopped
        history = [*saved["history"], this_run]
        tmp = partial_path.with_suffix(".writing")
        tmp.write_text(json.dumps({"jobs": {**saved["jobs"], **results}, "history": history}, default=str))
        tmp.replace(partial_path)

    cache_dir = os.environ.get("MERIT_BENCH_TRAIN_CACHE") or tempfile.mkdtemp(prefix="merit-train-cache-")
    pathlib.Path(cache_dir).mkdir(parents=True, exist_ok=True)
    try:
        run_jobs(todo, jobs, (cache_dir, prints["backend"], rule_info.get("python")), done)
    finally:
        if not os.environ.get("MERIT_BENCH_TRAIN_CACHE"):
            shutil.rmtree(cache_dir, ignore_errors=True)
    history = [*saved["history"], this_run] if this_run["jobs_run"] else saved["history"]
    setup = {"seeds": seeds, "rounds": rounds, "kinds": kinds, "rules": rules, "rule_info": rule_info}
    return report(plan, results, prints, setup, history)


def report(plan: list[tuple], results: dict, prints: dict, setup: dict, history: list[dict]) -> dict:
    by_part: dict[str, dict[str, list[dict]]] = {"merit": {}, "plain": {}}
    for job in plan:
        result = results.get(job_id(*job[:4], prints))
        if result is not None:
            by_part[job[0]].setdefault(job[1], []).append(result)
    # a seed counts when every kind has it, so that kinds are compared on the same seeds
    ids = {(part, s): [job_id(*j[:4], prints) for j in plan if (j[0], j[2]) == (part, s)] for part, _, s, *_ in plan}
    complete = {
        part: [s for s in range(setup["seeds"]) if ids.get((part, s)) and all(i in results for i in ids[(part, s)])]
        for part in ("merit", "plain")
    }
    summary = summarize(by_part["merit"], by_part["plain"], complete["merit"], complete["plain"])
    # the runs that ran this code's jobs: their wall time and load, part by part
    runs = {
        part: [h for h in history if h["jobs_run"].get(part) and h["fingerprints"][part] == prints[part]]
        for part in ("merit", "plain")
    }
    return {
        "setup": {
            "trainers": agg.N_TRAINERS,
            "attackers": agg.N_ATTACKERS,
            "seeds": complete,
            "rounds": setup["rounds"],
            "kinds": setup["kinds"],
            "model": "cnn",
            "knowledge": "omniscient within a round (the stronger case; commit-reveal hides in-round updates)",
            "plain_rules": setup["rules"],
            "plain_rules_from": setup["rule_info"],
        },
        "note": "; ".join(
            f"{part}: seeds {complete[part]} x {setup['rounds']} rounds, " + _runs_note(part, runs[part])
            for part in ("merit", "plain")
            if by_part[part]
        ),
        "runs": runs,
        "time": _time_spent(by_part),
        "fingerprints": prints,
        "summary": summary,
        "targets": targets(summary),
        "merit_runs": by_part["merit"],
        "plain_runs": by_part["plain"],
    }


def _runs_note(part: str, runs: list[dict]) -> str:
    if not runs:
        return "run by an earlier run whose wall time was not recorded"
    return ", ".join(
        f"{r['jobs_run'][part]} jobs in a run of {r['wall_seconds']:.0f} s wall ({r['jobs_at_once']} at once on "
        f"{r['cores']} cores, load average {r['load_average']['min']:.1f}-{r['load_average']['max']:.1f}, "
        f"mean {r['load_average']['mean']:.1f}; finished {r['finished']})"
        for r in runs
    )


def _time_spent(by_part: dict[str, dict[str, list[dict]]]) -> dict:
    """Where the jobs' time went, summed over jobs (jobs that ran at once overlap in wall time)."""
    out: dict = {}
    for part, runs in by_part.items():
        rs = [r for kind_runs in runs.values() for r in kind_runs]
        if not rs:
            continue
        entry = {
            "jobs": len(rs),
            "job_seconds_sum": round(sum(r["job_seconds"] for r in rs), 1),
            "training_cache": {k: sum(r["training_cache"][k] for r in rs) for k in ("hits", "misses")},
        }
        if part == "merit":  # the round function's phases; the rest is the trainers' training and testing
            phases = [rd["timings"] for r in rs for rd in r["rounds"]]
            entry["round_phase_seconds_sum"] = {k: round(sum(t.get(k, 0.0) for t in phases), 1) for k in phases[0]}
        out[part] = entry
    return out


if __name__ == "__main__":
    out = ROOT / "bench" / "results"
    print(json.dumps(run(out), indent=2, default=str))
