"""The last decoder layer computed at the reward tokens only: same rewards and gradients
as the full layer, on every base it is turned on for, with or without shared prompts."""

from __future__ import annotations

import pytest
import torch

from helpsteer.progress import Reporter
from tests.trainers.conftest import make_config
from trainers import packing
from trainers.config import validate_config
from trainers.train_rm import Dist, Trainer

PROMPT = [3, 9, 4, 4, 17, 2]
CHOSEN = [PROMPT + [5, 6, 7, 8], [11, 12, 13], PROMPT[:2] + [30, 31, 32, 33, 34]]
REJECTED = [PROMPT + [21, 22], [11, 40, 41, 42, 43], PROMPT[:2] + [50]]


def _config(arch: str, **extra):
    import transformers

    common = {
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "pad_token_id": 0,
        "num_labels": 2,
        **extra,
    }
    name = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2", "qwen3": "Qwen3"}[arch]
    return getattr(transformers, f"{name}Config")(**common)


def _model(arch: str, **extra):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(
        _config(arch, **extra), attn_implementation="sdpa"
    )
    packing.set_attention(model, packing.KERNEL)
    return model.train()


def _rewards_and_grads(model, head, packed, reward_tokens: bool):
    rewards = packing.packed_scores(model, head, packed, packing.KERNEL, reward_tokens)
    weights = torch.linspace(-1, 2, rewards.numel()).view_as(rewards)
    (rewards * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return rewards.detach(), grads


@pytest.mark.parametrize("shared", [False, True], ids=["sequences", "shared-prompt pairs"])
@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3"])
def test_last_layer_at_reward_tokens_equals_the_full_layer(arch, shared):
    model = _model(arch)
    assert packing.prune_last_layer(model, max_length=64) is None
    head = packing.TokenScores(packing.reward_head(model))
    if shared:
        packed = packing.pack_pairs(CHOSEN, REJECTED, "cpu")
    else:
        packed = packing.pack(CHOSEN + REJECTED, "cpu")
    rows = []
    mlp = model.model.layers[-1].mlp
    handle = mlp.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    full, full_grads = _rewards_and_grads(model, head, packed, reward_tokens=False)
    pruned, pruned_grads = _rewards_and_grads(model, head, packed, reward_tokens=True)
    handle.remove()
    # The pruned layer's MLP saw one row per sequence, the full one every token.
    assert rows == [packed.bounds[-1], len(CHOSEN) + len(REJECTED)]
    assert torch.allclose(pruned, full, atol=1e-5)
    assert pruned_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        # Relative to the tensor's scale: the sums run in another order (float noise ~1e-6).
        gap = (pruned_grads[name] - grad).abs().max()
        assert gap <= 1e-4 * grad.abs().max() + 1e-8, name


def test_pruned_layer_under_activation_checkpointing_equals_the_full_layer():
    from trainers.model import enable_activation_checkpointing

    model = _model("llama")
    enable_activation_checkpointing(model)
    assert packing.prune_last_layer(model, max_length=64) is None
    head = packing.TokenScores(packing.reward_head(model))
    packed = packing.pack_pairs(CHOSEN, REJECTED, "cpu")
    full, full_grads = _rewards_and_grads(model, head, packed, reward_tokens=False)
    pruned, pruned_grads = _rewards_and_grads(model, head, packed, reward_tokens=True)
    assert torch.allclose(pruned, full, atol=1e-5)
    for name, grad in full_grads.items():
        assert (pruned_grads[name] - grad).abs().max() <= 1e-4 * grad.abs().max() + 1e-8, name


def test_reward_keys_follow_each_sequence_and_shared_prompt():
    packed = packing.pack_pairs([[1, 2, 3, 4], [9, 8]], [[1, 2, 5], [7]], "cpu")
    assert packed.reward_keys().int().tolist() == [
        [1, 1, 1, 1, 0, 0, 0, 0],  # chosen of pair 0: prompt and its reply
        [0, 0, 0, 0, 0, 1, 1, 0],  # chosen of pair 1 (no shared prompt)
        [1, 1, 0, 0, 1, 0, 0, 0],  # rejected of pair 0: the prompt and its own reply
        [0, 0, 0, 0, 0, 0, 0, 1],
    ]
    plain = packing.pack([[5, 6, 7], [8], [9, 10]], "cpu")
    assert plain.reward_keys().int().tolist() == [
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 1],
    ]


def test_bases_the_pruned_layer_does_not_fit_say_why():
    from transformers import AutoModelForSequenceClassification, GPT2Config

    gpt2 = AutoModelForSequenceClassification.from_config(
        GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, pad_token_id=0)
    )
    assert "gpt2 is not one of" in packing.prune_last_layer(gpt2, max_length=64)
    banded = _model("mistral", sliding_window=16)
    why = packing.prune_last_layer(banded, max_length=64)
    assert "sliding window (16) is shorter than data.max_length (64)" in why
    assert "forward" not in vars(banded.model.layers[-1])


def test_trainer_keeps_the_full_layer_when_pruned_rewards_differ(
    tiny_llama, bt_file, tmp_path, monkeypatch
):
    def every_key(self):  # wrong: each reward token attends across sequences
        return torch.ones(len(self.last_tokens), self.bounds[-1], dtype=torch.bool)

    monkeypatch.setattr(packing.Packed, "reward_keys", every_key)
    raw = make_config(tiny_llama, bt_file, tmp_path, objective={"loss": "bt_plain"})
    trainer = Trainer(validate_config(raw), Dist(), Reporter(quiet=True))
    trainer.setup()
    assert trainer.pack_attn == packing.KERNEL and not trainer.reward_tokens
    assert "last layer in full (its rewards differ from the full layer's" in trainer.packing_note
    assert "forward" not in vars(trainer.model.model.layers[-1])
