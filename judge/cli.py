"""`hs judge`: the judge package's commands. Kept light: heavy imports happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    name="judge",
    help="LLM-as-judge, reward-model-as-judge, ground-truth judges and their comparison.",
    no_args_is_help=True,
)


@app.callback()
def judge_group() -> None:
    """LLM-as-judge, reward-model-as-judge, ground-truth judges and their comparison."""


@app.command("compare")
def compare(
    config: Annotated[Path, typer.Argument(help="TOML file; see examples/judge_compare.toml.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Judge a seeded sample of at most this many pairs.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: data.limit=50, judges.NAME.policy=tie."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print report.json on stdout instead of the paths.")
    ] = False,
) -> None:
    """Run several judges over a labelled preference set and compare them.

    Reports accuracy against the labels (overall and by category), position consistency,
    tie rate, agreement between judges, and cost and time per judgment. Writes report.md,
    report.json, accuracy.png, predictions.parquet, predictions.jsonl (scores as numbers) and
    manifest.json into the output folder, and prints their paths on stdout. The data may be
    any labelled set, or our own `bt` / `dpo` exports (data.format = "bt" or "dpo").
    """
    import json

    from rich.table import Table

    from helpsteer.progress import Reporter
    from judge.compare import CompareError, load_config, run_compare

    reporter = Reporter.for_cli(quiet=quiet)
    overrides = list(set_ or [])
    if out is not None:
        overrides.append(f'out="{out}"')
    if limit is not None:
        overrides.append(f"data.limit={limit}")
    try:
        cfg = load_config(config, overrides)
        document = run_compare(cfg, reporter)
    except CompareError as exc:
        reporter.console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        reporter.console.print("[yellow]interrupted[/yellow]: re-run to reuse cached LLM calls")
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        for path in sorted(p for p in Path(cfg.out).iterdir() if p.is_file()):
            typer.echo(str(path))
    if quiet:
        return
    table = Table(title=f"{document['data']['pairs']} pairs")
    for column in ("judge", "accuracy", "consistency", "tie rate", "s/judgment"):
        table.add_column(column)
    for m in document["judges"]:
        consistency = m["position_consistency"]
        table.add_row(
            m["judge"],
            f"{100 * m['accuracy']:.1f}%",
            "n/a" if consistency is None else f"{100 * consistency:.1f}%",
            f"{100 * m['tie_rate']:.1f}%",
            f"{m['seconds_per_judgment']:.4f}",
        )
    reporter.console.print(table)


@app.command("code")
def code(
    solution: Annotated[Path, typer.Argument(help="Python file with the candidate solution.")],
    tests: Annotated[
        Path | None, typer.Option("--tests", help="Python file of assert-style tests.")
    ] = None,
    io: Annotated[
        Path | None, typer.Option("--io", help='JSON file: [{"stdin": ..., "stdout": ...}].')
    ] = None,
    wall_seconds: Annotated[
        float, typer.Option(help="Wall-time limit per run, in seconds (> 0).")
    ] = 10.0,
    unsafe_no_sandbox: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-sandbox",
            help="Run without the bubblewrap OS sandbox: only for trusted code.",
        ),
    ] = False,
) -> None:
    """Judge one code candidate against assert tests or stdin/stdout cases, in the sandbox.

    Exit status 0 when it passes, 1 when it does not, 2 when it cannot be judged (no
    sandbox available, bad input).
    """
    import math

    from judge.code import Limits, SandboxUnavailable, judge_assert_tests, judge_io_cases

    if (tests is None) == (io is None):
        _usage("give exactly one of --tests and --io")
    # `not > 0` alone would let nan through to the sandbox; inf would mean no wall limit.
    if not (math.isfinite(wall_seconds) and wall_seconds > 0):
        _usage(f"--wall-seconds: expected a number of seconds > 0, got {wall_seconds}")
    limits = Limits(wall_seconds=wall_seconds)
    candidate = _read_text(solution, "SOLUTION")
    try:
        if tests is not None:
            verdict = judge_assert_tests(
                candidate, _read_text(tests, "--tests"), limits, unsafe_no_sandbox=unsafe_no_sandbox
            )
        else:
            cases = _read_io_cases(io)
            verdict = judge_io_cases(candidate, cases, limits, unsafe_no_sandbox=unsafe_no_sandbox)
    except SandboxUnavailable as exc:
        _usage(str(exc))
    typer.echo(verdict.reason)
    typer.echo(f"isolation: {', '.join(verdict.runs[-1].isolation)}")
    raise typer.Exit(0 if verdict.passed else 1)


def _usage(message: str) -> NoReturn:
    """Bad input or setup: one line on stderr and exit status 2 (the `hs` convention)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        _usage(f"{name}: {path}: expected UTF-8 text, byte {exc.start} is not")
    except OSError as exc:
        _usage(f"{name}: cannot read {path}: {exc.strerror or exc}")


def _read_io_cases(path: Path) -> list:
    """The --io file as IOCases; a malformed file is a usage error naming the case."""
    import json

    text = _read_text(path, "--io")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        _usage(f"--io: {path}: not valid JSON: {exc}")
    # An empty list would "pass" without running the candidate at all.
    if not isinstance(data, list) or not data:
        _usage(f'--io: {path}: expected a non-empty JSON list of {{"stdin", "stdout"}} objects')
    return [_io_case(path, i, case) for i, case in enumerate(data)]


def _io_case(path: Path, index: int, case: object):
    import json

    from judge.code import IOCase

    where = f"--io: {path}: case {index}"  # numbered from 0, as in the verdicts
    if not isinstance(case, dict):
        _usage(f'{where}: expected an object with "stdin" and "stdout"')
    missing = [key for key in ("stdin", "stdout") if key not in case]
    if missing:
        keys = ", ".join(map(repr, case)) or "none"
        _usage(f"{where}: missing {' and '.join(map(repr, missing))} (its keys: {keys})")
    for key in ("stdin", "stdout"):
        # Numbers read fine as text; null, booleans, lists and objects would turn into
        # Python reprs ("None", "[1, 2]") that no program's output is meant to match.
        value = case[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            _usage(f"{where}: {key!r}: expected text, got {json.dumps(value)[:40]}")
    return IOCase(str(case["stdin"]), str(case["stdout"]))
