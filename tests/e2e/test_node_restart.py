"""The aggregator daemon killed mid-round resumes and never posts twice (real processes on Anvil)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from backend.chain.connection import dev_account
from backend.data import load_trainer_data
from backend.models.spec import ModelSpec
from backend.project import create_project, write_example
from backend.trainer.client import train_round
from tests.chain.helpers import reveal_trainers

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


def merit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "backend.cli.main", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_node_killed_at_any_moment_resumes_and_posts_once(anvil_market, tmp_path):
    chain, owner, store, settings = anvil_market.chain, anvil_market.owner, anvil_market.store, anvil_market.settings
    files = write_example(tmp_path / "data", trainers=2, rounds=1, submission_window=600)
    pid, secrets = create_project(owner, store, files[0], settings.home)
    base = ["--chain", anvil_market.url, "--key", "dev:1"]
    trainers = [owner.as_account(dev_account(3)), owner.as_account(dev_account(4))]
    for t in trainers:
        t.join(pid)
    # a member handed another salt (or another file) is stopped before it does anything
    wrong = merit(
        "aggregator", "run", str(pid), "--validation", str(files[1]), "--validation-salt", "0x" + "00" * 32, *base
    )
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "do not match the owner's on-chain commitment" in " ".join(wrong.stderr.split())
    checked = ["--validation", str(files[1]), "--validation-salt", secrets["salt"], "--once"]
    for _ in range(2):  # bond, then start
        out = merit("aggregator", "run", str(pid), *checked, *base)
        assert out.returncode == 0, out.stderr
        assert "matches the owner's on-chain commitment" in " ".join(out.stdout.split())
    spec = ModelSpec.from_json(store.get_bytes(owner.config(pid).specCid))
    for i, t in enumerate(trainers):
        X, y = load_trainer_data(files[2 + i], spec)
        train_round(t, pid, X[:200], y[:200], store=store, log=lambda m: None)
    reveal_trainers(chain, pid, 0, trainers)

    # 1. killed with SIGKILL in the middle of the round's work
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.cli.main",
            "aggregator",
            "run",
            str(pid),
            "--validation",
            str(files[1]),
            "--poll",
            "0.2",
            *base,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while "fetching" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "fetching" in seen and owner.events("ResultPosted", pid) == []

    # 2. dies after publishing the model and report, before posting
    out = merit("aggregator", "run", str(pid), "--validation", str(files[1]), "--fail-after", "published", *base)
    assert out.returncode != 0
    state_file = next((settings.home / "aggregator").glob(f"*-{pid}.json"))
    saved = json.loads(state_file.read_text())["rounds"]["0"]
    assert saved["posted"] is False and owner.events("ResultPosted", pid) == []

    # 3. restarted: posts what it had published, once
    out = merit("aggregator", "run", str(pid), "--validation", str(files[1]), "--once", *base)
    assert out.returncode == 0, out.stderr
    posted = owner.events("ResultPosted", pid)
    assert len(posted) == 1 and posted[0]["reportCid"] == saved["report_cid"]

    # 4. and again: nothing more to post
    out = merit("aggregator", "run", str(pid), "--validation", str(files[1]), "--once", *base)
    assert out.returncode == 0, out.stderr
    assert len(owner.events("ResultPosted", pid)) == 1
    assert json.loads(state_file.read_text())["rounds"]["0"]["posted"] is True
