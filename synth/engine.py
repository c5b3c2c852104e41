"""What every synth stage shares: the config base, the LLM call with progress and
accounting, list/single parsing with rejects, and building `prompts` rows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from helpsteer.conversation import ConversationError, Message, messages_to_flat
from helpsteer.llm import ChatRequest, Completion, LLMConfig
from helpsteer.llm.client import answered
from helpsteer.pipeline import PipelineError, StageConfig, StageContext, Tables
from synth.parsing import json_items, parse_list, parse_single
from synth.templates import Template, load_templates

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
PROMPT_SCHEMA = {
    "prompt_id": pl.String,
    "messages": pl.List(MESSAGE),
    "prompt": pl.String,
    "source": pl.String,
    "meta": pl.String,
}
LIST_SCHEMA = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["items"],
}


class SynthConfig(StageConfig):
    """Settings every LLM-driven synth stage has."""

    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="The LLM (default: the embedded local model). Without a cache_dir the "
        "completion cache goes to OUT/.llm-cache so a killed run resumes.",
    )
    temperature: float = Field(0.7, ge=0)
    top_p: float | None = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, description="Per generation request.")
    templates: str | None = Field(None, description="TOML file replacing templates by name.")
    json_lists: bool = Field(
        False, description="Ask for lists as JSON with a schema instead of numbered lists."
    )


def stable_int(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def short_hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


class _RateTask:
    """A progress bar whose label shows requests/s, tokens/s and errors as they happen."""

    def __init__(self, bar, client, label: str):
        self.bar, self.client, self.label = bar, client, label
        self.started = time.perf_counter()
        self.tokens0 = client.stats.completion_tokens
        self.errors0 = client.stats.errors
        self.done = 0

    def advance(self, n: float = 1) -> None:
        self.done += n
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        stats = self.client.stats
        tokens = stats.completion_tokens - self.tokens0
        errors = stats.errors - self.errors0
        self.bar.advance(n)
        self.bar.update(
            description=f"{self.label} {self.done / elapsed:.1f} req/s "
            f"{tokens / elapsed:.0f} tok/s {errors} err"
        )

    def update(self, **fields: Any) -> None:
        self.bar.update(**fields)


class _RateReporter:
    def __init__(self, reporter, client, label: str):
        self.reporter, self.client, self.label = reporter, client, label

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_RateTask]:
        with self.reporter.task(self.label, total) as bar:
            yield _RateTask(bar, self.client, self.label)


@dataclass
class Rejects:
    """Unusable outputs of one stage, given to `ctx.reject` at the end."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, source: str, line: int, reason: str, record: str | None = None) -> None:
        self.rows.append({"source": source, "line": line, "reason": reason, "record": record})

    def flush(self, ctx: StageContext) -> None:
        if self.rows:
            ctx.reject(
                pl.DataFrame(
                    self.rows,
                    schema={
                        "source": pl.String,
                        "line": pl.Int64,
                        "reason": pl.String,
                        "record": pl.String,
                    },
                )
            )
            self.rows = []


class Generator:
    """A stage's access to its LLM: requests with seeds, progress, parsing and accounting."""

    def __init__(self, ctx: StageContext, cfg: SynthConfig, group: str | None = None):
        from helpsteer.llm.shared import shared_client

        self.ctx, self.cfg = ctx, cfg
        self.templates: dict[str, Template] = load_templates(group, cfg.templates) if group else {}
        llm = cfg.llm
        if llm.cache_dir is None:
            llm = llm.model_copy(update={"cache_dir": Path(ctx.out_dir) / ".llm-cache"})
        self.client = shared_client(llm)
        self.rejects = Rejects()
        self._stats0 = self.client.stats.as_dict()
        self._started = time.perf_counter()

    def request(
        self,
        messages: list[dict[str, str]] | list[Message],
        *,
        n: int = 1,
        json_schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = -1.0,
    ) -> ChatRequest:
        cfg = self.cfg
        return ChatRequest(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            n=n,
            temperature=cfg.temperature if temperature is None else temperature,
            top_p=cfg.top_p if top_p == -1.0 else top_p,
            max_tokens=max_tokens or cfg.max_tokens,
            seed=stable_int(self.ctx.seed, json.dumps(messages, sort_keys=True)),
            json_schema=json_schema,
        )

    def run(self, requests: list[ChatRequest], label: str, client=None) -> list[Completion]:
        if not requests:
            return []
        client = client or self.client
        reporter = _RateReporter(self.ctx.reporter, client, f"{self.ctx.name}: {label}")
        return answered(client, requests, reporter, PipelineError, f"{self.ctx.name}: ")

    def ask_lists(
        self, template: str, items: list[dict[str, Any]], n: int, label: str
    ) -> list[list[str]]:
        """For each `items` entry (template values), a list of up to `n` parsed items; an
        entry whose output has no usable item gets [] and a reject with the raw text."""
        tpl = self.templates[template]
        schema = LIST_SCHEMA if self.cfg.json_lists else None
        requests = [
            self.request(tpl.messages(n=n, **values), json_schema=schema) for values in items
        ]
        out = []
        for i, done in enumerate(self.run(requests, label)):
            if not done.ok:
                self.rejects.add(template, i, f"LLM error: {done.error}", done.text or None)
                out.append([])
                continue
            found = (
                json_items(done.parsed[0]) or []
                if done.parsed is not None
                else parse_list(done.text)
            )
            found = found[:n]
            if not found:
                self.rejects.add(template, i, "no list items found in the output", done.text)
            out.append(found)
        return out

    def ask_singles(self, template: str, items: list[dict[str, Any]], label: str) -> list[str]:
        """For each entry one parsed text, or "" (with a reject) when unusable."""
        tpl = self.templates[template]
        return self.singles([self.request(tpl.messages(**v)) for v in items], template, label)

    def singles(self, requests: list[ChatRequest], source: str, label: str) -> list[str]:
        out = []
        for i, done in enumerate(self.run(requests, label)):
            if not done.ok:
                self.rejects.add(source, i, f"LLM error: {done.error}", done.text or None)
                out.append("")
                continue
            text = parse_single(done.text)
            if not text:
                self.rejects.add(source, i, "empty output", done.text)
            out.append(text)
        return out

    def finish(self) -> None:
        """Record this stage's token and cost summary in ctx.info and flush rejects."""
        now = self.client.stats.as_dict()
        used = {
            k: round(now[k] - self._stats0[k], 6)
            for k in (
                "requests",
                "cache_hits",
                "calls",
                "retries",
                "errors",
                "repairs",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
            )
        }
        used["seconds"] = round(time.perf_counter() - self._started, 3)
        used["backend"] = self.client.backend_name
        used["model"] = self.client.model_name
        self.ctx.info.setdefault("llm", []).append(used)
        self.rejects.flush(self.ctx)


def prompt_frame(
    ctx: StageContext, rows: list[tuple[list[Message], dict[str, Any]]], rejects: Rejects
) -> pl.DataFrame:
    """`prompts` rows from (messages, meta) pairs; a repeated conversation, or one without
    a HelpSteer2 flat form (a turn separator inside a message), is rejected."""
    out, seen = [], set()
    for i, (messages, meta) in enumerate(rows):
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        record = json.dumps(clean, ensure_ascii=False)
        try:
            flat = messages_to_flat(clean)
        except ConversationError as exc:
            rejects.add(ctx.name, i, str(exc), record)
            continue
        prompt_id = short_hash(ctx.name, json.dumps(clean, sort_keys=True))
        if prompt_id in seen:
            rejects.add(ctx.name, i, "the same prompt was generated twice", record)
            continue
        seen.add(prompt_id)
        out.append(
            {
                "prompt_id": prompt_id,
                "messages": clean,
                "prompt": flat,
                "source": ctx.name,
                "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True),
            }
        )
    return pl.DataFrame(out, schema=PROMPT_SCHEMA)


def append_prompts(tables: Tables, new: pl.DataFrame) -> pl.DataFrame:
    if "prompts" in tables:
        return pl.concat([tables["prompts"], new], how="diagonal_relaxed")
    return new


def single_user(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"]
