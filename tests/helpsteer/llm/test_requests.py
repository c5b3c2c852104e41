"""Request building, cache keys, parsing, retry policy and vLLM translation (no network)."""

from __future__ import annotations

import email.utils
import json
import random
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from helpsteer.llm import ChatRequest, LLMConfig
from helpsteer.llm.openai_backend import chat_body
from helpsteer.llm.response import BadAnswer, parse_chat_response
from helpsteer.llm.retry import RetryPolicy, is_retryable_status, parse_retry_after
from helpsteer.llm.schema import check_schema, repair_messages, response_format, validate
from helpsteer.llm.vllm_backend import (
    build_sampling_params,
    completion_from_output,
    sampling_kwargs,
    structured_output_kwargs,
)

HI = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_request_rejects_bad_input():
    with pytest.raises(ValidationError):
        ChatRequest(messages=[])
    with pytest.raises(ValidationError):
        ChatRequest(messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(ValidationError):
        ChatRequest(messages=HI, n=0)
    with pytest.raises(ValidationError):
        ChatRequest(messages=HI, temprature=0.5)


def test_cache_key_ignores_metadata_and_depends_on_everything_else():
    base = ChatRequest(messages=HI, metadata={"row": 1})
    key = base.cache_key("openai", "m")
    assert ChatRequest(messages=HI, metadata={"row": 2}).cache_key("openai", "m") == key
    assert base.cache_key("openai", "other") != key
    assert base.cache_key("local", "m") != key
    variants = [
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"n": 2},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"max_tokens": 5},
        {"stop": ["\n"]},
        {"seed": 1},
        {"logprobs": True},
        {"top_logprobs": 3},
        {"json_schema": SCHEMA},
        {"allow_empty": True},
    ]
    keys = {ChatRequest(**{"messages": HI, **v}).cache_key("openai", "m") for v in variants}
    assert len(keys) == len(variants) and key not in keys


def test_cache_keys_made_before_allow_empty_existed_still_match():
    # hashes from the code before `allow_empty`: an existing cache must keep every hit
    assert ChatRequest(messages=HI).cache_key("openai", "m") == (
        "5dc9b587bb40d5455fe19db229867545686b7f3b55cd291f21c52a386f623e9e"
    )
    request = ChatRequest(messages=HI, n=2, seed=3, logprobs=True, allow_empty=False)
    assert request.cache_key("openai", "m") == (
        "a03db70f3679085ce286abc2bf9998bcfb4f645d35bc1511407e28c2f6accb47"
    )


def test_stop_string_becomes_a_list():
    assert ChatRequest(messages=HI, stop="END").stop == ["END"]


def test_chat_body_leaves_unset_options_out():
    assert chat_body(ChatRequest(messages=HI), "m", "json_schema") == {
        "model": "m",
        "messages": HI,
    }
    full = ChatRequest(
        messages=HI, n=3, temperature=0.5, top_p=0.9, max_tokens=7, stop="x", seed=4,
        logprobs=True, top_logprobs=2, json_schema=SCHEMA,
    )  # fmt: skip
    body = chat_body(full, "m", "json_object")
    assert body["n"] == 3 and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["max_tokens"] == 7 and body["stop"] == ["x"] and body["seed"] == 4
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_response_format_styles():
    openai_style = response_format({**SCHEMA, "title": "My Answer"}, "json_schema")
    assert openai_style["type"] == "json_schema"
    assert openai_style["json_schema"]["name"] == "My_Answer"
    assert openai_style["json_schema"]["schema"]["required"] == ["a"]
    with pytest.raises(ValueError, match="unknown json_mode"):
        response_format(SCHEMA, "grammar")


def test_parse_response_orders_choices_and_reads_logprobs():
    data = {
        "choices": [
            {"index": 1, "message": {"content": "b"}, "finish_reason": "length"},
            {
                "index": 0,
                "message": {"content": "a"},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [
                        {
                            "token": "a",
                            "logprob": -0.5,
                            "top_logprobs": [{"token": "a", "logprob": -0.5}],
                        }
                    ]
                },
            },
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    request = ChatRequest(messages=[{"role": "user", "content": "q"}], n=2, logprobs=True)
    done = parse_chat_response(json.dumps(data), request)
    assert done.texts == ["a", "b"] and done.finish_reasons == ["stop", "length"]
    assert done.logprobs is None  # only one of the two samples carried logprobs
    assert done.usage.prompt_tokens == 3 and done.usage.completion_tokens == 2
    data["choices"][0]["logprobs"] = data["choices"][1]["logprobs"]
    both = parse_chat_response(json.dumps(data), request)
    assert both.logprobs is not None and both.logprobs[0][0].top_logprobs[0].logprob == -0.5
    bad = parse_chat_response('{"error": "x"}', request)
    assert isinstance(bad, BadAnswer) and "choices: Field required" in bad.reason


def test_schema_validation_and_repair_prompt():
    assert validate('{"a": 3}', SCHEMA) == ({"a": 3}, None)
    assert validate('```json\n{"a": 3}\n```', SCHEMA) == ({"a": 3}, None)
    obj, problem = validate('{"a": "three"}', SCHEMA)
    assert obj is None and "at a" in problem and "integer" in problem
    obj, problem = validate("{not json", SCHEMA)
    assert obj is None and problem.startswith("not valid JSON")
    messages = ChatRequest(messages=HI).messages
    fixed = repair_messages(messages, '{"a": "three"}', problem, SCHEMA)
    assert [m.role for m in fixed] == ["user", "assistant", "user"]
    assert fixed[1].content == '{"a": "three"}' and problem in fixed[2].content
    with pytest.raises(ValueError, match="invalid JSON schema"):
        check_schema({"type": "no-such-type"})


def test_retry_policy_backoff_grows_with_jitter_and_caps():
    policy = RetryPolicy(max_retries=3, base_s=1.0, max_s=5.0, rng=random.Random(0))
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (10, 5.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert policy.delay(0, retry_after=7.5) == 7.5
    assert RetryPolicy(max_retry_after_s=60).delay(0, retry_after=3600) == 60
    assert policy.should_retry(2) and not policy.should_retry(3)


def test_retry_after_header_forms_and_retryable_statuses():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)
    assert all(is_retryable_status(s) for s in (429, 500, 502, 503, 504, 408))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 422))


def test_config_validation_and_defaults():
    with pytest.raises(ValidationError, match="base_urls"):
        LLMConfig(backend="openai", model="m")
    with pytest.raises(ValidationError, match="model"):
        LLMConfig(backend="vllm")
    with pytest.raises(ValidationError):
        LLMConfig(backend="openai", model="m", base_urls=["u"], max_in_flight=0)
    assert LLMConfig(backend="local").in_flight == 1
    assert LLMConfig(backend="local").response_format_style == "json_object"
    remote = LLMConfig(backend="openai", model="m", base_urls=["u"])
    assert remote.in_flight == 16 and remote.response_format_style == "json_schema"
    assert remote.json_repair_retries == 2 and remote.cache_dir is None


def test_vllm_sampling_kwargs():
    request = ChatRequest(
        messages=HI, n=2, temperature=0.3, max_tokens=9, seed=5, stop="##",
        logprobs=True, top_logprobs=4, json_schema=SCHEMA,
    )  # fmt: skip
    assert sampling_kwargs(request) == {
        "n": 2, "temperature": 0.3, "max_tokens": 9, "seed": 5, "stop": ["##"],
        "logprobs": 4, "json_schema": SCHEMA,
    }  # fmt: skip
    assert sampling_kwargs(ChatRequest(messages=HI, logprobs=True))["logprobs"] == 0
    assert "logprobs" not in sampling_kwargs(ChatRequest(messages=HI))


class _Params:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_vllm_guided_json_for_old_and_new_versions():
    new = SimpleNamespace(SamplingParams=_Params, StructuredOutputsParams=_Params)
    old = SimpleNamespace(SamplingParams=_Params, GuidedDecodingParams=_Params)
    assert structured_output_kwargs(SCHEMA, new)["structured_outputs"].kwargs == {"json": SCHEMA}
    assert structured_output_kwargs(SCHEMA, old)["guided_decoding"].kwargs == {"json": SCHEMA}
    with pytest.raises(RuntimeError, match="guided JSON"):
        structured_output_kwargs(SCHEMA, SimpleNamespace(SamplingParams=_Params))
    params = build_sampling_params(ChatRequest(messages=HI, json_schema=SCHEMA, seed=1), new)
    assert params.kwargs["seed"] == 1 and "json_schema" not in params.kwargs
    assert params.kwargs["structured_outputs"].kwargs == {"json": SCHEMA}


def test_vllm_output_to_completion():
    lp = SimpleNamespace
    sample = SimpleNamespace(
        index=0,
        text="ab",
        finish_reason="stop",
        token_ids=[7, 8],
        logprobs=[
            {7: lp(logprob=-0.1, decoded_token="a"), 9: lp(logprob=-2.0, decoded_token="z")},
            {8: lp(logprob=-1.5, decoded_token="b"), 3: lp(logprob=-0.2, decoded_token="c")},
        ],
    )
    other = SimpleNamespace(index=1, text="x", finish_reason="length", token_ids=[1], logprobs=None)
    output = SimpleNamespace(outputs=[other, sample], prompt_token_ids=[1, 2, 3])
    done = completion_from_output(output, top_logprobs=1, want_logprobs=True)
    assert done.texts == ["ab", "x"] and done.finish_reasons == ["stop", "length"]
    assert done.usage.prompt_tokens == 3 and done.usage.completion_tokens == 3
    second = done.logprobs[0][1]
    assert second.token == "b" and second.logprob == -1.5
    assert [t.token for t in second.top_logprobs] == ["c"]
    assert completion_from_output(output, None, want_logprobs=False).logprobs is None
