"""The DPO export trains with TRL's DPOTrainer on `hs train tiny-model --causal-lm`
(issue 13 §3), offline: TRL from a side folder, skipped without it."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def trl():
    if importlib.util.find_spec("trl") is None and (TRL_SIDE / "trl").is_dir():
        sys.path.insert(0, str(TRL_SIDE))
    try:
        import trl
    except ImportError as exc:
        pytest.skip(f"TRL not importable: {exc} (pip install --no-deps --target /tmp/trlpkg trl)")
    return trl


def test_tiny_model_has_an_lm_head_only_when_asked(tmp_path):
    from transformers import AutoConfig

    assert runner.invoke(app, ["train", "tiny-model", str(tmp_path / "base")]).exit_code == 0
    result = runner.invoke(app, ["train", "tiny-model", str(tmp_path / "lm"), "--causal-lm"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "lm")
    assert AutoConfig.from_pretrained(tmp_path / "base").architectures == ["LlamaModel"]
    assert AutoConfig.from_pretrained(tmp_path / "lm").architectures == ["LlamaForCausalLM"]
    bad = runner.invoke(app, ["train", "tiny-model", str(tmp_path / "b"), "--arch", "bert",
                              "--causal-lm"])  # fmt: skip
    assert bad.exit_code == 2


def test_dpo_export_trains_two_steps_with_trl(trl, tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    raw_preferences(12, 3, seed=4).write_ndjson(prefs)
    out = tmp_path / "out"
    args = ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    assert runner.invoke(app, [*args, "--set", 'export.formats=["dpo"]']).exit_code == 0
    model_dir = tmp_path / "lm"
    result = runner.invoke(app, ["train", "tiny-model", str(model_dir), "--causal-lm"])
    assert result.exit_code == 0, result.output

    from transformers import AutoModelForCausalLM, AutoTokenizer

    train = datasets.load_dataset(str(out), "dpo", split="train")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = trl.DPOConfig(
        output_dir=str(tmp_path / "dpo-run"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        max_length=128,
    )
    trainer = trl.DPOTrainer(
        model=model, args=config, train_dataset=train, processing_class=tokenizer
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    # the reference and the policy start equal, so DPO's first loss is ln 2
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
