"""A trainer's commitments waiting to be revealed, kept on disk.

An update is committed as a hash during the round's Open phase and revealed (CID and salt) after the
submission deadline. The salt is the only secret: lose it and the update cannot be revealed, which
counts as a missed round. So it is written here, atomically, before the commit transaction is sent,
and a restarted trainer still reveals.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from backend.errors import ConfigError
from backend.files import atomic_output


@dataclass(frozen=True)
class PendingCommit:
    project: int
    round: int
    cid: str
    salt: bytes


class CommitStore:
    """One JSON file per (project, round) under ``directory`` (one directory per chain, market and
    trainer address; see ``for_trainer``)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @classmethod
    def for_trainer(cls, home: Path, chain_id: int, market: str, trainer: str) -> "CommitStore":
        return cls(Path(home) / "commits" / f"{chain_id}-{market.lower()}" / trainer.lower())

    def _path(self, pid: int, round_: int) -> Path:
        return self.directory / f"{pid}-{round_}.json"

    def new(self, pid: int, round_: int, cid: str) -> PendingCommit:
        """A fresh random salt for ``cid``, saved before anything is sent on-chain."""
        pending = PendingCommit(pid, round_, cid, os.urandom(32))
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(self._path(pid, round_)) as out:
            out.write(
                json.dumps({"project": pid, "round": round_, "cid": cid, "salt": "0x" + pending.salt.hex()}).encode()
            )
        return pending

    def get(self, pid: int, round_: int) -> PendingCommit | None:
        path = self._path(pid, round_)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            salt = bytes.fromhex(data["salt"].removeprefix("0x"))
            if len(salt) != 32:
                raise ValueError("salt is not 32 bytes")
            return PendingCommit(int(data["project"]), int(data["round"]), str(data["cid"]), salt)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is not a valid pending commitment: {exc}",
                "the update of that round cannot be revealed; delete the file",
            ) from exc

    def done(self, pid: int, round_: int) -> None:
        self._path(pid, round_).unlink(missing_ok=True)
