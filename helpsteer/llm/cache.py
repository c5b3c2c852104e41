"""On-disk cache of completions: one SQLite database in WAL mode per cache folder.

Why SQLite and not one file per key: a synthetic-data run makes millions of calls, and
millions of tiny files are slow to create, list and copy (and exhaust inodes on some
file systems), while one database holds them in a single file. In WAL mode readers never
block the writer, several processes can share the file (writers queue on a busy
timeout instead of failing), and each insert is its own committed transaction, so a
result is durable the moment it is written: a run killed with SIGKILL loses only the
requests that were still in flight. `synchronous=NORMAL` keeps commits cheap; in WAL
mode it can lose the last commits only on a power cut, never corrupt the file.

Requests that failed permanently (see `Completion.permanent`) are kept apart, in table
`failures` with their reason, so `get`, `keys` and `len` still mean finished completions
(and an older version of this code, reading the same file, simply asks them again).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from helpsteer.llm.types import Completion

FILE_NAME = "completions.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""

_FAILURES = """
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class CompletionCache:
    """Completions by cache key (see `ChatRequest.cache_key`); `put` never stores a failed
    call, `put_failed` records a permanent failure's reason."""

    def __init__(
        self,
        folder: str | Path,
        file_name: str = FILE_NAME,
        journal: str = "WAL",
        synchronous: str = "NORMAL",
    ):
        self.path = Path(folder) / file_name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
        self._db.execute(f"PRAGMA journal_mode={journal}")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(_SCHEMA)
        self._db.execute(_FAILURES)
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Completion.model_validate_json(row[0])

    def put(self, key: str, model: str, completion: Completion) -> None:
        if completion.error is not None:
            return
        value = completion.model_dump_json(exclude={"cached", "latency_s", "permanent"})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, model, value, created) VALUES (?,?,?,?)",
                (key, model, value, time.time()),
            )
            # A success (e.g. after retry_failed) replaces an earlier failure record.
            self._db.execute("DELETE FROM failures WHERE key = ?", (key,))
            self._db.commit()

    def put_failed(self, key: str, model: str, reason: str) -> None:
        """Record that `key` failed permanently (kept until a success replaces it)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO failures (key, model, reason, created) VALUES (?,?,?,?)",
                (key, model, reason, time.time()),
            )
            self._db.commit()

    def failure(self, key: str) -> str | None:
        """The reason `key` failed permanently, None when it has no failure record."""
        with self._lock:
            row = self._db.execute("SELECT reason FROM failures WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def failed_keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT key FROM failures")}

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT key FROM completions")}

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(folder: str | Path) -> CompletionCache:
    """The cache a client in this process writes: the folder's database, or this
    process's own segment of it on a Ray worker (`helpsteer.llm.segments`)."""
    from helpsteer.llm import segments

    if segments.WRITER is None:
        return CompletionCache(folder)
    return segments.SegmentCache(folder, segments.WRITER)
