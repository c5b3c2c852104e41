"""The BT export is safe for TRL's RewardTrainer by default (issue 13 §3).

TRL reads a column named `margin` without being asked and then trains with a margin loss,
so `bt` has none and `bt_margin` is the export that asks for one.
"""

import importlib.util
import math
import sys
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.testing import raw_preferences

runner = CliRunner()

TRL_SIDE = Path("/tmp/trlpkg")
TRL_HINT = "pip install --no-deps --target /tmp/trlpkg trl"


def _export(tmp_path, formats: str, pairs: int = 20, seed: int = 2):
    prefs = tmp_path / "prefs.jsonl"
    raw_preferences(pairs, 3, seed=seed).write_ndjson(prefs)
    out = tmp_path / "out"
    args = ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    result = runner.invoke(app, [*args, "--set", f"export.formats={formats}"])
    assert result.exit_code == 0, result.output
    return out


def test_margin_only_in_the_export_that_asks_for_it(tmp_path):
    out = _export(tmp_path, '["preference", "bt", "bt_margin"]')
    bt = datasets.load_dataset(str(out), "bt", split="train")
    with_margin = datasets.load_dataset(str(out), "bt_margin", split="train")
    assert "margin" not in bt.column_names
    assert with_margin.column_names == [*bt.column_names, "margin"]
    assert with_margin["margin"] == [float(abs(s)) for s in bt["preference_strength"]]
    assert all(m > 0 for m in with_margin["margin"])  # ties are left out of pairs


def test_default_formats_do_not_include_the_margin_export(tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    raw_preferences(10, 3, seed=3).write_ndjson(prefs)
    out = tmp_path / "out"
    args = ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    assert (out / "bt" / "train.parquet").exists()
    assert not (out / "bt_margin").exists()


@pytest.fixture(scope="module")
def trl():
    """TRL, installed or in a side folder (a normal install may move transformers)."""
    if importlib.util.find_spec("trl") is None and (TRL_SIDE / "trl").is_dir():
        sys.path.insert(0, str(TRL_SIDE))
    try:
        import trl
    except ImportError as exc:
        pytest.skip(f"TRL not importable: {exc} ({TRL_HINT})")
    return trl


def _first_loss(trl, folder: Path, name: str) -> float:
    """TRL RewardTrainer's loss on its first batch, for a model that scores every text 0."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from trainers.tiny import build_tokenizer

    tok = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.zero_()  # r_chosen = r_rejected = 0, so plain BT gives ln 2
    args = trl.RewardConfig(
        output_dir=str(folder / "trl"),
        per_device_train_batch_size=8,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    data = datasets.load_dataset(str(folder), name, split="train")
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        return float(trainer.compute_loss(model, batch))


def test_trl_reward_trainer_uses_plain_bt_on_bt_and_a_margin_loss_on_bt_margin(tmp_path, trl):
    out = _export(tmp_path, '["bt", "bt_margin"]')
    assert _first_loss(trl, out, "bt") == pytest.approx(math.log(2), abs=1e-6)
    # -log sigmoid(0 - m) with m = |strength| >= 1 is at least ln(1 + e)
    assert _first_loss(trl, out, "bt_margin") > math.log(1 + math.e) - 1e-6
