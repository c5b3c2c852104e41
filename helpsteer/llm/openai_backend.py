"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, NIM, OpenAI, llama.cpp).

Requests go through aiohttp (`helpsteer.llm.transport`, see there why), or through the
official openai SDK with `extra={"transport": "sdk"}`, its own retries off
(max_retries=0); "aiohttp" (or "native", its name in older configs) is the default.
Either way the retry policy is ours, counted in `stats.retries` and shaped by
Retry-After. Several base URLs share the load: each call goes to the URL with the fewest
requests in flight (ties rotate), and a retry prefers a different URL from the one that
just failed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import Any

from yarl import URL

from helpsteer.llm.client import LLMClient
from helpsteer.llm.config import LLMConfig
from helpsteer.llm.response import BadAnswer, parse_chat_response
from helpsteer.llm.retry import (
    MalformedAnswer,
    PermanentError,
    RetryPolicy,
    TransientError,
    is_retryable_status,
    parse_retry_after,
)
from helpsteer.llm.schema import response_format
from helpsteer.llm.transport import Transport
from helpsteer.llm.types import ChatRequest, Completion

DUMMY_API_KEY = "sk-no-key-needed"

TRANSPORT_NAMES = {"aiohttp": "aiohttp", "native": "aiohttp", "sdk": "sdk"}
"""`extra.transport` values; "native" named the hand-written client aiohttp replaced."""


def chat_body(
    request: ChatRequest, model: str, json_style: str, text_parts_as_string: bool = False
) -> dict[str, Any]:
    """The JSON body of POST /chat/completions for `request` (unset options left out).
    `text_parts_as_string`: content made only of text parts is sent as one string."""
    messages = [m.model_dump() for m in request.messages]
    if text_parts_as_string:
        for message, original in zip(messages, request.messages, strict=True):
            if isinstance(original.content, list) and original.is_text_only:
                message["content"] = original.text
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.n != 1:
        body["n"] = request.n
    for name in ("temperature", "top_p", "max_tokens", "stop", "seed"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    if request.json_schema is not None:
        body["response_format"] = response_format(request.json_schema, json_style)
    return body


class _Endpoint:
    def __init__(self, url: str):
        self.url = url
        # Parsed once: building a URL per request is a measurable share of its CPU.
        self.chat_url = _chat_url(url)
        self.in_flight = 0


def _chat_url(base_url: str) -> URL:
    url = URL(base_url + "/chat/completions")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    return url


class OpenAIClient(LLMClient):
    backend_name = "openai"
    text_parts_as_string = False
    """Set by servers that cannot read content-part lists (see `chat_body`)."""

    def __init__(self, config: LLMConfig):
        super().__init__(config)
        self.policy = RetryPolicy(
            max_retries=config.max_retries,
            base_s=config.backoff_base_s,
            max_s=config.backoff_max_s,
        )
        self.api_key = os.environ.get(config.api_key_env) or DUMMY_API_KEY
        self._endpoints: list[_Endpoint] = []
        self._rotation = itertools.count()
        self._sdk_clients: dict[tuple[int, str], Any] = {}
        self._transports: dict[int, Transport] = {}
        self.calls_by_url: dict[str, int] = {}
        self.transport = TRANSPORT_NAMES.get(config.extra.get("transport", "aiohttp"))
        if self.transport is None:
            raise ValueError(
                f"extra.transport must be 'aiohttp' or 'sdk', got {config.extra['transport']!r}"
            )
        self.set_base_urls(config.base_urls)

    def set_base_urls(self, urls: list[str]) -> None:
        self._endpoints = [_Endpoint(url.rstrip("/")) for url in urls]

    def _pick(self, avoid: _Endpoint | None) -> _Endpoint:
        candidates = [e for e in self._endpoints if e is not avoid] or self._endpoints
        turn = next(self._rotation)
        order = candidates[turn % len(candidates) :] + candidates[: turn % len(candidates)]
        return min(order, key=lambda e: e.in_flight)

    def _sdk(self, endpoint: _Endpoint) -> Any:
        import openai

        key = (id(asyncio.get_running_loop()), endpoint.url)
        client = self._sdk_clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=endpoint.url,
                max_retries=0,
                timeout=self.config.timeout_s,
            )
            self._sdk_clients[key] = client
        return client

    async def _call(self, request: ChatRequest) -> Completion:
        body = chat_body(
            request, self.model_name, self.config.response_format_style, self.text_parts_as_string
        )
        failed: _Endpoint | None = None
        attempt = 0
        while True:
            endpoint = self._pick(failed)
            try:
                return await self._post(endpoint, body, request)
            except PermanentError as err:
                return Completion(error=str(err), permanent=err.recorded)
            except TransientError as err:
                if not self.policy.should_retry(attempt):
                    # An empty answer that every try repeated is the model's answer to this
                    # request: recorded, unlike a server that kept failing.
                    repeats = isinstance(err, MalformedAnswer) and err.repeats
                    return Completion(
                        error=f"gave up after {attempt + 1} tries: {err}", permanent=repeats
                    )
                self.stats.retries += 1
                failed = endpoint if len(self._endpoints) > 1 else None
                await asyncio.sleep(self.policy.delay(attempt, err.retry_after))
                attempt += 1

    async def _post(
        self, endpoint: _Endpoint, body: dict[str, Any], request: ChatRequest
    ) -> Completion:
        self.stats.calls += 1
        self.calls_by_url[endpoint.url] = self.calls_by_url.get(endpoint.url, 0) + 1
        endpoint.in_flight += 1
        try:
            if self.transport == "sdk":
                raw = await self._post_sdk(endpoint, body)
            else:
                raw = await self._post_aiohttp(endpoint, body)
        finally:
            endpoint.in_flight -= 1
        result = parse_chat_response(raw, request)
        if isinstance(result, BadAnswer):
            raise MalformedAnswer(f"{endpoint.url}: {result.reason}", result.repeats)
        return result

    async def _post_aiohttp(self, endpoint: _Endpoint, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = await self._transport().post_json(endpoint.chat_url, payload)
        except TimeoutError:
            raise self._timed_out(endpoint) from None
        except (ConnectionError, OSError) as err:
            raise TransientError(f"{endpoint.url}: connection failed ({err})") from None
        if response.status != 200:
            where = f"{endpoint.url}: HTTP {response.status}"
            if is_retryable_status(response.status):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise TransientError(where, retry_after)
            raise PermanentError(f"{where}: {_body_message(response.body)}", response.status)
        return response.body

    def _transport(self) -> Transport:
        """The aiohttp session of the running loop (a session cannot move between loops)."""
        key = id(asyncio.get_running_loop())
        transport = self._transports.get(key)
        if transport is None:
            headers = {"Authorization": f"Bearer {self.api_key}"}
            transport = Transport(headers, self.config.timeout_s)
            self._transports[key] = transport
        return transport

    async def _post_sdk(self, endpoint: _Endpoint, body: dict[str, Any]) -> bytes:
        import openai

        try:
            raw = await self._sdk(endpoint).chat.completions.with_raw_response.create(**body)
        except openai.APIStatusError as err:
            where = f"{endpoint.url}: HTTP {err.status_code}"
            if is_retryable_status(err.status_code):
                retry_after = parse_retry_after(err.response.headers.get("retry-after"))
                raise TransientError(where, retry_after) from None
            message = f"{where}: {_body_message(err.response.content)}"
            raise PermanentError(message, err.status_code) from None
        except openai.APITimeoutError:
            raise self._timed_out(endpoint) from None
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err
            raise TransientError(f"{endpoint.url}: connection failed ({cause})") from None
        return raw.http_response.content

    def _timed_out(self, endpoint: _Endpoint) -> TransientError:
        return TransientError(f"{endpoint.url}: no answer within {self.config.timeout_s:g} s")

    async def _aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._sdk_clients if k[0] == loop_id]:
            await self._sdk_clients.pop(key).close()
        transport = self._transports.pop(loop_id, None)
        if transport is not None:
            await transport.close()


def _body_message(body: bytes) -> str:
    """The server's error message from an error body, or the start of the body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return body[:300].decode("utf-8", "replace")
    inner = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])[:300]
    return json.dumps(data)[:300]
