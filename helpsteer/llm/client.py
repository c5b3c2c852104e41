"""LLMClient: caching, admission, JSON validation and accounting shared by every backend.

A backend implements `_call(request)`: one request (its own retries included) to one
Completion. The client adds the rest: the on-disk cache (looked up before and written
right after each request), a bound on requests in flight, topping up samples when a
server returns fewer than `n`, schema validation with bounded repair, statistics, and
sync wrappers that run on a private event-loop thread.

Whatever a backend or server does, `complete_many` returns one Completion per request:
a failure is that request's error Completion, never an exception that ends the batch.
A permanent failure is recorded in the cache and returned (cached, same reason) on the
next run unless the config says `retry_failed`; an empty answer counts as a failure
unless the request says `allow_empty`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from helpsteer.llm import schema as json_schema
from helpsteer.llm.cache import open_cache
from helpsteer.llm.config import LLMConfig
from helpsteer.llm.types import ChatRequest, Completion, Usage, as_request, empty_sample

if TYPE_CHECKING:
    from helpsteer.progress import Reporter

log = logging.getLogger(__name__)

RECORDED_HINT = "recorded as failed by an earlier run; retry_failed (--retry-failed) asks again"


@dataclass
class LLMStats:
    """Counts for one client's lifetime. `requests` counts ChatRequests asked for."""

    requests: int = 0
    cache_hits: int = 0
    cached_failures: int = 0
    calls: int = 0
    retries: int = 0
    errors: int = 0
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LLMClient:
    backend_name = "base"

    def __init__(self, config: LLMConfig):
        self.config = config
        self.stats = LLMStats()
        self.cache = open_cache(config.cache_dir) if config.cache_dir else None
        self._semaphores: dict[int, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._closed = False

    @property
    def model_name(self) -> str:
        return self.config.model

    # -- what a backend provides -------------------------------------------------------

    async def _call(self, request: ChatRequest) -> Completion:
        raise NotImplementedError

    async def _aclose(self) -> None:
        """Release per-loop resources (HTTP connections) of the running loop."""

    def _shutdown(self) -> None:
        """Release process-level resources (a server subprocess, a model)."""

    # -- public API --------------------------------------------------------------------

    async def complete_many(
        self,
        requests: Sequence[ChatRequest | dict[str, Any]],
        reporter: Reporter | None = None,
    ) -> list[Completion]:
        """One Completion per request, in order; a request that fails after retries
        yields a Completion with `error` set instead of raising."""
        items = [as_request(r) for r in requests]
        for item in items:
            if item.json_schema is not None:
                json_schema.check_schema(item.json_schema)
        started = time.perf_counter()
        try:
            if reporter is None:
                return await self._run_all(items, None)
            with reporter.task(f"LLM {self.backend_name}:{self.model_name}", len(items)) as bar:
                return await self._run_all(items, bar)
        finally:
            self.stats.wall_s += time.perf_counter() - started

    def complete(self, request: ChatRequest | dict[str, Any]) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(
        self,
        requests: Sequence[ChatRequest | dict[str, Any]],
        reporter: Reporter | None = None,
    ) -> list[Completion]:
        """Blocking `complete_many`; safe whether or not an event loop runs in this thread."""
        return self._run_sync(self.complete_many(requests, reporter))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(10)
        self._shutdown()
        if self.cache is not None:
            self.cache.close()

    async def aclose(self) -> None:
        await self._aclose()
        self.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------

    async def _run_all(self, items: list[ChatRequest], bar) -> list[Completion]:
        # As many workers as requests may be in flight pull the requests in order, rather
        # than one task per request: with 5,000 tasks made at once the first wave's
        # answers waited ~70 ms while the loop ran every other task's first step (cache
        # key, semaphore queue), and a million-request batch held a million tasks.
        results: list[Completion] = [None] * len(items)  # type: ignore[list-item]
        pending = iter(enumerate(items))

        async def worker() -> None:
            for i, item in pending:
                results[i] = await self._complete_one(item)
                if bar is not None:
                    bar.advance()

        await asyncio.gather(*(worker() for _ in range(min(len(items), self.config.in_flight))))
        return results

    def _semaphore(self) -> asyncio.Semaphore:
        key = id(asyncio.get_running_loop())
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(self.config.in_flight)
        return self._semaphores[key]

    async def _complete_one(self, request: ChatRequest) -> Completion:
        self.stats.requests += 1
        key = request.cache_key(self.backend_name, self.model_name)
        cached = self._from_cache(key, request)
        if cached is not None:
            return cached
        started = time.perf_counter()
        result = await self._generate_safely(request)
        result.latency_s = time.perf_counter() - started
        self._record(key, result)
        return result

    def _from_cache(self, key: str, request: ChatRequest) -> Completion | None:
        """A usable cached success, a recorded failure (unless retry_failed), or None."""
        if self.cache is None:
            return None
        hit = self.cache.get(key)
        # An empty answer cached by an older version, or for a caller that allowed it,
        # is not an answer for this request.
        if hit is not None and (request.allow_empty or empty_sample(hit.texts) is None):
            self.stats.cache_hits += 1
            return hit.model_copy(update={"cached": True, "latency_s": 0.0})
        if self.config.retry_failed:
            return None
        reason = self.cache.failure(key)
        if reason is None:
            return None
        self.stats.cache_hits += 1
        self.stats.cached_failures += 1
        self.stats.errors += 1
        return Completion(error=f"{reason} ({RECORDED_HINT})", cached=True, permanent=True)

    def _record(self, key: str, result: Completion) -> None:
        if result.error is not None:
            self.stats.errors += 1
            if result.permanent and self.cache is not None:
                self.cache.put_failed(key, self.model_name, result.error)
        elif self.cache is not None:
            self.cache.put(key, self.model_name, result)

    async def _generate_safely(self, request: ChatRequest) -> Completion:
        # The backends turn every failure they know into an error Completion; this is the
        # net under them, so a bug or an answer nobody foresaw costs one row, not the run.
        try:
            return await self._generate(request)
        except Exception as err:  # noqa: BLE001 - see above
            log.warning("LLM request failed unexpectedly", exc_info=True)
            return Completion(error=f"unexpected {type(err).__name__}: {err}")

    async def _generate(self, request: ChatRequest) -> Completion:
        result = await self._admitted(request)
        if result.error is None and len(result.texts) < request.n:
            result = await self._top_up(request, result)
        if result.error is None and request.json_schema is not None:
            result = await self._validate_json(request, result)
        if result.error is None and not request.allow_empty:
            # The openai backend already retried empty answers; this covers the others.
            empty = empty_sample(result.texts)
            if empty is not None:
                return Completion(
                    error=f"empty completion (sample {empty})", usage=result.usage, permanent=True
                )
        return result

    async def _admitted(self, request: ChatRequest) -> Completion:
        async with self._semaphore():
            result = await self._call(request)
        self._account(result.usage)
        return result

    async def _top_up(self, request: ChatRequest, first: Completion) -> Completion:
        # Some servers (llama.cpp) return one choice whatever `n` says; ask again for the
        # rest, shifting the seed so seeded samples still differ.
        merged = first
        while len(merged.texts) < request.n:
            seed = None if request.seed is None else request.seed + len(merged.texts)
            more = await self._admitted(
                request.model_copy(update={"n": request.n - len(merged.texts), "seed": seed})
            )
            if more.error is not None:
                return more
            if not more.texts:
                return Completion(error="the server returned no choices", usage=merged.usage)
            merged = _merge(merged, more)
        return merged

    async def _validate_json(self, request: ChatRequest, result: Completion) -> Completion:
        schema = request.json_schema
        assert schema is not None
        texts, reasons, parsed = list(result.texts), list(result.finish_reasons), []
        usage = result.usage.model_copy()
        for i, text in enumerate(texts):
            obj, problem = json_schema.validate(text, schema)
            tries = 0
            while problem is not None and tries < self.config.json_repair_retries:
                tries += 1
                self.stats.repairs += 1
                messages = json_schema.repair_messages(request.messages, text, problem, schema)
                fixed = await self._admitted(
                    request.model_copy(update={"messages": messages, "n": 1, "logprobs": False})
                )
                if fixed.error is not None:
                    return fixed
                usage = _add_usage(usage, fixed.usage)
                text, reasons[i] = fixed.text, fixed.finish_reasons[0]
                texts[i] = text
                obj, problem = json_schema.validate(text, schema)
            if problem is not None:
                return Completion(
                    texts=texts,
                    finish_reasons=reasons,
                    usage=usage,
                    error=f"sample {i}: output does not match the JSON schema after "
                    f"{self.config.json_repair_retries} repair retries: {problem}",
                    permanent=True,
                )
            parsed.append(obj)
        return result.model_copy(
            update={"texts": texts, "finish_reasons": reasons, "parsed": parsed, "usage": usage}
        )

    def _account(self, usage: Usage) -> None:
        self.stats.prompt_tokens += usage.prompt_tokens
        self.stats.completion_tokens += usage.completion_tokens
        price = self.config.prices.get(self.model_name)
        if price is not None:
            self.stats.cost_usd += (
                usage.prompt_tokens * price.prompt_per_1k
                + usage.completion_tokens * price.completion_per_1k
            ) / 1000

    def _run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("this LLM client is closed")
        loop = self._background_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        # One private loop for all sync calls: HTTP connection pools are bound to the loop
        # that opened them, so a fresh asyncio.run() per call would strand them.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(
                target=self._loop.run_forever, name="llm-client-loop", daemon=True
            )
            self._loop_thread.start()
        return self._loop


def answered(
    client: Any,
    requests: Sequence[ChatRequest],
    reporter: Reporter | None,
    error: type[Exception],
    prefix: str = "",
) -> list[Completion]:
    """`client.complete_batch(requests)`, raising `error` (the caller's user-facing kind)
    when every request failed and none by its own fault (no permanent failure): the
    server was down or kept failing. Such a run has nothing to keep, every row would only
    go to rejected.jsonl and the exit status would say it went well; the failures are not
    cached, so the next run asks again."""
    done = client.complete_batch(requests, reporter=reporter) if requests else []
    if done and all(r.error is not None and not r.permanent for r in done):
        raise error(
            f"{prefix}all {len(done)} LLM requests failed; is the server running and "
            f"reachable? the first: {done[0].error}"
        )
    return done


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
    )


def _merge(a: Completion, b: Completion) -> Completion:
    logprobs = None
    if a.logprobs is not None and b.logprobs is not None:
        logprobs = a.logprobs + b.logprobs
    return Completion(
        texts=a.texts + b.texts,
        finish_reasons=a.finish_reasons + b.finish_reasons,
        logprobs=logprobs,
        usage=_add_usage(a.usage, b.usage),
    )
