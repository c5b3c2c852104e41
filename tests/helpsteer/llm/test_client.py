"""The openai backend and the shared client logic against the fault-injecting server."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from helpsteer.llm import ChatRequest, LLMConfig, Price, make_client
from helpsteer.llm.testing import Fault, FaultServer
from helpsteer.progress import Reporter

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
TRANSPORTS = ["aiohttp", "sdk"]


def ask(text: str, **options) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **options)


def client_for(urls, tmp_path=None, transport="aiohttp", **options):
    config = LLMConfig(
        backend="openai",
        model="test-model",
        base_urls=urls if isinstance(urls, list) else [urls],
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        cache_dir=tmp_path / "cache" if tmp_path is not None else None,
        extra={"transport": transport},
        **options,
    )
    client = make_client(config)
    delays: list[float] = []
    original = client.policy.delay

    def recording(attempt, retry_after=None):
        delays.append(original(attempt, retry_after))
        return delays[-1]

    client.policy.delay = recording
    client.delays = delays
    return client


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["429", "500", "drop", "malformed"])
def test_each_fault_is_retried_to_success(server, transport, fault):
    server.plan_for("q", fault, fault)
    with client_for(server.url, transport=transport) as client:
        done = client.complete(ask("q"))
    assert done.error is None and done.texts == ["echo: q"]
    assert [r.fault for r in server.requests] == [fault, fault, "ok"]
    assert client.stats.retries == 2 and client.stats.calls == 3 and client.stats.errors == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retry_after_is_honoured(server, transport):
    server.plan_for("q", Fault("429", retry_after=0.3))
    with client_for(server.url, transport=transport) as client:
        assert client.complete(ask("q")).ok
    assert client.delays == [0.3]
    first, second = server.requests
    assert second.time - first.time >= 0.3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_of_a_slow_answer_is_retried(server, transport):
    server.plan_for("q", Fault("slow", delay_s=3.0))
    with client_for(server.url, transport=transport, timeout_s=0.3) as client:
        done = client.complete(ask("q"))
    assert done.ok and client.stats.retries == 1
    assert [r.fault for r in server.requests] == ["slow", "ok"]


def test_gives_up_after_max_retries_without_raising(server):
    server.plan_for("bad", *["500"] * 4)
    with client_for(server.url, max_retries=2) as client:
        bad, good = client.complete_batch([ask("bad"), ask("good")])
    assert "gave up after 3 tries" in bad.error and "HTTP 500" in bad.error and not bad.texts
    assert good.ok and good.texts == ["echo: good"]
    assert client.stats.errors == 1 and client.stats.retries == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_error_is_not_retried(server, transport):
    server.plan_for("q", "400")
    with client_for(server.url, transport=transport) as client:
        done = client.complete(ask("q"))
    assert "HTTP 400" in done.error and "unknown parameter" in done.error
    assert client.stats.retries == 0 and client.stats.calls == 1


def test_a_dead_url_is_a_connection_error(tmp_path):
    with FaultServer() as srv:
        dead = srv.url
    with client_for(dead, max_retries=1) as client:
        done = client.complete(ask("q"))
    assert "connection failed" in done.error and client.stats.retries == 1


def test_fan_out_across_two_servers_and_around_a_dead_one():
    with FaultServer(delay_s=0.02) as one, FaultServer(delay_s=0.02) as two:
        with client_for([one.url, two.url], max_in_flight=8) as client:
            done = client.complete_batch([ask(f"q{i}") for i in range(40)])
        assert all(d.ok for d in done)
        assert len(one.requests) >= 10 and len(two.requests) >= 10
        assert len(one.requests) + len(two.requests) == 40
        with FaultServer() as gone:
            dead = gone.url
        with client_for([dead, one.url], max_in_flight=4) as client:
            done = client.complete_batch([ask(f"r{i}") for i in range(10)])
        assert all(d.ok for d in done) and client.stats.errors == 0
        assert client.calls_by_url[one.url] == 10


def test_order_preserved_and_each_item_produced_once_under_random_faults(server, tmp_path):
    rng = random.Random(7)
    kinds = ["429:0.01", "500", "drop", "malformed", "ok", "ok"]
    server.plan(*[rng.choice(kinds) for _ in range(60)])
    prompts = [f"item {i}" for i in range(50)]
    with client_for(server.url, tmp_path, max_in_flight=8, max_retries=20) as client:
        done = client.complete_batch([ask(p) for p in prompts])
    assert [d.texts[0] for d in done] == [f"echo: {p}" for p in prompts]
    assert server.completed_counts() == {p: 1 for p in prompts}
    assert client.stats.retries == sum(r.fault != "ok" for r in server.requests)


def test_cache_makes_a_rerun_free_and_ignores_metadata(server, tmp_path):
    requests = [ask(f"q{i}", metadata={"row": i}) for i in range(5)]
    with client_for(server.url, tmp_path) as client:
        first = client.complete_batch(requests)
    assert not any(d.cached for d in first)
    again = [ask(f"q{i}", metadata={"row": i + 100}) for i in range(5)]
    with client_for(server.url, tmp_path) as client:
        second = client.complete_batch(again + [ask("q0", temperature=0.5)])
    assert [d.cached for d in second] == [True] * 5 + [False]
    assert [d.texts for d in second[:5]] == [d.texts for d in first]
    assert client.stats.cache_hits == 5 and client.stats.calls == 1
    assert len(server.requests) == 6


def test_failures_are_not_cached(server, tmp_path):
    server.plan_for("q", "500", "500")
    with client_for(server.url, tmp_path, max_retries=1) as client:
        assert not client.complete(ask("q")).ok
    with client_for(server.url, tmp_path, max_retries=1) as client:
        done = client.complete(ask("q"))
    assert done.ok and not done.cached


def json_responder(bad_answers: int):
    """The first `bad_answers` answers break the schema (first not JSON at all)."""
    calls = []

    def respond(body):
        calls.append(body)
        if len(calls) <= bad_answers:
            return ["Sure! {a: 1" if len(calls) == 1 else '{"a": "not a number"}']
        return ['{"a": 42}']

    return respond


def test_json_schema_is_sent_validated_and_repaired(tmp_path):
    with FaultServer(responder=json_responder(2)) as srv, client_for(srv.url) as client:
        done = client.complete(ask("give json", json_schema=SCHEMA))
    assert done.ok and done.parsed == [{"a": 42}] and done.texts == ['{"a": 42}']
    bodies = [r.body for r in srv.requests]
    assert all(b["response_format"]["type"] == "json_schema" for b in bodies)
    assert bodies[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert len(bodies) == 3 and client.stats.repairs == 2
    assert "not valid JSON" in bodies[1]["messages"][-1]["content"]
    assert "at a:" in bodies[2]["messages"][-1]["content"]
    # each repair re-asks the original conversation with only the latest bad answer
    assert bodies[2]["messages"][1] == {"role": "assistant", "content": '{"a": "not a number"}'}
    assert len(bodies[2]["messages"]) == 3


def test_json_repair_is_bounded(tmp_path):
    srv = FaultServer(responder=json_responder(10))
    with srv, client_for(srv.url, tmp_path, json_repair_retries=1) as client:
        done = client.complete(ask("give json", json_schema=SCHEMA))
    assert "after 1 repair retries" in done.error and done.parsed is None
    assert len(srv.requests) == 2 and client.stats.errors == 1
    with client_for(srv.url, tmp_path) as client:
        assert client.cache is not None and len(client.cache) == 0


def test_n_samples_are_topped_up_when_the_server_returns_fewer():
    srv = FaultServer(responder=lambda body: [f"one of n={body.get('n', 1)}"])
    with srv, client_for(srv.url) as client:
        done = client.complete(ask("q", n=3, seed=10))
    assert len(done.texts) == 3 and len(srv.requests) == 3
    assert [r.body.get("seed") for r in srv.requests] == [10, 11, 12]
    assert [r.body.get("n", 1) for r in srv.requests] == [3, 2, 1]


def test_n_samples_and_logprobs_from_one_call(server):
    with client_for(server.url) as client:
        done = client.complete(ask("a b", n=2, logprobs=True, top_logprobs=3))
    assert done.texts == ["echo: a b #0", "echo: a b #1"] and len(server.requests) == 1
    assert len(done.logprobs) == 2 and [t.token for t in done.logprobs[1]] == [
        "echo:",
        "a",
        "b",
        "#1",
    ]
    assert len(done.logprobs[0][0].top_logprobs) == 3


def test_stats_count_tokens_and_cost(server, tmp_path):
    price = {"test-model": Price(prompt_per_1k=1.0, completion_per_1k=2.0)}
    server.plan("429:0")
    with client_for(server.url, tmp_path, prices=price) as client:
        client.complete_batch([ask("one two three"), ask("four")])
        client.complete_batch([ask("four")])
    stats = client.stats.as_dict()
    # prompts: 3 and 1 words; answers: "echo: ..." adds one word
    assert stats["prompt_tokens"] == 4 and stats["completion_tokens"] == 6
    assert stats["cost_usd"] == pytest.approx((4 * 1.0 + 6 * 2.0) / 1000)
    assert stats["requests"] == 3 and stats["cache_hits"] == 1 and stats["retries"] == 1
    assert stats["calls"] == 3 and stats["errors"] == 0 and stats["wall_s"] > 0


def test_bad_schema_is_rejected_before_any_call(server):
    with client_for(server.url) as client, pytest.raises(ValueError, match="invalid JSON schema"):
        client.complete(ask("q", json_schema={"type": 5}))
    assert server.requests == []


def test_async_api_with_reporter_and_sync_wrapper_inside_a_loop(server):
    client = client_for(server.url, max_in_flight=3)

    async def main():
        done = await client.complete_many(
            [ask(f"q{i}") for i in range(7)], reporter=Reporter(quiet=False)
        )
        inside = client.complete(ask("from a running loop"))
        await client.aclose()
        return done, inside

    done, inside = asyncio.run(main())
    assert [d.texts[0] for d in done] == [f"echo: q{i}" for i in range(7)]
    assert inside.texts == ["echo: from a running loop"]
    with pytest.raises(RuntimeError, match="closed"):
        client.complete(ask("q"))


def test_in_flight_is_bounded():
    with FaultServer(delay_s=0.05) as srv, client_for(srv.url, max_in_flight=3) as client:
        client.complete_batch([ask(f"q{i}") for i in range(12)])
        events = sorted(
            [(r.time, 1) for r in srv.requests] + [(r.time + 0.05, -1) for r in srv.requests]
        )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= 3


def test_a_large_batch_holds_tasks_for_the_requests_in_flight_not_for_all(server):
    # One task per request made 5,000 at once; the first wave's answers then waited for
    # the loop to run every other task's first step (and a 1M batch held 1M tasks).
    peak = 0
    with client_for(server.url, max_in_flight=4) as client:
        original = client._call

        async def counting(request):
            nonlocal peak
            peak = max(peak, len(asyncio.all_tasks()))
            return await original(request)

        client._call = counting
        done = client.complete_batch([ask(f"q{i}") for i in range(300)])
    assert [d.texts for d in done] == [[f"echo: q{i}"] for i in range(300)]
    assert peak <= 4 + 4  # the workers, the batch and aiohttp's own per-request tasks


def test_requests_are_plain_json_on_the_wire(server):
    with client_for(server.url) as client:
        client.complete(ask("héllo", stop="END", max_tokens=4))
    body = server.requests[0].body
    assert body == json.loads(json.dumps(body))
    assert body["messages"] == [{"role": "user", "content": "héllo"}]
    assert body["stop"] == ["END"] and body["max_tokens"] == 4 and body["model"] == "test-model"
