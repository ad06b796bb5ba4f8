"""`merit ipfs add|cat|pin`, on the embedded store and on a Kubo node."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from backend.cli.ipfs import app
from backend.errors import IntegrityError, StorageError
from backend.storage import compute_cid
from backend.storage.embedded import EmbeddedStore
from tests.storage.conftest import pseudo_random

runner = CliRunner()


@pytest.fixture
def home():
    """tests/conftest.py gives every test its own MERIT_HOME and clears MERIT_IPFS."""
    from backend.config import get_settings

    return get_settings().home


def _file(tmp_path, data):
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("version", ["0", "1"])
def test_add_then_cat(home, tmp_path, version):
    data = pseudo_random(300_000)
    added = runner.invoke(app, ["add", str(_file(tmp_path, data)), "--cid-version", version])
    assert added.exit_code == 0, added.output
    cid = added.stdout.strip()
    assert cid == compute_cid(data, int(version))
    assert (home / "ipfs" / "pins" / cid).exists()
    out = runner.invoke(app, ["cat", cid])
    assert out.exit_code == 0 and out.stdout_bytes == data
    assert runner.invoke(app, ["pin", cid]).stdout.strip() == f"pinned {cid}"


def test_only_hash_stores_nothing(home, tmp_path):
    result = runner.invoke(app, ["add", "-n", str(_file(tmp_path, b"abc"))])
    assert result.stdout.strip() == compute_cid(b"abc")
    assert not (home / "ipfs").exists()


def test_cat_to_a_file(home, tmp_path):
    data = pseudo_random(600_000)
    cid = runner.invoke(app, ["add", str(_file(tmp_path, data))]).stdout.strip()
    out = tmp_path / "copy.bin"
    assert runner.invoke(app, ["cat", cid, "-o", str(out)]).exit_code == 0
    assert out.read_bytes() == data


def test_ipfs_option_points_at_kubo(home, tmp_path, kubo):
    data = pseudo_random(400_000)
    cid = runner.invoke(app, ["add", str(_file(tmp_path, data)), "--ipfs", kubo.url]).stdout.strip()
    assert kubo.block(cid) is not None and not (home / "ipfs").exists()
    assert runner.invoke(app, ["cat", cid, "--ipfs", kubo.url]).stdout_bytes == data


def test_backend_from_configuration(home, tmp_path, kubo, monkeypatch):
    from backend.config import get_settings

    monkeypatch.setenv("MERIT_IPFS", kubo.url)
    get_settings.cache_clear()
    cid = runner.invoke(app, ["add", str(_file(tmp_path, b"configured"))]).stdout.strip()
    assert kubo.block(cid) == b"configured"


def test_errors_are_merit_errors(home, tmp_path):
    assert isinstance(runner.invoke(app, ["cat", "Qmnope"]).exception, StorageError)
    assert isinstance(runner.invoke(app, ["cat", compute_cid(b"absent")]).exception, StorageError)
    assert isinstance(runner.invoke(app, ["add", str(tmp_path / "missing")]).exception, StorageError)
    cid = runner.invoke(app, ["add", str(_file(tmp_path, b"fragile"))]).stdout.strip()
    EmbeddedStore(home / "ipfs").block_path(cid).write_bytes(b"tampered")
    assert isinstance(runner.invoke(app, ["cat", cid]).exception, IntegrityError)


def test_the_merit_command_prints_one_red_line(home, tmp_path):
    """Through the real entry point: exit 1, one line on stderr, nothing on stdout."""
    env = {**os.environ, "MERIT_HOME": str(home), "NO_COLOR": "1"}
    env.pop("MERIT_IPFS", None)
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "ipfs", "cat", "bafkreinope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: not a valid CID") and result.stderr.count("\n") == 1
