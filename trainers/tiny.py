"""Tiny random-weight models and an offline tokenizer, for smoke runs, tests and benchmarks.

`hs train tiny-model OUT` writes one: nothing is downloaded, the tokenizer is a
byte-level BPE trained on a few built-in sentences (or given texts).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}"
)

_SENTENCES = [
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea. The sea is wide and blue and deep.",
    "Explain how a reward model is trained from human preferences.",
    "Give me three tips for learning to code: practice, read code, build things.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Summarize the plot of a story about a robot who learns to paint.",
    "Numbers like 1 2 3 4 5 6 7 8 9 0 and symbols like ? ! , . : ; appear in text.",
]


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 300):
    """A byte-level BPE fast tokenizer with bos/eos/pad/unk and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(texts or _SENTENCES) * 3, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=specials[4:],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(
    out_dir: str | Path,
    arch: str = "llama",
    hidden: int = 32,
    layers: int = 2,
    texts: Iterable[str] | None = None,
    vocab_size: int = 300,
    seed: int = 0,
    causal_lm: bool = False,
) -> Path:
    """Save a random-weight base model (llama decoder or bert encoder) with its tokenizer.

    `causal_lm=True` (llama only) saves `LlamaForCausalLM`, with the LM head that TRL's
    DPOTrainer needs; reward-model training loads either form, as it does a Hub base."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, BertConfig, LlamaConfig

    tok = build_tokenizer(texts, vocab_size)
    common = {"vocab_size": len(tok), "hidden_size": hidden, "num_hidden_layers": layers}
    if arch == "llama":
        config = LlamaConfig(
            **common,
            intermediate_size=hidden * 2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )
    elif arch == "bert":
        config = BertConfig(
            **common,
            intermediate_size=hidden * 2,
            num_attention_heads=4,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    else:
        raise ValueError(f"unknown arch {arch!r}: choose llama or bert")
    if causal_lm and arch != "llama":
        raise ValueError("a causal-LM head needs arch llama")
    torch.manual_seed(seed)
    model = (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
