"""Stage registry and the cached pipeline runner behind `hs build-dataset`.

A stage is a named step that takes the pipeline's tables and returns new or replaced
tables. Packages register stages here (their own modules are found through the
`helpsteer.stages` entry-point group), so a pipeline mixes synth, judge and core stages
while `helpsteer` imports none of them.

Every stage's output is cached under a fingerprint of (stage name and version, its
config, the fingerprint of everything before it), the way Hugging Face `datasets`
fingerprints transforms: a re-run redoes only what changed and a killed run resumes
from the last finished stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from helpsteer.atomic import atomic_path, write_json
from helpsteer.progress import Reporter


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


StageFn = Callable[["StageContext", "Tables", Any], Mapping[str, pl.DataFrame | None]]


@dataclass(frozen=True)
class Needs:
    """What one worker of a row-wise stage needs: the Ray engine's actor resources."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    llm: bool = False
    """Talks to an LLM: the Ray engine splits the in-flight bound between its workers."""


def llm_needs(*configs: Any) -> Needs:
    """Needs of a stage that calls these LLMConfigs: a GPU per tensor-parallel rank of an
    in-process vLLM engine, nothing extra for a server behind the `openai` backend."""
    gpus = [
        float(c.extra.get("tensor_parallel_size", 1)) if c.backend == "vllm" else 0.0
        for c in configs
    ]
    return Needs(num_gpus=max(gpus, default=0.0), llm=True)


@dataclass(frozen=True)
class StageSpec:
    name: str
    fn: StageFn
    config: type[StageConfig]
    version: str = "1"
    cacheable: bool = True
    """False for sinks that write into the output folder: they run every time."""
    fingerprint_extra: Callable[[Any], str] | None = None
    """Adds what the config does not show, e.g. the content hash of input files."""
    shardable: bool | Callable[[Any], bool] = False
    """Row-wise by prompt: a prompt's output depends only on its own rows, so the stage
    can run on any subset of the prompts (`--shard`, the Ray engine; see
    `helpsteer.partition`). A function of the config when some options break that."""
    needs: Callable[[Any], Needs] | None = None
    """What a worker running this stage needs (CPUs, GPUs, an LLM); default one CPU."""
    help: str = ""
    keeps_tables: bool = False
    """The stage adds, replaces and drops no table (a sink such as `export`), so a later
    stage's `prepare` may run while it does."""
    prepare: Callable[[Tables, Any], Any] | None = None
    """Work of the stage that depends only on its tables and config (the card's plots).
    When every stage between the last one that changes tables and this one has
    `keeps_tables`, it runs in a thread beside those stages; the stage gets its result
    (or its exception) from `ctx.prepared(compute)`, which otherwise calls `compute`."""

    imports: tuple[str, ...] = ()
    """Modules the stage imports when it runs; the pipeline imports them in a thread
    from its start, where they cost little beside the stages before (the card's
    matplotlib takes 0.5 s to import, most of it Python the main thread would otherwise
    run alone)."""

    def rowwise(self, config: Any) -> bool:
        return self.shardable(config) if callable(self.shardable) else self.shardable

    def needs_for(self, config: Any) -> Needs:
        return self.needs(config) if self.needs is not None else Needs()


_REGISTRY: dict[str, StageSpec] = {}
_plugins_loaded = False
_PLUGINS_LOCK = threading.RLock()


def register(spec: StageSpec) -> StageSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name].fn is not spec.fn:
        raise ValueError(f"stage {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def stage(name: str, config: type[StageConfig], **options: Any) -> Callable[[StageFn], StageFn]:
    """Decorator: `@stage("aggregate", AggregateConfig)` registers a stage function."""

    def decorate(fn: StageFn) -> StageFn:
        register(StageSpec(name=name, fn=fn, config=config, help=(fn.__doc__ or ""), **options))
        return fn

    return decorate


def _ahead(fn: Callable[[Tables, Any], Any], tables: Tables, config: Any) -> Future:
    """fn(tables, config) in a daemon thread: a failed run does not wait for it."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn(tables, config))
        except BaseException as exc:  # handed to the stage, which raises it
            future.set_exception(exc)

    threading.Thread(target=work, name="stage-prepare", daemon=True).start()
    return future


def _import_ahead(modules: list[str]) -> threading.Thread | None:
    """Import `modules` in a daemon thread; a failed import is left to the stage that
    needs the module, which imports it again and reports the error. A stage that lists
    imports starts only once the thread is done: two threads importing overlapping
    module trees at once can deadlock in importlib."""

    def work() -> None:
        for module in dict.fromkeys(modules):
            with contextlib.suppress(Exception):  # the stage's own import reports it
                importlib.import_module(module)

    if not modules:
        return None
    thread = threading.Thread(target=work, name="stage-imports", daemon=True)
    thread.start()
    return thread


def _load_plugins() -> None:
    global _plugins_loaded
    # A Ray worker runs two buckets in two threads: the second must not look stages up
    # while the first is still importing them.
    with _PLUGINS_LOCK:
        if _plugins_loaded:
            return
        import helpsteer.stages  # noqa: F401  (registers the core stages)

        for ep in entry_points(group="helpsteer.stages"):
            try:
                ep.load()
            except ImportError as exc:  # an optional extra that is not installed
                print(f"hs: stages of {ep.name!r} unavailable: {exc}", file=sys.stderr)
        _plugins_loaded = True


def get_stage(name: str) -> StageSpec:
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise PipelineError(f"unknown stage {name!r}; known stages: {known}") from None


def known_stages() -> dict[str, StageSpec]:
    _load_plugins()
    return dict(_REGISTRY)


class PipelineError(Exception):
    """A problem the user can fix (bad config, unusable input); shown without traceback."""


class Tables(Mapping[str, pl.DataFrame]):
    """The pipeline's named tables; tables restored from the cache load only when read."""

    def __init__(self) -> None:
        self._frames: dict[str, pl.DataFrame] = {}
        self._paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in self._frames and name in self._paths:
            self._frames[name] = pl.read_parquet(self._paths[name])
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._frames) | set(self._paths)))

    def __len__(self) -> int:
        return len(set(self._frames) | set(self._paths))

    def __contains__(self, name: object) -> bool:
        return name in self._frames or name in self._paths

    def columns(self, name: str) -> list[str]:
        """A table's column names, without loading a table restored from the cache."""
        if name in self._frames:
            return self._frames[name].columns
        return list(pl.read_parquet_schema(self._paths[name]))

    def get_or_none(self, name: str) -> pl.DataFrame | None:
        return self.get(name)

    def set(self, name: str, frame: pl.DataFrame | None) -> None:
        self._frames.pop(name, None)
        self._paths.pop(name, None)
        if frame is not None:
            self._frames[name] = frame

    def set_path(self, name: str, path: Path) -> None:
        self._frames.pop(name, None)
        self._paths[name] = path


@dataclass
class StageContext:
    """What a stage may use besides its tables and config."""

    name: str
    out_dir: Path
    seed: int
    reporter: Reporter
    info: dict[str, Any] = field(default_factory=dict)
    """JSON-able facts for the manifest and the dataset card."""
    rejected: list[pl.DataFrame] = field(default_factory=list)
    run_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The `info` of every stage that ran before this one, by stage name."""
    head_start: Future | None = None
    """The stage's `prepare` started early (see StageSpec.prepare)."""
    fingerprint: str = ""
    """The fingerprint of the stage's output when it is known as the stage starts (its
    inputs, config and everything before it); empty for a stage whose fingerprint needs
    its inputs' hashes still being computed."""

    def prepared(self, compute: Callable[[], Any]) -> Any:
        """The result of the stage's `prepare`: from its head start (its exception
        raised here), else `compute()` now."""
        return self.head_start.result() if self.head_start is not None else compute()

    def reject(self, rows: pl.DataFrame) -> None:
        """Record unusable rows; `rows` needs `source`, `line` and `reason` columns."""
        if rows.height:
            self.rejected.append(rows.with_columns(pl.lit(self.name).alias("stage")))


REJECTED_SCHEMA = {
    "stage": pl.String,
    "source": pl.String,
    "line": pl.Int64,
    "reason": pl.String,
    "record": pl.String,
}


def normalise_rejected(rows: pl.DataFrame) -> pl.DataFrame:
    """Rejected rows in one shape: the offending record kept as a JSON string."""
    extra = [c for c in rows.columns if c not in REJECTED_SCHEMA]
    record = pl.struct(extra).struct.json_encode() if extra else pl.lit(None, dtype=pl.String)
    if "record" in rows.columns:
        record = pl.coalesce(pl.col("record").cast(pl.String), record)
    cols = [
        (
            pl.col(c).cast(t)
            if c in rows.columns and c != "record"
            else (record.alias(c) if c == "record" else pl.lit(None, dtype=t).alias(c))
        )
        for c, t in REJECTED_SCHEMA.items()
    ]
    return rows.select(cols)


@dataclass
class StageRun:
    name: str
    uses: str
    fingerprint: str
    cached: bool
    seconds: float
    info: dict[str, Any]
    tables_out: dict[str, int]


@dataclass
class PipelineResult:
    tables: Tables
    runs: list[StageRun]
    rejected: pl.DataFrame
    fingerprint: str


def _extra_of(spec: StageSpec) -> Callable[[Tables, Any], str]:
    return lambda _tables, config: spec.fingerprint_extra(config)


def _stage_fingerprint(previous: str, planned: PlannedStage, extra: str | None = None) -> str:
    """The fingerprint of a stage's output: what came before, the stage and its config."""
    spec = planned.spec
    if extra is None:
        extra = spec.fingerprint_extra(planned.config) if spec.fingerprint_extra else ""
    return _digest(
        {
            "previous": previous,
            "uses": spec.name,
            "version": spec.version,
            "config": planned.config.model_dump(mode="json"),
            "extra": extra,
        }
    )


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class PlannedStage:
    name: str
    spec: StageSpec
    config: StageConfig


class Pipeline:
    """An ordered list of configured stages, run with a per-stage cache."""

    def __init__(
        self,
        stages: list[PlannedStage],
        out_dir: Path,
        cache_dir: Path,
        seed: int = 0,
        shard: Any = None,
        engine: Any = None,
        use_cache: bool = True,
    ):
        self.stages = stages
        self.out_dir = out_dir
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        """False (`--no-cache`): stage results are neither reused nor written."""
        self.seed = seed
        self.shard = shard
        """A `helpsteer.shard.Shard`: every table keyed by prompt keeps only its rows."""
        self.engine = engine
        """Runs row-wise stages elsewhere (`helpsteer.ray_engine.RayEngine`); None = here."""

    def run(
        self, reporter: Reporter, tables: Tables | None = None, start: str | None = None
    ) -> PipelineResult:
        """Run the stages; `tables` and `start` (their fingerprint) continue from a merge."""
        tables = tables if tables is not None else Tables()
        runs: list[StageRun] = []
        rejected: list[pl.DataFrame] = []
        run_info: dict[str, dict[str, Any]] = {}
        first = {"seed": self.seed}
        if self.shard is not None:
            first["shard"] = self.shard.label
        fingerprint = start or _digest(first)
        importing = _import_ahead([m for planned in self.stages for m in planned.spec.imports])
        head_starts: dict[int, Future] = {}
        for index, planned in enumerate(self.stages):
            spec = planned.spec
            # Without the cache the fingerprint is only recorded, so its extra part (the
            # inputs' hashes, 0.3 s a million lines) is computed beside the stage.
            later = not self.use_cache and spec.fingerprint_extra is not None
            if later:
                extra = _ahead(_extra_of(spec), tables, planned.config)
            else:
                fingerprint = _stage_fingerprint(fingerprint, planned)
            ctx = StageContext(
                name=planned.name,
                out_dir=self.out_dir,
                seed=self.seed,
                reporter=reporter,
                run_info=run_info,
                head_start=head_starts.pop(index, None),
                fingerprint="" if later else fingerprint,
            )
            if spec.imports and importing is not None:
                importing.join()
            self._start_ahead(index, tables, head_starts)
            started = time.perf_counter()
            cache = self.cache_dir / f"{planned.name}-{fingerprint[:20]}"
            cached = self.use_cache and spec.cacheable and (cache / "done.json").exists()
            if cached:
                produced = self._restore(cache, tables, ctx)
                reporter.note(f"[dim]{planned.name}: reused cached result[/dim]")
            else:
                produced = self._execute(planned, tables, ctx, cache)
            if later:
                fingerprint = _stage_fingerprint(fingerprint, planned, extra.result())
            rejected.extend(ctx.rejected)
            run_info[planned.name] = ctx.info
            runs.append(
                StageRun(
                    name=planned.name,
                    uses=spec.name,
                    fingerprint=fingerprint,
                    cached=cached,
                    seconds=round(time.perf_counter() - started, 3),
                    info=ctx.info,
                    tables_out=produced,
                )
            )
        all_rejected = (
            pl.concat([normalise_rejected(r) for r in rejected])
            if rejected
            else pl.DataFrame(schema=REJECTED_SCHEMA)
        )
        return PipelineResult(tables, runs, all_rejected, fingerprint)

    def _start_ahead(self, index: int, tables: Tables, head_starts: dict[int, Future]) -> None:
        """Start the `prepare` of the stages after `index` that only table-keeping
        stages separate from it: their tables are final once stage `index` starts."""
        later = index
        while self.stages[later].spec.keeps_tables and later + 1 < len(self.stages):
            later += 1
            planned = self.stages[later]
            if planned.spec.prepare is not None and later not in head_starts:
                head_starts[later] = _ahead(planned.spec.prepare, tables, planned.config)

    def _execute(
        self, planned: PlannedStage, tables: Tables, ctx: StageContext, cache: Path
    ) -> dict[str, int]:
        if not planned.spec.rowwise(planned.config):
            result = dict(planned.spec.fn(ctx, tables, planned.config) or {})
        else:
            result = self._execute_rowwise(planned, tables, ctx)
        if self.shard is not None:
            result = {n: f if f is None else self.shard.rows(f) for n, f in result.items()}
        for name, frame in result.items():
            tables.set(name, frame)
        produced = {n: f.height for n, f in result.items() if f is not None}
        if planned.spec.cacheable and self.use_cache:
            self._store(cache, result, ctx)
        return produced

    def _execute_rowwise(
        self, planned: PlannedStage, tables: Tables, ctx: StageContext
    ) -> dict[str, pl.DataFrame | None]:
        """Run a row-wise stage here or on the engine; keyed outputs in canonical order, so
        both engines give the same tables."""
        from helpsteer.partition import canonical_order, keyed_names, prompt_ranks

        ranks = prompt_ranks(tables, keyed_names(tables))
        if self.engine is not None and self.engine.accepts(planned, tables):
            result = self.engine.run_stage(planned, tables, ctx)
        else:
            result = dict(planned.spec.fn(ctx, tables, planned.config) or {})
        return {n: f if f is None else canonical_order(f, ranks) for n, f in result.items()}

    def _store(self, cache: Path, result: Mapping[str, pl.DataFrame | None], ctx: StageContext):
        with atomic_path(cache) as tmp:
            tmp.mkdir(parents=True)
            for name, frame in result.items():
                if frame is not None:
                    frame.write_parquet(tmp / f"{name}.parquet")
            if ctx.rejected:
                pl.concat([normalise_rejected(r) for r in ctx.rejected]).write_parquet(
                    tmp / "_rejected.parquet"
                )
            dropped = [n for n, f in result.items() if f is None]
            write_json(tmp / "done.json", {"info": ctx.info, "dropped": dropped})
        # Old results of the same stage are dead weight once a newer one exists.
        for old in cache.parent.glob(cache.name.rsplit("-", 1)[0] + "-*"):
            if old != cache and old.is_dir() and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)

    def _restore(self, cache: Path, tables: Tables, ctx: StageContext) -> dict[str, int]:
        done = json.loads((cache / "done.json").read_text())
        ctx.info.update(done["info"])
        for name in done["dropped"]:
            tables.set(name, None)
        produced = {}
        for path in sorted(cache.glob("*.parquet")):
            if path.stem == "_rejected":
                ctx.rejected.append(pl.read_parquet(path))
                continue
            tables.set_path(path.stem, path)
            produced[path.stem] = pl.scan_parquet(path).select(pl.len()).collect().item()
        return produced
