"""The annotation project in one SQLite file (WAL mode): users, sessions, items,
assignments, drafts and answers.

Every write that must see a consistent picture (giving out the next item, submitting)
runs in a `BEGIN IMMEDIATE` transaction, so two annotators can never take the same
slot of an item. A triggers-maintained `items.active` counts the assignments that
hold a slot (open or done), so "items with a free slot" is an index range.

The file holds no live secret: passwords are salted scrypt, and session ids, their CSRF
tokens and login pre-sessions are kept as SHA-256 digests. It is created mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from annotation_ui import security

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    salt BLOB NOT NULL,
    password_hash BLOB NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_digest TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_digest TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_forms (
    presession_digest TEXT PRIMARY KEY,
    csrf_digest TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_forms_by_age ON login_forms (expires_at);
CREATE TABLE IF NOT EXISTS items (ITEM_COLUMNS);
CREATE INDEX IF NOT EXISTS items_by_fill ON items (active DESC, id);
CREATE TABLE IF NOT EXISTS assignments (
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    status TEXT NOT NULL CHECK (status IN ('open', 'done', 'skipped')),
    assigned_at TEXT NOT NULL,
    touched_at TEXT NOT NULL,
    PRIMARY KEY (item_id, user_id)
);
CREATE INDEX IF NOT EXISTS assignments_by_user ON assignments (user_id, status);
CREATE INDEX IF NOT EXISTS assignments_by_age ON assignments (status, touched_at);
CREATE TABLE IF NOT EXISTS annotations (
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (item_id, user_id)
);
CREATE TABLE IF NOT EXISTS drafts (
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    answer TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (item_id, user_id)
);
CREATE TRIGGER IF NOT EXISTS slot_taken AFTER INSERT ON assignments
WHEN NEW.status != 'skipped' BEGIN
    UPDATE items SET active = active + 1 WHERE id = NEW.item_id;
END;
CREATE TRIGGER IF NOT EXISTS slot_given_back AFTER UPDATE OF status ON assignments
WHEN OLD.status != 'skipped' AND NEW.status = 'skipped' BEGIN
    UPDATE items SET active = active - 1 WHERE id = NEW.item_id;
END;
CREATE TRIGGER IF NOT EXISTS slot_expired AFTER DELETE ON assignments
WHEN OLD.status != 'skipped' BEGIN
    UPDATE items SET active = active - 1 WHERE id = OLD.item_id;
END;
"""

ITEM_COLUMNS = """
    id INTEGER PRIMARY KEY,
    item_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('rating', 'preference', 'hs3_preference', 'feedback',
                                       'edit')),
    prompt TEXT NOT NULL,
    response TEXT,
    response_1 TEXT,
    response_2 TEXT,
    active INTEGER NOT NULL DEFAULT 0,
    context TEXT,
    domain TEXT,
    language TEXT,
    feedback TEXT
"""
"""HelpSteer3 items keep `context` (JSON messages) and `feedback` (a JSON list of texts,
what an edit follows); `domain` and `language` are HelpSteer3's metadata."""
SCHEMA = SCHEMA.replace("ITEM_COLUMNS", ITEM_COLUMNS)
ITEM_FIELDS = ("item_key", "kind", "prompt", "response", "response_1", "response_2",
               "context", "domain", "language", "feedback")  # fmt: skip

DEFAULT_K = 3
DEFAULT_LEASE_HOURS = 24.0
SESSION_DAYS = 14
LOGIN_FORM_SECONDS = 3600
MAX_LOGIN_FORMS = 10_000
"""Open login forms kept at most; the oldest go first, so fetching /login in a loop cannot
grow the database without bound."""
SYNC_MODES = ("FULL", "NORMAL")


class StoreError(Exception):
    """A request the project cannot honour (unknown user, item not yours, ...)."""


class NotAssigned(StoreError):
    pass


class InvalidValue(StoreError):
    """A value the caller gave that can never work (a bad user name, a short password)."""


@dataclass(frozen=True)
class Session:
    user_id: int
    username: str
    is_admin: bool
    csrf: str


@dataclass(frozen=True)
class Item:
    id: int
    key: str
    kind: str
    prompt: str
    response: str | None
    response_1: str | None
    response_2: str | None
    context: list[dict] | None = None
    """HelpSteer3 tasks: the conversation as {role, content} messages."""
    domain: str | None = None
    language: str | None = None
    feedback: list[str] | None = None
    """Edit task: the feedback the edit follows."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are opened explicitly."""
    if str(path) != ":memory:" and not Path(path).exists():
        _create_private(Path(path))
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL syncs the WAL at every commit: an acknowledged answer survives even power loss.
    conn.execute(f"PRAGMA synchronous = {synchronous if synchronous in SYNC_MODES else 'FULL'}")
    return conn


_WRITERS = threading.Lock()
"""Writers of this process queue here rather than in SQLite's busy handler, which backs
off by sleeping (up to 100 ms a try) and so turns contention into long tail latency.
Other processes are still kept out by SQLite's own lock."""


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE`: take the write lock up front, so reads inside see what we write on."""
    with _WRITERS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


PRIVATE = 0o600
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only, before SQLite writes to
    it. SQLite gives the -wal and -shm files the database file's mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # the umask may have taken bits away; never adds any
    finally:
        os.close(fd)


def make_private(path: str | Path) -> None:
    """Tighten an existing project's files (made before they were created 0600)."""
    for suffix in DB_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", PRIVATE)


def init_db(path: str | Path) -> None:
    """Create the database (or bring an existing one up to date) in WAL mode."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    make_private(path)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        _drop_plain_sessions(conn)
        _widen_items(conn)
        conn.executescript(SCHEMA)
    finally:
        conn.close()
    make_private(path)


def _drop_plain_sessions(conn: sqlite3.Connection) -> None:
    """Databases made before CSRF tokens were hashed kept them in plain: drop those
    sessions (everyone logs in again) rather than keep live secrets on disk."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(sessions)")}
    if "csrf" in columns:
        conn.execute("DROP TABLE sessions")
        conn.execute("VACUUM")  # the dropped pages would still hold the tokens


def _widen_items(conn: sqlite3.Connection) -> None:
    """Bring an `items` table made before the HelpSteer3 tasks up to date: its CHECK
    allowed two kinds, and SQLite cannot alter a CHECK, so the table is rebuilt (SQLite's
    documented procedure: foreign keys off, copy, drop, rename, check, in one transaction;
    the triggers and the index that name `items` are made again by SCHEMA)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'")
    sql = (row.fetchone() or [None])[0]
    if sql is None or "hs3_preference" in sql:
        return
    old = "id, item_key, kind, prompt, response, response_1, response_2, active"
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with transaction(conn):
            for trigger in ("slot_taken", "slot_given_back", "slot_expired"):
                # they name `items`; SCHEMA creates them again right after
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            conn.execute(f"CREATE TABLE items_widened ({ITEM_COLUMNS})")
            conn.execute(f"INSERT INTO items_widened ({old}) SELECT {old} FROM items")
            conn.execute("DROP TABLE items")
            conn.execute("ALTER TABLE items_widened RENAME TO items")
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreError(f"upgrading the items table broke {len(broken)} references")
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def open_existing(path: str | Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise StoreError(f"{path}: no annotation database (create one with `hs annotate import`)")
    conn = connect(path)
    try:
        conn.execute("SELECT 1 FROM items LIMIT 1")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: not an annotation database ({exc})") from None
    return conn


# --- settings ---------------------------------------------------------------------------


def get_setting(conn: sqlite3.Connection, key: str, default: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row["value"] if row else default


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def get_k(conn: sqlite3.Connection) -> int:
    return int(get_setting(conn, "k", str(DEFAULT_K)))


def get_lease_hours(conn: sqlite3.Connection) -> float:
    return float(get_setting(conn, "lease_hours", str(DEFAULT_LEASE_HOURS)))


# --- users and sessions -----------------------------------------------------------------

USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
MIN_PASSWORD = 8


def add_user(conn: sqlite3.Connection, username: str, password: str, is_admin: bool) -> int:
    username = username.strip()
    if not username or len(username) > 64 or not set(username) <= USERNAME_CHARS:
        raise InvalidValue(
            f"username {username!r}: use 1-64 letters, digits or . _ - @ (no spaces)"
        )
    if len(password) < MIN_PASSWORD:
        raise InvalidValue(f"password for {username!r}: at least {MIN_PASSWORD} characters")
    salt, digest = security.hash_password(password)
    try:
        cur = conn.execute(
            "INSERT INTO users (username, salt, password_hash, is_admin, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (username, salt, digest, int(is_admin), now()),
        )
    except sqlite3.IntegrityError:
        raise StoreError(f"user {username!r} already exists") from None
    return cur.lastrowid


def authenticate(conn: sqlite3.Connection, username: str, password: str) -> int | None:
    row = conn.execute(
        "SELECT id, salt, password_hash FROM users WHERE username = ?", (username.strip(),)
    ).fetchone()
    if row is None:
        # Hash anyway so a wrong username takes as long as a wrong password.
        security.hash_password(password)
        return None
    ok = security.check_password(password, row["salt"], row["password_hash"])
    return row["id"] if ok else None


def _session_csrf(token: str) -> str:
    return security.derived_token(token, "session csrf")


def create_session(conn: sqlite3.Connection, user_id: int) -> str:
    """A new session's cookie value; the database keeps digests of it and of its CSRF token."""
    token = security.new_token()
    expires = (datetime.now(UTC) + timedelta(days=SESSION_DAYS)).isoformat()
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (datetime.now(UTC).isoformat(),))
    conn.execute(
        "INSERT INTO sessions (token_digest, user_id, csrf_digest, expires_at) VALUES (?, ?, ?, ?)",
        (
            security.token_digest(token),
            user_id,
            security.token_digest(_session_csrf(token)),
            expires,
        ),
    )
    return token


def session_for(conn: sqlite3.Connection, token: str | None) -> Session | None:
    if not token:
        return None
    row = conn.execute(
        "SELECT s.user_id, s.csrf_digest, s.expires_at, u.username, u.is_admin FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.token_digest = ?",
        (security.token_digest(token),),
    ).fetchone()
    if row is None or row["expires_at"] < datetime.now(UTC).isoformat():
        return None
    csrf = _session_csrf(token)
    if not security.same(security.token_digest(csrf), row["csrf_digest"]):
        return None
    return Session(row["user_id"], row["username"], bool(row["is_admin"]), csrf)


def end_session(conn: sqlite3.Connection, token: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_digest = ?", (security.token_digest(token),))


def open_login_form(conn: sqlite3.Connection) -> tuple[str, str]:
    """(pre-session id for the cookie, CSRF token for the form) of a new login form.

    Only digests are stored; the token is good only with the pre-session it was made for,
    so a client cannot pass the check with a cookie and token of its own choosing.
    """
    presession, csrf = security.new_token(), security.new_token()
    stamp = datetime.now(UTC)
    expires = (stamp + timedelta(seconds=LOGIN_FORM_SECONDS)).isoformat()
    with transaction(conn):
        conn.execute("DELETE FROM login_forms WHERE expires_at < ?", (stamp.isoformat(),))
        conn.execute(
            "INSERT INTO login_forms (presession_digest, csrf_digest, expires_at) VALUES (?, ?, ?)",
            (security.token_digest(presession), security.token_digest(csrf), expires),
        )
        conn.execute(
            "DELETE FROM login_forms WHERE rowid IN (SELECT rowid FROM login_forms "
            "ORDER BY expires_at DESC LIMIT -1 OFFSET ?)",
            (MAX_LOGIN_FORMS,),
        )
    return presession, csrf


def use_login_form(conn: sqlite3.Connection, presession: str | None, csrf: str | None) -> bool:
    """Whether `csrf` is the token of this pre-session's login form; either way the form
    is used up, so each token is good for one try."""
    if not presession or not csrf:
        return False
    digest = security.token_digest(presession)
    with transaction(conn):
        row = conn.execute(
            "SELECT csrf_digest, expires_at FROM login_forms WHERE presession_digest = ?",
            (digest,),
        ).fetchone()
        conn.execute("DELETE FROM login_forms WHERE presession_digest = ?", (digest,))
    if row is None or row["expires_at"] < datetime.now(UTC).isoformat():
        return False
    return security.same(security.token_digest(csrf), row["csrf_digest"])


# --- items ------------------------------------------------------------------------------


def add_items(conn: sqlite3.Connection, rows: list[dict]) -> int:
    """Insert items (dicts with item_key, kind, prompt, response / response_1, response_2);
    an item_key already present is left alone, so importing twice adds nothing."""
    names = ", ".join(ITEM_FIELDS)
    marks = ", ".join(f":{f}" for f in ITEM_FIELDS)
    with transaction(conn):
        before = conn.total_changes
        conn.executemany(
            f"INSERT OR IGNORE INTO items ({names}) VALUES ({marks})",
            [_item_row(row) for row in rows],
        )
        return conn.total_changes - before


def _item_row(row: dict) -> dict:
    """An item dict as the table's values: lists (context, feedback) as JSON text."""
    out = dict.fromkeys(ITEM_FIELDS) | row
    for name in ("context", "feedback"):
        if out[name] is not None and not isinstance(out[name], str):
            out[name] = json.dumps(out[name], ensure_ascii=False)
    return out


def get_item(conn: sqlite3.Connection, item_id: int) -> Item | None:
    row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        return None
    return Item(
        row["id"], row["item_key"], row["kind"], row["prompt"],
        row["response"], row["response_1"], row["response_2"],
        _json(row["context"]), row["domain"], row["language"], _json(row["feedback"]),
    )  # fmt: skip


def _json(text: str | None):
    return None if text is None else json.loads(text)


# --- assignment ---------------------------------------------------------------------------


def next_item(conn: sqlite3.Connection, user_id: int) -> int | None:
    """The item this annotator should do next: an open one they already hold, else a new
    one with a free slot (fullest first, so items complete early), else None."""
    held = _open_assignment(conn, user_id)
    if held is not None:
        return held
    with transaction(conn):
        return _assign_next(conn, user_id)


def _assign_next(conn: sqlite3.Connection, user_id: int) -> int | None:
    held = _open_assignment(conn, user_id)
    if held is not None:
        return held
    _expire_stale(conn)
    row = conn.execute(
        "SELECT id FROM items i WHERE active < ? AND NOT EXISTS "
        "(SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.user_id = ?) "
        "ORDER BY active DESC, id LIMIT 1",
        (get_k(conn), user_id),
    ).fetchone()
    if row is None:
        return None
    stamp = now()
    conn.execute(
        "INSERT INTO assignments (item_id, user_id, status, assigned_at, touched_at) "
        "VALUES (?, ?, 'open', ?, ?)",
        (row["id"], user_id, stamp, stamp),
    )
    return row["id"]


def _open_assignment(conn: sqlite3.Connection, user_id: int) -> int | None:
    row = conn.execute(
        "SELECT item_id FROM assignments WHERE user_id = ? AND status = 'open' "
        "ORDER BY assigned_at LIMIT 1",
        (user_id,),
    ).fetchone()
    return row["item_id"] if row else None


def _expire_stale(conn: sqlite3.Connection) -> None:
    """Give back slots held open (no draft saved) for longer than the lease, so an
    annotator who left does not block an item for ever."""
    hours = get_lease_hours(conn)
    if hours <= 0:
        return
    cutoff = (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
    stale = "status = 'open' AND touched_at < ?"
    conn.execute(
        "DELETE FROM drafts WHERE EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = "
        f"drafts.item_id AND a.user_id = drafts.user_id AND a.{stale})",
        (cutoff,),
    )
    conn.execute(f"DELETE FROM assignments WHERE {stale}", (cutoff,))


def assignment_status(conn: sqlite3.Connection, item_id: int, user_id: int) -> str | None:
    row = conn.execute(
        "SELECT status FROM assignments WHERE item_id = ? AND user_id = ?", (item_id, user_id)
    ).fetchone()
    return row["status"] if row else None


def _require_assignment(conn: sqlite3.Connection, item_id: int, user_id: int) -> str:
    status = assignment_status(conn, item_id, user_id)
    if status is None or status == "skipped":
        raise NotAssigned(
            f"item {item_id} is not assigned to you (it may have been skipped, or handed to "
            "someone else after a long time without an answer)"
        )
    return status


def submit(
    conn: sqlite3.Connection, item_id: int, user_id: int, answer: dict, then_next: bool = False
) -> int | None:
    """Store (or replace) this annotator's answer; the item's slot becomes done.

    With `then_next`, also give out the annotator's next item in the same transaction
    (one commit, so one disk sync, per answer) and return it.
    """
    with transaction(conn):
        _require_assignment(conn, item_id, user_id)
        stamp = now()
        conn.execute(
            "INSERT INTO annotations (item_id, user_id, answer, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (item_id, user_id) DO UPDATE SET answer = excluded.answer, "
            "created_at = excluded.created_at",
            (item_id, user_id, json.dumps(answer), stamp),
        )
        conn.execute(
            "UPDATE assignments SET status = 'done', touched_at = ? "
            "WHERE item_id = ? AND user_id = ?",
            (stamp, item_id, user_id),
        )
        conn.execute("DELETE FROM drafts WHERE item_id = ? AND user_id = ?", (item_id, user_id))
        return _assign_next(conn, user_id) if then_next else None


def skip(conn: sqlite3.Connection, item_id: int, user_id: int) -> None:
    """Give the slot back for someone else; this annotator is not offered the item again."""
    with transaction(conn):
        if _require_assignment(conn, item_id, user_id) == "done":
            raise StoreError(f"item {item_id} is already answered; it cannot be skipped")
        conn.execute(
            "UPDATE assignments SET status = 'skipped', touched_at = ? "
            "WHERE item_id = ? AND user_id = ?",
            (now(), item_id, user_id),
        )
        conn.execute("DELETE FROM drafts WHERE item_id = ? AND user_id = ?", (item_id, user_id))


def save_draft(conn: sqlite3.Connection, item_id: int, user_id: int, answer: dict) -> None:
    with transaction(conn):
        if _require_assignment(conn, item_id, user_id) == "done":
            raise StoreError(f"item {item_id} is already answered; edit and submit it instead")
        stamp = now()
        conn.execute(
            "INSERT INTO drafts (item_id, user_id, answer, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (item_id, user_id) DO UPDATE SET answer = excluded.answer, "
            "updated_at = excluded.updated_at",
            (item_id, user_id, json.dumps(answer), stamp),
        )
        conn.execute(
            "UPDATE assignments SET touched_at = ? WHERE item_id = ? AND user_id = ?",
            (stamp, item_id, user_id),
        )


def saved_answer(conn: sqlite3.Connection, item_id: int, user_id: int) -> tuple[str, dict] | None:
    """('answer' | 'draft', answer) for this annotator's own work on the item."""
    for table, label in (("annotations", "answer"), ("drafts", "draft")):
        row = conn.execute(
            f"SELECT answer FROM {table} WHERE item_id = ? AND user_id = ?", (item_id, user_id)
        ).fetchone()
        if row is not None:
            return label, json.loads(row["answer"])
    return None


# --- progress -----------------------------------------------------------------------------


def user_progress(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute(
        "SELECT u.username, u.is_admin, "
        "COALESCE(SUM(a.status = 'done'), 0) AS done, "
        "COALESCE(SUM(a.status = 'skipped'), 0) AS skipped, "
        "COALESCE(SUM(a.status = 'open'), 0) AS open, "
        "(SELECT COUNT(*) FROM drafts d WHERE d.user_id = u.id) AS drafts, "
        "MAX(CASE WHEN a.status = 'done' THEN a.touched_at END) AS last_answer "
        "FROM users u LEFT JOIN assignments a ON a.user_id = u.id "
        "GROUP BY u.id ORDER BY u.username"
    ).fetchall()
    return [dict(r) for r in rows]


def project_progress(conn: sqlite3.Connection) -> dict:
    k = get_k(conn)
    row = conn.execute(
        "SELECT COUNT(*) AS items, "
        "COALESCE(SUM(kind = 'rating'), 0) AS rating_items, "
        "COALESCE(SUM(kind = 'preference'), 0) AS preference_items, "
        "COALESCE(SUM(kind = 'hs3_preference'), 0) AS hs3_preference_items, "
        "COALESCE(SUM(kind = 'feedback'), 0) AS feedback_items, "
        "COALESCE(SUM(kind = 'edit'), 0) AS edit_items FROM items"
    ).fetchone()
    done = conn.execute(
        "SELECT COUNT(*) AS answers, COUNT(DISTINCT item_id) AS started FROM annotations"
    ).fetchone()
    complete = conn.execute(
        "SELECT COUNT(*) FROM (SELECT item_id FROM annotations GROUP BY item_id "
        "HAVING COUNT(*) >= ?)",
        (k,),
    ).fetchone()[0]
    wanted = row["items"] * k
    return {
        "k": k,
        **dict(row),
        "answers": done["answers"],
        "answers_wanted": wanted,
        "items_started": done["started"],
        "items_complete": complete,
        "percent": round(100 * done["answers"] / wanted, 1) if wanted else 0.0,
    }


def own_progress(conn: sqlite3.Connection, user_id: int) -> dict:
    row = conn.execute(
        "SELECT COALESCE(SUM(status = 'done'), 0) AS done, "
        "COALESCE(SUM(status = 'skipped'), 0) AS skipped FROM assignments WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    return dict(row)


def annotation_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every submitted answer with its item and annotator, in a stable order."""
    return conn.execute(
        "SELECT i.item_key, i.kind, i.prompt, i.response, i.response_1, i.response_2, "
        "u.username AS annotator_id, a.answer, a.created_at, "
        "i.context, i.domain, i.language, i.feedback "
        "FROM annotations a JOIN items i ON i.id = a.item_id JOIN users u ON u.id = a.user_id "
        "ORDER BY i.id, u.username"
    ).fetchall()
