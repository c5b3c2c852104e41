"""Request bodies are bounded before they are parsed, and before anyone is authenticated."""

from __future__ import annotations

import asyncio
import select
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from annotation_ui import limits, loadgen
from tests.annotation_ui.conftest import CSRF, login

MIB = 1024 * 1024
# The attack from issue 11: 900 fields of 1000 KiB each in one multipart request.
ATTACK_FIELDS = 900
ATTACK_FIELD_BYTES = 1000 * 1024
SEND_CAP = 48 * MIB
"""What the test sends at most per request, should a server never refuse it."""
RSS_GROWTH_LIMIT = 100 * MIB


def test_a_declared_oversized_body_gets_413_unauthenticated(project):
    client = project.client()
    body = b"a=" + b"x" * MIB
    for path in ("/login", f"/item/{project.ids['r1']}/submit", "/admin/users", "/logout"):
        response = client.post(
            path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 413, path
        assert response.headers["connection"] == "close"


def test_a_chunked_body_is_counted_as_it_arrives(project):
    client = project.client()

    def chunks():
        for _ in range(3):
            yield b"x" * (MIB // 2)

    # A generator body has no Content-Length: httpx sends it chunked.
    response = client.post(
        "/login", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert "larger than this server accepts" in response.text


def test_the_body_limit_is_configurable(project):
    client = project.client(max_body_bytes=10_000)
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    form = {"username": "ann1", "password": "x" * 20_000, "csrf_token": token}
    assert client.post("/login", data=form).status_code == 413
    assert client.post("/login", data={**form, "password": "x" * 10}).status_code == 401


def test_a_bad_content_length_gets_413(project):
    app = project.app()
    sent = []

    async def receive():
        raise AssertionError("the body must not be read")

    async def send(message):
        sent.append(message)

    for value in (b"abc", b"-1", b"99999999999999999999999"):
        sent.clear()
        scope = {"type": "http", "method": "POST", "path": "/login", "query_string": b"",
                 "headers": [(b"content-length", value)]}  # fmt: skip
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 413, value


@pytest.mark.parametrize("multipart", [False, True])
def test_too_many_form_fields_get_413(project, multipart):
    client = project.client()
    csrf = login(client, "ann1")
    item = project.ids["r1"]
    client.get("/next")
    fields = {f"f{i}": "1" for i in range(limits.DEFAULT_MAX_FIELDS)} | {"csrf_token": csrf}
    if multipart:
        files = {name: (None, value) for name, value in fields.items()}
        response = client.post(f"/item/{item}/draft", files=files)
    else:
        response = client.post(f"/item/{item}/draft", data=fields)
    assert response.status_code == 413 and "too many fields" in response.text


def test_the_login_form_refuses_a_field_flood_before_checking_anything(project):
    client = project.client()
    flood = "&".join(f"f{i}=" for i in range(5000))
    response = client.post(
        "/login", content=flood, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


def test_a_file_upload_is_refused(project):
    client = project.client()
    csrf = login(client, "ann1")
    item = int(client.get("/next", follow_redirects=False).headers["location"].rsplit("/")[-1])
    files = {"csrf_token": (None, csrf), "upload": ("a.txt", b"hello", "text/plain")}
    response = client.post(f"/item/{item}/draft", files=files)
    assert response.status_code == 400
    assert project.conn().execute("SELECT COUNT(*) FROM drafts").fetchone()[0] == 0


def test_a_multipart_draft_like_the_browser_sends_still_works(project):
    # static/app.js posts drafts as FormData, i.e. multipart/form-data.
    client = project.client()
    csrf = login(client, "ann1")
    item = int(client.get("/next", follow_redirects=False).headers["location"].rsplit("/")[-1])
    files = {"csrf_token": (None, csrf), "helpfulness": (None, "3")}
    response = client.post(
        f"/item/{item}/draft", files=files, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200 and response.json()["saved"]


# --- the real server, measured ------------------------------------------------------------


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def _attack_parts(boundary: str):
    filler = b"a" * ATTACK_FIELD_BYTES
    for i in range(ATTACK_FIELDS):
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'
        yield head.encode() + filler + b"\r\n"


def _attack_length(boundary: str) -> int:
    head = len(f'--{boundary}\r\nContent-Disposition: form-data; name="f0"\r\n\r\n')
    names = sum(len(str(i)) - 1 for i in range(ATTACK_FIELDS))
    return ATTACK_FIELDS * (head + ATTACK_FIELD_BYTES + 2) + names


def _answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _attack(port: int, path: str, chunked: bool) -> tuple[int | None, int]:
    """One oversized multipart request; (status, bytes of body sent). It stops sending as
    soon as the server answers, or at SEND_CAP."""
    boundary = uuid.uuid4().hex
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        + ("Transfer-Encoding: chunked\r\n" if chunked else
           f"Content-Length: {_attack_length(boundary)}\r\n")
        + "\r\n"
    )  # fmt: skip
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for part in _attack_parts(boundary):
                if _answered(sock) or sent >= SEND_CAP:
                    break
                framed = b"%x\r\n%b\r\n" % (len(part), part) if chunked else part
                sock.sendall(framed)
                sent += len(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us: its answer, if any, is still to be read
        return _status(sock), sent


def _status(sock: socket.socket) -> int | None:
    try:
        first = sock.recv(4096)
    except (TimeoutError, ConnectionResetError):
        return None
    parts = first.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@pytest.mark.timeout(300)
def test_oversized_requests_leave_the_servers_memory_bounded(project, tmp_path):
    port = loadgen.free_port()
    server = loadgen.start_server(project.db, port, log=tmp_path / "server.log")
    try:
        before = _memory(server.pid)
        item = project.ids["r1"]
        attacks = [("/login", False), ("/login", True), (f"/item/{item}/submit", True),
                   (f"/item/{item}/draft", False)]  # fmt: skip
        with ThreadPoolExecutor(len(attacks)) as pool:
            results = list(pool.map(lambda a: _attack(port, *a), attacks))
        after = _memory(server.pid)
        print(f"\nserver memory before {before}, after {after}; (status, sent) {results}")
        assert [status for status, _ in results] == [413] * len(attacks)
        assert after["VmHWM"] - before["VmHWM"] < RSS_GROWTH_LIMIT
        # Still serving.
        assert loadgen.httpx.get(f"http://127.0.0.1:{port}/login").status_code == 200
    finally:
        server.kill()
        server.wait()
