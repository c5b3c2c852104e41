"""The completion cache on shared storage: one SQLite segment per writing process.

SQLite's WAL mode, which lets the processes of one machine share `completions.sqlite`,
needs shared memory between them, so it does not work between machines on NFS or
another network file system. On a Ray cluster each worker process therefore writes its
finished completions to its own file, `FOLDER/segments/HOST-PID.sqlite` (one writer per
file: nothing to lock across machines), and reads the folder's main database, which the
driver does not write while the workers run, opened read-only and immutable (no locks,
no shared memory). The driver folds every segment into the main database before and
after each stage it sends to Ray, and deletes the segments once no worker is left
(`compact`), so:

- a retried bucket finds what the earlier stages finished (in the main database);
- a driver that died mid-stage leaves the finished requests in the segments, and the next
  run folds them in before it sends anything, so no finished request is sent again;
- a worker that died mid-bucket loses nothing it wrote; its retry on another worker may
  ask again for what the dead worker finished in that same bucket (it does not see the
  dead worker's segment until the next fold), never gives duplicate rows.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

from helpsteer.llm.cache import FILE_NAME, CompletionCache
from helpsteer.llm.types import Completion

SEGMENTS = "segments"
WRITER: str | None = None
"""This process's segment name when it is a Ray worker; None: write the main database."""


def become_writer(name: str | None = None) -> str:
    """Make this process write its own segment from now on (a Ray worker calls this)."""
    global WRITER
    WRITER = name or f"{socket.gethostname()}-{os.getpid()}"
    return WRITER


class SegmentCache(CompletionCache):
    """Writes this process's segment; reads it, then the folder's main database."""

    def __init__(self, folder: str | Path, writer: str):
        # A rollback journal, not WAL: the driver reads this file from another machine.
        # PERSIST + synchronous=OFF: 0.07 ms a commit here, against 16.5 ms with DELETE and
        # NORMAL (a journal file made, synced and deleted per completion). A killed worker
        # loses nothing (the kernel holds its writes); a power cut may lose the segment,
        # which costs requests sent again, never wrong rows.
        super().__init__(
            folder, f"{SEGMENTS}/{writer}.sqlite", journal="PERSIST", synchronous="OFF"
        )
        self.main_path = Path(folder) / FILE_NAME
        self._main: sqlite3.Connection | None = None
        self._main_stamp: tuple[int, int] | None = None
        self._main_lock = threading.Lock()

    def _main_db(self) -> sqlite3.Connection | None:
        """The main database, reopened when the driver has folded segments into it."""
        try:
            stat = self.main_path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._main_stamp:
            if self._main is not None:
                self._main.close()
            uri = f"{self.main_path.resolve().as_uri()}?immutable=1"
            self._main = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._main_stamp = stamp
        return self._main

    def _main_row(self, sql: str, key: str):
        with self._main_lock:
            db = self._main_db()
            if db is None:
                return None
            try:
                return db.execute(sql, (key,)).fetchone()
            except sqlite3.Error:  # a table an older file lacks
                return None

    def get(self, key: str) -> Completion | None:
        found = super().get(key)
        if found is not None:
            return found
        row = self._main_row("SELECT value FROM completions WHERE key = ?", key)
        return None if row is None else Completion.model_validate_json(row[0])

    def failure(self, key: str) -> str | None:
        if super().get(key) is not None:
            return None
        reason = super().failure(key)
        if reason is not None:
            return reason
        row = self._main_row("SELECT reason FROM failures WHERE key = ?", key)
        return None if row is None else row[0]

    def close(self) -> None:
        super().close()
        with self._main_lock:
            if self._main is not None:
                self._main.close()
                self._main = None


def compact(folder: str | Path, remove: bool = True) -> int:
    """Fold every segment of `folder` into its main database; returns how many
    completions were new. Only the driver calls this, when no worker writes. Folding is
    idempotent; `remove` deletes the segments after it, which only a driver with no live
    workers may do (a worker keeps its file open between stages)."""
    folder = Path(folder)
    parts = sorted((folder / SEGMENTS).glob("*.sqlite"))
    if not parts:
        return 0
    cache = CompletionCache(folder)  # creates the main database and its tables
    cache.close()
    db = sqlite3.connect(folder / FILE_NAME, timeout=60.0)
    added = 0
    try:
        for part in parts:
            added += _fold(db, part)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    for part in parts if remove else []:
        for path in (part, Path(f"{part}-wal"), Path(f"{part}-shm"), Path(f"{part}-journal")):
            path.unlink(missing_ok=True)
    return added


def _fold(db: sqlite3.Connection, part: Path) -> int:
    db.execute("ATTACH DATABASE ? AS part", (str(part),))
    try:
        before = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        with db:
            db.execute("INSERT OR IGNORE INTO completions SELECT * FROM part.completions")
            db.execute(
                "INSERT OR REPLACE INTO failures SELECT * FROM part.failures "
                "WHERE key NOT IN (SELECT key FROM completions)"
            )
            db.execute("DELETE FROM failures WHERE key IN (SELECT key FROM part.completions)")
        return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] - before
    finally:
        db.execute("DETACH DATABASE part")
