"""The project database is private to its owner, and holds no live secret."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat

import pytest

from annotation_ui import store
from tests.annotation_ui.conftest import CSRF, PASSWORD, login


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_the_database_and_its_wal_and_shm_are_created_0600(tmp_path, mask):
    db = tmp_path / "new.db"
    with umask(mask):
        store.init_db(db)
        conn = store.connect(db)
        store.add_user(conn, "ann1", PASSWORD, False)  # a write: -wal and -shm exist now
        try:
            for suffix in ("", "-wal", "-shm"):
                assert mode(f"{db}{suffix}") == 0o600, suffix
        finally:
            conn.close()


def test_an_existing_projects_files_are_tightened(tmp_path):
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    store.init_db(db)
    assert mode(db) == 0o600


def _database_bytes(db) -> bytes:
    return b"".join(
        open(f"{db}{suffix}", "rb").read()
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(f"{db}{suffix}")
    )


def test_session_and_csrf_tokens_are_not_on_disk(project):
    client = project.client()
    csrf = login(client, "ann1")
    cookie = client.cookies["hs_session"]
    on_disk = _database_bytes(project.db)
    assert cookie.encode() not in on_disk
    assert csrf.encode() not in on_disk


def test_a_stolen_session_row_is_not_a_cookie(project):
    client = project.client()
    csrf = login(client, "ann1")
    conn = project.conn()
    row = dict(conn.execute("SELECT token_digest, csrf_digest FROM sessions").fetchone())
    conn.close()
    thief = project.client()
    thief.cookies.set("hs_session", row["token_digest"])
    assert thief.get("/next", follow_redirects=False).headers["location"] == "/login"
    # Nor does the row's CSRF digest stand in for the session's token.
    assert row["csrf_digest"] != csrf
    item = int(client.get("/next", follow_redirects=False).headers["location"].rsplit("/")[-1])
    forged = client.post(f"/item/{item}/draft", data={"csrf_token": row["csrf_digest"]})
    assert forged.status_code == 403


def test_the_csrf_token_shown_is_the_sessions_own(project):
    client = project.client()
    csrf = login(client, "ann1")
    page = client.get("/")
    assert CSRF.search(page.text).group(1) == csrf
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 200


def test_sessions_from_before_hashed_csrf_are_dropped(tmp_path):
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE sessions (token_digest TEXT PRIMARY KEY, user_id INTEGER NOT NULL, "
        "csrf TEXT NOT NULL, expires_at TEXT NOT NULL);"
        "INSERT INTO sessions VALUES ('d', 1, 'plain-csrf-token-1234', '2999-01-01');"
    )
    conn.close()
    store.init_db(db)
    conn = store.connect(db)
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(sessions)")}
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert "csrf" not in columns and "csrf_digest" in columns
    assert b"plain-csrf-token-1234" not in _database_bytes(db)
