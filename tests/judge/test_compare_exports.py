"""`hs judge compare` reads our own `bt` and `dpo` exports as labelled pairs, and keeps
a scoring judge's scores as numbers (issue 13 §3)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer.cli import app as hs
from helpsteer.testing import raw_preferences
from judge.datasets import load
from judge.testing import make_tiny_reward_model

runner = CliRunner()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    prefs = tmp / "prefs.jsonl"
    raw_preferences(16, 3, seed=5).write_ndjson(prefs)
    out = tmp / "out"
    args = ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    result = runner.invoke(hs, [*args, "--set", 'export.formats=["preference", "bt", "dpo"]'])
    assert result.exit_code == 0, result.output
    return out


def _chosen_texts(out, fmt):
    texts = set()
    for split in ("train", "validation"):
        path = out / fmt / f"{split}.parquet"
        if path.exists():
            frame = pl.read_parquet(path)
            texts |= {c[-1]["content"] for c in frame["chosen"]}
    return texts


@pytest.mark.parametrize("fmt", ["bt", "dpo"])
def test_exports_load_as_labelled_pairs(build, fmt):
    for where in (build, build / fmt, build / fmt / "train.parquet"):
        loaded = load(fmt, where)
        assert loaded.pairs.height > 0 and not loaded.rejected
    pairs = load(fmt, build).pairs
    chosen = [r["response_a"] if r["label"] == "A" else r["response_b"] for r in pairs.to_dicts()]
    assert set(chosen) == _chosen_texts(build, fmt)
    assert set(pairs["category"]) <= {"train", "validation"}
    assert all(m[-1]["role"] == "user" for m in pairs["messages"])
    assert set(pairs["label"]) == {"A", "B"}  # the coin flip, so position is not the label


def test_a_bt_row_whose_prompts_differ_is_rejected(tmp_path):
    row = {
        "chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}],
        "rejected": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "y"}],
    }
    path = tmp_path / "bt.jsonl"
    path.write_text(json.dumps(row) + "\n")
    loaded = load("bt", path)
    assert loaded.pairs.height == 0
    assert loaded.rejected[0]["reason"] == "chosen and rejected differ before their last turn"


def test_compare_on_a_dpo_export_keeps_scores_as_numbers(build, tmp_path):
    model = make_tiny_reward_model(tmp_path / "rm")
    config = tmp_path / "compare.toml"
    config.write_text(
        f'out = "{tmp_path / "cmp"}"\n[data]\nformat = "dpo"\npath = "{build}"\n'
        f'[[judges]]\nname = "rm"\nkind = "reward"\nmodel = "{model}"\n'
    )
    result = runner.invoke(hs, ["judge", "compare", str(config), "-q"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "cmp" / "predictions.jsonl").open()]
    assert rows and all(isinstance(r["score_a"], float) for r in rows)
    for r in rows:
        expected = (
            "A" if r["score_a"] > r["score_b"] else "B" if r["score_b"] > r["score_a"] else "tie"
        )
        assert r["prediction"] == expected
    report = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert report["data"]["format"] == "dpo" and report["data"]["pairs"] == len(rows)
