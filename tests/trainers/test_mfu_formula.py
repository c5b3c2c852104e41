"""The MFU benchmark's parameter count equals the real model's (benchmarks/train_mfu.py)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_mfu.py"


@pytest.fixture(scope="module")
def mfu():
    spec = importlib.util.spec_from_file_location("train_mfu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_non_embedding_params_match_the_built_reward_model(mfu, tmp_path):
    from transformers import AutoModelForSequenceClassification

    shape = {"hidden": 64, "layers": 3, "heads": 8, "kv_heads": 2, "mlp": 96}
    model = AutoModelForSequenceClassification.from_pretrained(
        mfu.build(shape, tmp_path / "m"), num_labels=1
    )
    counted = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    assert mfu.non_embedding_params(shape) == counted
    assert 0.9e9 < mfu.non_embedding_params(mfu.ONE_B) < 1.1e9


def test_peak_lookup_prefers_the_longest_name(mfu):
    assert mfu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert mfu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert mfu.peak_tflops("Tesla T4") is None
