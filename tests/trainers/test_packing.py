"""Padding-free (packed) micro-batches: same losses and gradients as padded ones."""

from __future__ import annotations

import pytest
import torch

from helpsteer.progress import Reporter
from tests.trainers.conftest import make_config
from trainers import packing
from trainers.config import ConfigError, validate_config
from trainers.train_rm import Dist, Trainer

LOSSES = ["regression_mse", "bt_plain", "bt_margin", "bt_scaled"]


def _trainer(model, data, tmp_path, loss: str, pack: bool, attn: str | None = None) -> Trainer:
    raw = make_config(model, data, tmp_path / f"{loss}-{pack}-{attn}", objective={"loss": loss})
    raw["data"].update(packing=pack, max_length=64)
    if attn:
        raw["model"]["attn_implementation"] = attn
    trainer = Trainer(validate_config(raw), Dist(), Reporter(quiet=True))
    trainer.setup()
    return trainer


def _loss_and_grads(trainer: Trainer, idx: list[int]) -> tuple[float, dict, tuple[int, int]]:
    trainer.model.train()
    parts, _, real, total = trainer._loss(trainer.train, idx)
    parts.mean.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.model.zero_grad(set_to_none=True)
    return float(parts.mean.detach()), grads, (real, total)


def _data(request, loss: str):
    name = "regression_file" if loss == "regression_mse" else "bt_file"
    return request.getfixturevalue(name)


def _spread(trainer: Trainer, n: int = 6) -> list[int]:
    """Samples from the shortest to the longest, so a padded micro-batch has to pad."""
    lengths = trainer.train.enc.lengths()
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i * (len(order) - 1) // (n - 1)] for i in range(n)]


def _compare(packed: Trainer, padded: Trainer) -> tuple[tuple, tuple]:
    idx = _spread(padded)
    loss_a, grads_a, tokens_a = _loss_and_grads(packed, idx)
    loss_b, grads_b, tokens_b = _loss_and_grads(padded, idx)
    assert loss_a == pytest.approx(loss_b, rel=1e-5, abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        assert torch.allclose(grad, grads_b[name], rtol=1e-4, atol=1e-6), name
    return tokens_a, tokens_b


@pytest.mark.parametrize("loss", LOSSES)
def test_packed_decoder_equals_padded_for_every_loss(loss, tiny_llama, request, tmp_path):
    data = _data(request, loss)
    packed = _trainer(tiny_llama, data, tmp_path, loss, pack=True)
    padded = _trainer(tiny_llama, data, tmp_path, loss, pack=False)
    assert packed.pack_attn == packing.KERNEL and padded.pack_attn is None
    assert packed.reward_tokens and "reward tokens only" in packed.packing_note
    (real_a, total_a), (real_b, total_b) = _compare(packed, padded)
    assert real_a == real_b  # same real tokens
    # No padding; Bradley-Terry pairs also compute their shared prompt once.
    assert total_a == real_a if loss == "regression_mse" else total_a < real_a
    assert total_b > real_b  # the padded batch did pad


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_transformers_packed_masking_equals_padded(attn, tiny_llama, bt_file, tmp_path):
    """sdpa/eager asked for by name: transformers builds the mask from position_ids."""
    packed = _trainer(tiny_llama, bt_file, tmp_path, "bt_margin", pack=True, attn=attn)
    padded = _trainer(tiny_llama, bt_file, tmp_path, "bt_margin", pack=False, attn=attn)
    assert packed.pack_attn == attn
    _compare(packed, padded)


@pytest.mark.parametrize("loss", LOSSES)
def test_encoder_keeps_padded_batches_and_says_so(loss, tiny_bert, request, tmp_path):
    data = _data(request, loss)
    asked = _trainer(tiny_bert, data, tmp_path, loss, pack=True)
    padded = _trainer(tiny_bert, data, tmp_path, loss, pack=False)
    assert asked.pack_attn is None
    note = asked.packing_note
    assert "cannot pack" in note and "BertForSequenceClassification" in note
    (real, total), _ = _compare(asked, padded)
    assert total > real


def test_rewards_read_at_each_sequences_own_end_and_never_across(tiny_llama, bt_file, tmp_path):
    trainer = _trainer(tiny_llama, bt_file, tmp_path, "bt_plain", pack=True)
    trainer.model.eval()
    seqs = trainer._seqs(trainer.train, [0, 1, 2])
    assert len({len(s) for s in seqs}) > 1
    with torch.no_grad():
        together = trainer._scores(seqs)[0]
        alone = torch.cat([trainer._scores([s])[0] for s in seqs])
        changed = [seqs[0], [t ^ 1 for t in seqs[1]], *seqs[2:]]  # other tokens in sequence 1
        after = trainer._scores(changed)[0]
        shared = trainer._scores(seqs, pairs=True)[0]
        shared_after = trainer._scores(changed, pairs=True)[0]
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(shared, alone, atol=1e-5)  # pairs sharing their prompt
    keep = [0, *range(2, len(seqs))]
    for before, later in ((together, after), (shared, shared_after)):
        assert torch.allclose(later[keep], before[keep], atol=1e-6)
        assert not torch.allclose(later[1], before[1], atol=1e-4)


def test_a_base_whose_attention_crosses_sequences_falls_back(
    tiny_llama, bt_file, tmp_path, monkeypatch
):
    real_kwargs = packing.Packed.model_kwargs

    def one_sequence(self, attn, reward_tokens=False):  # as if the base ignored the boundaries
        kwargs = real_kwargs(self, attn, reward_tokens)
        kwargs["packed_lengths"] = [self.bounds[-1]]
        return kwargs

    monkeypatch.setattr(packing.Packed, "model_kwargs", one_sequence)
    trainer = _trainer(tiny_llama, bt_file, tmp_path, "bt_plain", pack=True)
    assert trainer.pack_attn is None
    assert trainer.packing_note.startswith("off: packed rewards differ")


def test_sliding_window_kernel_matches_padded_mistral():
    from transformers import AutoModelForSequenceClassification, MistralConfig

    config = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=4,  # shorter than the sequences: the band mask matters
        pad_token_id=0,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    scores = packing.TokenScores(packing.reward_head(model))
    seqs = [list(range(1, 12)), list(range(20, 27)), [5, 9, 3]]
    assert packing.packing_error(model, scores, seqs, pad_id=0, attn=packing.KERNEL) < 1e-5
    banded = packing._band(5, 2, "cpu")
    assert banded.tolist()[4] == [False, False, False, True, True]


def test_pack_lays_sequences_end_to_end():
    packed = packing.pack([[5, 6, 7], [8], [9, 10]], "cpu")
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert packed.last_tokens.tolist() == [2, 3, 5]
    flash = packed.model_kwargs("flash_attention_2")
    assert flash["cu_seq_lens_q"].tolist() == [0, 3, 4, 6] and flash["max_length_q"] == 3


def test_packing_run_reports_no_padding_and_exports_a_plain_config(tiny_llama, bt_file, tmp_path):
    import json

    out = tmp_path / "run"
    trainer = Trainer(
        validate_config(make_config(tiny_llama, bt_file, out)), Dist(), Reporter(quiet=True)
    )
    summary = trainer.run()
    assert summary["padded_fraction"] == 0.0 and summary["packing"].startswith("on")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["packing"].startswith("on")
    assert "sdpa_varlen" not in (out / "model" / "config.json").read_text()


def test_our_kernel_needs_packing_on(tiny_llama, bt_file, tmp_path):
    raw = make_config(tiny_llama, bt_file, tmp_path)
    raw["model"]["attn_implementation"] = "sdpa_varlen"
    raw["data"]["packing"] = False
    with pytest.raises(ConfigError, match="needs data.packing = true"):
        validate_config(raw)


def test_shared_prefix_leaves_each_sequence_a_token():
    assert packing.shared_prefix([1, 2, 3, 4], [1, 2, 5]) == 2
    assert packing.shared_prefix([1, 2, 3], [1, 2, 3, 4]) == 2  # a prefix of the other
    assert packing.shared_prefix([1, 2], [1, 2]) == 1
    assert packing.shared_prefix([7], [7, 8]) == 0
    assert packing.shared_prefix([1, 2], [3, 2]) == 0


def test_pack_pairs_layout():
    packed = packing.pack_pairs([[1, 2, 3, 4], [9, 8]], [[1, 2, 5], [7]], "cpu")
    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 5, 9, 8, 7]]
    # The rejected reply continues from the prompt's positions.
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 2, 0, 1, 0]]
    assert packed.bounds == [0, 5, 8] and packed.shared == [(2, 2), (0, 2)]
    assert packed.last_tokens.tolist() == [3, 6, 4, 7]  # chosen of each pair, then rejected


@pytest.mark.parametrize("loss", ["bt_plain", "bt_margin", "bt_scaled"])
def test_shared_prompt_equals_padded_and_computes_less(loss, tiny_llama, bt_file, tmp_path):
    shared = _trainer(tiny_llama, bt_file, tmp_path, loss, pack=True)
    padded = _trainer(tiny_llama, bt_file, tmp_path, loss, pack=False)
    assert shared.share_prompt and "shared prompt" in shared.packing_note
    idx = _spread(padded)
    (real_a, computed_a), (real_b, total_b) = _compare(shared, padded)
    seqs = shared._seqs(shared.train, idx)
    n = len(idx)
    saved = sum(packing.shared_prefix(c, r) for c, r in zip(seqs[:n], seqs[n:], strict=True))
    assert saved > 0  # the fixture's pairs do share their prompt
    assert real_a == real_b and computed_a == real_a - saved < total_b


def test_share_prompt_off_packs_each_sequence(tiny_llama, bt_file, tmp_path):
    raw = make_config(tiny_llama, bt_file, tmp_path / "off", objective={"loss": "bt_plain"})
    raw["data"].update(packing=True, share_prompt=False, max_length=64)
    trainer = Trainer(validate_config(raw), Dist(), Reporter(quiet=True))
    trainer.setup()
    assert trainer.pack_attn == packing.KERNEL and not trainer.share_prompt
    _, _, (real, computed) = _loss_and_grads(trainer, _spread(trainer))
    assert real == computed
