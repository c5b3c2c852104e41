"""A small keep-alive HTTP/1.1 client for JSON POSTs, on asyncio streams.

Why not httpx (under the openai SDK): its connection pool scans every connection on
each request, which costs about 2 ms of CPU per request at 128 in flight, so one core
tops out near 500 requests/s against a fast server; this client spends a fraction of
that, which matters when a run fans out to many vLLM servers. It speaks exactly what an
OpenAI-compatible endpoint needs: POST with a JSON body, http or https, responses with
Content-Length, chunked, or read-to-close bodies. (`extra={"transport": "sdk"}` in the
config switches the openai backend to the official SDK instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BODY_BYTES = 256 * 2**20
"""A larger answer is refused: no chat completion is that big, and a broken or hostile
server must not make the client buffer gigabytes."""


class ConnectionDropped(ConnectionError):
    """The server closed the connection before the response was complete."""

    def __init__(self, message: str, got_bytes: bool):
        super().__init__(message)
        self.got_bytes = got_bytes


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int
    path: str


def _origin(url: str) -> _Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Origin(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HttpClient:
    """Pooled connections to one base URL; bound to the event loop that first uses it."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None):
        self.origin = _origin(base_url)
        self.headers = headers or {}
        self._idle: list[_Conn] = []
        self._ssl = ssl.create_default_context() if self.origin.scheme == "https" else None

    async def post_json(self, path: str, body: bytes, timeout: float) -> Response:
        """POST `body` to base path + `path`; raises TimeoutError or ConnectionError."""
        head = self._head(path, len(body))
        async with asyncio.timeout(timeout):
            conn, reused = await self._acquire()
            try:
                response = await self._exchange(conn, head + body)
            except ConnectionDropped as err:
                conn.close()
                if not (reused and not err.got_bytes):
                    raise
                # A keep-alive connection the server had already closed: the request never
                # reached it, so one fresh connection is not a retry.
                conn, reused = await self._connect(), False
                try:
                    response = await self._exchange(conn, head + body)
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
        if response.headers.get("connection", "").lower() == "close" or not conn.usable:
            conn.close()
        else:
            self._idle.append(conn)
        return response

    def _head(self, path: str, length: int) -> bytes:
        lines = [
            f"POST {self.origin.path}{path} HTTP/1.1",
            f"Host: {self.origin.host}:{self.origin.port}",
            "Content-Type: application/json",
            "Accept: application/json",
            f"Content-Length: {length}",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _acquire(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn, True
            conn.close()
        return await self._connect(), False

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(
            self.origin.host, self.origin.port, ssl=self._ssl, limit=2**24
        )
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, payload: bytes) -> Response:
        conn.writer.write(payload)
        await conn.writer.drain()
        reader = conn.reader
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            got = bool(err.partial)
            raise ConnectionDropped("connection closed before the response", got) from None
        except ConnectionResetError as err:
            raise ConnectionDropped(f"connection reset ({err})", False) from None
        except asyncio.LimitOverrunError:
            raise ConnectionDropped("response head too long", True) from None
        status, headers = _parse_head(head)
        try:
            body = await _read_body(reader, headers)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            raise ConnectionDropped("connection closed mid-response", True) from None
        except (ValueError, asyncio.LimitOverrunError) as err:
            # A Content-Length or chunk size that is not a number, or too large: the
            # connection is unusable, and the caller retries it like a dropped one.
            raise ConnectionDropped(f"malformed response framing ({err})", True) from None
        return Response(status, headers, body)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionDropped(f"not an HTTP response: {lines[0][:80]!r}", True) from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The body; ValueError for framing that is not a number or exceeds MAX_BODY_BYTES."""
    if "content-length" in headers:
        return await reader.readexactly(_size(int(headers["content-length"]), 0))
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks, total = [], 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            total = _size(size, total)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    headers["connection"] = "close"
    parts, total = [], 0
    while part := await reader.read(2**16):
        total = _size(len(part), total)
        parts.append(part)
    return b"".join(parts)


def _size(size: int, so_far: int) -> int:
    if size < 0 or so_far + size > MAX_BODY_BYTES:
        raise ValueError(f"body size {so_far + size} out of range")
    return so_far + size
