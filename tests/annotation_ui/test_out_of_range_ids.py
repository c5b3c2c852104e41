"""Ids in paths that SQLite cannot hold (or that cannot be ids) are a 404, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.annotation_ui.conftest import login

BAD_IDS = ["9223372036854775808", "99999999999999999999999999999", "-1", "0",
           "-9223372036854775809", "1e3", "abc", "9" * 5000]  # fmt: skip
ACTIONS = ("submit", "skip", "draft")


def short(value: str) -> str:
    return value if len(value) < 30 else f"{len(value)}-digits"


@pytest.fixture
def client(project):
    client = TestClient(project.app(), raise_server_exceptions=False)
    return client, login(client, "ann1")


@pytest.mark.parametrize("item_id", BAD_IDS, ids=short)
def test_every_item_route_answers_404_for_an_impossible_id(client, item_id):
    client, csrf = client
    assert client.get(f"/item/{item_id}").status_code == 404
    for action in ACTIONS:
        response = client.post(f"/item/{item_id}/{action}", data={"csrf_token": csrf})
        assert response.status_code == 404, action


def test_an_impossible_id_is_404_without_a_session_too(project):
    client = TestClient(project.app(), raise_server_exceptions=False)
    assert client.get("/item/9223372036854775808").status_code == 404
    assert client.post("/item/9223372036854775808/submit").status_code == 404


def test_the_largest_sqlite_id_is_simply_not_yours(client):
    client, csrf = client
    assert client.get("/item/9223372036854775807").status_code == 404
    response = client.post("/item/9223372036854775807/submit", data={"csrf_token": csrf})
    assert response.status_code == 404


@pytest.mark.parametrize("value", ["9223372036854775808", "-99999999999999999999", "9" * 5000,
                                   "1e400", "nan"], ids=short)  # fmt: skip
def test_huge_numbers_in_answer_fields_are_a_422(client, project, value):
    client, csrf = client
    item = int(client.get("/next", follow_redirects=False).headers["location"].rsplit("/")[-1])
    form = {"csrf_token": csrf, "helpfulness": value, "correctness": "1", "coherence": "1",
            "complexity": "1", "verbosity": "1", "preference_strength": value,
            "justification": "long enough reason"}  # fmt: skip
    for action in ("submit", "draft"):
        response = client.post(f"/item/{item}/{action}", data=form)
        assert response.status_code == 422, action
