"""vLLM backend details found by running it for real (no vLLM needed here)."""

from __future__ import annotations

from types import SimpleNamespace

from helpsteer.llm import ChatRequest
from helpsteer.llm.vllm_backend import completion_from_output, sampling_kwargs, shutdown_engine

HI = [{"role": "user", "content": "hi"}]


def test_unset_max_tokens_is_sent_as_none():
    # SamplingParams' own default is 16 tokens; None lets vLLM run to the context length.
    assert sampling_kwargs(ChatRequest(messages=HI))["max_tokens"] is None
    assert sampling_kwargs(ChatRequest(messages=HI, max_tokens=5))["max_tokens"] == 5


def test_logprobs_leave_out_tokens_past_the_text():
    lp = SimpleNamespace
    sample = SimpleNamespace(
        index=0,
        text="ab",
        finish_reason="stop",
        token_ids=[7, 8, 2],
        logprobs=[
            {7: lp(logprob=-0.1, decoded_token="a")},
            {8: lp(logprob=-0.2, decoded_token="b")},
            {2: lp(logprob=-0.3, decoded_token="<|im_end|>")},
        ],
    )
    output = SimpleNamespace(outputs=[sample], prompt_token_ids=[1])
    done = completion_from_output(output, top_logprobs=1, want_logprobs=True)
    assert [t.token for t in done.logprobs[0]] == ["a", "b"]
    assert done.usage.completion_tokens == 3


def test_shutdown_engine_stops_the_engine_core():
    stopped = []
    core = SimpleNamespace(shutdown=lambda: stopped.append("core"))
    shutdown_engine(SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core)))
    shutdown_engine(SimpleNamespace(shutdown=lambda: stopped.append("llm")))
    shutdown_engine(SimpleNamespace(llm_engine=SimpleNamespace()))  # nothing to stop
    assert stopped == ["core", "llm"]
