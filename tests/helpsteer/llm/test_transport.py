"""The aiohttp transport on what the fault server does not do: chunked and compressed
answers, redirects, proxies, keep-alive connections the server closed, oversized
bodies, headers, and the `transport` option."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from aiohttp import web

from helpsteer.llm import ChatRequest, LLMConfig, make_client
from helpsteer.llm import transport as transport_module
from helpsteer.llm.testing import answer


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


def client_for(url: str, **options):
    config = LLMConfig(
        backend="openai",
        model="m",
        base_urls=[url],
        backoff_base_s=0.001,
        backoff_max_s=0.002,
        **options,
    )
    return make_client(config)


async def serve(routes: list[web.RouteDef], **server_options) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, **server_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def run_against(routes, prompts, server_options=None, pause_s=0.0, **client_options):
    """Start an aiohttp server with `routes`, ask each prompt in turn, return the
    completions and the client's stats."""

    async def go():
        runner, url = await serve(routes, **(server_options or {}))
        try:
            client = client_for(f"{url}/v1", **client_options)
            async with client:
                done = []
                for prompt in prompts:
                    done += await client.complete_many([ask(prompt)])
                    await asyncio.sleep(pause_s)
                return done, client.stats
        finally:
            await runner.cleanup()

    return asyncio.run(go())


async def reply(request: web.Request) -> dict:
    return answer(await request.json())


def test_a_chunked_answer_is_read_whole():
    async def chunked(request):
        body = json.dumps(await reply(request)).encode()
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 7):
            await response.write(body[start : start + 7])
        await response.write_eof()
        return response

    (done,), _ = run_against([web.post("/v1/chat/completions", chunked)], ["q"])
    assert done.ok and done.texts == ["echo: q"]


def test_a_gzip_answer_is_decompressed():
    async def compressed(request):
        body = gzip.compress(json.dumps(await reply(request)).encode())
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    (done,), _ = run_against([web.post("/v1/chat/completions", compressed)], ["q"])
    assert done.ok and done.texts == ["echo: q"]


def test_a_redirect_is_followed_with_the_body():
    async def moved(request):
        raise web.HTTPTemporaryRedirect("/v2/chat/completions")

    async def new_home(request):
        return web.json_response(await reply(request))

    routes = [web.post("/v1/chat/completions", moved), web.post("/v2/chat/completions", new_home)]
    (done,), stats = run_against(routes, ["q"])
    assert done.ok and done.texts == ["echo: q"] and stats.retries == 0


def test_the_key_and_json_headers_are_sent(monkeypatch):
    seen = {}

    async def record(request):
        seen.update(request.headers)
        return web.json_response(await reply(request))

    monkeypatch.setenv("BENCH_KEY", "sk-test-123")
    routes = [web.post("/v1/chat/completions", record)]
    (done,), _ = run_against(routes, ["q"], api_key_env="BENCH_KEY")
    assert done.ok
    assert seen["Authorization"] == "Bearer sk-test-123"
    assert seen["Content-Type"] == "application/json"


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    # The server drops idle keep-alive connections after 50 ms; the client waits longer
    # between requests, so reusing the pooled connection would fail and cost a retry.
    peers = []

    async def record(request):
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response(await reply(request))

    routes = [web.post("/v1/chat/completions", record)]
    done, stats = run_against(
        routes, ["a", "b", "c"], server_options={"keepalive_timeout": 0.05}, pause_s=0.3
    )
    assert [d.texts for d in done] == [["echo: a"], ["echo: b"], ["echo: c"]]
    assert stats.retries == 0 and stats.calls == 3
    assert len(set(peers)) == 3  # a new connection each time


def test_an_oversized_body_is_refused_and_retried(monkeypatch):
    monkeypatch.setattr(transport_module, "MAX_BODY_BYTES", 2000)

    async def big(request):
        body = await reply(request)
        body["padding"] = "x" * 5000
        return web.json_response(body)

    async def big_chunked(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(json.dumps(await reply(request)).encode() + b" " * 5000)
        await response.write_eof()
        return response

    for handler in (big, big_chunked):
        (done,), stats = run_against(
            [web.post("/v1/chat/completions", handler)], ["q"], max_retries=1
        )
        assert not done.ok and "over the 2000" in done.error, done.error
        assert "gave up after 2 tries" in done.error and stats.retries == 1


def test_requests_go_through_the_proxy_from_the_environment(monkeypatch):
    # The proxy answers itself: a request reaching it proves the client used it, and the
    # target host does not exist.
    targets = []

    async def proxy(request):
        targets.append(str(request.url))
        return web.json_response(await reply(request))

    async def go():
        runner, url = await serve([web.post("/{tail:.*}", proxy)])
        monkeypatch.setenv("HTTP_PROXY", url)
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        try:
            client = client_for("http://llm.invalid:8000/v1", max_retries=0)
            async with client:
                (done,) = await client.complete_many([ask("q")])
                return done
        finally:
            await runner.cleanup()

    done = asyncio.run(go())
    assert done.ok and done.texts == ["echo: q"]
    assert targets == ["http://llm.invalid:8000/v1/chat/completions"]


@pytest.mark.parametrize("name", ["aiohttp", "native"])
def test_aiohttp_is_the_default_and_native_its_old_name(name):
    client = client_for("http://127.0.0.1:9/v1", extra={"transport": name})
    assert client.transport == "aiohttp"
    assert client_for("http://127.0.0.1:9/v1").transport == "aiohttp"


def test_an_unknown_transport_or_a_non_http_url_is_refused():
    with pytest.raises(ValueError, match="extra.transport"):
        client_for("http://127.0.0.1:9/v1", extra={"transport": "curl"})
    with pytest.raises(ValueError, match="not an http"):
        client_for("ftp://127.0.0.1/v1")
