"""The BT export is safe for TRL's RewardTrainer by default (issue 13 §3).

TRL reads a column named `margin` without being asked and then trains with a margin loss,
so `bt` has none and `bt_margin` is the export that asks for one.
"""

import datasets
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.testing import raw_preferences

runner = CliRunner()


def test_margin_only_in_the_export_that_asks_for_it(tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    raw_preferences(20, 3, seed=2).write_ndjson(prefs)
    out = tmp_path / "out"
    formats = 'export.formats=["preference", "bt", "bt_margin"]'
    args = ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    result = runner.invoke(app, [*args, "--set", formats])
    assert result.exit_code == 0, result.output
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
