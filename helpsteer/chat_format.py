"""How a conversation becomes reward-model input, shared by training and scoring.

A reward model must see at scoring time exactly the token ids it saw in training, so
`trainers` and `judge` both go through these functions: render the conversation to
text with the tokenizer's chat template (a plain `Role: content` template for tokenizers
without one, e.g. encoders), then tokenize that text *with* the tokenizer's special
tokens ([CLS] ... [SEP] for BERT-style encoders), unless the template already wrote BOS.
`apply_chat_template(tokenize=True)` would skip those special tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}"
    "{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}"
)
"""For tokenizers without a chat template: one `Role: content` line per message. The
newline is an expression because HF renders templates with trim_blocks, which would eat a
literal newline after `{% if %}`."""


def render(tokenizer: Any, conversation: str | Sequence[Mapping[str, Any]]) -> str:
    """The conversation as the model's input text (a plain string passes through)."""
    if isinstance(conversation, str):
        return conversation
    messages = [{"role": m["role"], "content": m["content"]} for m in conversation]
    template = getattr(tokenizer, "chat_template", None) or FALLBACK_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)


def token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of rendered texts, with the tokenizer's special tokens unless the
    template already starts with BOS (no double BOS)."""
    if not texts:
        return []
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and texts[0].startswith(bos))
    ids = tokenizer(texts, add_special_tokens=add_special, truncation=False)["input_ids"]
    return [list(seq) for seq in ids]


def truncate(ids: list[int], max_length: int, side: str) -> list[int]:
    """At most `max_length` ids, dropping from the left (keep the answer) or the right."""
    if len(ids) <= max_length:
        return ids
    return ids[-max_length:] if side == "left" else ids[:max_length]
