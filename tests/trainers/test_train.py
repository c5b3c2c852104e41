"""End-to-end single-process training runs on a tiny random Llama (CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from helpsteer.progress import Reporter
from tests.trainers.conftest import make_config
from trainers.config import validate_config
from trainers.train_rm import Dist, Trainer, TrainingError, train


def _run(raw: dict) -> tuple[Trainer, dict]:
    trainer = Trainer(validate_config(raw), Dist(), Reporter(quiet=True))
    return trainer, trainer.run()


def _weights(out) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_saved_checkpoint_loads_with_plain_transformers_and_scores_the_same(
    tiny_llama, bt_file, tmp_path
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    with bt_file.open("a") as f:
        f.write('{"chosen": "only one side"}\nnot json\n')
    raw = make_config(tiny_llama, bt_file, out, objective={"loss": "bt_scaled"})
    raw["data"]["max_length"] = 512  # nothing truncated: the judge below does not truncate
    trainer, summary = _run(raw)
    assert trainer.train.enc.truncated == 0
    assert summary["step"] == trainer.total_steps > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["ties_skipped"] == 6
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"][:15]) for r in rejected] == [
        (43, "missing 'reject"),
        (44, "not valid JSON:"),
    ]
    assert manifest["counts"]["rejected"] == 2
    assert manifest["counts"]["train_samples"] + manifest["counts"]["valid_samples"] == 36

    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == {0: "reward"}
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.attribute_weights == {"reward": 1.0}

    # Score the validation pairs the way a judge would: chat template, padded batch.
    valid = trainer.valid.samples.samples
    texts = [tok.apply_chat_template(s.seqs[j], tokenize=False) for j in (0, 1) for s in valid]
    batch = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        rewards = model(**batch).logits[:, 0]
    n = len(valid)
    margin = (rewards[:n] - rewards[n:]).mean().item()
    assert margin == pytest.approx(summary["valid"]["mean_margin"], abs=1e-5)
    trained = trainer._scores(trainer._seqs(trainer.valid, list(range(n))))[0][:n, 0]
    assert torch.allclose(trained, rewards[:n], atol=1e-5)


def test_reward_is_read_at_the_last_real_token_for_both_padding_sides(
    tiny_llama, bt_file, tmp_path
):
    raw = make_config(tiny_llama, bt_file, tmp_path / "r", optim={"max_steps": 1})
    raw["data"]["packing"] = False  # the padded path (packed: tests/trainers/test_packing.py)
    trainer, _ = _run(raw)
    seqs = trainer._seqs(trainer.valid, list(range(len(trainer.valid.samples.samples))))
    right = trainer._scores(seqs)[0]
    trainer.cfg.data.padding_side = "left"
    left = trainer._scores(seqs)[0]
    alone = torch.cat([trainer._scores([s])[0] for s in seqs])
    assert len({len(s) for s in seqs}) > 1  # the batch really is padded
    assert torch.allclose(right, left, atol=1e-5)
    assert torch.allclose(right, alone, atol=1e-5)


def test_stop_and_resume_gives_the_same_weights(tiny_llama, bt_file, tmp_path):
    groups = {"optim": {"epochs": 2}, "checkpoint": {"every_steps": 2}}
    straight = tmp_path / "straight"
    _run(make_config(tiny_llama, bt_file, straight, **groups))
    resumed = tmp_path / "resumed"
    stop = {**groups, "checkpoint": {"every_steps": 2, "stop_after_step": 5}}
    _, first = _run(make_config(tiny_llama, bt_file, resumed, **stop))
    assert first["stopped"] and first["step"] == 5
    assert not (resumed / "model").exists()
    _, second = _run(make_config(tiny_llama, bt_file, resumed, **groups))
    assert second["resumed_from"] == 5
    assert _max_diff(_weights(straight), _weights(resumed)) == 0.0
    lines = (resumed / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in lines if json.loads(x)["split"] == "train"]
    assert steps == list(range(1, second["step"] + 1))  # no record lost or duplicated


def test_regression_run_reports_per_attribute_metrics(tiny_llama, regression_file, tmp_path):
    out = tmp_path / "reg"
    raw = make_config(
        tiny_llama, regression_file, out, objective={"loss": "regression_mse"}, optim={"epochs": 2}
    )
    _, summary = _run(raw)
    assert math.isfinite(summary["valid"]["loss"])
    for name in ("helpfulness", "verbosity"):
        assert summary["valid"][f"mae/{name}"] >= 0
        assert f"pearson/{name}" in summary["valid"]
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out / "model")
    assert list(config.id2label.values())[0] == "helpfulness" and config.num_labels == 5
    assert config.attribute_weights["verbosity"] == pytest.approx(-0.33)


def test_wrong_objective_for_the_data_is_a_clear_error(tiny_llama, bt_file, tmp_path):
    from trainers.data import DataError

    raw = make_config(tiny_llama, bt_file, tmp_path / "x", objective={"loss": "regression_mse"})
    with pytest.raises(DataError, match="holds preference pairs but objective.loss"):
        _run(raw)


def test_non_finite_loss_stops_with_a_checkpoint(tiny_llama, bt_file, tmp_path, monkeypatch):
    import trainers.train_rm as train_rm
    from trainers.losses import LossSum

    calls = {"n": 0}
    real = train_rm.get_loss("bt_plain")

    def poisoned(chosen, rejected, margin):
        calls["n"] += 1
        out = real(chosen, rejected, margin)
        # micro-batches 1-4 are steps 1-2; the third step gets a NaN
        return LossSum(out.total * math.nan, out.count) if calls["n"] > 4 else out

    monkeypatch.setattr(train_rm, "get_loss", lambda name: poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match="loss is nan at step 3"):
        _run(make_config(tiny_llama, bt_file, out))
    assert (out / "checkpoints" / "step_000002" / "trainer_state.pt").exists()


def test_recipe_initialises_bt_from_the_regression_head(
    tiny_llama, bt_file, regression_file, tmp_path
):
    out = tmp_path / "recipe"
    raw = make_config(
        tiny_llama,
        bt_file,
        out,
        objective={"loss": "bt_scaled"},
        recipe={"name": "helpsteer2-preference", "regression_train": str(regression_file)},
        optim={"max_steps": 1, "lr": 1e-6},
    )
    summary = train(validate_config(raw), Reporter(quiet=True))
    assert summary["stage"] == 2
    stage1 = load_file(str(out / "stage1_regression" / "model" / "model.safetensors"))
    final = _weights(out)
    assert stage1["score.weight"].shape == final["score.weight"].shape == (1, 32)
    # one tiny step from the regression head, not a fresh random head
    assert (stage1["score.weight"] - final["score.weight"]).abs().max().item() < 1e-4


def test_lora_run_saves_a_merged_plain_checkpoint(tiny_llama, bt_file, tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "lora"
    raw = make_config(tiny_llama, bt_file, out, lora={"enabled": True, "r": 4}, optim={"lr": 1e-2})
    _run(raw)
    weights = _weights(out)
    assert not [k for k in weights if "lora" in k]
    base = load_file(str(tiny_llama / "model.safetensors"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert (weights[q] - base[q.removeprefix("model.")]).abs().max().item() > 0  # merged
    AutoModelForSequenceClassification.from_pretrained(out / "model")


def test_encoder_model_trains_too(tiny_bert, bt_file, tmp_path):
    _, summary = _run(make_config(tiny_bert, bt_file, tmp_path / "bert", optim={"max_steps": 2}))
    assert summary["step"] == 2
