"""JSON POSTs to OpenAI-compatible endpoints, on aiohttp's client.

Why aiohttp: the layer used to carry its own HTTP/1.1 client because httpx (under the
openai SDK) scans its whole connection pool on every request, about 2 ms of CPU per
request at 128 in flight, so one core tops out near 500 requests/s. aiohttp's client
does not: on `benchmarks/llm_client_throughput.py` (5,000 requests, 128 in flight,
100 ms server) it was measured at 1,139-1,160 req/s = 0.89-0.91 of ideal, 0.28 ms CPU per
request, against 1,149 req/s, 0.90, 0.22 ms for the hand-written client; run back to back
on the loaded 2-core machine (load 6-8), 954-1,041 req/s at 0.30-0.34 ms against
1,077-1,147 req/s at 0.19-0.25 ms, while the openai SDK spends 3.5-4 ms. For about 0.1 ms
of CPU per request it brings TLS, proxies (`HTTP(S)_PROXY`/`NO_PROXY`), redirects,
compressed and chunked answers and the HTTP edge cases a hand-written client gets wrong.
(`extra={"transport": "sdk"}` switches the openai backend to the SDK instead.)

A `Transport` holds one aiohttp session, so it belongs to the event loop that created
it; the backend keeps one per loop. Every failure below HTTP (refused, reset, dropped
mid-answer, broken framing, a body over MAX_BODY_BYTES) is a `TransportError`, and no
answer in time is a `TimeoutError`; HTTP statuses are the caller's to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDictProxy
from yarl import URL

MAX_BODY_BYTES = 256 * 2**20
"""A larger answer is refused: no chat completion is that big, and a broken or hostile
server must not make the client buffer gigabytes."""

KEEPALIVE_S = 4.0
"""Idle connections are closed after this. uvicorn (vLLM's server) closes them after
5 s; a POST that meets a connection the server has just closed is not resent by aiohttp
(POST is not idempotent), so it would cost a retry with backoff."""

CHUNK_BYTES = 2**16


class TransportError(ConnectionError):
    """The request failed below HTTP: no usable response came back."""


@dataclass
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Transport:
    """A pooled aiohttp session for the running event loop."""

    def __init__(self, headers: dict[str, str], timeout_s: float):
        self._session = aiohttp.ClientSession(
            # No limit here: the client bounds requests in flight itself.
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            # An API answer has no cookies worth keeping, and the jar costs CPU per request.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Not trust_env: with it aiohttp looks up netrc and the proxy in a worker thread
            # on every request, which tripled the CPU per request; `_proxy` reads the same
            # environment once per origin instead.
            trust_env=False,
        )
        self._proxies: dict[tuple[str, str, int | None], tuple[URL | None, Any]] = {}

    async def post_json(self, url: URL, body: bytes) -> Response:
        """POST `body` to `url`; raises TimeoutError or TransportError."""
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._session.post(
                url, data=body, proxy=proxy, proxy_auth=proxy_auth
            ) as answer:
                return Response(answer.status, answer.headers, await _read(answer))
        except TimeoutError:
            raise
        except aiohttp.ClientError as err:
            raise TransportError(_describe(err)) from None

    def _proxy(self, url: URL) -> tuple[URL | None, Any]:
        """The proxy for `url` from HTTP(S)_PROXY / NO_PROXY (as trust_env reads them),
        looked up once per origin: a proxy set after the first request is not seen."""
        origin = (url.scheme, url.host or "", url.port)
        found = self._proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(url)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    async def close(self) -> None:
        await self._session.close()


async def _read(answer: aiohttp.ClientResponse) -> bytes:
    """The body, refused past MAX_BODY_BYTES (counted after decompression)."""
    length = answer.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise TransportError(f"body of {length} bytes is over the {MAX_BODY_BYTES} limit")
    if length is not None and "Content-Encoding" not in answer.headers:
        return await answer.read()
    parts, total = [], 0
    async for part in answer.content.iter_chunked(CHUNK_BYTES):
        total += len(part)
        if total > MAX_BODY_BYTES:
            raise TransportError(f"body over the {MAX_BODY_BYTES} byte limit")
        parts.append(part)
    return b"".join(parts)


def _describe(err: aiohttp.ClientError) -> str:
    """aiohttp's message, with the error's name when the message alone says little."""
    if isinstance(err, aiohttp.ClientResponseError):
        # Raised for a response that cannot be parsed (its `status` is not the server's);
        # the parser's message goes on with the raw bytes and a caret line.
        return f"malformed response framing ({str(err.message).splitlines()[0]})"
    text = str(err)
    name = type(err).__name__
    return f"{name}: {text}" if text else name
