"""`hs eval`: the eval package's commands. Kept light: heavy imports happen inside commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="eval",
    help="RewardBench, MT-Bench, AEGIS, lm-eval and alpaca-eval runs and reports.",
    no_args_is_help=True,
)

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder for every output.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
LimitOption = Annotated[int | None, typer.Option(help="Use only the first N items.")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the paths.")
]
CacheOption = Annotated[
    Path | None,
    typer.Option(help="LLM cache folder (default: OUT/llm_cache); a re-run resumes from it."),
]


@app.callback()
def eval_group() -> None:
    """RewardBench, MT-Bench, AEGIS, lm-eval and alpaca-eval runs and reports."""


def _run(work: Callable[[Any], dict[str, Any]], quiet: bool) -> dict[str, Any]:
    """Run `work(reporter)`; user errors become one line and exit code 2."""
    from eval.common import EvalError
    from helpsteer.progress import Reporter
    from judge.llm_judge import JudgeError
    from judge.prompts import PromptError
    from judge.reward import RewardModelError

    reporter = Reporter.for_cli(quiet=quiet)
    try:
        return work(reporter)
    except (EvalError, JudgeError, PromptError, RewardModelError) as exc:
        reporter.console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        reporter.console.print("[yellow]interrupted[/yellow]: re-run to reuse cached LLM calls")
        raise typer.Exit(130) from None


def _summary(title: str, rows: list[tuple[str, str]], quiet: bool) -> None:
    """The human summary table, on stderr: stdout is kept for the output paths."""
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value")
    for name, value in rows:
        table.add_row(name, value)
    Console(stderr=True).print(table)


# Folders under a run folder that hold caches or inputs, not results.
NOT_OUTPUTS = ("llm_cache", "annotator")


def output_files(out: Path, extra: list[str] | None = None) -> list[str]:
    """Every file a run wrote under `out` (caches and dot-files left out), then `extra`
    files written elsewhere (lm-eval's --output-path), each once."""
    from helpsteer.build import output_files as files_under

    found = files_under(out, skip=NOT_OUTPUTS, folders=())
    return found + [str(p) for p in extra or [] if str(p) not in found]


def print_outputs(
    out: Path, doc: dict[str, Any], as_json: bool, extra: list[str] | None = None
) -> None:
    """stdout is for other programs: the output paths one per line, never wrapped (plain
    `typer.echo`, no terminal-width formatting), or with --json one JSON summary."""
    import json

    files = output_files(out, extra)
    if as_json:
        keep = ("benchmark", "model", "metric", "runs")
        summary = {"out": str(out), **{k: doc[k] for k in keep if k in doc}}
        if (out / "results.json").is_file():
            summary["results"] = str(out / "results.json")
        summary["files"] = files
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    for path in files:
        typer.echo(path)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


@app.command("mt-bench")
def mt_bench(
    out: OutOption,
    bench: Annotated[
        Path | None,
        typer.Option(
            help="FastChat MT-Bench folder: question.jsonl, references, prompts (with "
            "--judgments: only question.jsonl, for categories)."
        ),
    ] = None,
    judgments: Annotated[
        list[Path] | None,
        typer.Option(
            help="Score these FastChat judgment files (.jsonl/.jsonl.gz, single or pairwise) "
            "instead of generating and judging (repeatable)."
        ),
    ] = None,
    baseline_model: Annotated[
        str | None,
        typer.Option(help="With --judgments, pairwise: count only games against this model."),
    ] = None,
    model_list: Annotated[
        list[str] | None,
        typer.Option(help="With --judgments: only these models (repeatable), as show_result."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="local | local:FILE.gguf | openai:MODEL@URL | vllm:MODEL | X.toml")
    ] = "local",
    judge: Annotated[
        str | None, typer.Option(help="Judge model spec (default: the answering model).")
    ] = None,
    mode: Annotated[str, typer.Option(help="single (1-10 grading) or pairwise.")] = "single",
    baseline: Annotated[
        Path | None, typer.Option(help="Baseline answer JSONL for pairwise mode.")
    ] = None,
    limit: LimitOption = None,
    question: Annotated[
        list[int] | None, typer.Option(help="Only these question ids (repeatable).")
    ] = None,
    answer_tokens: Annotated[int, typer.Option(help="Max tokens per answer turn.")] = 1024,
    judge_tokens: Annotated[int, typer.Option(help="Max tokens per judgment.")] = 2048,
    model_id: Annotated[str | None, typer.Option(help="Name of the model in outputs.")] = None,
    cache_dir: CacheOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate MT-Bench answers (both turns) and judge them, FastChat-compatible.

    Writes model_answer/MODEL.jsonl, model_judgment/JUDGE_single.jsonl (or _pair.jsonl),
    results.json, report.md, radar.png and manifest.json into OUT. With --judgments, scores
    existing judgment files as FastChat's show_result.py does (per model, turn, category).
    """
    if judgments:
        _mt_bench_judgments(judgments, out, bench, baseline_model, model_list, quiet, as_json)
        return
    if bench is None:
        _fail("give --bench FOLDER (to generate and judge) or --judgments FILE...")
    from eval.mtbench import MTBenchRun, run_mtbench

    run = MTBenchRun(
        bench=bench,
        out=out,
        model=model,
        judge=judge,
        mode=mode,
        baseline=baseline,
        limit=limit,
        question_ids=question,
        answer_tokens=answer_tokens,
        judge_tokens=judge_tokens,
        cache_dir=cache_dir,
        model_id=model_id,
        engine=_engine_options(engine, ray_address, workers) or None,
    )
    doc = _run(lambda reporter: run_mtbench(run, reporter), quiet)
    if "single" in doc:
        s = doc["single"]
        rows = [("score", str(s["score"])), ("turn 1", str(s.get("turn_1")))]
        rows += [("turn 2", str(s.get("turn_2"))), ("unparsed", str(s.get("failed_parses")))]
    else:
        p = doc["pairwise"]
        rows = [(k, str(p[k])) for k in ("win", "loss", "tie", "win_rate_adjusted")]
    _summary(f"MT-Bench {doc['model']} -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _mt_bench_judgments(files, out, bench, baseline, model_list, quiet, as_json) -> None:
    from eval.fastchat_results import score_judgments

    doc = _run(lambda reporter: score_judgments(files, out, bench, baseline, model_list), quiet)
    key = "score" if doc["mode"] == "single" else "win_rate_adjusted"
    rows = [(m, f"{v[key]:.4f}" if v[key] is not None else "n/a") for m, v in doc["models"].items()]
    _summary(f"MT-Bench {doc['mode']} ({key}) -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


def _judge_options(judge: str, batch_size: int, max_length: int, device: str, dtype: str):
    """Reward-model options for reward: judges; other judges take none."""
    if not judge.startswith("reward:"):
        return {}
    return {"batch_size": batch_size, "max_length": max_length, "device": device, "dtype": dtype}


JudgeOption = Annotated[
    str,
    typer.Option(
        help="reward:MODEL_DIR_OR_HUB_ID | endpoint:MODEL@URL | llm:MODEL_SPEC | genrm:SPEC"
    ),
]
BatchOption = Annotated[int, typer.Option(help="Reward-model batch size.")]
MaxLengthOption = Annotated[int, typer.Option(help="Reward-model max tokens.")]
DeviceOption = Annotated[str, typer.Option(help="Reward-model device (cpu, cuda).")]
DtypeOption = Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local, or ray: spread the judging (and generation) over a Ray cluster's workers.",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join (default: a local cluster)."),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Ray workers (default: as many as fit).")
]


def _engine_options(engine: str, ray_address: str | None, workers: int | None) -> dict:
    """make_scorer's engine options; --ray-address alone means --engine ray."""
    if engine == "local" and not ray_address:
        return {}
    ray = {k: v for k, v in (("address", ray_address), ("workers", workers)) if v}
    return {"engine": "ray" if ray_address else engine, "ray": ray}


@app.command("rm-bench")
def rm_bench(
    judge: JudgeOption,
    out: OutOption,
    data: Annotated[
        str, typer.Option(help="Hub id, total_dataset.json, or a folder holding it.")
    ] = "THU-KEG/RM-Bench",
    split: Annotated[str, typer.Option(help="Split of the Hub dataset.")] = "train",
    domain: Annotated[
        list[str] | None, typer.Option(help="Only these domains: chat, code, math, safety.")
    ] = None,
    limit: LimitOption = None,
    batch_size: BatchOption = 8,
    max_length: MaxLengthOption = 4096,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """RM-Bench: 3x3 style matrix per domain; Easy / Normal / Hard and the domain mean.

    Writes results.json, scores.parquet, report.md, difficulty.png and manifest.json.
    """
    from eval.rmbench import run_rmbench

    options = _judge_options(judge, batch_size, max_length, device, dtype)
    options.update(_engine_options(engine, ray_address, workers))
    doc = _run(
        lambda reporter: run_rmbench(data, out, judge, split, limit, domain, reporter, **options),
        quiet,
    )
    rows = [(k, _pct(doc[k])) for k in ("score", "easy", "normal", "hard")]
    rows += [(name, _pct(d["score"])) for name, d in doc["domains"].items()]
    _summary(f"RM-Bench {doc['model']} -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


@app.command("judgebench")
def judgebench(
    judge: JudgeOption,
    out: OutOption,
    data: Annotated[
        str, typer.Option(help="Hub id, Hub-layout folder, or the repository's .jsonl file.")
    ] = "ScalerLab/JudgeBench",
    split: Annotated[str, typer.Option(help="gpt or claude (the response model).")] = "gpt",
    limit: LimitOption = None,
    batch_size: BatchOption = 8,
    max_length: MaxLengthOption = 4096,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """JudgeBench: both orders, +1/-1 per order, a pair is right when the sum is positive.

    Writes results.json, scores.parquet, report.md, categories.png and manifest.json.
    """
    from eval.judgebench import run_judgebench

    options = _judge_options(judge, batch_size, max_length, device, dtype)
    options.update(_engine_options(engine, ray_address, workers))
    doc = _run(
        lambda reporter: run_judgebench(data, out, judge, split, limit, reporter, **options),
        quiet,
    )
    rows = [("accuracy", _pct(doc["accuracy"])), ("pairs", str(doc["pairs"]))]
    rows += [(name, _pct(c["accuracy"])) for name, c in doc["categories"].items()]
    _summary(f"JudgeBench {doc['model']} -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


@app.command("rewardbench")
def rewardbench(
    judge: JudgeOption,
    out: OutOption,
    data: Annotated[
        str,
        typer.Option(help="Hub id, Hub-layout folder, or .jsonl/.json/.parquet file."),
    ] = "allenai/reward-bench",
    version: Annotated[int, typer.Option(help="1 (RewardBench) or 2 (RewardBench 2).")] = 1,
    split: Annotated[
        str | None, typer.Option(help="Split (default: filtered for v1, test for v2).")
    ] = None,
    subset: Annotated[
        list[str] | None, typer.Option(help="Only these subsets (repeatable).")
    ] = None,
    limit: LimitOption = None,
    batch_size: BatchOption = 8,
    max_length: MaxLengthOption = 4096,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score RewardBench (v1 or v2) with a reward model, reward endpoint or LLM judge.

    Writes results.json (with the leaderboard row), scores.parquet, report.md,
    sections.png and manifest.json into OUT.
    """
    from eval.rewardbench import run_rewardbench

    if data == "allenai/reward-bench" and version == 2:
        data = "allenai/reward-bench-2"
    options = _judge_options(judge, batch_size, max_length, device, dtype)
    options.update(_engine_options(engine, ray_address, workers))
    doc = _run(
        lambda reporter: run_rewardbench(
            data, out, judge, version, split, limit, subset, reporter, **options
        ),
        quiet,
    )
    rows = [("score", _pct(doc["score"]))]
    rows += [(k, _pct(v)) for k, v in (doc.get("sections") or doc["subsets"]).items()]
    _summary(f"RewardBench{' 2' if version == 2 else ''} {doc['model']} -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


@app.command("aegis")
def aegis(
    out: OutOption,
    model: Annotated[
        str, typer.Option(help="Model under test: local | openai:MODEL@URL | vllm:MODEL | X.toml")
    ] = "local",
    safety_judge: Annotated[
        str | None, typer.Option(help="Safety judge model spec (default: the model itself).")
    ] = None,
    data: Annotated[
        str, typer.Option(help="Hub id, Hub-layout folder, or .jsonl/.json/.parquet file.")
    ] = "nvidia/Aegis-AI-Content-Safety-Dataset-1.0",
    split: Annotated[str, typer.Option(help="Split of the dataset.")] = "test",
    text_type: Annotated[
        str, typer.Option(help="Rows of this text_type ('' for all).")
    ] = "user_message",
    limit: LimitOption = None,
    max_tokens: Annotated[int, typer.Option(help="Max tokens per response.")] = 256,
    judge_tokens: Annotated[int, typer.Option(help="Max tokens per safety verdict.")] = 32,
    cache_dir: CacheOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate responses to AEGIS prompts and classify them with a safety judge.

    Writes judgments.jsonl, results.json, report.md, categories.png and manifest.json.
    """
    from eval.aegis import run_aegis

    doc = _run(
        lambda reporter: run_aegis(
            data,
            out,
            model,
            safety_judge,
            split,
            text_type or None,
            limit,
            max_tokens,
            judge_tokens,
            cache_dir,
            reporter,
            _engine_options(engine, ray_address, workers) or None,
        ),
        quiet,
    )
    overall = doc["overall"]
    rows = [("unsafe rate", _pct(overall["rate"])), ("95% CI", str(overall["ci95"]))]
    rows += [("prompts", str(doc["total"])), ("malformed verdicts", str(doc["malformed"]))]
    _summary(f"AEGIS {doc['model']} -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


@app.command("lm-eval")
def lm_eval_command(
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--tasks",
            "--task",
            "-t",
            help="lm-eval task names or YAML files, comma-separated and/or repeated.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run folder for results.json/report.md (default: --output-path)."),
    ] = None,
    output_path: Annotated[
        Path | None,
        typer.Option(
            "--output-path",
            "--output_path",
            "-o",
            help="lm-eval's output: a folder (results in FOLDER/MODEL/results_DATE.json) or "
            "a .json file (FILE_DATE.json); default: OUT.",
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-M",
            help="lm-eval model type: hf, vllm, local-completions, local-chat-completions, ...",
        ),
    ] = "local-chat-completions",
    model_args: Annotated[
        list[str] | None,
        typer.Option(
            "--model-args",
            "--model_args",
            "-a",
            help="lm-eval model_args: key=val,key2=val2 or a JSON object (repeatable).",
        ),
    ] = None,
    serve: Annotated[
        str | None,
        typer.Option(
            help="Our model spec to point local-* models at (local, openai:MODEL@URL); default "
            "local unless --model-args has base_url."
        ),
    ] = None,
    batch_size: Annotated[
        str, typer.Option("--batch-size", "--batch_size", "-b", help="Integer, auto or auto:N.")
    ] = "1",
    max_batch_size: Annotated[
        int | None,
        typer.Option("--max-batch-size", "--max_batch_size", help="Upper bound for auto."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Device for torch models (cuda, cuda:0, cpu, mps); default: CUDA "
            "when present, else cpu."
        ),
    ] = None,
    gen_kwargs: Annotated[
        list[str] | None,
        typer.Option(
            "--gen-kwargs",
            "--gen_kwargs",
            help="Generation arguments for every task: temperature=0,max_gen_toks=64 or JSON "
            "(repeatable).",
        ),
    ] = None,
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", "--num_fewshot", "-f", help="Few-shot examples.")
    ] = None,
    limit: Annotated[
        float | None,
        typer.Option("--limit", "-L", help="Examples per task: a count, or a fraction < 1."),
    ] = None,
    apply_chat_template: Annotated[
        bool | None,
        typer.Option(
            "--apply-chat-template/--no-apply-chat-template",
            "--apply_chat_template/--no_apply_chat_template",
            help="Apply the chat template (default: on for chat-completions models).",
        ),
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option(
            help="Apply this named tokenizer chat template (lm-eval's --apply_chat_template NAME)."
        ),
    ] = None,
    log_samples: Annotated[
        bool,
        typer.Option(
            "--log-samples",
            "--log_samples",
            "-s",
            help="Also save lm-eval's samples_TASK_DATE.jsonl per task.",
        ),
    ] = False,
    include_path: Annotated[
        Path | None,
        typer.Option("--include-path", "--include_path", help="Folder of extra task YAMLs."),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            help="Seeds for python random, numpy, torch and few-shot sampling: one integer "
            "for all, or four comma-separated (None leaves one unset; default 0,1234,1234,1234)."
        ),
    ] = None,
    system_instruction: Annotated[
        str | None,
        typer.Option(
            "--system-instruction",
            "--system_instruction",
            help="System instruction for every prompt.",
        ),
    ] = None,
    predict_only: Annotated[
        bool,
        typer.Option(
            "--predict-only",
            "--predict_only",
            "-x",
            help="Generate and log the samples without computing metrics.",
        ),
    ] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run lm-evaluation-harness tasks with lm-eval's own flags, against our backends too.

    Writes lm-eval's result layout (results_DATE.json, with --log-samples
    samples_TASK_DATE.jsonl) under --output-path, and results.json, samples.jsonl,
    report.md and manifest.json into OUT. stdout gets the output paths, one per line (or,
    with --json, one JSON summary); the summary table goes to stderr.
    """
    from helpsteer.extras import require

    require("lm_eval", "eval")  # one install line, exit status 2, like every missing extra
    from eval.harness import (
        HarnessRunError,
        parse_batch_size,
        parse_kv_args,
        parse_limit,
        parse_seed,
        run_lm_eval,
        split_tasks,
    )

    def work(reporter: Any) -> dict[str, Any]:
        chosen = split_tasks(tasks)
        args = parse_kv_args(model_args, "--model-args")
        kwargs = parse_kv_args(gen_kwargs, "--gen-kwargs")
        served = serve
        if model.startswith("local-") and served is None and "base_url" not in args:
            served = "local"
        target = out or _folder_of(output_path)
        if target is None:
            raise_usage("give --out FOLDER or --output-path PATH")
        chat = chat_template if chat_template else apply_chat_template
        return run_lm_eval(
            target, chosen, model, args, served, include_path, parse_limit(limit), num_fewshot,
            parse_batch_size(batch_size), chat, device, kwargs, log_samples, output_path,
            max_batch_size, parse_seed(seed), system_instruction, predict_only,
        )  # fmt: skip

    try:
        doc = _run(work, quiet)
    except HarnessRunError as exc:
        _fail(str(exc), code=1)
    rows = [(f"{t} {k}", f"{v:.4f}") for t, m in doc["metrics"].items() for k, v in m.items()]
    target = out or _folder_of(output_path)
    _summary(f"lm-eval {doc['model']} -> {target}", rows, quiet)
    files = [doc["lm_eval_files"]["results"], *doc["lm_eval_files"]["samples"].values()]
    print_outputs(target, doc, as_json, extra=files)


def _folder_of(path: Path | None) -> Path | None:
    """lm-eval's --output-path as a folder: itself, or the folder of a .json file."""
    if path is None:
        return None
    return path.parent if path.suffix == ".json" else path


def raise_usage(message: str) -> None:
    from eval.common import EvalError

    raise EvalError(message)


@app.command("alpaca-eval")
def alpaca_eval_command(
    out: OutOption,
    reference: Annotated[
        Path | None,
        typer.Option(help="AlpacaEval instructions with reference outputs (.json[.gz])."),
    ] = None,
    annotations: Annotated[
        list[Path] | None,
        typer.Option(
            help="Score these alpaca_eval annotation files (or folders of annotations.json"
            "[.gz]) instead of generating and annotating (repeatable)."
        ),
    ] = None,
    glm_data: Annotated[
        Path | None,
        typer.Option(
            help="df_gamed.csv of tatsu-lab/alpaca_eval, for the length-controlled win rate "
            "(default: the Hugging Face cache's copy, if any)."
        ),
    ] = None,
    model_outputs: Annotated[
        list[Path] | None,
        typer.Option(help="With --annotations: model_outputs.json for missing output_2."),
    ] = None,
    model: Annotated[str, typer.Option(help="Model spec that answers.")] = "local",
    annotator: Annotated[
        str | None,
        typer.Option(help="Annotator model spec, an endpoint with logprobs (default: the model)."),
    ] = None,
    annotator_config: Annotated[
        str,
        typer.Option(
            help="weighted: alpaca_eval's weighted_alpaca_eval_gpt4_turbo (the leaderboard's: "
            "verdict-token log-probabilities, preference in [1, 2]); discrete: an Output "
            "(a)/(b) verdict."
        ),
    ] = "weighted",
    limit: LimitOption = None,
    max_tokens: Annotated[int, typer.Option(help="Max tokens per output.")] = 256,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run alpaca_eval on our backends, or score existing annotations (--annotations).

    Generating: model_outputs.json and reference_outputs.json in alpaca_eval's format,
    alpaca_eval/annotations.json, leaderboard.csv, results.json, report.md. With
    --annotations: leaderboard.csv in AlpacaEval's columns, results.json, report.md. stdout
    gets the output paths, one per line (or, with --json, one JSON summary).
    """
    if annotations:
        _alpaca_annotations(annotations, out, glm_data, model_outputs, quiet, as_json)
        return
    if reference is None:
        _fail("give --reference FILE (to generate and annotate) or --annotations PATH...")
    from eval.harness import HarnessRunError, run_alpaca_eval

    try:
        doc = _run(
            lambda reporter: run_alpaca_eval(
                reference,
                out,
                model,
                annotator,
                limit,
                max_tokens,
                reporter,
                annotator_config,
                glm_data,
            ),  # fmt: skip
            quiet,
        )
    except HarnessRunError as exc:
        _fail(str(exc), code=1)
    row = doc["models"][doc["model"]]

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    rows = [("win_rate", shown(row["win_rate"])), ("LC win rate", shown(row.get(
        "length_controlled_winrate"))), ("discrete", shown(row["discrete_win_rate"])),
        ("n_total", str(row["n_total"])), ("unannotated", str(doc["unannotated"]))]  # fmt: skip
    _summary(f"AlpacaEval {doc['model']} ({doc['annotator_config']}) -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


def _alpaca_annotations(paths, out, glm_data, outputs, quiet, as_json) -> None:
    from eval.alpaca_results import score_annotations

    doc = _run(lambda reporter: score_annotations(paths, out, glm_data, outputs), quiet)

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    rows = []
    for name, v in doc["models"].items():
        lc = shown(v["length_controlled_winrate"])
        rows.append((name, f"{shown(v['win_rate'])} (LC {lc}, n={v['n_total']})"))
    _summary(f"AlpacaEval win rate -> {out}", rows, quiet)
    print_outputs(out, doc, as_json)


@app.command("report")
def report(
    results: Annotated[Path, typer.Argument(help="Folder holding run folders (results.json).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default: RESULTS/report).")
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Collect every run under RESULTS into leaderboard.md and a static index.html."""
    from eval.report import build_report

    target = out or results / "report"
    summary = _run(lambda reporter: build_report(results, target), quiet)
    _summary(
        f"Leaderboard -> {target}",
        [(r["benchmark"], f"{r['model']} ({r['run']})") for r in summary["runs"]],
        quiet,
    )
    print_outputs(target, {"benchmark": "report", "runs": len(summary["runs"])}, as_json)
