"""Odd server answers, empty completions and recorded failures: each is an error result
for its own request, never an exception out of the client, and a resume asks again only
what may succeed now."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from helpsteer.llm import ChatRequest, Completion, LLMConfig, make_client
from helpsteer.llm.cache import CompletionCache
from helpsteer.llm.client import LLMClient
from helpsteer.llm.response import parse_chat_response
from helpsteer.llm.testing import BODY_FAULTS, MALFORMED, FaultServer, answer
from helpsteer.llm.vllm_backend import completion_from_output

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}

# What the reason of each bad answer names (the part a user needs to see what was wrong).
EXPECTED = {
    "bad_usage": "usage: Input should be an object, got 'x'",
    "bad_usage_tokens": "usage.prompt_tokens",
    "bad_choice": "choices.0: Input should be an object, got 1",
    "no_choices": "choices: List should have at least 1 item",
    "no_choices_key": "choices: Field required",
    "null_message": "choices.0.message: Input should be an object, got None",
    "string_message": "choices.0.message",
    "null_content": "choice 0 has null message content",
    "list_content": "choices.0.message.content: Input should be a valid string",
    "bad_finish": "choices.0.finish_reason: Input should be a valid string, got 5",
    "no_index": "2 choices but not every one has an index",
    "bad_logprob": "choice 0 logprobs: content.0.logprob: Field required",
    "nan_logprob": "content.0.logprob: Input should be a finite number",
    "bad_top_logprobs": "content.0.top_logprobs",
    "json_list": "body: Input should be an object",
    "json_string": "body: Input should be an object",
    "empty": "empty completion (sample 0)",
    "malformed": "not JSON",
    "not_json": "not JSON",
    "not_utf8": "not JSON",
    "deep_json": "not JSON: recursion limit exceeded",
    "bad_framing": "connection failed",
}
LOGPROB_KINDS = {"bad_logprob", "nan_logprob", "bad_top_logprobs"}


def ask(text: str, **options) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **options)


def client_for(url: str, tmp_path=None, transport: str = "aiohttp", **options) -> LLMClient:
    return make_client(
        LLMConfig(
            backend="openai",
            model="test-model",
            base_urls=[url],
            backoff_base_s=0.001,
            backoff_max_s=0.002,
            cache_dir=tmp_path / "cache" if tmp_path is not None else None,
            extra={"transport": transport},
            **options,
        )
    )


def sent(server: FaultServer, prompt: str) -> int:
    return sum(r.prompt == prompt for r in server.requests)


def test_every_fault_kind_has_an_expected_reason():
    assert set(EXPECTED) == {*MALFORMED, *BODY_FAULTS, "bad_framing"}


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_a_bad_answer_is_retried_then_an_error_result(server, kind, transport):
    lp = {"logprobs": True, "top_logprobs": 1} if kind in LOGPROB_KINDS else {}
    server.plan_for("bad", kind, kind)
    server.plan_for("flaky", kind)
    requests = [ask("bad", **lp), ask("flaky", **lp), ask("good", **lp)]
    client = client_for(server.url, transport=transport, max_retries=1)

    async def run():
        async with client:
            return await client.complete_many(requests)

    bad, flaky, good = asyncio.run(run())
    assert bad.error is not None and "gave up after 2 tries" in bad.error
    assert EXPECTED[kind] in bad.error and not bad.texts
    assert flaky.ok and flaky.texts == ["echo: flaky"]
    assert good.ok and good.texts == ["echo: good"]
    assert sent(server, "bad") == 2 and sent(server, "flaky") == 2
    assert client.stats.errors == 1 and client.stats.retries == 2


def test_odd_logprobs_do_not_cost_an_answer_that_did_not_ask_for_them(server):
    server.plan_for("q", "bad_logprob")
    with client_for(server.url, max_retries=0) as client:
        done = client.complete(ask("q"))
    assert done.ok and done.texts == ["echo: q"] and done.logprobs is None


def test_one_bad_answer_among_30_prompts(server, tmp_path):
    prompts = [f"item {i}" for i in range(30)]
    server.plan_for("item 17", *["bad_usage"] * 3)
    with client_for(server.url, tmp_path, max_retries=2, max_in_flight=8) as client:
        done = client.complete_batch([ask(p) for p in prompts])
        assert client.cache is not None
        assert len(client.cache) == 29 and client.cache.failed_keys() == set()
    assert [d.ok for d in done] == [p != "item 17" for p in prompts]
    assert "usage" in done[17].error
    assert [d.text for d in done if d.ok] == [f"echo: {p}" for p in prompts if p != "item 17"]
    # a malformed answer is transient: the resume asks again, and only for that prompt
    before = len(server.requests)
    with client_for(server.url, tmp_path, max_retries=2) as client:
        again = client.complete_batch([ask(p) for p in prompts])
    assert all(d.ok for d in again) and sum(d.cached for d in again) == 29
    assert [r.prompt for r in server.requests[before:]] == ["item 17"]


def test_an_empty_answer_is_retried_and_not_cached_as_a_success(server, tmp_path):
    server.plan_for("once", "empty")
    server.plan_for("always", *["empty"] * 3)
    with client_for(server.url, tmp_path, max_retries=2) as client:
        once, always = client.complete_batch([ask("once"), ask("always")])
        assert client.cache is not None and len(client.cache) == 1
    assert once.ok and once.texts == ["echo: once"]
    assert "empty completion" in always.error and always.permanent
    # every try came back empty: that is the model's answer, recorded, not asked again
    with client_for(server.url, tmp_path) as client:
        resumed = client.complete(ask("always"))
    assert resumed.cached and "empty completion" in resumed.error
    assert "recorded as failed" in resumed.error and sent(server, "always") == 3


def test_an_empty_answer_is_kept_when_the_request_allows_it(tmp_path):
    with FaultServer(responder=lambda body: [""]) as srv:
        with client_for(srv.url, tmp_path, max_retries=3) as client:
            done = client.complete(ask("q", allow_empty=True))
            refused = client.complete(ask("q"))
        with client_for(srv.url, tmp_path) as client:
            again = client.complete(ask("q", allow_empty=True))
        assert done.ok and done.texts == [""] and again.cached and again.texts == [""]
        assert "empty completion" in refused.error
        assert len(srv.requests) == 1 + 4


def test_whitespace_is_an_answer_for_the_stage_to_judge(tmp_path):
    with FaultServer(responder=lambda body: [" \n"]) as srv:
        with client_for(srv.url, tmp_path) as client:
            done = client.complete(ask("q"))
        assert done.ok and done.texts == [" \n"] and len(srv.requests) == 1


def test_an_empty_answer_cached_by_an_older_version_is_asked_again(server, tmp_path):
    key = ask("q").cache_key("openai", "test-model")
    old = CompletionCache(tmp_path / "cache")
    old.put(key, "test-model", Completion(texts=[""], finish_reasons=["stop"]))
    old.close()
    with client_for(server.url, tmp_path) as client:
        done = client.complete(ask("q"))
    assert done.ok and not done.cached and done.texts == ["echo: q"]
    assert sent(server, "q") == 1


def test_a_rejected_request_is_recorded_and_asked_again_only_with_retry_failed(server, tmp_path):
    server.plan_for("q", "400")
    with client_for(server.url, tmp_path) as client:
        first = client.complete(ask("q"))
    assert "HTTP 400" in first.error and not first.cached
    with client_for(server.url, tmp_path) as client:
        resumed = client.complete(ask("q"))
        assert client.stats.cached_failures == 1 and client.stats.calls == 0
    assert resumed.cached and "HTTP 400: unknown parameter" in resumed.error
    assert sent(server, "q") == 1
    with client_for(server.url, tmp_path, retry_failed=True) as client:
        retried = client.complete(ask("q"))
        assert client.cache is not None and client.cache.failed_keys() == set()
    assert retried.ok and retried.texts == ["echo: q"] and sent(server, "q") == 2
    with client_for(server.url, tmp_path) as client:
        assert client.complete(ask("q")).cached
    assert sent(server, "q") == 2


def test_schema_failure_is_recorded_and_not_asked_again(tmp_path):
    with FaultServer(responder=lambda body: ['{"a": "not a number"}']) as srv:
        with client_for(srv.url, tmp_path, json_repair_retries=1) as client:
            first = client.complete(ask("q", json_schema=SCHEMA))
        assert "after 1 repair retries" in first.error and len(srv.requests) == 2
        with client_for(srv.url, tmp_path, json_repair_retries=1) as client:
            resumed = client.complete(ask("q", json_schema=SCHEMA))
        assert resumed.cached and "after 1 repair retries" in resumed.error
        assert len(srv.requests) == 2
        with client_for(srv.url, tmp_path, json_repair_retries=1, retry_failed=True) as client:
            retried = client.complete(ask("q", json_schema=SCHEMA))
        assert not retried.cached and "repair retries" in retried.error
        assert len(srv.requests) == 4


@pytest.mark.parametrize("fault", ["500", "401", "malformed"])
def test_failures_that_may_pass_next_time_are_not_recorded(server, tmp_path, fault):
    tries = 1 if fault == "401" else 2  # a 401 is not retried: it is about the key
    server.plan_for("q", *[fault] * tries)
    with client_for(server.url, tmp_path, max_retries=1) as client:
        assert not client.complete(ask("q")).ok
        assert client.cache is not None and client.cache.failed_keys() == set()
    with client_for(server.url, tmp_path, max_retries=1) as client:
        done = client.complete(ask("q"))
    assert done.ok and not done.cached and sent(server, "q") == tries + 1


class ScriptedBackend(LLMClient):
    """A backend whose answers are scripted by prompt: a Completion, or an exception."""

    backend_name = "scripted"

    def __init__(self, config: LLMConfig, script: dict):
        super().__init__(config)
        self.script = script

    async def _call(self, request: ChatRequest) -> Completion:
        outcome = self.script[request.messages[-1].content]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.model_copy()


def test_a_backend_that_raises_or_answers_empty_costs_one_request(tmp_path):
    script = {
        "boom": KeyError("logprob"),
        "empty": Completion(texts=["fine", ""], finish_reasons=["stop", "stop"]),
        "good": Completion(texts=["fine"], finish_reasons=["stop"]),
    }
    config = LLMConfig(backend="vllm", model="m", cache_dir=tmp_path / "cache")
    with ScriptedBackend(config, script) as client:
        boom, empty, good = client.complete_batch([ask("boom"), ask("empty"), ask("good")])
        assert client.cache is not None and len(client.cache) == 1
        assert len(client.cache.failed_keys()) == 1
    assert "unexpected KeyError" in boom.error and not boom.permanent
    assert "empty completion (sample 1)" in empty.error and empty.permanent
    assert good.ok and good.texts == ["fine"]


def vllm_sample(text, token_ids=(7,), logprobs=None):
    return SimpleNamespace(
        index=0, text=text, finish_reason="stop", token_ids=token_ids, logprobs=logprobs
    )


def test_odd_vllm_outputs_are_error_results():
    lp = SimpleNamespace(logprob=-0.1, decoded_token="a")
    cases = {
        "vLLM returned no samples": SimpleNamespace(outputs=[], prompt_token_ids=[1]),
        "vLLM sample 0 has no text": SimpleNamespace(
            outputs=[vllm_sample(None)], prompt_token_ids=[1]
        ),
        "unusable vLLM output (KeyError": SimpleNamespace(
            outputs=[vllm_sample("a", logprobs=[{8: lp}])], prompt_token_ids=[1]
        ),
        "unusable vLLM output (AttributeError": SimpleNamespace(prompt_token_ids=[1]),
    }
    for reason, output in cases.items():
        done = completion_from_output(output, top_logprobs=1, want_logprobs=True)
        assert done.error is not None and done.error.startswith(reason), done.error
    # no logprobs from vLLM at all: an answer without them (callers fall back to the text)
    plain = SimpleNamespace(outputs=[vllm_sample("a", token_ids=None)], prompt_token_ids=None)
    done = completion_from_output(plain, top_logprobs=1, want_logprobs=True)
    assert done.ok and done.logprobs == [[]] and done.usage.completion_tokens == 0


def test_parse_keeps_n_choices_in_index_order_and_at_most_n():
    body = answer({"messages": [{"role": "user", "content": "q"}], "n": 3})
    body["choices"].reverse()
    done = parse_chat_response(json.dumps(body), ask("q", n=2))
    assert done.texts == ["echo: q #0", "echo: q #1"]
    body["choices"][0]["index"] = body["choices"][1]["index"]
    bad = parse_chat_response(json.dumps(body), ask("q", n=3))
    assert "repeat an index" in bad.reason
