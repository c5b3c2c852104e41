"""`hs synth STAGE`: run one synth stage outside a pipeline, from a TOML file and flags."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError
from rich.table import Table

from helpsteer.atomic import write_json
from helpsteer.overrides import OverrideError, apply_overrides
from helpsteer.pipeline import (
    REJECTED_SCHEMA,
    PipelineError,
    StageContext,
    Tables,
    get_stage,
    normalise_rejected,
)
from helpsteer.progress import Reporter
from synth.io import write_table


def stage_options(config: Path | None, overrides: list[str]) -> dict[str, Any]:
    """The stage's options: the TOML file's keys, then `--set key.sub=value` overrides."""
    options: dict[str, Any] = {}
    if config is not None:
        try:
            options = tomllib.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PipelineError(f"{config}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(f"{config}: invalid TOML: {exc}") from None
    try:
        return apply_overrides(options, overrides)
    except OverrideError as exc:
        raise PipelineError(str(exc)) from None


def read_inputs(ctx: StageContext, inputs: list[str]) -> Tables:
    """`NAME=PATH` inputs (.jsonl or .parquet); `prompts` files are read like synth.seed."""
    from synth.stages import read_seed_file

    tables = Tables()
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep:
            raise PipelineError(f"--input {item!r}: expected NAME=PATH, e.g. prompts=seed.jsonl")
        file = Path(path)
        if not file.is_file():
            raise PipelineError(f"{path}: input file not found")
        if name == "prompts" and file.suffix == ".jsonl":
            tables.set(name, read_seed_file(ctx, path))
            continue
        try:
            frame = pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_ndjson(file)
        except Exception as exc:  # polars raises several error types for unreadable files
            raise PipelineError(f"{path}: cannot read as a table: {exc}") from None
        tables.set(name, frame)
    return tables


def run_stage(
    name: str,
    config: Path | None,
    inputs: list[str],
    out: Path,
    overrides: list[str],
    seed: int,
    reporter: Reporter,
) -> dict[str, Any]:
    """Run stage `name` and write its tables, rejected.jsonl and manifest.json into `out`."""
    started = time.perf_counter()
    spec = get_stage(name)
    options = stage_options(config, overrides)
    try:
        cfg = spec.config.model_validate(options)
    except ValidationError as exc:
        lines = [f"{config or 'options'}: invalid options for {name}"]
        lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PipelineError("\n".join(lines)) from None
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(name=name, out_dir=out, seed=seed, reporter=reporter)
    tables = read_inputs(ctx, inputs)
    result = spec.fn(ctx, tables, cfg) or {}
    counts, files = {}, []
    for table, frame in result.items():
        if frame is not None:
            for path in (out / f"{table}.jsonl", out / f"{table}.parquet"):
                write_table(frame, path)
                files.append(str(path))
            counts[table] = frame.height
    rejected = (
        pl.concat([normalise_rejected(r) for r in ctx.rejected])
        if ctx.rejected
        else pl.DataFrame(schema=REJECTED_SCHEMA)
    )
    write_table(rejected, out / "rejected.jsonl")
    files += [str(out / "rejected.jsonl"), str(out / "manifest.json")]
    manifest = {
        "tool": "hs synth " + name.removeprefix("synth.").replace("_", "-"),
        "config": cfg.model_dump(mode="json"),
        "inputs": inputs,
        "seed": seed,
        "counts": {**counts, "rejected": rejected.height},
        "info": ctx.info,
        "seconds": round(time.perf_counter() - started, 3),
        "files": files,
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def produced_nothing(manifest: dict[str, Any]) -> bool:
    """The stage wrote tables and every one is empty (the exit status says the run failed,
    as `hs build-dataset`'s does)."""
    tables = [n for n in manifest["counts"] if n != "rejected"]
    return bool(tables) and all(manifest["counts"][n] == 0 for n in tables)


def print_summary(reporter: Reporter, manifest: dict[str, Any], out: Path) -> None:
    table = Table(title=f"{manifest['tool']} → {out}", show_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, rows in manifest["counts"].items():
        table.add_row(f"{name} rows", str(rows))
    for used in manifest["info"].get("llm", []):
        table.add_row(
            f"LLM {used['model']}",
            f"{used['requests']} requests ({used['cache_hits']} cached), "
            f"{used['completion_tokens']} tokens out, {used['errors']} errors, "
            f"${used['cost_usd']:.4f}",
        )
    table.add_row("seconds", f"{manifest['seconds']:.2f}")
    reporter.console.print(table)


def print_outputs(manifest: dict[str, Any], as_json: bool) -> None:
    """stdout is for other programs: the files written, one per line, or one JSON summary."""
    import json

    import typer

    if as_json:
        keys = ("tool", "counts", "seconds", "files")
        typer.echo(json.dumps({k: manifest[k] for k in keys}, indent=2))
        return
    for path in manifest["files"]:
        typer.echo(path)
