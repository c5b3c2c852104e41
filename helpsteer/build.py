"""`hs build-dataset`: run a pipeline of stages from a TOML config (or the defaults)."""

from __future__ import annotations

import contextlib
import json
import platform
import time
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.markup import escape
from rich.table import Table

from helpsteer.atomic import atomic_path, write_json
from helpsteer.io import file_fingerprint
from helpsteer.llm.config import with_retry_failed
from helpsteer.overrides import (
    OverrideError,
    did_you_mean,
    set_path,
    split_item,
    validation_lines,
)
from helpsteer.pipeline import (
    Pipeline,
    PipelineError,
    PipelineResult,
    PlannedStage,
    get_stage,
    known_stages,
)
from helpsteer.progress import Reporter
from helpsteer.shard import (
    Shard,
    cut_index,
    load_snapshots,
    plan_digest,
    shard_folder,
    write_snapshot,
)


class StageEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    uses: str
    name: str | None = None


def _ray_config():
    from helpsteer.ray_engine import RayConfig

    return RayConfig


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out: str = Field("out/dataset", description="Output folder.")
    seed: int = 0
    cache_dir: str | None = Field(None, description="Stage cache; default OUT/.cache.")
    engine: Literal["local", "ray"] = Field(
        "local", description="Where row-wise stages run: in this process, or on Ray."
    )
    ray: dict = Field(default_factory=dict, description="Ray engine options (see RayConfig).")
    stages: list[StageEntry]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`out=DIR`, `seed=1`, or `STAGE.option=value` where STAGE is a stage's name."""
    for item in overrides:
        try:
            path, value = split_item(item)
            if len(path) == 1:
                raw[path[0]] = value
                continue
            if path[0] == "ray":
                set_path(raw.setdefault("ray", {}), path[1:], value, item)
                continue
            names = [s.get("name") or s["uses"] for s in raw["stages"]]
            if path[0] not in names:
                hint = did_you_mean(path[0], names)
                raise OverrideError(
                    f"--set {item!r}: no stage named {path[0]!r}{hint} (stages: {names})"
                )
            set_path(raw["stages"][names.index(path[0])], path[1:], value, item)
        except OverrideError as exc:
            raise PipelineError(str(exc)) from None
    return raw


def _resolve_inputs(raw: dict, base: Path) -> None:
    """A relative path in a config file is found beside the file, else from the cwd.

    Any stage option value (or list item, or `path` of a table) naming a file that exists
    beside the config is rewritten, so every stage's inputs follow the same rule.
    """
    for entry in raw.get("stages", []):
        for key, value in entry.items():
            if key not in ("uses", "name"):
                entry[key] = _resolve(value, base)


def _resolve(item, base: Path):
    if isinstance(item, list):
        return [_resolve(i, base) for i in item]
    if isinstance(item, dict):
        return {**item, "path": _resolve(item["path"], base)} if "path" in item else item
    if not isinstance(item, str) or not item or Path(item).is_absolute():
        return item
    candidate = base / item
    return str(candidate) if candidate.exists() else item


def load_config(path: Path | None, overrides: list[str], shortcuts: dict) -> BuildConfig:
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PipelineError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(f"{path}: invalid TOML: {exc}") from None
        _resolve_inputs(raw, path.parent)
    else:
        from helpsteer.stages import default_stages

        raw = {"stages": default_stages()}
    raw.setdefault("stages", [])
    load_entry = next((s for s in raw["stages"] if s.get("uses") == "load"), None)
    for role in ("ratings", "preferences"):
        if shortcuts.get(role):
            if load_entry is None:
                load_entry = {"uses": "load"}
                raw["stages"].insert(0, load_entry)
            load_entry[role] = shortcuts[role]
    if shortcuts.get("out"):
        raw["out"] = shortcuts["out"]
    if shortcuts.get("engine"):
        raw["engine"] = shortcuts["engine"]
    if shortcuts.get("ray_address"):
        raw.setdefault("ray", {})["address"] = shortcuts["ray_address"]
    raw = apply_overrides(raw, overrides)
    try:
        config = BuildConfig.model_validate(raw)
        ray_config(config)
    except ValidationError as exc:
        raise PipelineError(_validation_message(path, exc)) from None
    return config


def ray_config(config: BuildConfig):
    """The validated `[ray]` table (kept a plain dict in BuildConfig so that the core
    config imports nothing of the engine)."""
    return _ray_config().model_validate(config.ray)


def _validation_message(path: Path | None, exc: ValidationError) -> str:
    where = str(path) if path else "command line"
    return "\n".join([f"{where}: invalid configuration", *validation_lines(exc, BuildConfig)])


def plan(config: BuildConfig, retry_failed: bool = False) -> list[PlannedStage]:
    planned, seen = [], set()
    for index, entry in enumerate(config.stages):
        spec = _stage_spec(index, entry.uses)
        name = entry.name or entry.uses
        if name in seen:
            raise PipelineError(f"stage {index}: name {name!r} is used twice; give it a `name`")
        seen.add(name)
        options = dict(entry.model_extra or {})
        try:
            stage_config = spec.config.model_validate(options)
        except ValidationError as exc:
            lines = [f"stage {name!r} ({entry.uses}): invalid options"]
            lines += validation_lines(exc, spec.config)
            raise PipelineError("\n".join(lines)) from None
        if retry_failed:
            stage_config = with_retry_failed(stage_config)
        planned.append(PlannedStage(name=name, spec=spec, config=stage_config))
    if not planned:
        raise PipelineError("no stages to run")
    return planned


def _stage_spec(index: int, uses: str):
    known = known_stages()
    if uses not in known:
        hint = did_you_mean(uses, known)
        names = ", ".join(sorted(known))
        raise PipelineError(f"stage {index}: unknown stage {uses!r}{hint}; known stages: {names}")
    return get_stage(uses)


def _versions() -> dict[str, str]:
    names = ["helpsteer-workbench", "polars", "pyarrow", "datasets", "pydantic"]
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_side_files(out: Path, result: PipelineResult) -> dict[str, int]:
    """rejected.jsonl, filtered.jsonl and needs_more_annotators.jsonl: nothing is dropped
    without a trace."""
    rejected = first_rejections(result.rejected)
    counts = {"rejected": rejected.height}
    _write_jsonl(rejected.sort("source", "line", nulls_last=True), out / "rejected.jsonl")
    filtered = result.tables.get_or_none("filtered")
    counts["filtered"] = filtered.height if filtered is not None else 0
    if filtered is not None:
        _write_jsonl(filtered, out / "filtered.jsonl")
    flagged = result.tables.get_or_none("needs_more_annotators")
    if flagged is not None:
        counts["needs_more_annotators"] = flagged.height
        _write_jsonl(flagged, out / "needs_more_annotators.jsonl")
    return counts


def first_rejections(rejected: pl.DataFrame) -> pl.DataFrame:
    """One row, one rejection: when a later stage rejects a row an earlier stage already
    rejected (same source table and record `id`, e.g. a response the judge could not score
    and then has no score to pair on), only the first stage's reason is kept."""
    # Only rows of pipeline tables have a stable `id`; input files are keyed by line.
    from_table = pl.col("source").str.starts_with("table ")
    row_id = pl.when(from_table).then(pl.col("record").str.json_path_match("$.id"))
    keyed = rejected.with_row_index("_order").with_columns(row_id.alias("_id"))
    with_id = keyed.filter(pl.col("_id").is_not_null()).unique(
        ["source", "_id"], keep="first", maintain_order=True
    )
    without_id = keyed.filter(pl.col("_id").is_null())
    return pl.concat([with_id, without_id]).sort("_order").drop("_order", "_id")


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.write_ndjson(tmp)


def manifest(config: BuildConfig, result: PipelineResult, side: dict, seconds: float) -> dict:
    from helpsteer.stages import as_input_specs

    inputs = []
    for entry in config.stages:
        if entry.uses == "load":
            extra = entry.model_extra or {}
            for role in ("ratings", "preferences"):
                # The stage's own coercion: a lone path string is one input, not one per
                # character (the "/" of "data/x.jsonl" was hashed as the whole disk).
                for item in as_input_specs(extra.get(role)):
                    path = item["path"]
                    inputs.append({"role": role, "path": path, "sha256": file_fingerprint(path)})
    return {
        "tool": "hs build-dataset",
        "inputs": inputs,
        "config": config.model_dump(mode="json"),
        "versions": _versions(),
        "fingerprint": result.fingerprint,
        "counts": {
            "tables": {n: result.tables[n].height for n in RESULT_TABLES if n in result.tables},
            **side,
        },
        "stages": [
            {
                "name": r.name,
                "uses": r.uses,
                "cached": r.cached,
                "seconds": r.seconds,
                "tables_out": r.tables_out,
                "info": r.info,
            }
            for r in result.runs
        ],
        "seconds": round(seconds, 3),
    }


RESULT_TABLES = (
    "ratings",
    "preference",
    "prompts",
    "responses",
    "hs3_preference",
    "hs3_feedback",
    "hs3_edit",
    "hs3_edit_quality",
    "hs3_principle",
)
"""The tables a pipeline exists to produce; a run with none of them non-empty failed."""


def _refuse_to_replace_a_readme(config: BuildConfig, out: Path) -> None:
    """The card stage writes OUT/README.md: refuse, before any work, when that file is
    not a card of ours (`--out .` in a project folder would replace its README)."""
    from helpsteer.card import BUILT_BY

    readme = out / "README.md"
    if not readme.is_file() or not any(e.uses == "card" for e in config.stages):
        return
    with open(readme, encoding="utf-8", errors="replace") as handle:
        if BUILT_BY in handle.read(1 << 20):
            return
    raise PipelineError(
        f"{readme}: not a dataset card written by hs build-dataset, and the card stage "
        "would replace it; give a new or empty output folder (--out)"
    )


def run_build(
    config: BuildConfig,
    reporter: Reporter,
    use_cache: bool = True,
    shard: Shard | None = None,
    merge_shards: int | None = None,
    retry_failed: bool = False,
) -> tuple[dict, int]:
    """Run the pipeline (one shard of it, or the merge of all shards) and write the side
    files and manifest; returns (manifest, exit code)."""
    started = time.perf_counter()
    out = Path(config.out)
    stages = plan(config, retry_failed)
    if shard is not None or merge_shards is not None:
        cut = cut_index(stages)
        digest = plan_digest(stages[: cut + 1], config.seed)
    if shard is not None:
        out = shard_folder(out, shard.label)
        stages = stages[: cut + 1]
    _refuse_to_replace_a_readme(config, out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(config.cache_dir) if config.cache_dir else out / ".cache"
    if not use_cache:
        import shutil

        shutil.rmtree(cache_dir, ignore_errors=True)
    merged = None
    if merge_shards is not None:
        merged = load_snapshots(out, merge_shards, digest)
        stages = stages[cut + 1 :]
    with _engine(config, out, reporter, shard) as engine:
        pipeline = Pipeline(
            stages,
            out,
            cache_dir,
            seed=config.seed,
            shard=shard,
            engine=engine,
            use_cache=use_cache,
        )
        if merged is None:
            result = pipeline.run(reporter)
        else:
            result = pipeline.run(reporter, merged.tables, merged.fingerprint)
            result.rejected = pl.concat([merged.rejected, result.rejected])
    if shard is not None:
        write_snapshot(out, result, digest, shard)
    side = write_side_files(out, result)
    document = manifest(config, result, side, time.perf_counter() - started)
    if shard is not None:
        document["shard"] = shard.label
    if merged is not None:
        document["shards"] = merged.shards
    if engine is not None:
        document["engine"] = engine.stats.as_dict()
    write_json(out / "manifest.json", document)
    usable = sum(document["counts"]["tables"].values())
    return document, (0 if usable or shard is not None else 1)


@contextlib.contextmanager
def _engine(config: BuildConfig, out: Path, reporter: Reporter, shard: Shard | None):
    """The Ray engine for the run when the config asks for it; None for the local one."""
    if config.engine != "ray":
        yield None
        return
    if shard is not None:
        raise PipelineError("--shard is for schedulers without Ray; drop it with --engine ray")
    from helpsteer.ray_engine import RayEngine

    with RayEngine(ray_config(config), out, reporter) as engine:
        yield engine


def _summary(reporter: Reporter, document: dict) -> None:
    # The folder is on stdout; a long path in a title would wrap at the log's width.
    table = Table(title="hs build-dataset", show_edge=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, rows in document["counts"]["tables"].items():
        table.add_row(name, str(rows))
    for name in ("rejected", "filtered", "needs_more_annotators"):
        if name in document["counts"]:
            table.add_row(f"{name} (see {name}.jsonl)", str(document["counts"][name]))
    table.add_row("seconds", f"{document['seconds']:.2f}")
    reporter.console.print(table)


def build_dataset_command(
    config: Annotated[
        Path | None,
        typer.Argument(help="Pipeline config (TOML). Optional with --ratings/--preferences."),
    ] = None,
    ratings: Annotated[
        list[str] | None,
        typer.Option("--ratings", help="Ratings input (raw or HelpSteer2); repeatable."),
    ] = None,
    preferences: Annotated[
        list[str] | None,
        typer.Option("--preferences", help="Preferences input (raw or HelpSteer2 `preference`)."),
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config key: out=DIR, seed=1, aggregate.min_annotators=4."
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Ignore cached stage results, and write none (a one-off run)."
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Run shard I of N (0-based, e.g. 3/8) of the generation and scoring stages "
            "into OUT/shards/I-of-N; merge with --merge-shards N.",
        ),
    ] = None,
    merge_shards: Annotated[
        int | None,
        typer.Option(
            "--merge-shards", min=1, help="Concatenate the N finished shards, run the rest."
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Ask the LLM again for requests an earlier run recorded as failed.",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="local (default) or ray: run the row-wise stages (responses, judges, pairs) "
            'on a Ray cluster; also `engine = "ray"` in the config.',
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join (auto, ray://HOST:10001); default: a local cluster.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON summary on stdout instead of the paths."),
    ] = False,
) -> None:
    """Build a HelpSteer2-style dataset: load -> aggregate -> split -> export -> card.

    The output folder gets the exports (Parquet + JSON Lines per split), `datasets/`
    folders for `load_from_disk`, a dataset card README.md with plots, manifest.json,
    rejected.jsonl (unusable rows with file, line and reason) and filtered.jsonl.

    stdout gets the output paths, one per line (or, with --json, one JSON summary); the
    progress and the summary table go to stderr.
    """
    reporter = Reporter.for_cli(quiet=quiet)
    if config is None and not ratings and not preferences:
        reporter.console.print("[red]error:[/red] give a CONFIG.toml or --ratings/--preferences")
        raise typer.Exit(2)
    try:
        if engine not in (None, "local", "ray"):
            raise PipelineError(f"--engine {engine!r}: expected local or ray")
        shortcuts = {
            "ratings": ratings,
            "preferences": preferences,
            "out": out,
            "engine": engine or ("ray" if ray_address else None),
            "ray_address": ray_address,
        }
        cfg = load_config(config, set_ or [], shortcuts)
        if shard is not None and merge_shards is not None:
            raise PipelineError("--shard and --merge-shards go to different runs; give one")
        document, code = run_build(
            cfg,
            reporter,
            use_cache=not no_cache,
            shard=None if shard is None else Shard.parse(shard),
            merge_shards=merge_shards,
            retry_failed=retry_failed,
        )
    except PipelineError as exc:
        reporter.console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        reporter.console.print(
            "[yellow]interrupted[/yellow]: finished stages are cached; re-run to resume"
        )
        raise typer.Exit(130) from None
    where = (
        Path(cfg.out) if "shard" not in document else shard_folder(Path(cfg.out), document["shard"])
    )
    _summary(reporter, document)
    if code:
        reporter.console.print(
            f"[red]error:[/red] no usable rows remain; see {escape(str(where / 'rejected.jsonl'))}",
            soft_wrap=True,
        )
    print_outputs(where, document, code, as_json)
    raise typer.Exit(code)


def output_files(
    out: Path,
    skip: tuple[str, ...] = ("shards",),
    folders: tuple[str, ...] = ("datasets",),
    stale: frozenset[str] = frozenset(),
) -> list[str]:
    """A run's outputs: every file under `out` except dot-files (caches) and the top-level
    folders in `skip`; under each of `folders`, its subfolders (a `datasets/NAME` folder is
    what `load_from_disk` opens) instead of the files inside them. `stale`: export formats
    an earlier run left there, listed neither as folders nor under `folders`."""
    found: list[str] = []
    if not out.is_dir():
        return found
    for path in sorted(out.rglob("*")):
        parts = path.relative_to(out).parts
        if any(p.startswith(".") for p in parts) or parts[0] in skip or parts[0] in stale:
            continue
        if parts[0] in folders:
            if len(parts) == 2 and path.is_dir() and parts[1] not in stale:
                found.append(str(path))
            continue
        if path.is_file():
            found.append(str(path))
    return found


def _stale_formats(document: dict) -> frozenset[str]:
    """Export formats this run did not write (an earlier run's may sit in the folder)."""
    from helpsteer.exports import ALL_FORMATS

    for stage in document.get("stages", []):
        if stage.get("uses") == "export" and "files" in (stage.get("info") or {}):
            return frozenset(ALL_FORMATS) - set(stage["info"]["files"])
    return frozenset()


def print_outputs(out: Path, document: dict, code: int, as_json: bool) -> None:
    """stdout is for other programs: plain paths one per line, never wrapped, or JSON."""
    files = output_files(out, stale=_stale_formats(document))
    if as_json:
        summary = {
            "out": str(out),
            "exit_code": code,
            "counts": document["counts"],
            "seconds": document["seconds"],
            "files": files,
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    for path in files:
        typer.echo(path)
