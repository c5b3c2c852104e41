"""The Ray engine: row-wise stages of `hs build-dataset` on a Ray cluster.

The runner (`helpsteer.pipeline.Pipeline`) hands this engine every row-wise stage
(responses, judges, preference pairs); table-wide stages (load, aggregate, split,
export, card) stay on the driver. For one stage the engine

1. splits every table keyed by prompt into P buckets of `prompt_id` with the code
   `--shard` uses (`helpsteer.partition`); other tables go whole, put once in Ray's
   object store;
2. starts W workers, Ray actors sized by what the stage declares (`StageSpec.needs`: CPUs,
   GPUs per worker, whether it calls an LLM), and feeds them buckets as they free up, so a
   slow bucket does not hold the others;
3. concatenates the buckets' tables in bucket order, merges their `info` and rejected
   rows; the runner then puts the rows in the same canonical order as the local engine.

Why actors and not Ray Data's `map_batches`: a stage is a function of whole tables (a
prompt's responses, its pairs), not of a batch of rows of one table, and a worker must
keep what is expensive to start (a llama.cpp server, a reward model, a vLLM engine, an
HTTP pool) across buckets. A pool of long-lived actors is what `map_batches` itself runs
callable classes on; used directly it has no streaming executor to start (a first
`map_batches` over 10k rows takes about 5 s here) and keeps bucket results in order.

Failures: actors restart after their process dies and the call they were running is
retried (`max_restarts`, `max_task_retries`); the driver keeps one result per bucket,
so a retried bucket never gives duplicate rows. The completion cache lives in the shared
folder (`shared_dir`, on shared storage for a multi-node cluster): each worker writes its
own segment of it and the driver folds the segments in before and after every stage
(`helpsteer.llm.segments`), so a re-run after the driver died sends no finished request
again.

LLM admission: with W workers each client gets 1/W of the stage's `max_in_flight`, so
the bound the config sets holds for the whole cluster (`helpsteer.llm.shared`).

Progress: workers report their bars to a small actor; the driver sums them by bar and
shows them with the local engine's progress bars, plus one bar of finished buckets.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from helpsteer.partition import SHARD_KEY, keyed, keyed_names, merge_info, split_by_bucket
from helpsteer.pipeline import (
    Needs,
    PipelineError,
    PlannedStage,
    StageContext,
    Tables,
    get_stage,
)
from helpsteer.progress import Reporter

INSTALL_HINT = "the Ray engine needs the `ray` extra: pip install 'helpsteer-workbench[ray]'"


class RayConfig(BaseModel):
    """`[ray]` in a build config; every key also `--set ray.KEY=VALUE`."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="Cluster to join ('auto', 'ray://host:10001', host:port); none = start a "
        "local cluster for this run.",
    )
    workers: int | None = Field(
        None, ge=1, description="Workers per row-wise stage; default: as many as fit."
    )
    partitions: int | None = Field(
        None,
        ge=1,
        description="Buckets of prompt_id per stage; default 2 x workers (more balance "
        "load and make a retried bucket smaller; each bucket ends with a drain of its "
        "requests in flight).",
    )
    num_cpus: float | None = Field(
        None, gt=0, description="CPUs per worker, overriding what the stage declares."
    )
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per worker, overriding what the stage declares."
    )
    shared_dir: str | None = Field(
        None,
        description="Folder every node can read and write (shared storage); workers keep "
        "their completion cache there. Default: the output folder, right on one node.",
    )
    local_cpus: int | None = Field(
        None, ge=1, description="CPUs of the local cluster started when no address is given."
    )
    max_retries: int = Field(3, ge=0, description="Restarts of a worker whose process died.")


@dataclass
class EngineStats:
    """What the manifest records about the engine."""

    start_s: float = 0.0
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"engine": "ray", "start_s": round(self.start_s, 3), "stages": self.stages}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PipelineError(INSTALL_HINT) from None
    return ray


class RayEngine:
    """Runs row-wise stages on a Ray cluster; `close()` leaves a cluster it joined running
    and stops one it started."""

    name: Literal["ray"] = "ray"

    def __init__(self, config: RayConfig, out_dir: Path, reporter: Reporter):
        self.config = config
        self.reporter = reporter
        self.shared_dir = Path(config.shared_dir or out_dir).resolve()
        self.stats = EngineStats()
        self._ray = _import_ray()
        self._started_here = False
        self._hub = None
        self._hub_name = f"hs-progress-{os.getpid()}-{time.time_ns()}"
        self._pools: dict[tuple, list[Any]] = {}
        self._cache_dirs: set[Path] = set()

    # -- cluster --------------------------------------------------------------------------

    def start(self) -> RayEngine:
        ray = self._ray
        started = time.perf_counter()
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": "WARNING",
                "log_to_driver": True,
            }
            if self.config.address:
                options["address"] = self.config.address
            elif self.config.local_cpus:
                options["num_cpus"] = self.config.local_cpus
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.config.address or "a local cluster"
                raise PipelineError(f"ray: cannot start or join {where}: {exc}") from None
            self._started_here = True
        self._hub = _hub_class(ray).options(name=self._hub_name).remote()
        self.stats.start_s = time.perf_counter() - started
        resources = ray.cluster_resources()
        self.reporter.note(
            f"[dim]ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
            f"started in {self.stats.start_s:.1f}s[/dim]"
        )
        return self

    def close(self) -> None:
        for actor in [a for pool in self._pools.values() for a in pool]:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._pools.clear()
        self._fold(sorted(self._cache_dirs), remove=True)
        if self._hub is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(self._hub)
            self._hub = None
        if self._started_here:
            self._ray.shutdown()
            self._started_here = False

    def __enter__(self) -> RayEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one stage -----------------------------------------------------------------------

    def accepts(self, planned: PlannedStage, tables: Tables) -> bool:
        """Whether the stage has prompts to split: some keyed table with rows, and the
        table it names (its `table` option) keyed too."""
        names = keyed_names(tables)
        if not any(tables[n].height for n in names):
            return False
        wanted = getattr(planned.config, "table", None)
        if wanted == "auto":
            wanted = "preference" if "preference" in tables else "responses"
        if isinstance(wanted, str) and wanted in tables and wanted not in names:
            self.reporter.note(
                f"[dim]{planned.name}: table {wanted!r} has no {SHARD_KEY}; runs on the "
                "driver[/dim]"
            )
            return False
        return True

    def needs(self, planned: PlannedStage) -> Needs:
        declared = planned.spec.needs_for(planned.config)
        cpus, gpus = self.config.num_cpus, self.config.num_gpus
        return Needs(
            num_cpus=declared.num_cpus if cpus is None else cpus,
            num_gpus=declared.num_gpus if gpus is None else gpus,
            llm=declared.llm,
        )

    def workers_for(self, needs: Needs) -> int:
        if self.config.workers:
            return self.config.workers
        resources = self._ray.cluster_resources()
        if needs.num_gpus > 0:
            fit = resources.get("GPU", 0) / needs.num_gpus
            if fit < 1:
                raise PipelineError(
                    f"ray: the stage needs {needs.num_gpus:g} GPU(s) per worker and the "
                    f"cluster has {resources.get('GPU', 0):g}"
                )
        else:
            fit = resources.get("CPU", 1) / max(needs.num_cpus, 1e-6)
        return max(1, math.floor(fit))

    def run_stage(
        self, planned: PlannedStage, tables: Tables, ctx: StageContext
    ) -> dict[str, pl.DataFrame | None]:
        needs = self.needs(planned)
        workers = self.workers_for(needs)
        count = self.config.partitions or 2 * workers
        parts, shared = self._split(tables, count)
        todo = [i for i, part in enumerate(parts) if any(f.height for f in part.values())]
        workers = min(workers, len(todo))
        if not any(self._pools.values()):
            # No worker alive: fold in and delete what a driver that died left behind.
            self._fold(self._caches(planned), remove=True)
        started = time.perf_counter()
        actors = self._pool(needs, workers)
        self._ray.get([actor.pid.remote() for actor in actors])
        ready_s = time.perf_counter() - started
        job = {
            "stage": planned.spec.name,
            "name": planned.name,
            "config": planned.config.model_dump(mode="json"),
            "seed": ctx.seed,
            "out_dir": str(self.shared_dir),
            "run_info": ctx.run_info,
            "shared": shared,
            "in_flight_share": workers if needs.llm else 1,
        }
        caches = self._caches(planned)
        self._fold(caches)
        try:
            results, first_s = self._dispatch(actors, job, parts, todo, planned.name)
        finally:
            self._fold(caches)
        ctx.info.update(merge_info([r["info"] for r in results.values()]))
        for index in sorted(results):
            ctx.rejected.extend(results[index]["rejected"])
        self.stats.stages[planned.name] = {
            "workers": workers,
            "partitions": count,
            "num_cpus": needs.num_cpus,
            "num_gpus": needs.num_gpus,
            "workers_start_s": round(ready_s, 3),
            "run_s": round(time.perf_counter() - started - ready_s, 3),
            "first_result_s": round(first_s, 3),
        }
        return _gather([results[i]["tables"] for i in sorted(results)])

    def _caches(self, planned: PlannedStage) -> list[Path]:
        """The completion-cache folders the stage's workers write (segments to fold)."""
        from helpsteer.llm.config import LLMConfig

        found = [c for c in _walk(planned.config) if isinstance(c, LLMConfig)]
        default = self.shared_dir / ".llm-cache"
        return sorted({Path(c.cache_dir) if c.cache_dir else default for c in found})

    def _fold(self, caches: list[Path], remove: bool = False) -> None:
        from helpsteer.llm.segments import compact

        self._cache_dirs.update(caches)
        for folder in caches:
            compact(folder, remove=remove)

    def _split(self, tables: Tables, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        names = set(keyed_names(tables))
        parts: list[dict[str, Any]] = [{} for _ in range(count)]
        shared: dict[str, Any] = {}
        for name in tables:
            if name in names:
                for i, piece in enumerate(split_by_bucket(tables[name], count)):
                    parts[i][name] = piece
            else:
                shared[name] = self._ray.put(tables[name])
        return parts, shared

    def _pool(self, needs: Needs, workers: int) -> list[Any]:
        """Workers of this shape, kept for the next stages while they need the same shape:
        their LLM clients, local servers and models stay up. A stage of another shape
        first frees the cluster of the old pool."""
        key = (needs.num_cpus, needs.num_gpus)
        for old in [k for k in self._pools if k != key]:
            for actor in self._pools.pop(old):
                with contextlib.suppress(Exception):
                    self._ray.kill(actor)
        pool = self._pools.setdefault(key, [])
        options = {
            "num_cpus": needs.num_cpus,
            "num_gpus": needs.num_gpus,
            "max_restarts": self.config.max_retries,
            "max_task_retries": self.config.max_retries,
        }
        worker_class = _worker_class(self._ray)
        while len(pool) < workers:
            pool.append(worker_class.options(**options).remote(self._hub_name))
        return pool[:workers]

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers, as they registered (for tests and tooling)."""
        return self._ray.get(self._hub.pids.remote())

    def _dispatch(self, actors, job, parts, todo, label):
        """Keep every worker busy with one bucket until all are done; returns the results
        by bucket and the seconds to the first result."""
        ray = self._ray
        job_ref = ray.put(job)
        queue = list(todo)
        running: dict[Any, tuple[int, Any]] = {}
        results: dict[int, dict[str, Any]] = {}
        started, first = time.perf_counter(), None

        def submit(actor) -> None:
            index = queue.pop(0)
            ref = actor.run.remote(job_ref, index, ray.put(parts[index]))
            running[ref] = (index, actor)

        with _DriverBars(self.reporter, self._hub, f"{label}: buckets", len(todo)) as bars:
            for actor in actors:
                if queue:
                    submit(actor)
            while running:
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                bars.refresh()
                for ref in done:
                    index, actor = running.pop(ref)
                    try:
                        results[index] = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        cause = getattr(exc, "cause", None)
                        why = cause if isinstance(cause, PipelineError) else exc
                        raise PipelineError(f"{label}: bucket {index} failed: {why}") from None
                    first = first if first is not None else time.perf_counter() - started
                    bars.bucket_done()
                    if queue:
                        submit(actor)
        return results, first or 0.0


def _walk(value: Any):
    """Every object inside a (pydantic) config: models, list items, dict values."""
    yield value
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


def _gather(parts: list[dict[str, pl.DataFrame | None]]) -> dict[str, pl.DataFrame | None]:
    """One table per name from the buckets' tables: keyed ones concatenated in bucket
    order; a table without prompt_id that every bucket returned the same is kept once."""
    names = list(dict.fromkeys(n for p in parts for n in p))
    out: dict[str, pl.DataFrame | None] = {}
    for name in names:
        # None from one bucket means "nothing here", not "drop the table".
        frames = [p[name] for p in parts if p.get(name) is not None]
        if not frames:
            out[name] = None
        elif not keyed(frames[0]) and all(f.equals(frames[0]) for f in frames[1:]):
            out[name] = frames[0]
        else:
            out[name] = pl.concat(frames, how="diagonal_relaxed")
    return out


class _DriverBars:
    """The driver's bars: one of finished buckets, and the workers' bars summed by name."""

    def __init__(self, reporter: Reporter, hub, label: str, total: int):
        self.reporter, self.hub, self.label, self.total = reporter, hub, label, total
        self._stack = contextlib.ExitStack()
        self._bars: dict[str, Any] = {}
        self._started = time.perf_counter()
        self._pending = None

    def __enter__(self) -> _DriverBars:
        import ray

        ray.get(self.hub.reset.remote())  # the last stage's bars are not this one's
        self._buckets = self._stack.enter_context(self.reporter.task(self.label, self.total))
        return self

    def bucket_done(self) -> None:
        self._buckets.advance(1)

    def refresh(self) -> None:
        if self.reporter.quiet:
            return
        import ray

        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return
            self._show(ray.get(self._pending))
        self._pending = self.hub.snapshot.remote()

    def _show(self, snapshot: dict[str, tuple[float, float]]) -> None:
        elapsed = max(time.perf_counter() - self._started, 1e-6)
        for description, (total, completed) in snapshot.items():
            bar = self._bars.get(description)
            if bar is None:
                bar = self._stack.enter_context(self.reporter.task(description, total))
                self._bars[description] = bar
            bar.update(
                total=total,
                completed=completed,
                description=f"{description} {completed / elapsed:.1f}/s",
            )

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            if self._pending is not None and not self.reporter.quiet:
                import ray

                self._show(ray.get(self._pending, timeout=5))
        self._stack.close()


class WorkerReporter(Reporter):
    """A worker's reporter: bars go to the driver through the progress hub."""

    FLUSH_S = 0.5

    def __init__(self, hub, bucket: int):
        super().__init__(quiet=True)
        self.hub, self.bucket = hub, bucket
        self._seq = 0

    def note(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None):
        self._seq += 1
        bar = _HubTask(self.hub, (self.bucket, self._seq), description, total or 0.0)
        try:
            yield bar
            if total is not None:
                bar.completed = float(total)
        finally:
            bar.flush(force=True)


class _HubTask:
    def __init__(self, hub, key, description: str, total: float):
        self.hub, self.key, self.description, self.total = hub, key, description, total
        self.completed = 0.0
        self._last = 0.0
        self.flush(force=True)

    def advance(self, n: float = 1) -> None:
        self.completed += n
        self.flush()

    def update(self, **fields: Any) -> None:
        if "total" in fields and fields["total"] is not None:
            self.total = float(fields["total"])
        if "completed" in fields and fields["completed"] is not None:
            self.completed = float(fields["completed"])
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= WorkerReporter.FLUSH_S:
            self._last = now
            self.hub.report.remote(self.key, self.description, self.total, self.completed)


def run_bucket(job: dict[str, Any], index: int, frames: dict[str, pl.DataFrame], hub):
    """What a worker does with one bucket: the stage function on its tables."""
    import ray

    spec = get_stage(job["stage"])
    config = spec.config.model_validate(job["config"])
    tables = Tables()
    for name, ref in job["shared"].items():
        tables.set(name, ray.get(ref))
    for name, frame in frames.items():
        tables.set(name, frame)
    ctx = StageContext(
        name=job["name"],
        out_dir=Path(job["out_dir"]),
        seed=job["seed"],
        reporter=WorkerReporter(hub, index),
        run_info=job["run_info"],
    )
    produced = spec.fn(ctx, tables, config) or {}
    return {"tables": dict(produced), "info": ctx.info, "rejected": ctx.rejected}


_CLASSES: dict[str, Any] = {}


def _worker_class(ray):
    if "worker" not in _CLASSES:

        class StageWorker:
            """One worker of a row-wise stage; keeps its LLM clients and models between
            buckets (process-wide clients, `helpsteer.llm.shared`)."""

            def __init__(self, hub_name: str):
                from helpsteer.llm.segments import become_writer

                become_writer()  # this process's own file in every completion cache
                self.hub = ray.get_actor(hub_name)
                self.hub.register.remote(os.getpid())

            def run(self, job, index, frames):
                from helpsteer.llm.shared import set_in_flight_share

                set_in_flight_share(job["in_flight_share"])
                return run_bucket(job, index, frames, self.hub)

            def pid(self) -> int:
                return os.getpid()

        _CLASSES["worker"] = ray.remote(StageWorker)
    return _CLASSES["worker"]


def _hub_class(ray):
    if "hub" not in _CLASSES:

        class ProgressHub:
            """Bars reported by workers, summed by description for the driver."""

            def __init__(self):
                self.bars: dict[Any, tuple[str, float, float]] = {}
                self.workers: list[int] = []

            def register(self, pid: int) -> None:
                self.workers.append(pid)

            def pids(self) -> list[int]:
                return list(self.workers)

            def reset(self) -> None:
                """A new stage: its bars start from nothing."""
                self.bars = {}

            def report(self, key, description: str, total: float, completed: float) -> None:
                self.bars[tuple(key)] = (description, total, completed)

            def snapshot(self) -> dict[str, tuple[float, float]]:
                summed: dict[str, list[float]] = {}
                for description, total, completed in self.bars.values():
                    entry = summed.setdefault(description, [0.0, 0.0])
                    entry[0] += total
                    entry[1] += completed
                return {d: (t, c) for d, (t, c) in summed.items()}

        _CLASSES["hub"] = ray.remote(num_cpus=0)(ProgressHub)
    return _CLASSES["hub"]
