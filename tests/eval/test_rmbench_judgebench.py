"""RM-Bench and JudgeBench scoring against hand-computed cases from their reference code
(neither is an installable package), and end-to-end runs with the tiny reward model and a
fake LLM judge; RewardBench 2 loaded from a folder in the Hub's own layout."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from eval import judgebench as jb
from eval import rewardbench as rb
from eval import rmbench as rm
from eval.common import EvalError
from eval.scorers import PairScores
from eval.testing import judgebench_rows, rmbench_rows, write_rewardbench2_hub
from helpsteer.cli import app

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------ RM-Bench rule


def test_cells_compare_every_chosen_style_with_every_rejected_style():
    # THU-KEG/RM-Bench scripts/utils.py lines 87-91: cell [i][j] counts
    # score_chosen[i] > score_rejected[j]; equal scores do not count.
    cells = rm.cells_from_scores([3.0, 1.0, 2.0], [2.0, 1.0, 0.0])
    assert cells == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]


def test_easy_normal_hard_are_lower_diagonal_upper():
    # utils.py lines 96-106: hard = upper-right triangle (j > i) / 3, normal = diagonal,
    # easy = lower-left triangle (j < i) / 3.
    matrix = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]
    levels = rm.difficulty(matrix)
    assert levels["hard"] == pytest.approx((0.2 + 0.3 + 0.6) / 3)
    assert levels["normal"] == pytest.approx((0.1 + 0.5 + 0.9) / 3)
    assert levels["easy"] == pytest.approx((0.4 + 0.7 + 0.8) / 3)


def test_domains_and_overall_follow_compute_accuracy():
    # utils.py lines 35-45 (safety-refuse and safety-response both go to safety) and 56-74:
    # a domain's score is the mean of its hard/normal/easy; the totals are domain means.
    one = [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # easy 1, normal 1, hard 0
    zero = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    full = [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    rows = [
        {"domain": "chat", "cells": one},
        {"domain": "chat", "cells": zero},
        {"domain": "code", "cells": full},
        {"domain": "math", "cells": zero},
        {"domain": "safety-refuse", "cells": full},
        {"domain": "safety-response", "cells": one},
    ]
    result = rm.summary(rows)
    chat = result["domains"]["chat"]
    assert chat["matrix"][1][0] == 0.5 and chat["matrix"][0][1] == 0.0
    assert (chat["easy"], chat["normal"], chat["hard"]) == (0.5, 0.5, 0.0)
    assert chat["score"] == pytest.approx(1 / 3)
    safety = result["domains"]["safety"]
    assert safety["examples"] == 2
    assert (safety["easy"], safety["normal"], safety["hard"]) == (1.0, 1.0, 0.5)
    assert result["hard"] == pytest.approx((0 + 1 + 0 + 0.5) / 4)
    assert result["easy"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert result["score"] == pytest.approx((1 / 3 + 1 + 0 + 2.5 / 3) / 4)
    assert result["complete"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chosen": ["a", "b"]}, "field 'chosen' must be a list of 3"),
        ({"rejected": ["a", "b", None]}, "field 'rejected' must hold strings"),
        ({"domain": "poetry"}, "field 'domain' is 'poetry'"),
    ],
)
def test_rmbench_bad_rows_name_row_and_field(tmp_path, change, message):
    rows = rmbench_rows(per_domain=1)
    rows[2].update(change)
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(EvalError, match="row 2") as info:
        rm.load_rmbench(path)
    assert message in str(info.value)


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from judge.testing import make_tiny_reward_model

    return make_tiny_reward_model(tmp_path_factory.mktemp("rm") / "tiny-rm")


def test_rmbench_cli_with_tiny_reward_model(tmp_path, tiny_rm):
    folder = tmp_path / "RM-Bench"
    folder.mkdir()
    (folder / "total_dataset.json").write_text(json.dumps(rmbench_rows(per_domain=2)))
    out = tmp_path / "run"
    args = ["eval", "rm-bench", "--judge", f"reward:{tiny_rm}", "--data", str(folder),
            "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["benchmark"] == "rm-bench" and set(doc["domains"]) == set(rm.DOMAINS)
    scores = pl.read_parquet(out / "scores.parquet")
    # Recompute from the stored scores: the summary is the rule applied to them.
    rows = [
        {"domain": d, "cells": rm.cells_from_scores(c, r)}
        for d, c, r in scores.select("domain", "scores_chosen", "scores_rejected").iter_rows()
    ]
    assert rm.summary(rows)["score"] == pytest.approx(doc["score"])
    assert doc["domains"]["safety"]["examples"] == 4
    assert (out / "difficulty.png").stat().st_size > 1000
    assert "| chosen \\ rejected |" in (out / "report.md").read_text()


def test_rmbench_llm_judge_counts_only_consistent_wins(tmp_path, fake_server):
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps(rmbench_rows(per_domain=1)[:2]))
    out = tmp_path / "llm"
    args = ["eval", "rm-bench", "--judge", f"llm:openai:judge@{fake_server.url}", "--data",
            str(path), "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # The fake judge always answers [[A]]: inconsistent in both orders, so no cell counts.
    doc = json.loads((out / "results.json").read_text())
    assert doc["score"] == 0.0
    assert len(fake_server.requests) == 2 * 9 * 2


# ------------------------------------------------------------------ JudgeBench rule


@pytest.mark.parametrize(
    ("ab", "ba", "outcome"),
    [
        ("A", "A", "correct"),
        ("A", "tie", "correct"),
        ("A", None, "correct"),
        ("A", "B", "tie"),
        ("tie", "tie", "tie"),
        ("B", "tie", "incorrect"),
        ("B", "B", "incorrect"),
    ],
)
def test_judgebench_vote_rule(ab, ba, outcome):
    # ScalerLab/JudgeBench utils/metrics.py lines 64-76: +1 per order equal to the label,
    # -1 per order equal to the flipped label, 0 otherwise (ties, None); correct if > 0.
    raw = [{"verdict_ab": ab, "verdict_ba": ba}]
    votes = jb.votes_from_scores(PairScores([0.5], [None], [None], raw), "generative")
    assert jb.pair_outcome(votes[0]) == outcome


def test_judgebench_classifier_tie_is_not_correct():
    # utils/judges.py: a reward judge says "A>B" only when score_A > score_B, so equal
    # scores give B>A in game 1 and (flipped) A>B in game 2: a sum of 0.
    pairs = PairScores([1.0, 0.0, 0.0], [2.0, 1.0, 1.0], [1.0, 3.0, 1.0])
    votes = jb.votes_from_scores(pairs, "classifier")
    assert [jb.pair_outcome(v) for v in votes] == ["correct", "incorrect", "tie"]


def test_judgebench_accuracy_weighted_by_pairs():
    rows = [{"category": "knowledge", "vote": 2}] * 3 + [{"category": "knowledge", "vote": 0}]
    rows += [{"category": "coding", "vote": -1}]
    result = jb.summary(rows)
    assert result["categories"]["knowledge"]["accuracy"] == 0.75
    assert result["categories"]["coding"]["accuracy"] == 0.0
    # Overall over pairs (3 of 5), not the mean of the categories (0.375).
    assert result["accuracy"] == pytest.approx(0.6)
    assert (result["correct"], result["incorrect"], result["tie"]) == (3, 1, 1)


def test_judgebench_cli_with_tiny_reward_model(tmp_path, tiny_rm):
    path = _jsonl(tmp_path / "dataset=judgebench,response_model=gpt-4o.jsonl", judgebench_rows())
    out = tmp_path / "jb"
    args = ["eval", "judgebench", "--judge", f"reward:{tiny_rm}", "--data", str(path),
            "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["categories"]) == {"knowledge", "reasoning", "math", "coding"}
    assert doc["categories"]["knowledge"]["pairs"] == 4 and doc["pairs"] == 10
    scores = pl.read_parquet(out / "scores.parquet")
    assert doc["accuracy"] == pytest.approx((scores["outcome"] == "correct").mean())
    assert set(scores["vote"].to_list()) <= {-2, 0, 2}


def test_judgebench_llm_judge_in_both_orders(tmp_path, fake_server):
    path = _jsonl(tmp_path / "jb.jsonl", judgebench_rows(per_source=1))
    out = tmp_path / "llm"
    args = ["eval", "judgebench", "--judge", f"llm:openai:judge@{fake_server.url}", "--data",
            str(path), "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    # Always "[[A]]": the first shown wins in each order, +1 and -1, so every pair ties.
    assert (doc["tie"], doc["accuracy"]) == (5, 0.0)
    assert len(fake_server.requests) == 10


def test_judgebench_bad_label_is_one_line_error(tmp_path):
    rows = judgebench_rows(per_source=1)
    rows[3]["label"] = "A=B"
    path = _jsonl(tmp_path / "jb.jsonl", rows)
    result = runner.invoke(app, ["eval", "judgebench", "--judge", "reward:x", "--data",
                                 str(path), "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2
    assert "row 3" in result.output and "field 'label'" in result.output


# ------------------------------------------------------------------ RewardBench 2 on the Hub


def test_rb2_hub_layout_through_datasets(tmp_path, monkeypatch):
    """The Hub path (datasets.load_dataset) on a local folder laid out as the Hub repo."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = write_rewardbench2_hub(tmp_path / "reward-bench-2", per_subset=2, ties_prompts=2)
    frame = rb._read_hub(str(folder), "test")
    assert frame.height == 5 * 2 + 2 * 2
    assert {"num_incorrect", "additional_metadata"} <= set(frame.columns)
    ties = frame.filter(pl.col("subset") == "Ties")
    assert sorted(ties["num_correct"].to_list()) == [1, 1, 3, 3]
    assert frame.filter(pl.col("subset") == "Math")["rejected"].list.len().to_list() == [3, 3]


def test_rb2_cli_from_hub_id(tmp_path, monkeypatch, tiny_rm):
    import datasets

    folder = write_rewardbench2_hub(tmp_path / "reward-bench-2", per_subset=2, ties_prompts=2)
    real = datasets.load_dataset
    asked = []

    def from_local(name, *args, **kwargs):
        asked.append((name, kwargs.get("split")))
        return real(str(folder), *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", from_local)
    out = tmp_path / "run"
    args = ["eval", "rewardbench", "--version", "2", "--judge", f"reward:{tiny_rm}",
            "--out", str(out), "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert asked == [("allenai/reward-bench-2", "test")]
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["subsets"]) == set(rb.V2_SUBSETS) and doc["examples"] == 14
    scores = pl.read_parquet(out / "scores.parquet")
    tied = scores.filter(pl.col("id").str.starts_with("tied:"))
    assert tied["scores"].list.len().to_list() == [7, 7]


def test_rb2_num_correct_must_match_chosen(tmp_path):
    from eval.testing import rewardbench2_hub_rows

    rows = rewardbench2_hub_rows(per_subset=1, ties_prompts=1)
    rows[1]["num_correct"] = 2
    path = _jsonl(tmp_path / "rb2.jsonl", rows)
    result = runner.invoke(app, ["eval", "rewardbench", "--version", "2", "--judge",
                                 "reward:x", "--data", str(path), "--out",
                                 str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2
    assert "row 1" in result.output and "num_correct" in result.output
