"""A fault-injecting OpenAI-compatible chat server for tests and benchmarks (loopback only).

It answers `POST /v1/chat/completions` with a deterministic echo of the last user
message (or what a `responder` returns), and can be scripted to fail: 429 with
Retry-After, 500, 400, a slow answer, a connection closed half-way through the response,
a 200 whose body is not JSON ("malformed"), or a 200 whose body is JSON of the wrong
shape or an empty answer (the kinds in MALFORMED, e.g. "bad_usage" for `usage: "x"`).
Every request is recorded, so a test can check that
each item was produced exactly once and that a resumed run sent no finished request
again. It is a plain asyncio HTTP/1.1 server with keep-alive, running in its own
thread (`FaultServer`) or process (`python -m helpsteer.llm.testing`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpsteer.llm.types import content_text


def _break(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """A change to a good answer: set the value at a dotted path ("choices.0.message")."""

    def change(answer: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = answer
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value
        return answer

    return change


def _two_choices_without_index(answer: dict[str, Any]) -> dict[str, Any]:
    choice = {k: v for k, v in answer["choices"][0].items() if k != "index"}
    answer["choices"] = [choice, dict(choice)]
    return answer


def _logprob_entry_without_logprob(answer: dict[str, Any]) -> dict[str, Any]:
    answer["choices"][0]["logprobs"] = {"content": [{"token": "echo:", "top_logprobs": []}]}
    return answer


MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "bad_usage": _break("usage", "x"),
    "bad_usage_tokens": _break("usage.prompt_tokens", "many"),
    "bad_choice": _break("choices", [1]),
    "no_choices": _break("choices", []),
    "no_choices_key": lambda a: {k: v for k, v in a.items() if k != "choices"},
    "null_message": _break("choices.0.message", None),
    "string_message": _break("choices.0.message", "hello"),
    "null_content": _break("choices.0.message.content", None),
    "list_content": _break("choices.0.message.content", [{"type": "text", "text": "hi"}]),
    "bad_finish": _break("choices.0.finish_reason", 5),
    "no_index": _two_choices_without_index,
    "bad_logprob": _logprob_entry_without_logprob,
    "nan_logprob": _break(
        "choices.0.logprobs", {"content": [{"token": "a", "logprob": float("nan")}]}
    ),
    "bad_top_logprobs": _break(
        "choices.0.logprobs", {"content": [{"token": "a", "logprob": -1, "top_logprobs": "x"}]}
    ),
    "json_list": lambda a: [a],
    "json_string": lambda a: "chat.completion",
    "empty": _break("choices.0.message.content", ""),
}
"""Faults that answer 200 with a JSON body of the wrong shape (or an empty answer): each
changes the good answer for the request. "bad_logprob", "nan_logprob" and
"bad_top_logprobs" matter only to requests that ask for logprobs."""

BODY_FAULTS: dict[str, bytes] = {
    "malformed": b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess',
    "not_json": b"<html><body>502 Bad Gateway</body></html>",
    "not_utf8": b'{"choices": "\xff\xfe"}',
    "deep_json": b"[" * 100_000 + b"]" * 100_000,
}
"""Faults that answer 200 with a body that is not JSON at all (or too deep to read)."""

FAULT_KINDS = (
    "ok", "400", "401", "429", "500", "slow", "drop", "bad_framing", *BODY_FAULTS, *MALFORMED
)  # fmt: skip


@dataclass(frozen=True)
class Fault:
    """What the server does with one request instead of answering normally."""

    kind: str = "ok"
    retry_after: float | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {FAULT_KINDS}")


@dataclass
class Received:
    """One request as the server saw it, and what it did with it."""

    body: dict[str, Any]
    fault: str
    port: int
    time: float
    completed: bool = False

    @property
    def prompt(self) -> str:
        return last_user_text(self.body)


Responder = Callable[[dict[str, Any]], list[str] | list[dict[str, Any]] | None]
"""Texts per sample, or dicts {"text", "logprobs": [{token: logprob} per position]}."""


@dataclass
class ServerState:
    """Shared by the handler coroutines: the scripted faults and the request log."""

    delay_s: float = 0.0
    responder: Responder | None = None
    queue: list[Fault] = field(default_factory=list)
    by_prompt: dict[str, list[Fault]] = field(default_factory=dict)
    log: list[Received] = field(default_factory=list)
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self, prompt: str) -> Fault:
        with self.lock:
            planned = self.by_prompt.get(prompt)
            if planned:
                return planned.pop(0)
            if self.queue:
                return self.queue.pop(0)
        return Fault()


def _words(text: str) -> list[str]:
    return text.split() or [""]


def _scripted_logprobs(positions: list[dict[str, float]]) -> dict[str, Any]:
    """Per generated position, its candidates {token: logprob}, the best one generated."""
    content = []
    for candidates in positions:
        best = max(candidates, key=candidates.__getitem__)
        top = [{"token": t, "logprob": lp} for t, lp in candidates.items()]
        content.append({"token": best, "logprob": candidates[best], "top_logprobs": top})
    return {"content": content}


def _choice(
    index: int, reply: str | dict[str, Any], want_logprobs: bool, top: int
) -> dict[str, Any]:
    if isinstance(reply, dict):  # {"text": ..., "logprobs": [{token: logprob}, ...]}
        choice = _choice(index, reply["text"], False, 0)
        if want_logprobs:
            choice["logprobs"] = _scripted_logprobs(reply["logprobs"])
        return choice
    text = reply
    choice: dict[str, Any] = {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": None,
    }
    if want_logprobs:
        tokens = _words(text)
        choice["logprobs"] = {
            "content": [
                {
                    "token": tok,
                    "logprob": -0.1 * (i + 1),
                    "bytes": None,
                    "top_logprobs": [
                        {"token": tok if k == 0 else f"{tok}~{k}", "logprob": -0.1 * (i + 1) - k}
                        for k in range(top)
                    ],
                }
                for i, tok in enumerate(tokens)
            ]
        }
    return choice


def _text(reply: str | dict[str, Any]) -> str:
    return reply["text"] if isinstance(reply, dict) else reply


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message; content may be a string or content parts."""
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    return content_text(users[-1]) if users else ""


def answer(body: dict[str, Any], responder: Responder | None = None) -> dict[str, Any]:
    """The normal (fault-free) response body for a chat request."""
    messages = body.get("messages", [])
    prompt = last_user_text(body)
    n = int(body.get("n") or 1)
    texts = responder(body) if responder is not None else None
    if texts is None:
        seed = body.get("seed")
        texts = [f"echo: {prompt}" + (f" #{i}" if n > 1 else "") for i in range(n)]
        if seed is not None:
            texts = [f"{t} seed={seed}" for t in texts]
    want = bool(body.get("logprobs"))
    top = int(body.get("top_logprobs") or 0)
    prompt_tokens = sum(len(_words(content_text(m.get("content", "")))) for m in messages)
    return {
        "id": "chatcmpl-fault-server",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [_choice(i, t, want, top) for i, t in enumerate(texts)],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(len(_words(_text(t))) for t in texts),
            "total_tokens": prompt_tokens + sum(len(_words(_text(t))) for t in texts),
        },
    }


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Error",
}


def _http(status: int, payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + payload


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _chat_body(raw: bytes) -> dict[str, Any] | None:
    """The request body when it is a JSON object whose messages are objects, else None
    (answered with a 400, as a real server would, instead of dropping the connection)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("messages", []), list):
        return None
    if not all(isinstance(m, dict) for m in body.get("messages", [])):
        return None
    return body


class _Handler:
    def __init__(self, state: ServerState, port_of: Callable[[], int]):
        self.state = state
        self.port_of = port_of

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if not await self._respond(*request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, method: str, path: str, raw: bytes, writer) -> bool:
        """Write one response; False when the connection was closed on purpose."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            writer.write(_http(200, b'{"object":"list","data":[{"id":"fault-server"}]}'))
            await writer.drain()
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            writer.write(_http(404, b'{"error":{"message":"not found"}}'))
            await writer.drain()
            return True
        body = _chat_body(raw)
        if body is None:
            writer.write(_http(400, b'{"error":{"message":"not a chat completion request"}}'))
            await writer.drain()
            return True
        state = self.state
        entry = Received(body=body, fault="ok", port=self.port_of(), time=time.time())
        fault = state.next_fault(entry.prompt)
        entry.fault = fault.kind
        if state.record:
            with state.lock:
                state.log.append(entry)
        delay = state.delay_s + fault.delay_s
        if delay:
            await asyncio.sleep(delay)
        if fault.kind == "429":
            extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            writer.write(_http(429, b'{"error":{"message":"rate limited"}}', extra))
        elif fault.kind == "400":
            writer.write(_http(400, b'{"error":{"message":"unknown parameter"}}'))
        elif fault.kind == "401":
            writer.write(_http(401, b'{"error":{"message":"invalid api key"}}'))
        elif fault.kind == "bad_framing":
            # A Content-Length that is not a number: the connection cannot be read on.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n{}")
            await writer.drain()
            writer.transport.abort()
            return False
        elif fault.kind == "500":
            writer.write(_http(500, b'{"error":{"message":"internal error"}}'))
        elif fault.kind == "drop":
            full = _http(200, json.dumps(answer(body, state.responder)).encode())
            writer.write(full[: len(full) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        elif fault.kind in BODY_FAULTS:
            writer.write(_http(200, BODY_FAULTS[fault.kind]))
        elif fault.kind in MALFORMED:
            broken = MALFORMED[fault.kind](answer(body, state.responder))
            writer.write(_http(200, json.dumps(broken).encode()))
        else:
            writer.write(_http(200, json.dumps(answer(body, state.responder)).encode()))
            entry.completed = True
        await writer.drain()
        return True


class FaultServer:
    """The fault server on 127.0.0.1 in a background thread; use as a context manager.

    `delay_s` delays every answer; `responder(body)` may return the texts to send.
    Script faults with `plan(...)` (the next requests, in arrival order) or
    `plan_for(prompt, ...)` (the next requests whose last user message is `prompt`).
    """

    def __init__(self, delay_s: float = 0.0, responder: Responder | None = None, port: int = 0):
        self.state = ServerState(delay_s=delay_s, responder=responder)
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def plan(self, *faults: Fault | str) -> None:
        with self.state.lock:
            self.state.queue.extend(_as_fault(f) for f in faults)

    def plan_for(self, prompt: str, *faults: Fault | str) -> None:
        with self.state.lock:
            self.state.by_prompt.setdefault(prompt, []).extend(_as_fault(f) for f in faults)

    @property
    def requests(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.log)

    def completed_counts(self) -> Counter[str]:
        """How many normal (200, complete) answers each prompt got."""
        return Counter(r.prompt for r in self.requests if r.completed)

    def start(self) -> FaultServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start within 10 s")
        return self

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        handler = _Handler(self.state, lambda: self._port)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(handler, "127.0.0.1", self._port, backlog=1024)
        )
        self._port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _as_fault(fault: Fault | str) -> Fault:
    if isinstance(fault, Fault):
        return fault
    kind, _, arg = fault.partition(":")
    if kind == "429":
        return Fault("429", retry_after=float(arg) if arg else None)
    if kind == "slow":
        return Fault("slow", delay_s=float(arg or 1.0))
    return Fault(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fault server until killed.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--no-record", action="store_true", help="keep no request log")
    args = parser.parse_args()
    server = FaultServer(delay_s=args.delay, port=args.port)
    server.state.record = not args.no_record
    server.start()
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
