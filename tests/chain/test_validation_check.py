"""A drawn member checks the validation set it was handed against the owner's on-chain commitment."""

from __future__ import annotations

import pytest

from backend.errors import ConfigError
from backend.project import check_validation_file, commitment
from backend.storage import compute_cid

DATA = b"validation set bytes" * 100
SALT = bytes(range(32))


@pytest.mark.parametrize("version", [1, 0])
def test_the_committed_set_matches_whichever_cid_version_the_owner_used(version):
    committed = commitment(compute_cid(DATA, version), SALT)
    assert "matches the owner's on-chain commitment" in check_validation_file(DATA, committed, "", SALT)


def test_another_file_or_salt_is_refused_by_name():
    committed = commitment(compute_cid(DATA), SALT)
    with pytest.raises(ConfigError, match="do not match the owner's on-chain commitment"):
        check_validation_file(DATA + b"!", committed, "", SALT)
    with pytest.raises(ConfigError, match="do not match"):
        check_validation_file(DATA, committed, "", bytes(32))
    with pytest.raises(ConfigError, match="32 bytes"):
        check_validation_file(DATA, committed, "", b"short")


def test_once_revealed_the_revealed_cid_decides_and_without_a_salt_nothing_is_claimed():
    cid = compute_cid(DATA)
    assert cid in check_validation_file(DATA, b"\x00" * 32, cid, None)
    with pytest.raises(ConfigError, match="not the set the owner revealed"):
        check_validation_file(DATA + b"!", b"\x00" * 32, cid, None)
    assert "unchecked" in check_validation_file(DATA, b"\x00" * 32, "", None)
