"""Reading a chat-completion response body: the one place that decides whether a 200
answer is usable.

A server can answer 200 with anything: a truncated body, a JSON list, `usage: "x"`,
`choices: [1]`, a null message or content, a logprob entry without `logprob`. Every such
answer becomes a `BadAnswer` with the reason, never an exception, so one odd answer among
thousands costs one request (retried, then an error row), not the run. The shape is
checked by the pydantic models below; they ignore fields they do not read, so servers
that add their own fields still work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helpsteer.llm.types import (
    ChatRequest,
    Completion,
    TokenLogprob,
    TopLogprob,
    Usage,
    empty_sample,
)

EMPTY_COMPLETION = "empty completion"


@dataclass(frozen=True)
class BadAnswer:
    """Why a 200 answer is unusable. `repeats`: another try of the same request would most
    likely get the same answer (an empty text from a seeded model), so once the retries
    run out it is recorded as a permanent failure; a malformed body is not."""

    reason: str
    repeats: bool = False


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WireTopLogprob(_Wire):
    token: str
    logprob: float = Field(allow_inf_nan=False)


class WireTokenLogprob(_Wire):
    token: str
    logprob: float = Field(allow_inf_nan=False)
    top_logprobs: list[WireTopLogprob] | None = None


class WireLogprobs(_Wire):
    content: list[WireTokenLogprob] | None = None


class WireMessage(_Wire):
    content: str | None = None


class WireChoice(_Wire):
    index: int | None = Field(None, ge=0)
    message: WireMessage
    finish_reason: str | None = None
    # Checked only when the request asked for logprobs (see `_logprobs`): a server's odd
    # logprobs that nobody reads must not cost the answer.
    logprobs: Any = None


class WireUsage(_Wire):
    prompt_tokens: int | None = Field(None, ge=0)
    completion_tokens: int | None = Field(None, ge=0)


class WireResponse(_Wire):
    choices: list[WireChoice] = Field(min_length=1)
    usage: WireUsage | None = None


def parse_chat_response(body: bytes | str, request: ChatRequest) -> Completion | BadAnswer:
    """The Completion in a chat-completion response body, or why there is none."""
    try:
        data = WireResponse.model_validate_json(body)
    except ValidationError as err:
        return BadAnswer(f"malformed response ({_describe(err)})")
    choices, problem = _ordered_choices(data.choices, request.n)
    if problem is not None:
        return BadAnswer(f"malformed response ({problem})")
    texts = []
    for i, choice in enumerate(choices):
        if choice.message.content is None:
            return BadAnswer(f"malformed response (choice {i} has null message content)")
        texts.append(choice.message.content)
    empty = empty_sample(texts)
    if empty is not None and not request.allow_empty:
        return BadAnswer(f"{EMPTY_COMPLETION} (sample {empty})", repeats=True)
    logprobs = None
    if request.logprobs:
        logprobs, problem = _logprobs(choices)
        if problem is not None:
            return BadAnswer(f"malformed response ({problem})")
    usage = data.usage or WireUsage()
    return Completion(
        texts=texts,
        finish_reasons=[c.finish_reason for c in choices],
        logprobs=logprobs,
        usage=Usage(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=usage.completion_tokens or 0,
        ),
    )


def _ordered_choices(choices: list[WireChoice], n: int) -> tuple[list[WireChoice], str | None]:
    """The choices in sample order, at most `n` (fewer are topped up by the client)."""
    if len(choices) == 1:
        return choices, None
    indices = [c.index for c in choices]
    if None in indices:
        return [], f"{len(choices)} choices but not every one has an index"
    if len(set(indices)) != len(indices):
        return [], f"choices repeat an index: {sorted(indices)}"
    return sorted(choices, key=lambda c: c.index)[:n], None


def _logprobs(choices: list[WireChoice]) -> tuple[list[list[TokenLogprob]] | None, str | None]:
    """Per sample its token logprobs; None when the server sent none (not every server
    can, and callers fall back to the text), a reason when what it sent is unusable."""
    out = []
    for i, choice in enumerate(choices):
        if choice.logprobs is None:
            return None, None
        try:
            block = WireLogprobs.model_validate(choice.logprobs)
        except ValidationError as err:
            return None, f"choice {i} logprobs: {_describe(err)}"
        if block.content is None:
            return None, None
        out.append([_token(t) for t in block.content])
    return out, None


def _token(item: WireTokenLogprob) -> TokenLogprob:
    return TokenLogprob(
        token=item.token,
        logprob=item.logprob,
        top_logprobs=[
            TopLogprob(token=t.token, logprob=t.logprob) for t in item.top_logprobs or []
        ],
    )


def _describe(err: ValidationError, limit: int = 3) -> str:
    """The first problems of a validation error, short and without pydantic class names."""
    parts = []
    for problem in err.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        message = re.sub(r" or instance of \w+", "", problem["msg"])
        if problem["type"] == "json_invalid":
            parts.append(f"not JSON: {problem.get('ctx', {}).get('error', message)}")
            continue
        got = problem.get("input")
        shown = "" if isinstance(got, dict | list) else f", got {repr(got)[:40]}"
        parts.append(f"{where}: {message}{shown}")
    more = err.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
