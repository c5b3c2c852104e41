"""Request and result records of the LLM client layer (pydantic, no heavy imports)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["text"] = "text"
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    detail: Literal["auto", "low", "high"] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_detail(self, dump: Any) -> dict[str, Any]:
        # An unset `detail` stays off the wire and out of the cache key.
        data = dump(self)
        if data.get("detail") is None:
            data.pop("detail", None)
        return data


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message. `content` is a string or, as OpenAI's API also allows (and clients
    such as DataDesigner always send), a list of content parts; both go on the wire as
    given, so they make different cache keys."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    @property
    def text(self) -> str:
        """The text of the message: `content`, or its text parts joined by newlines."""
        return content_text(self.content)

    @property
    def is_text_only(self) -> bool:
        """Whether the content is a string or text parts only (no image)."""
        return isinstance(self.content, str) or all(p.type == "text" for p in self.content)


def content_text(content: Any) -> str:
    """The text of a message's content, string or content parts (plain dicts or models).
    Parts that are not text (images) add nothing."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content or []:
        if isinstance(part, BaseModel):
            part = part.model_dump()
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
    return "\n".join(texts)


class ChatRequest(BaseModel):
    """One chat-completion request; everything but `metadata` goes into the cache key.

    `allow_empty`: an empty sample ("") is a valid answer. By default it is
    an error, "empty completion", retried like a malformed answer and never cached as a
    success, because for almost every stage an empty text is a failed generation. It is
    part of the cache key only when set, so keys made before it existed still match.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[ChatMessage]
    n: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    json_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    allow_empty: bool = False

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if not messages:
            raise ValueError("a chat request needs at least one message")
        return messages

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, stop: Any) -> Any:
        return [stop] if isinstance(stop, str) else stop

    def sampling(self) -> dict[str, Any]:
        """The parameters that decide the output (the cache key's content besides the model)."""
        return self.model_dump(exclude={"metadata", "allow_empty"}, mode="json")

    def cache_key(self, backend: str, model: str) -> str:
        payload = {"backend": backend, "model": model, **self.sampling()}
        if self.allow_empty:
            payload["allow_empty"] = True
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Completion(BaseModel):
    """The result of one ChatRequest: one text per sample, or `error` after retries ran out.

    `permanent` marks an error that another try would repeat (the request itself is bad,
    the output never matched its JSON schema, the model keeps answering nothing): the
    client records it in the cache so a resumed run does not ask again. A transient error
    (timeouts, 5xx, malformed bodies after the retries) is not recorded.
    """

    texts: list[str] = Field(default_factory=list)
    finish_reasons: list[str | None] = Field(default_factory=list)
    logprobs: list[list[TokenLogprob]] | None = None
    parsed: list[Any] | None = None
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    latency_s: float = 0.0
    error: str | None = None
    permanent: bool = False

    @property
    def text(self) -> str:
        """The first sample's text (most requests ask for one)."""
        return self.texts[0] if self.texts else ""

    @property
    def ok(self) -> bool:
        return self.error is None


def empty_sample(texts: list[str]) -> int | None:
    """The index of the first empty sample, None when there is none. Only "" counts: text
    that is only whitespace is an answer, and the stage that reads it decides about it."""
    return next((i for i, text in enumerate(texts) if text == ""), None)


def as_request(item: ChatRequest | dict[str, Any]) -> ChatRequest:
    return item if isinstance(item, ChatRequest) else ChatRequest.model_validate(item)
