"""Scoring results that already exist: FastChat judgment files against FastChat's own
show_result.py, AlpacaEval annotations against alpaca_eval's own metric functions (and, on
the public annotations in ../shared/data, against the AlpacaEval leaderboard it ships)."""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval import alpaca_results as ar
from eval import fastchat_results as fr
from eval.testing import (
    alpaca_annotations,
    alpaca_gamed_csv,
    fastchat_pair_judgments,
    fastchat_single_judgments,
)
from helpsteer.cli import app

from .conftest import SHARED

runner = CliRunner()
ALPACA_MODELS = SHARED / "alpaca_eval" / "models"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def show_result(fastchat_common):
    """FastChat's show_result module with `print` captured, so its DataFrames are read
    exactly instead of as printed text."""
    import fastchat.llm_judge.show_result as module

    printed: list = []
    module.print = printed.append
    yield module, printed
    del module.print


def _frames(printed: list) -> list:
    import pandas as pd

    frames = [p for p in printed if isinstance(p, pd.DataFrame)]
    printed.clear()
    return frames


# ------------------------------------------------------------------ MT-Bench judgments


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_single_judgments_equal_show_result(tmp_path, show_result, suffix):
    module, printed = show_result
    rows = fastchat_single_judgments(models=("m1", "m2", "m3"), seed=4)
    path = _write_jsonl(tmp_path / f"gpt-4_single{suffix}", rows)
    args = argparse.Namespace(input_file=str(path), bench_name="mt_bench", model_list=None)
    module.display_result_single(args)
    first, second, average = _frames(printed)
    ours = fr.single_results(fr.read_judgments(path), {})
    for model, entry in ours.items():
        assert entry["turn_1"] == first.loc[(model, 1), "score"]
        assert entry["turn_2"] == second.loc[(model, 2), "score"]
        assert entry["score"] == average.loc[model, "score"]


def test_single_scores_are_not_rounded():
    rows = [{"question_id": q, "model": "m", "score": s, "turn": 1}
            for q, s in ((1, 7), (2, 8), (3, 8))]  # fmt: skip
    result = fr.single_results([{**r, "_kind": "single"} for r in rows], {})
    assert result["m"]["score"] == 23 / 3  # 7.666666..., not 7.6667
    from eval import mtbench

    assert mtbench.single_scores(rows, {})["m"]["score"] == 23 / 3


@pytest.mark.parametrize("baseline", ["gpt-3.5-turbo", None])
def test_pairwise_judgments_equal_show_result(tmp_path, show_result, baseline):
    module, printed = show_result
    rows = fastchat_pair_judgments(models=("m1", "m2", "m3"), seed=2)
    path = _write_jsonl(tmp_path / "gpt-4_pair.jsonl", rows)
    args = argparse.Namespace(input_file=str(path), baseline_model=baseline, model_list=None)
    module.display_result_pairwise(args)
    (theirs,) = _frames(printed)
    ours = fr.pairwise_results(fr.read_judgments(path), {}, baseline)
    assert set(ours) == set(theirs.index)
    for model, entry in ours.items():
        for column in ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"):
            assert entry[column] == theirs.loc[model, column], (model, column)


def test_cli_judgments_with_categories_from_fastchat_layout(tmp_path, mt_bench_dir):
    folder = tmp_path / "mt_bench"
    (folder / "model_judgment").mkdir(parents=True)
    (folder / "question.jsonl").write_text((mt_bench_dir / "question.jsonl").read_text())
    path = _write_jsonl(folder / "model_judgment" / "gpt-4_single.jsonl",
                        fastchat_single_judgments(seed=1))  # fmt: skip
    out = tmp_path / "scored"
    args = ["eval", "mt-bench", "--judgments", str(path), "--out", str(out), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["benchmark"] == "mt-bench" and doc["mode"] == "single"
    # Questions 81/82 are writing, 121/122 coding in the real question file.
    m1 = doc["models"]["m1"]
    assert set(m1["categories"]) == {"writing", "coding"}
    valid = [
        r for r in fastchat_single_judgments(seed=1) if r["model"] == "m1" and r["score"] != -1
    ]
    writing = [r["score"] for r in valid if r["question_id"] in (81, 82)]
    assert m1["categories"]["writing"] == sum(writing) / len(writing)
    assert (out / "radar.png").stat().st_size > 1000


def test_cli_pairwise_model_list_and_older_hs_winner_names(tmp_path):
    rows = [
        {"question_id": 1, "model_1": "a", "model_2": "b", "g1_winner": "a", "g2_winner": "a",
         "judge": ["j", "pair-v2"], "turn": 1},
        {"question_id": 2, "model_1": "a", "model_2": "b", "g1_winner": "model_2",
         "g2_winner": "model_1", "judge": ["j", "pair-v2"], "turn": 1},
        {"question_id": 3, "model_1": "c", "model_2": "b", "g1_winner": "model_1",
         "g2_winner": "model_1", "judge": ["j", "pair-v2"], "turn": 1},
    ]  # fmt: skip
    path = _write_jsonl(tmp_path / "pair.jsonl", rows)
    out = tmp_path / "o"
    args = ["eval", "mt-bench", "--judgments", str(path), "--baseline-model", "b",
            "--model-list", "a", "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["mode"] == "pairwise-baseline" and list(doc["models"]) == ["a"]
    assert (doc["models"]["a"]["win"], doc["models"]["a"]["tie"]) == (1, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "gpt-4_single.jsonl:2: not valid JSON"),
        (
            '{"question_id": 1, "model": "m", "turn": 1}',
            ":2: a single judgment needs field(s) score",
        ),
        ('{"question_id": 1, "model": "m", "turn": 3, "score": 5}', ":2: field 'turn' must be 1"),
        (
            '{"question_id": 1, "model_1": "a", "model_2": "b", "g1_winner": "zed", '
            '"g2_winner": "tie"}',
            ":2: winner 'zed'",
        ),
    ],
)
def test_bad_judgment_lines_are_one_line_errors(tmp_path, line, message):
    good = json.dumps(fastchat_single_judgments()[0])
    path = tmp_path / "gpt-4_single.jsonl"
    if "model_1" in line:
        good = json.dumps(fastchat_pair_judgments()[0])
    path.write_text(good + "\n" + line + "\n")
    result = runner.invoke(app, ["eval", "mt-bench", "--judgments", str(path), "--out",
                                 str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_mt_bench_needs_bench_or_judgments(tmp_path):
    result = runner.invoke(app, ["eval", "mt-bench", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--bench" in result.output and "--judgments" in result.output


# ------------------------------------------------------------------ AlpacaEval annotations


@pytest.fixture(scope="module")
def alpaca_metrics():
    from eval.harness import _ensure_pkg_resources

    _ensure_pkg_resources()
    try:
        from alpaca_eval import metrics
    except ImportError as exc:
        pytest.skip(f"alpaca_eval not importable: {exc}")
    return metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_win_rates_equal_alpaca_eval(alpaca_metrics, seed):
    import math

    prefs = [r["preference"] for r in alpaca_annotations("m", n=40, seed=seed)]
    prefs[:3] = [0.0, 2.0, 1.5]  # a legacy 0 draw, a win, a draw
    ours = ar.win_rates([math.nan if p is None else p for p in prefs])
    theirs = alpaca_metrics.get_winrate([{"preference": p} for p in prefs])
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(float(value), rel=1e-12), key


def test_shared_annotations_match_the_alpaca_eval_leaderboard(alpaca_metrics):
    """The public annotations in ../shared/data reproduce the leaderboard CSV that
    alpaca_eval ships for the same annotator."""
    if not ALPACA_MODELS.is_dir():
        pytest.skip(f"AlpacaEval data not found at {ALPACA_MODELS}")
    board = Path(alpaca_metrics.__file__).parents[1] / "leaderboards" / "data_AlpacaEval_2"
    with (board / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv").open() as handle:
        published = {r[""]: r for r in csv.DictReader(handle)}
    files = sorted(ALPACA_MODELS.glob("*/annotations.json.gz"))[:3]
    rows = [r for f in files for r in ar.read_annotations(f)]
    for model, group in ar.group_by_model(rows).items():
        ours = ar.win_rates([r["preference"] for r in group])
        for key in ("win_rate", "standard_error", "discrete_win_rate"):
            assert ours[key] == pytest.approx(float(published[model][key]), rel=1e-9)
        for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
            assert ours[key] == int(published[model][key])


def test_cli_annotations_leaderboard_csv_and_lc(tmp_path, alpaca_metrics):
    import pandas as pd

    folder = tmp_path / "results"
    for model, seed in (("model-a", 1), ("model-b", 2)):
        (folder / model).mkdir(parents=True)
        (folder / model / "annotations.json").write_text(
            json.dumps(alpaca_annotations(model, seed=seed))
        )
    gamed = alpaca_gamed_csv(tmp_path / "df_gamed.csv")
    out = tmp_path / "scored"
    args = ["eval", "alpaca-eval", "--annotations", str(folder), "--glm-data", str(gamed),
            "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with (out / "leaderboard.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["", *ar.LEADERBOARD_COLUMNS]
    assert {row[0] for row in table[1:]} == {"model-a", "model-b"}
    doc = json.loads((out / "results.json").read_text())
    entry = doc["models"]["model-a"]
    assert entry["n_total"] == 29  # the failed annotation is left out
    # The LC rate is alpaca_eval's own GLM on the same annotations and df_gamed.csv.
    from alpaca_eval.metrics import glm_winrate

    frame = pd.DataFrame(alpaca_annotations("model-a", seed=1))
    original = glm_winrate.hf_hub_download
    glm_winrate.hf_hub_download = lambda *a, **k: str(gamed)
    try:
        theirs = glm_winrate.get_length_controlled_winrate(frame, save_weights_dir=None)
    finally:
        glm_winrate.hf_hub_download = original
    assert entry["length_controlled_winrate"] == pytest.approx(
        theirs["length_controlled_winrate"], rel=1e-9
    )
    assert entry["win_rate"] == pytest.approx(theirs["win_rate"], rel=1e-12)


def test_annotations_without_outputs_say_why_no_lc(tmp_path):
    rows = alpaca_annotations("m", n=10)
    for r in rows:
        del r["output_1"]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    doc = ar.score_annotations([path], tmp_path / "o")
    entry = doc["models"]["m"]
    assert entry["length_controlled_winrate"] is None
    assert "output_1 and output_2" in entry["lc_note"]


def test_category_label_is_generator_2_even_for_the_baseline(tmp_path):
    rows = alpaca_annotations("gpt4_1106_preview", n=6) + alpaca_annotations("m", n=6)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    doc = ar.score_annotations([path], tmp_path / "o")
    assert set(doc["models"]) == {"gpt4_1106_preview", "m"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"preference": "two"}, "record 4: field 'preference' must be a number"),
        ({"generator_2": None}, "record 4: fields 'instruction' and 'generator_2'"),
        ({"instruction": "instruction 3"}, "record 4: model 'm' has this instruction already"),
    ],
)
def test_bad_annotations_are_one_line_errors(tmp_path, change, message):
    rows = alpaca_annotations("m", n=8)
    rows[4].update(change)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    result = runner.invoke(app, ["eval", "alpaca-eval", "--annotations", str(path), "--out",
                                 str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ hs report


def test_report_has_the_new_tables_and_plots(tmp_path):
    import time

    from eval import judgebench as jb
    from eval import rmbench as rm
    from eval.common import write_run

    results = tmp_path / "results"
    full = [[1.0] * 3] * 3
    rows = [{"domain": d, "cells": full} for d in ("chat", "code", "math", "safety-refuse")]
    (results / "rmb").mkdir(parents=True)
    write_run(results / "rmb", "rm-bench", {**rm.summary(rows), "model": "rm-x", "examples": 4},
              {"source": "fixture"}, time.perf_counter())  # fmt: skip
    (results / "jb").mkdir()
    votes = [{"category": "math", "vote": 2}, {"category": "coding", "vote": -2}]
    write_run(results / "jb", "judgebench", {**jb.summary(votes), "model": "judge-y"},
              {"split": "gpt"}, time.perf_counter())  # fmt: skip
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps(alpaca_annotations("model-z", n=10)))
    ar.score_annotations([annotations], results / "ae")
    judgments = _write_jsonl(tmp_path / "single.jsonl", fastchat_single_judgments(seed=3))
    fr.score_judgments([judgments], results / "mt")
    result = runner.invoke(app, ["report", str(results), "--quiet"])
    assert result.exit_code == 0, result.output
    board = (results / "report" / "leaderboard.md").read_text()
    for title in ("## RM-Bench", "## JudgeBench", "## AlpacaEval (scored annotations)",
                  "## MT-Bench"):  # fmt: skip
        assert title in board
    assert "| rm-x | 100.0 | 100.0 | 100.0 | 100.0 |" in board
    assert "| judge-y | 50.0 |" in board
    assert "| model-z |" in board and "| m1 | gpt-4/single-v1" in board
    for plot in ("rm-bench_difficulty.png", "judgebench_categories.png",
                 "alpaca-eval_win_rates.png", "mt-bench_radar.png"):  # fmt: skip
        assert (results / "report" / plot).stat().st_size > 1000
