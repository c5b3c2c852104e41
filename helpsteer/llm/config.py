"""LLMConfig: which backend and model, how hard to push it, where to cache. Importable alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class Price(BaseModel):
    """US dollars per 1,000 tokens."""

    prompt_per_1k: float = Field(0.0, ge=0)
    completion_per_1k: float = Field(0.0, ge=0)


class LLMConfig(BaseModel):
    """Settings of an LLM client, grouped by concern.

    Endpoint: `backend` ("openai" for any OpenAI-compatible server, "local" for the
    embedded SmolLM2 through llama.cpp's server, "vllm" for in-process vLLM), `model`,
    `base_urls` (several for fan-out), `api_key_env`.

    Admission and retries: `max_in_flight` requests at once (None = the backend's
    default: 16; 1 for "local"; 1024 for "vllm", which batches them), `timeout_s` per
    HTTP call, `max_retries` after the first try, `backoff_base_s` / `backoff_max_s`
    for exponential backoff.

    Output: `json_mode` is how a JSON schema is sent ("json_schema" is OpenAI's
    form, "json_object" with a schema is llama.cpp's), `json_repair_retries` bounds
    the re-asks after an answer that does not validate.

    Accounting and cache: `prices` per model, `cache_dir` (None = no cache). A request
    that failed permanently (a 400/413/422, output that never matched its JSON schema, an
    empty answer on every try) is recorded in the cache and returned as that error again;
    `retry_failed` asks such requests again instead.
    `extra` holds backend options (local: n_ctx, n_threads, port; vllm: LLM kwargs).
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai", "local", "vllm"] = "local"
    model: str = ""
    base_urls: list[str] = Field(default_factory=list)
    api_key_env: str = "OPENAI_API_KEY"
    max_in_flight: int | None = Field(None, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    json_mode: Literal["json_schema", "json_object"] | None = None
    json_repair_retries: int = Field(2, ge=0)
    cache_dir: Path | None = None
    prices: dict[str, Price] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    retry_failed: bool = False

    @model_serializer(mode="wrap")
    def _drop_unset_retry_failed(self, handler):
        # Stage fingerprints hash the dumped config: leaving the default out keeps every
        # fingerprint from before this option, while retry_failed=True changes it, so the
        # stage re-runs and its recorded failures are asked again.
        data = handler(self)
        if isinstance(data, dict) and not self.retry_failed:
            data.pop("retry_failed", None)
        return data

    @model_validator(mode="after")
    def _check_endpoint(self) -> LLMConfig:
        if self.backend == "openai" and not self.base_urls:
            raise ValueError("backend 'openai' needs at least one entry in base_urls")
        if self.backend in ("openai", "vllm") and not self.model:
            raise ValueError(f"backend {self.backend!r} needs a model name")
        return self

    @property
    def in_flight(self) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        return {"local": 1, "vllm": 1024}.get(self.backend, 16)

    @property
    def response_format_style(self) -> str:
        if self.json_mode is not None:
            return self.json_mode
        return "json_object" if self.backend == "local" else "json_schema"


def with_retry_failed(model: Any) -> Any:
    """`model` (a stage config, or a list/dict of them) with `retry_failed=True` in every
    LLMConfig inside it, however deeply nested; the other values are left as they are."""
    if isinstance(model, LLMConfig):
        return model.model_copy(update={"retry_failed": True})
    if isinstance(model, BaseModel):
        changes = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            flagged = with_retry_failed(value)
            if flagged is not value:
                changes[name] = flagged
        return model.model_copy(update=changes) if changes else model
    if isinstance(model, list | tuple):
        items = [with_retry_failed(item) for item in model]
        changed = any(a is not b for a, b in zip(items, model, strict=True))
        return type(model)(items) if changed else model
    if isinstance(model, dict):
        values = {k: with_retry_failed(v) for k, v in model.items()}
        return values if any(values[k] is not model[k] for k in model) else model
    return model
