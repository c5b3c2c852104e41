"""`hs judge`: the judge package's commands. Kept light: heavy imports happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    wall_seconds: Annotated[float, typer.Option(help="Wall-time limit per run.")] = 10.0,
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
    import json

    from judge.code import IOCase, Limits, SandboxUnavailable, judge_assert_tests, judge_io_cases

    if (tests is None) == (io is None):
        typer.echo("error: give exactly one of --tests and --io", err=True)
        raise typer.Exit(2)
    limits = Limits(wall_seconds=wall_seconds)
    candidate = solution.read_text(encoding="utf-8")
    try:
        if tests is not None:
            verdict = judge_assert_tests(
                candidate,
                tests.read_text(encoding="utf-8"),
                limits,
                unsafe_no_sandbox=unsafe_no_sandbox,
            )
        else:
            cases = [IOCase(str(c["stdin"]), str(c["stdout"])) for c in json.loads(io.read_text())]
            verdict = judge_io_cases(candidate, cases, limits, unsafe_no_sandbox=unsafe_no_sandbox)
    except SandboxUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(verdict.reason)
    typer.echo(f"isolation: {', '.join(verdict.runs[-1].isolation)}")
    raise typer.Exit(0 if verdict.passed else 1)
