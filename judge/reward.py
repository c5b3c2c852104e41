"""Reward-model-as-judge.

`RewardJudge` scores conversations with any Hugging Face
`AutoModelForSequenceClassification` reward model, single score or multi-attribute head.
The reward is read at the last real token, found from the attention mask (never from
`pad_token_id`, which breaks when pad == eos); padding may be on either side, and for
decoder models position ids are computed from the mask so left padding changes nothing.
Conversations are scored in batches sorted by length, then put back in input order.

`RewardEndpointJudge` scores through an OpenAI-compatible endpoint that returns
attribute scores as logprobs, as NVIDIA's hosted Nemotron-4-340B-Reward does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from helpsteer.chat_format import render, token_ids, truncate
from helpsteer.conversation import Message

Side = Literal["left", "right"]


class RewardModelError(ValueError):
    """A reward model, weights or endpoint reply that cannot be used."""


@dataclass(frozen=True)
class PairJudgement:
    chosen: int
    """0 when the first conversation scores higher (ties go to 0), else 1."""
    margin: float
    """score(chosen) - score(other), never negative."""
    scores: tuple[float, float]


def weights_vector(
    labels: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None
) -> np.ndarray | None:
    """Per-label weights in the head's label order; None means "single score"."""
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        missing = [name for name in weights if name not in labels]
        if missing:
            raise RewardModelError(
                f"weights name attributes {missing} that the model's labels "
                f"({', '.join(labels)}) do not have"
            )
        return np.array([float(weights.get(name, 0.0)) for name in labels])
    vector = np.asarray(list(weights), dtype=float)
    if vector.shape != (len(labels),):
        raise RewardModelError(f"{len(vector)} weights for a head with {len(labels)} outputs")
    return vector


def last_token_index(attention_mask):
    """Index of the last 1 in each row of the mask (works for left and right padding)."""
    import torch

    length = attention_mask.shape[1]
    flipped = torch.flip(attention_mask, dims=[1])
    return length - 1 - flipped.argmax(dim=1)


def order_by_length(lengths: Sequence[int]) -> list[int]:
    """Indices, longest first, so each batch pads to similar lengths."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


class RewardJudge:
    """Score conversations with a sequence-classification reward model.

    model: a local folder or Hub id (or an already loaded model, with `tokenizer`).
    attribute_weights: for a multi-output head, weights by label name or position; when
    not given, `config.attribute_weights` is used if present; a multi-output head without
    weights is an error for `score` (its `attribute_scores` still work).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        attribute_weights: Mapping[str, float] | Sequence[float] | None = None,
        max_length: int = 4096,
        truncation_side: Side = "left",
        padding_side: Side = "right",
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
        sort_by_length: bool = True,
    ):
        import torch

        if truncation_side not in ("left", "right") or padding_side not in ("left", "right"):
            raise RewardModelError("truncation_side and padding_side must be 'left' or 'right'")
        if isinstance(model, str):
            model, tokenizer = _load(model, dtype, tokenizer)
        elif tokenizer is None:
            raise RewardModelError("a loaded model needs its tokenizer")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_length = max_length
        self.truncation_side = truncation_side
        self.padding_side = padding_side
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        weights = attribute_weights
        if weights is None:
            weights = getattr(config, "attribute_weights", None)
        self.weights = weights_vector(self.labels, weights)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    # ----------------------------------------------------------- encoding

    def encode(self, conversation: Sequence[Message]) -> list[int]:
        """Token ids of the conversation, exactly as `trainers` encodes it, truncated."""
        return self.encode_many([conversation])[0]

    def encode_many(self, conversations: Sequence[Sequence[Message]]) -> list[list[int]]:
        """`encode` for many conversations, tokenized in one batch."""
        texts = [render(self.tokenizer, c) for c in conversations]
        return [
            truncate(ids, self.max_length, self.truncation_side)
            for ids in token_ids(self.tokenizer, texts)
        ]

    def _batch(self, sequences: list[list[int]]):
        import torch

        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            span = (
                slice(0, len(ids))
                if self.padding_side == "right"
                else slice(width - len(ids), width)
            )
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            mask[row, span] = 1
        return input_ids.to(self.device), mask.to(self.device)

    # ----------------------------------------------------------- scoring

    def _forward(self, input_ids, mask):
        """Head outputs at the last real token, shape (batch, num_labels)."""
        import torch

        head = getattr(self.model, "score", None)
        base = getattr(self.model, self.model.base_model_prefix, None)
        if isinstance(head, torch.nn.Linear) and base is not None:
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            hidden = base(input_ids=input_ids, attention_mask=mask, position_ids=positions)[0]
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            return head(hidden[rows, last_token_index(mask)]).float()
        # Encoder classifiers pool at a fixed position (e.g. [CLS]); padding cannot move it.
        return self.model(input_ids=input_ids, attention_mask=mask).logits.float()

    def attribute_scores(
        self, conversations: Sequence[Sequence[Message]], reporter: Any = None
    ) -> np.ndarray:
        """Raw head outputs, shape (n, num_labels), in input order."""
        import torch

        encoded = self.encode_many(conversations)
        order = (
            order_by_length([len(e) for e in encoded])
            if self.sort_by_length
            else list(range(len(encoded)))
        )
        out = np.zeros((len(encoded), len(self.labels)), dtype=np.float64)
        task = reporter.task("reward scoring", total=len(encoded)) if reporter else None
        bar = task.__enter__() if task else None
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    values = self._forward(*self._batch([encoded[i] for i in chunk]))
                    out[chunk] = values.cpu().numpy()
                    if bar:
                        bar.advance(len(chunk))
        finally:
            if task:
                task.__exit__(None, None, None)
        return out

    def combine(self, attribute_scores: np.ndarray) -> np.ndarray:
        if self.weights is not None:
            return attribute_scores @ self.weights
        if attribute_scores.shape[1] != 1:
            raise RewardModelError(
                f"the model has {attribute_scores.shape[1]} outputs ({', '.join(self.labels)}); "
                "give attribute_weights to combine them into one score"
            )
        return attribute_scores[:, 0]

    def score(self, conversations: Sequence[Sequence[Message]], reporter: Any = None) -> np.ndarray:
        """One reward per conversation, shape (n,)."""
        if not conversations:
            return np.zeros(0)
        return self.combine(self.attribute_scores(conversations, reporter))

    def judge_pairs(
        self,
        pairs: Sequence[tuple[Sequence[Message], Sequence[Message]]],
        reporter: Any = None,
    ) -> list[PairJudgement]:
        """Which conversation of each pair scores higher, and by how much."""
        flat = [conv for pair in pairs for conv in pair]
        scores = self.score(flat, reporter).reshape(-1, 2) if flat else np.zeros((0, 2))
        return [_judgement(float(a), float(b)) for a, b in scores]


def _judgement(a: float, b: float) -> PairJudgement:
    chosen = 0 if a >= b else 1
    return PairJudgement(chosen, abs(a - b), (a, b))


def _load(name: str, dtype: str, tokenizer: Any):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in (*dtypes, "auto"):
        raise RewardModelError(f"dtype {dtype!r}: expected one of {', '.join([*dtypes, 'auto'])}")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            name, dtype=dtypes.get(dtype, "auto")
        )
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise RewardModelError(f"cannot load reward model {name!r}: {exc}") from None
    return model, tokenizer


# ------------------------------------------------------------------ endpoint


def _as_dict(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def parse_reward_logprobs(response: Any) -> dict[str, float]:
    """Attribute scores from a chat completion whose `choices[0].logprobs.content`
    entries carry the attribute name as `token` and the score as `logprob`."""
    data = _as_dict(response)
    try:
        entries = data["choices"][0]["logprobs"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RewardModelError("reward endpoint reply has no choices[0].logprobs.content") from None
    if not entries:
        raise RewardModelError("reward endpoint reply has an empty logprobs.content")
    scores: dict[str, float] = {}
    for i, entry in enumerate(entries):
        entry = _as_dict(entry)
        token, value = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not isinstance(value, int | float):
            raise RewardModelError(f"logprobs.content[{i}]: expected a token and a numeric logprob")
        if not math.isfinite(value):
            raise RewardModelError(f"logprobs.content[{i}]: score for {token!r} is not finite")
        scores[token.strip()] = float(value)
    return scores


def weighted_reward(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    missing = [name for name in weights if name not in scores]
    if missing:
        raise RewardModelError(
            f"the endpoint returned {sorted(scores)}, without {missing} needed by the weights"
        )
    return sum(scores[name] * w for name, w in weights.items())


class RewardEndpointJudge:
    """Scores conversations through an OpenAI-compatible reward endpoint (the plain
    `openai` client; one request per conversation)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        attribute_weights: Mapping[str, float] | None = None,
        client: Any = None,
    ):
        from helpsteer.attributes import NEMOTRON_340B_REWARD_WEIGHTS

        if client is None:
            from openai import OpenAI

            client = OpenAI(base_url=base_url, api_key=api_key or "none")
        self.client = client
        self.model = model
        self.weights = dict(attribute_weights or NEMOTRON_340B_REWARD_WEIGHTS)

    def attribute_scores(self, conversation: Sequence[Message]) -> dict[str, float]:
        reply = self.client.chat.completions.create(
            model=self.model, messages=[dict(m) for m in conversation]
        )
        return parse_reward_logprobs(reply)

    def score(self, conversations: Sequence[Sequence[Message]]) -> np.ndarray:
        return np.array(
            [weighted_reward(self.attribute_scores(c), self.weights) for c in conversations]
        )

    def judge_pairs(
        self, pairs: Sequence[tuple[Sequence[Message], Sequence[Message]]]
    ) -> list[PairJudgement]:
        return [_judgement(*self.score([a, b]).tolist()) for a, b in pairs]
