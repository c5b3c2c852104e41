"""`hs annotate`: the annotation_ui package's commands.

Kept light: heavy imports happen inside commands, so `hs --help` stays fast.

Exit status as for every `hs` command (helpsteer/cli.py, helpsteer/extras.py): 0 done;
1 the run failed (nothing usable came of it, or the server refused what it was asked);
2 a usage, config or setup error (a bad option value, an invalid users file or
guidelines, a missing input file or database, a wrong key). Either way one line on stderr.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="annotate",
    help="Annotation tasks: Argilla push/pull and the embedded annotator web app.",
    no_args_is_help=True,
)

DB_OPTION = typer.Option(..., "--db", help="The project's SQLite file (created if missing).")
KIND_OPTION = typer.Option(
    "auto",
    "--kind",
    help="rating, preference (HelpSteer2), hs3_preference, feedback or edit (HelpSteer3); "
    "auto: preference for response_1/response_2 files, else rating; for HelpSteer3 files "
    "hs3_preference (preference layouts) or edit (feedback, edit, edit_quality layouts).",
)
KINDS = ("auto", "rating", "preference", "hs3_preference", "feedback", "edit")
USAGE = 2
FAILED = 1
SQLITE_HEADER = b"SQLite format 3\x00"


def _fail(message: str, code: int = FAILED) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _usage(message: str) -> None:
    """A usage, config or setup error: exit status 2."""
    _fail(message, USAGE)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        _usage(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")


def _check_db(db: Path) -> None:
    """Refuse a --db that exists but is no SQLite file before anything opens it: opening
    would raise deep inside sqlite3, and init_db would chmod the mistyped file to 0600."""
    if not db.exists():
        return
    try:
        with db.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        _usage(f"--db: cannot read {db}: {exc.strerror or exc}")
    # SQLite takes an empty file for a new database, so that one is fine.
    if header and header != SQLITE_HEADER:
        _usage(f"--db: {db} is not an SQLite database")


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        _usage(f"--port: expected 1-65535 (0: any free port), got {port}")


def _import(dataset: str, db: Path, kind: str, rejected: Path | None) -> None:
    from annotation_ui import importing, store
    from helpsteer.atomic import write_text
    from helpsteer.io import InputError
    from helpsteer.progress import Reporter

    _check_kind(kind)
    _check_db(db)
    reporter = Reporter.for_cli()
    try:
        result = importing.read_items(dataset, kind)
    except InputError as exc:
        _usage(str(exc))
    store.init_db(db)
    conn = store.connect(db)
    try:
        added = 0
        with reporter.task(f"importing {Path(dataset).name}", total=len(result.items)) as bar:
            for start in range(0, len(result.items), 1000):
                chunk = result.items[start : start + 1000]
                added += store.add_items(conn, chunk)
                bar.advance(len(chunk))
    finally:
        conn.close()
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(result.kind_counts.items())) or "none"
    typer.echo(f"{dataset}: {len(result.items)} items read ({kinds}), {added} new in {db}")
    if result.rejected:
        for row in result.rejected[:5]:
            typer.echo(f"  rejected {row['source']} line {row['line']}: {row['reason']}", err=True)
        typer.echo(f"  {len(result.rejected)} rows rejected", err=True)
        if rejected is not None:
            import json

            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rejected)
            write_text(rejected, lines)
    if not result.items:
        _fail(f"{dataset}: no usable rows")


@app.command("import")
def import_command(
    dataset: str = typer.Argument(..., help="JSONL / JSON / Parquet / CSV file of items."),
    db: Path = DB_OPTION,
    kind: str = KIND_OPTION,
    rejected: Path = typer.Option(None, help="Write unusable rows (line, reason) here as JSONL."),
) -> None:
    """Add items to a project: HelpSteer2 ratings or preference files, or synth outputs."""
    _import(dataset, db, kind, rejected)


@app.command("add-user")
def add_user_command(
    username: str = typer.Argument(..., help="Login name; also the annotator_id in exports."),
    db: Path = DB_OPTION,
    admin: bool = typer.Option(False, "--admin", help="May see progress, add users, export."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create an annotator (or admin) account."""
    from annotation_ui import store

    _check_db(db)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store.init_db(db)
    conn = store.connect(db)
    try:
        store.add_user(conn, username, password, admin)
    except store.InvalidValue as exc:
        _usage(str(exc))
    except store.StoreError as exc:
        _fail(str(exc))
    finally:
        conn.close()
    typer.echo(f"created {'admin' if admin else 'annotator'} {username!r} in {db}")


@app.command("serve")
def serve_command(
    dataset: str = typer.Argument(None, help="Items to import first (optional)."),
    db: Path = DB_OPTION,
    k: int = typer.Option(None, "--k", help="Annotators per item (kept in the db; default 3)."),
    kind: str = KIND_OPTION,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on (1-65535; 0: any free port)."),
    guidelines: Path = typer.Option(
        None, help="Markdown guidelines shown beside the task (default: the shipped ones)."
    ),
    lease_hours: float = typer.Option(
        None,
        help="Hand an untouched open item to someone else after this many hours (0: never; "
        "default 24).",
    ),
    synchronous: str = typer.Option(
        "FULL", help="SQLite sync: FULL survives power loss, NORMAL only a crash of the server."
    ),
    secure_cookies: bool = typer.Option(
        False, "--secure-cookies", help="Mark cookies Secure (serve behind HTTPS)."
    ),
    max_body_bytes: int = typer.Option(
        1024 * 1024,
        help="Largest request body accepted, in bytes; larger ones get 413 before they are "
        "read or the sender is authenticated.",
    ),
    max_form_fields: int = typer.Option(
        1000, help="Most fields one form may have; more get 413 before the form is parsed."
    ),
    login_window: float = typer.Option(
        300.0,
        help="Seconds in which failed logins are counted, and how long a lockout lasts.",
    ),
    login_per_account: int = typer.Option(
        5, help="Failed logins of one account within the window before it is locked (0: off)."
    ),
    login_per_address: int = typer.Option(
        20,
        help="Failed logins from one client address within the window before it is locked "
        "(0: off, e.g. behind a proxy that does not pass the client address).",
    ),
) -> None:
    """Run the annotator web app for a team (admin page at /admin)."""
    from annotation_ui import store, tasks
    from helpsteer.extras import require

    for module in ("uvicorn", "fastapi"):  # before touching the db
        require(module, "ui")

    _check_port(port)
    _check_db(db)
    if dataset is not None:
        _import(dataset, db, kind, None)
    if k is not None and k < 1:
        _usage(f"--k: expected at least 1, got {k}")
    if synchronous.upper() not in store.SYNC_MODES:
        _usage(f"--synchronous: expected FULL or NORMAL, got {synchronous!r}")
    _check_limits(max_body_bytes, max_form_fields, login_window)
    store.init_db(db)
    conn = store.connect(db)
    try:
        if k is not None:
            store.set_setting(conn, "k", str(k))
        if lease_hours is not None:
            store.set_setting(conn, "lease_hours", str(lease_hours))
        users = conn.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1").fetchone()[0]
        progress = store.project_progress(conn)
    finally:
        conn.close()
    if guidelines is not None and not guidelines.is_file():
        _usage(f"--guidelines: {guidelines} is not a file")
    text = guidelines.read_text(encoding="utf-8") if guidelines else tasks.default_guidelines()
    if not users:
        typer.echo("note: no admin yet; create one with `hs annotate add-user NAME --admin`")
    typer.echo(f"{progress['items']} items, k = {progress['k']}", err=True)
    from annotation_ui.app import Settings

    settings = Settings(
        db=db,
        guidelines=text,
        synchronous=synchronous.upper(),
        secure_cookies=secure_cookies,
        max_body_bytes=max_body_bytes,
        max_form_fields=max_form_fields,
        login_window=login_window,
        login_per_account=max(login_per_account, 0),
        login_per_address=max(login_per_address, 0),
    )
    _run_server(settings, host, port)


def _check_limits(max_body_bytes: int, max_form_fields: int, login_window: float) -> None:
    # The login form alone is about 100 bytes and 3 fields; below these nothing works.
    if max_body_bytes < 4096:
        _usage(f"--max-body-bytes: expected at least 4096, got {max_body_bytes}")
    if max_form_fields < 50:
        _usage(f"--max-form-fields: expected at least 50, got {max_form_fields}")
    if login_window <= 0:
        _usage(f"--login-window: expected a positive number of seconds, got {login_window}")


def _run_server(settings, host: str, port: int) -> None:
    port = _free_port(host, port)  # before any logging is set up for a server that cannot start
    import logging

    import uvicorn

    from annotation_ui.app import create_app

    # Failed logins and lockouts go to stderr with a time, for the operator's eyes.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("annotation_ui")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    typer.echo(f"annotator app on http://{host}:{port}/ (Ctrl+C to stop)", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _free_port(host: str, port: int) -> int:
    """Bind HOST:PORT once, as uvicorn will, so that a port in use (or a host that is not
    ours) is a usage error here rather than uvicorn's log line and its exit status 3.
    Returns the port, the one the system picked for 0."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "::1" is IPv6 only
    try:
        # create_server sets SO_REUSEADDR as uvicorn does: a port left in TIME_WAIT is free.
        with socket.create_server((host, port), family=family) as sock:
            return sock.getsockname()[1]
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _usage(f"--port: {host}:{port} is already in use (choose another --port)")
        _usage(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command("export")
def export_command(
    db: Path = DB_OPTION,
    out: Path = typer.Option(..., "--out", help="Folder for ratings, preferences, manifest."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or parquet."),
) -> None:
    """Write submitted answers as raw annotations (the input of `hs build-dataset`)."""
    import time

    from annotation_ui import export, store
    from helpsteer import __version__
    from helpsteer.atomic import atomic_path, write_json

    if fmt not in export.FORMATS:
        _usage(f"--format: expected jsonl or parquet, got {fmt!r}")
    _check_db(db)
    started = time.perf_counter()
    try:
        conn = store.open_existing(db)
    except store.StoreError as exc:
        _usage(str(exc))
    try:
        frames = export.tables(conn)
        progress = store.project_progress(conn)
    finally:
        conn.close()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, frame in frames.items():
            (tmp / f"{name}.{fmt}").write_bytes(export.to_bytes(frame, fmt))
        write_json(
            tmp / "manifest.json",
            {
                "command": "hs annotate export",
                "inputs": {"db": str(db)},
                "config": {"format": fmt},
                "versions": {"helpsteer-workbench": __version__},
                "counts": {name: frame.height for name, frame in frames.items()},
                "project": progress,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
    for name, frame in frames.items():
        typer.echo(f"{name}: {frame.height} rows -> {out / f'{name}.{fmt}'}")


API_URL_OPTION = typer.Option(
    None, "--api-url", envvar="ARGILLA_API_URL", help="Argilla server URL."
)
API_KEY_OPTION = typer.Option(
    None,
    "--api-key",
    envvar="ARGILLA_API_KEY",
    help="Argilla API key (owner or admin; pull refuses an annotator's key, which sees only "
    "its own responses).",
)
WORKSPACE_OPTION = typer.Option("default", "--workspace", help="Argilla workspace.")


def _argilla_io():
    """The Argilla module, or a clear exit when the `argilla` extra is missing."""
    from helpsteer.extras import require

    require("argilla", "argilla")  # `hs` turns this into one line and exit status 2
    from annotation_ui import argilla_io

    return argilla_io


@contextlib.contextmanager
def _argilla_errors(io, *expected: type[Exception]):
    """Our own errors and the server's replies as one-line exits; anything else is a bug.
    Usage errors (bad input, users file, key) exit 2, what the server refuses 1."""
    from helpsteer.io import InputError

    try:
        yield
    except io.ArgillaUsageError as exc:
        _usage(str(exc))
    except InputError as exc:
        _usage(str(exc))
    except (io.ArgillaIOError, *expected) as exc:
        _fail(str(exc))
    except Exception as exc:
        message = io.server_error(exc)
        if message is None:
            raise
        _fail(f"Argilla: {message}")


def _dataset_name(dataset: str, kind: str) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(dataset).stem).strip("-") or "items"
    return f"{stem}-{kind}"


@app.command("push")
def push_command(
    dataset: str = typer.Argument(..., help="JSONL / JSON / Parquet / CSV file of items."),
    to: str = typer.Option("argilla", "--to", help="Annotation platform (argilla)."),
    name: str = typer.Option(None, "--name", help="Dataset name (default: FILE-STEM-KIND)."),
    workspace: str = WORKSPACE_OPTION,
    k: int = typer.Option(3, "--k", help="Annotators per record (min_submitted)."),
    kind: str = KIND_OPTION,
    guidelines: Path = typer.Option(
        None, help="Markdown guidelines for the dataset (default: the shipped ones)."
    ),
    agent: str = typer.Option(
        "model-judge", "--agent", help="Name the suggestions from judge columns carry."
    ),
    suggestions: bool = typer.Option(
        True,
        "--suggestions/--no-suggestions",
        help="Pre-fill answers from judge columns (the five attributes, preference_strength).",
    ),
    attribute_ratings: bool = typer.Option(
        True,
        "--attribute-ratings/--no-attribute-ratings",
        help="Preference task: also ask optional 0-4 ratings of both responses.",
    ),
    create_users: Path = typer.Option(
        None,
        "--create-users",
        help="CSV with username,password[,role][,first_name]: create these users (annotator "
        "by default) and add them to the workspace.",
    ),
    rejected: Path = typer.Option(None, help="Write unusable rows (line, reason) here as JSONL."),
    api_url: str = API_URL_OPTION,
    api_key: str = API_KEY_OPTION,
) -> None:
    """Create an Argilla dataset for a task from a file of items and log them as records."""
    from helpsteer.progress import Reporter

    if to != "argilla":
        _usage(f"--to: only argilla is supported, got {to!r}")
    _check_kind(kind)
    if guidelines is not None and not guidelines.is_file():
        _usage(f"--guidelines: {guidelines} is not a file")
    io = _argilla_io()
    from annotation_ui import tasks

    reporter = Reporter.for_cli()
    with _argilla_errors(io):
        io.check_agent(agent)
        users = io.read_users_csv(create_users) if create_users is not None else []
        data = io.read_push_items(dataset, kind, suggestions)
        _report_rejected(data.rejected, rejected)
        if not data.items:
            _fail(f"{dataset}: no usable rows")
        text = guidelines.read_text(encoding="utf-8") if guidelines else tasks.default_guidelines()
        plan = io.PushPlan(
            name=name or _dataset_name(dataset, data.kind),
            workspace=workspace,
            k=k,
            guidelines=text,
            agent=agent,
            attribute_ratings=attribute_ratings,
            users=users,
        )
        # settings are checked before anything is created on the server
        io.settings_spec(data.kind, plan.guidelines, k, data.metadata, attribute_ratings)
        client = io.connect(api_url, api_key)
        with reporter.task(f"logging to {plan.name}", total=len(data.items)) as bar:
            summary = io.push(client, data, plan, progress=bar.advance)
    if summary["kind"] == "edit":
        suggested = f"{summary['with_suggestions']} with the original response suggested"
    else:
        suggested = f"{summary['with_suggestions']} with suggestions by {agent!r}"
    typer.echo(
        f"{summary['records']} {summary['kind']} records ({suggested}) -> dataset "
        f"{summary['dataset']!r} in workspace {summary['workspace']!r}, "
        f"{summary['min_submitted']} annotators per record"
    )
    if summary["users"]:
        counts = summary["users"]
        typer.echo(
            f"users: {counts['created']} created, {counts['existing']} existing, "
            f"{counts['added_to_workspace']} added to {workspace!r}"
        )


def _report_rejected(rows: list[dict], path: Path | None) -> None:
    import json

    from helpsteer.atomic import write_text

    for row in rows[:5]:
        typer.echo(f"  rejected {row['source']} line {row['line']}: {row['reason']}", err=True)
    if rows:
        typer.echo(f"  {len(rows)} rows rejected", err=True)
    if rows and path is not None:
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@app.command("pull")
def pull_command(
    names: list[str] = typer.Argument(..., help="Argilla datasets (any of the tasks)."),
    out: Path = typer.Option(..., "--out", help="Folder for ratings, preferences, manifest."),
    source: str = typer.Option("argilla", "--from", help="Annotation platform (argilla)."),
    workspace: str = WORKSPACE_OPTION,
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or parquet."),
    api_url: str = API_URL_OPTION,
    api_key: str = API_KEY_OPTION,
) -> None:
    """Write submitted Argilla responses as raw annotations (the input of `hs build-dataset`)."""
    import time

    from annotation_ui import export
    from helpsteer.progress import Reporter

    if source != "argilla":
        _usage(f"--from: only argilla is supported, got {source!r}")
    if fmt not in export.FORMATS:
        _usage(f"--format: expected jsonl or parquet, got {fmt!r}")
    io = _argilla_io()
    started = time.perf_counter()
    reporter = Reporter.for_cli()
    results = {}
    with _argilla_errors(io):
        client = io.connect(api_url, api_key)
        io.check_pull_key(client)
        users = io.usernames(client, workspace)
        with reporter.task("pulling responses", total=len(names)) as bar:
            for name in names:
                results[name] = io.pull(client, name, workspace, users)
                bar.advance()
    frames = io.frames(list(results.values()))
    _write_pull(out, fmt, frames, results, api_url, workspace, started)
    for name, frame in frames.items():
        typer.echo(f"{name}: {frame.height} rows -> {out / f'{name}.{fmt}'}")
    rejected = sum(len(r.rejected) for r in results.values())
    if rejected:
        typer.echo(
            f"  {rejected} submitted responses rejected -> {out / 'rejected.jsonl'}", err=True
        )


def _write_pull(out: Path, fmt: str, frames, results, api_url, workspace, started) -> None:
    import json
    import time

    from annotation_ui import export
    from helpsteer import __version__
    from helpsteer.atomic import atomic_path, write_json

    rejected = [row | {"dataset": name} for name, r in results.items() for row in r.rejected]
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, frame in frames.items():
            (tmp / f"{name}.{fmt}").write_bytes(export.to_bytes(frame, fmt))
        if rejected:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected)
            (tmp / "rejected.jsonl").write_text(lines, encoding="utf-8")
        write_json(
            tmp / "manifest.json",
            {
                "command": "hs annotate pull",
                "inputs": {"api_url": api_url, "workspace": workspace, "datasets": list(results)},
                "config": {"format": fmt},
                "versions": {"helpsteer-workbench": __version__, "argilla": _sdk_version()},
                "counts": {name: frame.height for name, frame in frames.items()}
                | {"rejected": len(rejected)},
                "datasets": {name: r.counts for name, r in results.items()},
                "seconds": round(time.perf_counter() - started, 3),
            },
        )


def _sdk_version() -> str:
    from importlib.metadata import version

    return version("argilla")
