"""Login throttling, and a login CSRF token bound to a server-side pre-session."""

from __future__ import annotations

import logging

from annotation_ui import limits
from tests.annotation_ui.conftest import CSRF, PASSWORD


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled_client(project, **settings):
    client = project.client(**settings)
    clock = FakeClock()
    client.app.state.throttle.clock = clock
    return client, clock


def try_login(client, username: str, password: str):
    token = CSRF.search(client.get("/login").text).group(1)
    form = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=form, follow_redirects=False)


def test_an_account_is_locked_after_its_failures_and_opens_after_the_window(project, caplog):
    client, clock = throttled_client(project, login_window=60, login_per_account=3)
    caplog.set_level(logging.INFO, logger="annotation_ui.login")
    for _ in range(3):
        assert try_login(client, "ann1", "wrong password").status_code == 401
    locked = try_login(client, "ann1", PASSWORD)
    assert locked.status_code == 429 and "hs_session" not in client.cookies
    assert 0 < int(locked.headers["retry-after"]) <= 60
    assert "Too many failed logins" in locked.text and CSRF.search(locked.text)
    assert any("locked" in r.getMessage() and "'ann1'" in r.getMessage() for r in caplog.records)
    clock.now += 30
    assert try_login(client, "ann1", PASSWORD).status_code == 429
    clock.now += 31
    assert try_login(client, "ann1", PASSWORD).status_code == 303


def test_the_lock_is_per_account(project):
    client, _ = throttled_client(project, login_window=60, login_per_account=3)
    for _ in range(3):
        try_login(client, "ann1", "wrong password")
    assert try_login(client, "ann1", PASSWORD).status_code == 429
    assert try_login(client, "ann2", PASSWORD).status_code == 303


def test_one_address_spraying_many_accounts_is_locked(project):
    client, clock = throttled_client(
        project, login_window=60, login_per_account=100, login_per_address=4
    )
    for name in ("ann1", "ann2", "ann3", "nobody"):
        assert try_login(client, name, "wrong password").status_code == 401
    response = try_login(client, "boss", PASSWORD)
    assert response.status_code == 429 and "retry-after" in response.headers
    clock.now += 61
    assert try_login(client, "boss", PASSWORD).status_code == 303


def test_a_success_forgives_the_accounts_earlier_failures(project):
    client, _ = throttled_client(project, login_window=60, login_per_account=3)
    for _ in range(2):
        try_login(client, "ann1", "wrong password")
    assert try_login(client, "ann1", PASSWORD).status_code == 303
    for _ in range(2):
        assert try_login(client, "ann1", "wrong password").status_code == 401


def test_parallel_guesses_are_counted_before_they_are_checked():
    throttle = limits.LoginThrottle(window=60, per_account=3, per_address=100, clock=FakeClock())
    # Three tries in flight at once, none finished: the fourth already waits.
    assert [throttle.begin("ann1", "10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert throttle.begin("ann1", "10.0.0.2") == 60


def test_a_sprayed_throttle_keeps_its_lockouts_and_bounded_size(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(limits.LoginThrottle, "MAX_KEYS", 50)
    throttle = limits.LoginThrottle(window=60, per_account=2, per_address=0, clock=clock)
    throttle.begin("victim", "a")
    throttle.begin("victim", "a")
    assert throttle.begin("victim", "a") == 60
    for i in range(500):
        throttle.begin(f"spray{i}", "a")
    assert len(throttle._seen) <= 50
    assert throttle.begin("victim", "a") > 0


# --- login CSRF ---------------------------------------------------------------------------


def test_a_cookie_and_token_of_the_clients_own_choosing_are_refused(project):
    client = project.client()
    client.cookies.set("hs_login_csrf", "chosen-by-the-script")
    form = {"username": "ann1", "password": PASSWORD, "csrf_token": "chosen-by-the-script"}
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 403 and "hs_session" not in client.cookies


def test_a_token_only_works_with_its_own_pre_session(project):
    alice, mallory = project.client(), project.client()
    alice.get("/login")
    mallory_token = CSRF.search(mallory.get("/login").text).group(1)
    form = {"username": "ann1", "password": PASSWORD, "csrf_token": mallory_token}
    assert alice.post("/login", data=form, follow_redirects=False).status_code == 403


def test_a_login_form_is_good_for_one_try(project):
    client = project.client()
    token = CSRF.search(client.get("/login").text).group(1)
    presession = client.cookies["hs_login_csrf"]
    form = {"username": "ann1", "password": "wrong password", "csrf_token": token}
    assert client.post("/login", data=form).status_code == 401
    client.cookies.set("hs_login_csrf", presession)
    replay = client.post("/login", data={**form, "password": PASSWORD}, follow_redirects=False)
    assert replay.status_code == 403


def test_login_form_secrets_are_stored_as_digests_only(project):
    client = project.client()
    token = CSRF.search(client.get("/login").text).group(1)
    presession = client.cookies["hs_login_csrf"]
    conn = project.conn()
    query = "SELECT presession_digest, csrf_digest FROM login_forms"
    rows = [tuple(r) for r in conn.execute(query)]
    conn.close()
    assert len(rows) == 1
    assert presession not in rows[0] and token not in rows[0]
    assert presession != token
