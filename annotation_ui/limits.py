"""Request size limits and login throttling for the annotator app.

Both run before a request reaches authentication: an anonymous client must not be able
to make the server hold large bodies in memory, nor try passwords at scrypt speed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_FIELDS = 1000

log = logging.getLogger("annotation_ui.login")


class BodyTooLarge(Exception):
    """The request body went past the limit while it was being read."""

    def __init__(self, limit: int):
        super().__init__(f"The request is larger than this server accepts ({limit} bytes).")
        self.limit = limit


class BodyLimit:
    """ASGI middleware: refuse a request whose body is over `max_bytes` with 413.

    A declared Content-Length is checked before the app sees the request; a chunked or
    under-declared body is counted as it arrives, so at most `max_bytes` plus one chunk
    is ever read.
    """

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None or declared > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        started = False

        async def counted_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counted(receive), counted_send)
        except BodyTooLarge:
            # Reached only when no exception handler turned it into a page first.
            if not started:
                await _send_413(send, self.max_bytes)

    def _counted(self, receive):
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return counted_receive


def _content_length(scope) -> int | None:
    """The declared length (0 when none is declared); None when it is not a number."""
    values = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
    if not values:
        return 0
    if len(set(values)) != 1 or not values[0].isdigit() or len(values[0]) > 18:
        return None
    return int(values[0])


async def _send_413(send, limit: int) -> None:
    body = f"Request too large: this server accepts at most {limit} bytes.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
                # The unread body stays on the wire; closing is the only safe way on.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def count_fields(body: bytes, content_type: str) -> int:
    """An upper bound on the number of fields in a form body, found without parsing it."""
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return body.count(b"&") + 1 if body else 0
    if kind == "multipart/form-data":
        boundary = _param(params, "boundary")
        return body.count(b"--" + boundary.encode("latin-1")) if boundary else 0
    return 0


def _param(params: str, name: str) -> str | None:
    for part in params.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == name:
            return value.strip().strip('"')
    return None


# --- login throttling ---------------------------------------------------------------------


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Lock an account, or a client address, out for `window` seconds once it has had its
    limit of failed logins within `window` seconds (a limit of 0 switches that key off).

    Kept in memory: the app runs as one process, and a restart forgetting failures costs
    an attacker a restart they cannot cause. Unknown user names are tracked like real
    ones, so a lockout says nothing about which accounts exist.
    """

    MAX_KEYS = 50_000

    def __init__(
        self,
        window: float = 300.0,
        per_account: int = 5,
        per_address: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = window
        self.limits = {"account": per_account, "address": per_address}
        self.clock = clock
        self._seen: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    def begin(self, username: str, address: str) -> int:
        """Seconds until this account and address may try again; 0 when they may now, and
        then the try counts as failed until `succeeded` says otherwise, so a burst of
        parallel guesses is counted before any of them is checked."""
        now = self.clock()
        with self._lock:
            wait = self._wait(username, address, now)
            if wait:
                log.warning(
                    "login refused for %ds: account %r, address %s",
                    wait, _account(username), address,
                )  # fmt: skip
                return wait
            self._forget_old(now)
            for key in self._keys(username, address):
                entry = self._seen.setdefault(key, _Failures())
                entry.times = [t for t in entry.times if t > now - self.window] + [now]
            return 0

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._seen.pop(("account", _account(username)), None)
            entry = self._seen.get(("address", address))
            if entry is not None and entry.times:
                entry.times.pop()

    def _wait(self, username: str, address: str, now: float) -> int:
        """Seconds left of a lockout; starts one when a key is at its limit of failures."""
        wait = 0.0
        for key in self._keys(username, address):
            entry = self._seen.get(key)
            if entry is None:
                continue
            recent = [t for t in entry.times if t > now - self.window]
            if entry.locked_until <= now and len(recent) >= self.limits[key[0]]:
                entry.locked_until, entry.times = now + self.window, []
                log.warning(
                    "login locked for %ds: %s %r after %d failures",
                    self.window, key[0], key[1], len(recent),
                )  # fmt: skip
            wait = max(wait, entry.locked_until - now)
        return math.ceil(wait) if wait > 0 else 0

    def _keys(self, username: str, address: str) -> list[tuple[str, str]]:
        keys = [("account", _account(username)), ("address", address)]
        return [key for key in keys if self.limits[key[0]] > 0]

    def _forget_old(self, now: float) -> None:
        """Keep memory bounded when someone sprays many user names: drop what has expired,
        then failures short of a lockout; lockouts themselves are always kept."""
        if len(self._seen) < self.MAX_KEYS:
            return
        for key, entry in list(self._seen.items()):
            if entry.locked_until <= now and all(t <= now - self.window for t in entry.times):
                del self._seen[key]
        if len(self._seen) >= self.MAX_KEYS:
            for key, entry in list(self._seen.items()):
                if entry.locked_until <= now:
                    del self._seen[key]


def _account(username: str) -> str:
    return username.strip().lower()[:64]
