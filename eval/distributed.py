"""Benchmark scoring on a Ray cluster: `hs eval rewardbench/rm-bench/judgebench --engine ray`.

The benchmark's items are split into buckets by a stable hash of their prompt, with the
bucket function `hs build-dataset`'s Ray engine and `--shard` use
(`helpsteer.partition.bucket`). Each worker, a Ray actor sized like the judge needs (a
GPU for a reward model or vLLM on `cuda`, one CPU otherwise), builds the same scorer the
local engine would (`eval.scorers.make_scorer`) once and scores buckets as they come;
the driver puts the scores back in the benchmark's order. Items keep their benchmark
numbering in every bucket, so the seeded pair orders of the LLM and GenRM judges, and so
their verdicts, are the local engine's; an LLM judge's in-flight bound is split between
the workers. Reward-model scores equal the local run's to float rounding (buckets batch
the rows differently, so their padding differs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.common import EvalError
from eval.scorers import PairScores, regroup


def _needs(spec: str, options: dict[str, Any]) -> tuple[float, float]:
    """(CPUs, GPUs) per worker for a judge spec."""
    kind = spec.partition(":")[0]
    if kind == "reward" and str(options.get("device", "cpu")).startswith("cuda"):
        return 1.0, 1.0
    if kind in ("llm", "genrm") or kind.startswith("genrm@"):
        rest = spec.partition(":")[2]
        if rest.startswith("vllm"):
            return 1.0, 1.0
    return 1.0, 0.0


class RayScorer:
    """A scorer with the local scorers' interface whose work runs on Ray actors."""

    def __init__(self, spec: str, options: dict[str, Any], ray_options: dict[str, Any]):
        from helpsteer.pipeline import PipelineError
        from helpsteer.ray_engine import RayConfig, RayEngine

        self.spec, self.options = spec, options
        self.config = RayConfig.model_validate(ray_options)
        try:
            self._engine = RayEngine(self.config, options.get("cache_dir") or ".", _Quiet())
            self._engine.start()
        except PipelineError as exc:
            raise EvalError(str(exc)) from None
        self._ray = self._engine._ray
        cpus, gpus = _needs(spec, options)
        if self.config.num_gpus is not None:
            gpus = self.config.num_gpus
        self.workers = self._workers(cpus, gpus)
        self.count = self.config.partitions or 2 * self.workers
        share = self.workers if spec.partition(":")[0] != "reward" else 1
        worker = _worker_class(self._ray).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=self.config.max_retries,
            max_task_retries=self.config.max_retries,
        )
        self._caches = [Path(options["cache_dir"])] if options.get("cache_dir") else []
        _fold(self._caches)  # what an earlier run that died left in segments
        self._actors = [worker.remote(spec, options, share) for _ in range(self.workers)]
        self.kind, self.name = self._ray.get(self._actors[0].describe.remote())

    def _workers(self, cpus: float, gpus: float) -> int:
        from helpsteer.pipeline import Needs, PipelineError

        try:
            return self._engine.workers_for(Needs(num_cpus=cpus, num_gpus=gpus))
        except PipelineError as exc:
            raise EvalError(str(exc)) from None

    def _buckets(self, prompts: Sequence[str]) -> list[list[int]]:
        from helpsteer.partition import bucket

        parts: list[list[int]] = [[] for _ in range(self.count)]
        for i, prompt in enumerate(prompts):
            parts[bucket(prompt, self.count)].append(i)
        return [p for p in parts if p]

    def pairs(self, prompts, chosen, rejected, reporter: Any = None, ids=None) -> PairScores:
        ids = list(range(len(prompts))) if ids is None else list(ids)
        calls = [
            (idx, ("pairs", [prompts[i] for i in idx], [chosen[i] for i in idx],
                   [rejected[i] for i in idx], [ids[i] for i in idx]))
            for idx in self._buckets(prompts)
        ]  # fmt: skip
        out = PairScores([0.0] * len(prompts), [None] * len(prompts), [None] * len(prompts))
        raw: list[Any] = [None] * len(prompts)
        for idx, part in self._map(calls, reporter, "pairs"):
            for j, i in enumerate(idx):
                out.results[i], out.chosen[i], out.rejected[i] = (
                    part.results[j],
                    part.chosen[j],
                    part.rejected[j],
                )
                if part.raw is not None:
                    raw[i] = part.raw[j]
        out.raw = raw if any(r is not None for r in raw) else None
        return out

    def completions(self, prompts, answers, reporter: Any = None, ids=None) -> list[list[float]]:
        ids = list(range(len(prompts))) if ids is None else list(ids)
        calls = [
            (idx, ("completions", [prompts[i] for i in idx], [answers[i] for i in idx],
                   [ids[i] for i in idx]))
            for idx in self._buckets(prompts)
        ]  # fmt: skip
        flat: list[list[float]] = [[] for _ in prompts]
        for idx, part in self._map(calls, reporter, "completions"):
            for j, i in enumerate(idx):
                flat[i] = part[j]
        return regroup([s for group in flat for s in group], answers)

    def _map(self, calls, reporter, label):
        """Run the bucket calls, one per worker at a time; yields (indices, result)."""
        title = f"{self.name}: {label} on {self.workers} Ray workers"
        task = reporter.task(title, len(calls)) if reporter is not None else None
        with task if task is not None else contextlib.nullcontext() as bar:
            for (idx, _), result in _keep_busy(
                self._ray,
                self._actors,
                calls,
                lambda actor, call: actor.call.remote(*call[1]),
                lambda call: f"{len(call[0])} items",
            ):
                if bar is not None:
                    bar.advance(1)
                yield idx, result

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        _fold(self._caches)
        self._engine.close()


def _keep_busy(ray, actors, calls, send, what, tick=None):
    """Give each actor one call at a time until every call is done; yields (call, result)
    in completion order. `send(actor, call)` starts a call; `what(call)` names it in the
    error when Ray cannot finish it (after its own retries); `tick` runs while waiting."""
    queue = list(calls)
    running: dict[Any, tuple[Any, Any]] = {}

    def submit(actor) -> None:
        call = queue.pop(0)
        running[send(actor, call)] = (call, actor)

    for actor in actors:
        if queue:
            submit(actor)
    while running:
        done, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
        if tick is not None:
            tick()
        for ref in done:
            call, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise EvalError(f"ray: a bucket of {what(call)} failed: {exc}") from None
            if queue:
                submit(actor)
            yield call, result


def _fold(caches: list[Path], remove: bool = True) -> None:
    """Segments into the main cache; `remove` only while no worker is alive."""
    from helpsteer.llm.segments import compact

    for folder in caches:
        compact(folder, remove=remove)


class _Quiet:
    """The engine's reporter here: the benchmark command shows its own progress."""

    quiet = True

    def note(self, message: str) -> None:
        pass


_CLASSES: dict[str, Any] = {}


def _worker_class(ray):
    if "worker" not in _CLASSES:

        class ScorerWorker:
            """Holds one scorer (a loaded reward model, an LLM client) across buckets."""

            def __init__(self, spec: str, options: dict[str, Any], share: int):
                from eval.scorers import make_scorer
                from helpsteer.llm.segments import become_writer

                become_writer()  # this process's own file in the completion cache

                self.scorer = make_scorer(spec, in_flight_share=share, **options)

            def describe(self) -> tuple[str, str]:
                return self.scorer.kind, self.scorer.name

            def call(self, method: str, *args):
                *data, ids = args
                return getattr(self.scorer, method)(*data, None, ids)

        _CLASSES["worker"] = ray.remote(ScorerWorker)
    return _CLASSES["worker"]


# -- LLM requests on Ray: MT-Bench, AEGIS ---------------------------------------------------


class RayLLMSession:
    """One Ray actor pool that answers the chat requests of every LLM a run uses.

    MT-Bench and AEGIS call `complete_batch` on a model client and a judge client; here
    each call is split into buckets by a stable hash of the request (its cache key) and
    the buckets go to the pool's workers, which hold one client per LLM config
    (`helpsteer.llm.shared`, so a local llama.cpp server or a vLLM engine stays up across
    buckets and calls) and admit 1/W of the config's in-flight bound each. The model and
    the judge share the pool: two pools that each hold every CPU would wait on each
    other. Completions come back in request order, so the run is the local engine's;
    workers write their completions to per-worker cache segments, which the driver
    folds into the main cache after each call (and once at the start).
    """

    def __init__(self, ray_options: dict[str, Any], configs: Sequence[Any], cache_dir: Path):
        from helpsteer.pipeline import PipelineError, llm_needs
        from helpsteer.ray_engine import RayConfig, RayEngine

        self.config = RayConfig.model_validate(ray_options)
        self._caches = sorted({Path(c.cache_dir) for c in configs if c.cache_dir})
        try:
            self._engine = RayEngine(self.config, cache_dir, _Quiet())
            self._engine.start()
        except PipelineError as exc:
            raise EvalError(str(exc)) from None
        self._ray = self._engine._ray
        needs = llm_needs(*configs)
        gpus = needs.num_gpus if self.config.num_gpus is None else self.config.num_gpus
        cpus = self.config.num_cpus or 1.0
        self.workers = self._workers(cpus, gpus)
        self.count = self.config.partitions or 2 * self.workers
        _fold(self._caches)  # what an earlier run that died left in segments
        worker = _llm_worker_class(self._ray).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=self.config.max_retries,
            max_task_retries=self.config.max_retries,
        )
        self._actors = [worker.remote(self._engine._hub_name) for _ in range(self.workers)]

    def _workers(self, cpus: float, gpus: float) -> int:
        from helpsteer.pipeline import Needs, PipelineError

        try:
            return self._engine.workers_for(Needs(num_cpus=cpus, num_gpus=gpus))
        except PipelineError as exc:
            raise EvalError(str(exc)) from None

    def client(self, config: Any) -> RayLLMClient:
        return RayLLMClient(self, config)

    def complete(self, config: Any, requests: list[Any], reporter: Any) -> tuple[list, dict]:
        """Completions in request order, and the workers' LLM statistics summed."""
        from helpsteer.partition import bucket
        from helpsteer.ray_engine import _DriverBars

        parts: list[list[int]] = [[] for _ in range(self.count)]
        for i, request in enumerate(requests):
            parts[bucket(request.cache_key(config.backend, config.model), self.count)].append(i)
        calls = [idx for idx in parts if idx]
        out: list[Any] = [None] * len(requests)
        stats: dict[str, float] = {}
        config_json = config.model_dump_json()
        label = f"LLM {config.backend}:{config.model} on {self.workers} Ray workers: buckets"
        bars = _DriverBars(reporter, self._engine._hub, label, len(calls)) if reporter else None
        with bars if bars is not None else contextlib.nullcontext():
            for idx, (done, delta) in self._dispatch(config_json, requests, calls, bars):
                for j, i in enumerate(idx):
                    out[i] = done[j]
                for key, value in delta.items():
                    stats[key] = stats.get(key, 0) + value
        _fold(self._caches, remove=False)  # the next call's workers read these
        return out, stats

    def _dispatch(self, config_json, requests, calls, bars):
        def send(actor, call):
            number, idx = call
            part = [requests[i] for i in idx]
            return actor.complete.remote(config_json, part, number, self.workers)

        for (_, idx), result in _keep_busy(
            self._ray,
            self._actors,
            list(enumerate(calls)),
            send,
            lambda call: f"{len(call[1])} requests",
            bars.refresh if bars is not None else None,
        ):
            if bars is not None:
                bars.bucket_done()
            yield idx, result

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)
        self._actors = []
        _fold(self._caches)
        self._engine.close()


class RayLLMClient:
    """The part of `LLMClient` the benchmark runs use (`complete_batch`, `stats`), with
    the requests answered by a `RayLLMSession`'s workers."""

    backend_name = "ray"

    def __init__(self, session: RayLLMSession, config: Any):
        from helpsteer.llm.client import LLMStats

        self.session, self.config = session, config
        self.stats = LLMStats()

    @property
    def model_name(self) -> str:
        return self.config.model

    def complete_batch(self, requests, reporter: Any = None) -> list[Any]:
        import time

        from helpsteer.llm.types import as_request

        started = time.perf_counter()
        items = [as_request(r) for r in requests]
        done, delta = self.session.complete(self.config, items, reporter)
        for key, value in delta.items():
            if key != "wall_s":
                setattr(self.stats, key, getattr(self.stats, key) + value)
        self.stats.wall_s += time.perf_counter() - started
        return done

    def complete(self, request) -> Any:
        return self.complete_batch([request])[0]

    def close(self) -> None:
        """The session owns the workers and their clients."""


def _llm_worker_class(ray):
    if "llm" not in _CLASSES:

        class LLMWorker:
            """Answers buckets of chat requests with this process's client per config."""

            def __init__(self, hub_name: str):
                from helpsteer.llm.segments import become_writer

                become_writer()
                self.hub = ray.get_actor(hub_name)

            def complete(self, config_json: str, requests: list, bucket: int, share: int):
                from helpsteer.llm.config import LLMConfig
                from helpsteer.llm.shared import set_in_flight_share, shared_client
                from helpsteer.ray_engine import WorkerReporter

                set_in_flight_share(share)
                client = shared_client(LLMConfig.model_validate_json(config_json))
                before = client.stats.as_dict()
                done = client.complete_batch(requests, reporter=WorkerReporter(self.hub, bucket))
                after = client.stats.as_dict()
                return done, {k: after[k] - before[k] for k in after}

        _CLASSES["llm"] = ray.remote(LLMWorker)
    return _CLASSES["llm"]
