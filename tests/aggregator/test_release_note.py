"""`merit verify` on a round another Merit release scored: a difference is reported with the release
to verify it with, since scoring rules change between releases; the same release adds nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

from aggregator.verify import release_note
from backend.release import release


def test_another_release_is_named_with_what_to_do():
    note = release_note("0.1.0", "0.2.0")
    assert note is not None and "merit 0.1.0" in note and "merit 0.2.0" in note and "merit verify" in note


def test_the_same_or_an_unknown_release_adds_nothing():
    assert release_note("0.2.0", "0.2.0") is None
    assert release_note(None, "0.2.0") is None
    assert release_note("unknown", "0.2.0") is None
    assert release_note("0.1.0", "unknown") is None


def test_the_running_release_is_the_one_pyproject_declares():
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    assert release() == declared  # make setup re-installs when pyproject.toml changes
