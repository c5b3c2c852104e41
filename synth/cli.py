"""`hs synth`: the synth package's commands. Kept light: heavy imports happen inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="synth", help="Nemotron-4 style synthetic data generation.", no_args_is_help=True
)

STAGES = {
    "seed": "Read seed prompts (JSONL) into a prompts table.",
    "open_qa": "Open questions: topics -> subtopics -> questions -> detailed revisions.",
    "writing": "Writing tasks per topic and text type, with revisions.",
    "closed_qa": "Instructions over given documents (--set documents=docs.jsonl).",
    "math_code": "Math and Python problems by level and keyword, with Python variants.",
    "instruction_following": "Prompts with verifiable constraints (IFEval-style).",
    "two_turn": "Two-turn prompts: answer a first turn, simulate the next user turn.",
    "dialogue": "N-turn conversations by role-play with user personas.",
    "responses": "k responses per prompt from one or several models.",
    "preference_pairs": "Chosen/rejected pairs from scored responses (HelpSteer2 preference).",
    "filter": "Quality filters: duplicates (exact, MinHash), length, refusals, language.",
}


def _command(short: str):
    def command(
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="TOML file with the stage options.")
        ] = None,
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
            f"out/synth/{short}"
        ),
        input_: Annotated[
            list[str] | None,
            typer.Option(
                "--input", "-i", help="NAME=PATH table input, e.g. prompts=seed.jsonl; repeatable."
            ),
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="Override an option: n_topics=2, llm.backend=openai."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed for sampling and ordering.")] = 0,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON summary on stdout instead of paths.")
        ] = False,
    ) -> None:
        import synth.stages  # noqa: F401  (registers the stages)
        from helpsteer.pipeline import PipelineError
        from helpsteer.progress import Reporter
        from synth.runner import print_outputs, print_summary, produced_nothing, run_stage

        reporter = Reporter.for_cli(quiet=quiet)
        try:
            manifest = run_stage(
                f"synth.{short}", config, input_ or [], out, set_ or [], seed, reporter
            )
        except PipelineError as exc:
            reporter.console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            reporter.console.print("[yellow]interrupted[/yellow]: re-run to resume from the cache")
            raise typer.Exit(130) from None
        print_summary(reporter, manifest, out)
        print_outputs(manifest, as_json)
        if produced_nothing(manifest):
            reporter.console.print(
                f"[red]error:[/red] no usable rows came out; see {out / 'rejected.jsonl'}"
            )
            raise typer.Exit(1)

    command.__doc__ = (
        f"{STAGES[short]}\n\nWrites the stage's tables (.jsonl and .parquet), rejected.jsonl "
        "and manifest.json into --out. stdout gets the files written, one per line (or "
        "with --json one JSON summary); progress and the summary table go to stderr."
    )
    return command


for _short in STAGES:
    app.command(name=_short.replace("_", "-"))(_command(_short))
    if "_" in _short:
        app.command(name=_short, hidden=True)(_command(_short))
