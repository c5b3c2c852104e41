"""Fixtures for the annotator app: a small project database, users and logged-in clients."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotation_ui import store

UI_EXTRA = ("fastapi", "uvicorn", "jinja2", "multipart", "markdown_it", "nh3", "httpx")
MISSING = [m for m in UI_EXTRA if importlib.util.find_spec(m) is None]
if MISSING:
    # Without the `ui` extra there is no app to test; say so in the header, collect nothing.
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config):
    if MISSING:
        return f"tests/annotation_ui skipped: the `ui` extra is missing ({', '.join(MISSING)})"
    return None


PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MULTI_TURN = "What is 2+2?\n<extra_id_1>Assistant\n4.\n<extra_id_1>User\nAnd times 3?"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rating_rows(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}?", "response": f"Answer **{i}**."} for i in range(n)]


def preference_rows(n: int) -> list[dict]:
    return [
        {"prompt": f"Compare {i}", "response_1": f"First {i}", "response_2": f"Second {i}"}
        for i in range(n)
    ]


@dataclass
class Project:
    db: Path
    ids: dict[str, int]
    """item_key -> item id"""

    def app(self, **settings):
        from annotation_ui.app import Settings, create_app
        from annotation_ui.tasks import default_guidelines

        return create_app(Settings(db=self.db, guidelines=default_guidelines(), **settings))

    def client(self, username: str | None = None, **settings):
        from fastapi.testclient import TestClient

        client = TestClient(self.app(**settings))
        if username is not None:
            login(client, username)
        return client

    def conn(self):
        return store.connect(self.db)


def login(client, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    done = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return csrf_of(client)


def csrf_of(client) -> str:
    return CSRF.search(client.get("/").text).group(1)


def make_project(db: Path, items: list[dict], users: dict[str, bool], k: int) -> Project:
    store.init_db(db)
    conn = store.connect(db)
    try:
        store.add_items(conn, items)
        store.set_setting(conn, "k", str(k))
        for name, is_admin in users.items():
            store.add_user(conn, name, PASSWORD, is_admin)
        ids = {r["item_key"]: r["id"] for r in conn.execute("SELECT id, item_key FROM items")}
    finally:
        conn.close()
    return Project(db, ids)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """Two rating items (one multi-turn), one preference item, k=2, an admin and 3 annotators."""
    items = [
        {"item_key": "r1", "kind": "rating", "prompt": MULTI_TURN, "response": "It is **12**."},
        {"item_key": "r2", "kind": "rating", "prompt": "Say hi", "response": "Hi!"},
        {
            "item_key": "p1",
            "kind": "preference",
            "prompt": "Name a colour",
            "response_1": "Blue",
            "response_2": "I like the colour *red* best.",
        },
    ]
    users = {"boss": True, "ann1": False, "ann2": False, "ann3": False}
    return make_project(tmp_path / "project.db", items, users, k=2)
