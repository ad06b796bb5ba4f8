"""The API's persistent records under ``$MERIT_HOME/api/<market>/``: accepted uploads and used nonces.

SQLite, because it gives atomic insert-if-absent across threads and processes, and survives a
restart: a trainer cannot upload twice for a round, nor replay a nonce, by waiting for a restart.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class _Db:
    """One SQLite database; ``path=None`` keeps it in memory (for a market that lives only in this process)."""

    def __init__(self, path: Path | None, schema: str):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(schema)
        self._lock = threading.Lock()

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class UploadIndex:
    """One row per (project, round, trainer): ``pending`` while an upload is processed, then ``accepted``.

    The pending row is the lock that makes a second, concurrent upload by the same trainer get
    409; a rejected upload deletes it, so it leaves nothing behind.
    """

    def __init__(self, path: Path | None):
        self._db = _Db(
            path,
            """
            CREATE TABLE IF NOT EXISTS uploads (
                project INTEGER NOT NULL, round INTEGER NOT NULL, address TEXT NOT NULL,
                state TEXT NOT NULL, cid TEXT, size INTEGER, sha256 TEXT, created REAL NOT NULL,
                PRIMARY KEY (project, round, address));
        """,
        )
        # A pending row outlives its request only if the server died mid-upload: release it.
        self._db.execute("DELETE FROM uploads WHERE state = 'pending'")

    def reserve(self, project: int, round: int, address: str) -> bool:
        """Claim the trainer's slot for this round; False if it already has one (pending or accepted)."""
        try:
            self._db.execute(
                "INSERT INTO uploads (project, round, address, state, created) VALUES (?, ?, ?, 'pending', ?)",
                (project, round, address.lower(), time.time()),
            )
            return True
        except sqlite3.IntegrityError:
            return False

    def release(self, project: int, round: int, address: str) -> None:
        self._db.execute(
            "DELETE FROM uploads WHERE project = ? AND round = ? AND address = ? AND state = 'pending'",
            (project, round, address.lower()),
        )

    def accept(self, project: int, round: int, address: str, cid: str, size: int, sha256: str) -> None:
        self._db.execute(
            "UPDATE uploads SET state = 'accepted', cid = ?, size = ?, sha256 = ? "
            "WHERE project = ? AND round = ? AND address = ?",
            (cid, size, sha256, project, round, address.lower()),
        )

    def accepted_cid(self, project: int, round: int, address: str) -> str | None:
        row = self._db.execute(
            "SELECT cid FROM uploads WHERE project = ? AND round = ? AND address = ? AND state = 'accepted'",
            (project, round, address.lower()),
        ).fetchone()
        return row[0] if row else None

    def has_slot(self, project: int, round: int, address: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM uploads WHERE project = ? AND round = ? AND address = ?", (project, round, address.lower())
        ).fetchone()
        return row is not None

    def close(self) -> None:
        self._db.close()


class NonceRegistry:
    """Nonces seen from each address, kept until their timestamp could no longer be accepted anyway."""

    def __init__(self, path: Path | None):
        self._db = _Db(
            path,
            """
            CREATE TABLE IF NOT EXISTS nonces (
                address TEXT NOT NULL, nonce TEXT NOT NULL, expires REAL NOT NULL,
                PRIMARY KEY (address, nonce));
            CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
        """,
        )
        self._last_prune = 0.0

    def use(self, address: str, nonce: str, expires: float) -> bool:
        """Record the nonce; False if this address already used it."""
        now = time.time()
        if now - self._last_prune > 60:
            self._last_prune = now
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
        try:
            self._db.execute(
                "INSERT INTO nonces (address, nonce, expires) VALUES (?, ?, ?)", (address.lower(), nonce, expires)
            )
            return True
        except sqlite3.IntegrityError:
            return False

    def close(self) -> None:
        self._db.close()
