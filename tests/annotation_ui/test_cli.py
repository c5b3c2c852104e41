import json

import polars as pl
from typer.testing import CliRunner

from annotation_ui import store
from annotation_ui.cli import app
from tests.annotation_ui.conftest import preference_rows, rating_rows, write_jsonl

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_import_add_user_and_export(tmp_path):
    db = tmp_path / "p.db"
    ratings = write_jsonl(tmp_path / "r.jsonl", rating_rows(3))
    prefs = write_jsonl(tmp_path / "p.jsonl", preference_rows(2))
    assert invoke("import", ratings, "--db", db).exit_code == 0
    result = invoke("import", prefs, "--db", db)
    assert result.exit_code == 0 and "2 items read (2 preference), 2 new" in result.output
    made = invoke("add-user", "ann1", "--db", db, "--password-stdin", input="a fine password\n")
    assert made.exit_code == 0, made.output
    dup = invoke("add-user", "ann1", "--db", db, "--password-stdin", input="a fine password\n")
    assert dup.exit_code == 1 and "already exists" in dup.output

    conn = store.connect(db)
    uid = store.authenticate(conn, "ann1", "a fine password")
    item = store.next_item(conn, uid)
    store.submit(conn, item, uid, {"helpfulness": 2, "correctness": 1, "coherence": 4,
                                   "complexity": 0, "verbosity": None})  # fmt: skip
    conn.close()

    out = tmp_path / "export"
    result = invoke("export", "--db", db, "--out", out, "--format", "parquet")
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out / "ratings.parquet")
    assert frame.select("annotator_id", "helpfulness", "verbosity").rows() == [("ann1", 2, None)]
    assert pl.read_parquet(out / "preferences.parquet").height == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ratings": 1, "preferences": 0}
    assert manifest["project"]["items"] == 5


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    """Bad options, unusable or missing files: exit status 2 and one line (the `hs` rule);
    a run that produced nothing usable: exit status 1."""
    missing = invoke("import", tmp_path / "nope.jsonl", "--db", tmp_path / "p.db")
    assert missing.exit_code == 2 and missing.output.startswith("error: ")
    assert "no such file" in missing.output and "Traceback" not in missing.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q"}])
    columns = invoke("import", bad, "--db", tmp_path / "p.db")
    assert columns.exit_code == 2 and "needs a `prompt`" in columns.output
    no_db = invoke("export", "--db", tmp_path / "none.db", "--out", tmp_path / "o")
    assert no_db.exit_code == 2 and "no annotation database" in no_db.output
    fmt = invoke("export", "--db", tmp_path / "none.db", "--out", tmp_path / "o", "--format", "csv")
    assert fmt.exit_code == 2 and "--format" in fmt.output
    weak = invoke("add-user", "x", "--db", tmp_path / "p.db", "--password-stdin", input="short\n")
    assert weak.exit_code == 2 and "at least 8 characters" in weak.output
    guidelines = invoke("serve", "--db", tmp_path / "p.db", "--guidelines", tmp_path / "no.md")
    assert guidelines.exit_code == 2 and "--guidelines" in guidelines.output
    for result in (missing, columns, no_db, fmt, weak, guidelines):
        assert result.output.count("\n") == 1, result.output
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "q", "response": ""}])
    nothing = invoke("import", empty, "--db", tmp_path / "p.db")
    assert nothing.exit_code == 1 and "no usable rows" in nothing.output


def test_rejected_rows_are_reported_and_written(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "", "response": "b"}\n')
    rejected = tmp_path / "rejected.jsonl"
    result = invoke("import", path, "--db", tmp_path / "p.db", "--rejected", rejected)
    assert result.exit_code == 0
    assert "line 2: prompt: expected non-empty text" in result.output
    rows = [json.loads(x) for x in rejected.read_text().splitlines()]
    assert [r["line"] for r in rows] == [2]


def test_serve_refuses_bad_options_before_starting(tmp_path):
    db = tmp_path / "p.db"
    assert invoke("serve", "--db", db, "--k", "0").output.startswith("error: --k")
    bad_sync = invoke("serve", "--db", db, "--synchronous", "OFF")
    assert bad_sync.exit_code == 2 and "FULL or NORMAL" in bad_sync.output
    no_file = invoke("serve", "--db", db, "--guidelines", tmp_path / "missing.md")
    assert no_file.exit_code == 2 and "is not a file" in no_file.output


def test_serve_passes_the_request_and_login_limits_to_the_app(tmp_path, monkeypatch):
    from annotation_ui import cli

    seen = {}
    monkeypatch.setattr(cli, "_run_server", lambda settings, host, port: seen.update(s=settings))
    db = tmp_path / "p.db"
    args = ("--max-body-bytes", 65536, "--max-form-fields", 200, "--login-window", 30,
            "--login-per-account", 2, "--login-per-address", 0)  # fmt: skip
    assert invoke("serve", "--db", db, *args).exit_code == 0
    settings = seen["s"]
    assert (settings.max_body_bytes, settings.max_form_fields) == (65536, 200)
    assert (settings.login_window, settings.login_per_account, settings.login_per_address) == (
        30.0, 2, 0)  # fmt: skip
    for flag, value in (("--max-body-bytes", 10), ("--max-form-fields", 3),
                        ("--login-window", 0)):  # fmt: skip
        refused = invoke("serve", "--db", db, flag, value)
        assert refused.exit_code == 2 and refused.output.startswith(f"error: {flag}")


def no_server(monkeypatch) -> dict:
    """Stand in for uvicorn.run: records what it was asked to serve, starts nothing."""
    import logging

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    # _run_server adds a handler on CliRunner's stream, which is closed once the test ends.
    monkeypatch.setattr(logging.getLogger("annotation_ui"), "handlers", [])
    return seen


def test_a_db_that_is_not_sqlite_is_refused_and_left_as_it_was(tmp_path, monkeypatch):
    """A mistyped --db (a .jsonl, a JSON array) must not be opened, let alone chmodded."""
    seen = no_server(monkeypatch)
    items = write_jsonl(tmp_path / "good.jsonl", rating_rows(1))
    for name, text in (("some.jsonl", '{"prompt": "p", "response": "r"}\n'),
                       ("arr.json", "[1, 2]\n")):  # fmt: skip
        db = tmp_path / name
        db.write_text(text)
        db.chmod(0o644)
        before = db.read_bytes()
        password = {"input": "a fine password\n"}
        for args in (("import", items), ("add-user", "ann1", "--password-stdin"),
                     ("serve",), ("export", "--out", tmp_path / "o")):  # fmt: skip
            result = invoke(*args, "--db", db, **(password if args[0] == "add-user" else {}))
            assert result.exit_code == 2, result.output
            assert result.output == f"error: --db: {db} is not an SQLite database\n"
            assert db.read_bytes() == before and db.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arr.json", "good.jsonl", "some.jsonl"]
    assert seen == {}


def test_serve_refuses_a_port_out_of_range_before_touching_the_db(tmp_path, monkeypatch):
    seen = no_server(monkeypatch)
    db = tmp_path / "p.db"
    for port in ("99999", "65536", "-1"):
        result = invoke("serve", "--db", db, "--port", port)
        assert result.exit_code == 2, result.output
        assert result.output == f"error: --port: expected 1-65535 (0: any free port), got {port}\n"
    assert not db.exists() and seen == {}


def test_serve_refuses_a_port_in_use_with_one_line(tmp_path, monkeypatch):
    import socket

    seen = no_server(monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = invoke("serve", "--db", tmp_path / "p.db", "--port", port)
    assert result.exit_code == 2, result.output
    line = f"error: --port: 127.0.0.1:{port} is already in use (choose another --port)"
    assert result.output.splitlines()[-1] == line and "Traceback" not in result.output
    assert seen == {}


def test_serve_on_port_0_serves_and_shows_the_port_it_picked(tmp_path, monkeypatch):
    seen = no_server(monkeypatch)
    result = invoke("serve", "--db", tmp_path / "p.db", "--port", 0)
    assert result.exit_code == 0, result.output
    assert 0 < seen["port"] <= 65535
    assert f"annotator app on http://127.0.0.1:{seen['port']}/" in result.output
