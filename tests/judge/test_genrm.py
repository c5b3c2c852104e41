"""GenRM judge: the Nemotron GenRM output format (well-formed and malformed), voting over k
samples, and the judge through the fake OpenAI server."""

from __future__ import annotations

import json

import pytest

from judge.genrm import (
    GenRMJudge,
    GenRMSample,
    GenRMSampling,
    load_genrm_prompt,
    majority,
    parse_genrm,
    ranking_strength,
    vote,
)
from judge.llm_judge import JudgeError, PairItem, SingleItem
from tests.judge.fake_genrm import genrm_answer, genrm_shown, good_genrm, quality, ranking_for
from tests.judge.fake_judge import judge_client

ASK = [{"role": "user", "content": "What is 2 + 2?"}]


# ------------------------------------------------------------------ parsing


def test_parses_two_responses_with_analyses():
    text = genrm_answer([4, 2], 2, ["Correct and short.", "Wrong sum."])
    sample = parse_genrm(text, 2)
    assert sample.ok and sample.reason == "ok"
    assert sample.scores == (4, 2) and sample.ranking == 2
    assert sample.analyses == ("Correct and short.", "Wrong sum.")
    assert sample.raw == text


def test_parses_one_response_and_ignores_a_ranking_there():
    sample = parse_genrm(genrm_answer([3]), 1)
    assert sample.scores == (3,) and sample.ranking is None
    assert parse_genrm(genrm_answer([3], 4), 1).ranking is None


def test_reasoning_before_think_end_is_not_parsed():
    thinking = "<think>Maybe [The Begin of Individual Scores]\n\\boxed{1, 1}\n</think>\n"
    sample = parse_genrm(thinking + genrm_answer([5, 4], 3), 2)
    assert sample.scores == (5, 4) and sample.ranking == 3
    assert sample.raw.startswith("<think>")


def test_last_section_counts_when_the_format_is_quoted_first():
    quoted = "The format is [The Begin of Ranking Score]\n\\boxed{z}\n[The End of Ranking Score]\n"
    assert parse_genrm(quoted + genrm_answer([2, 5], 6), 2).ranking == 6


def test_json_variant_of_the_newer_genrms():
    sample = parse_genrm('Reasoning...\n{"score_1": 2, "score_2": 4, "ranking": 5}', 2)
    assert (sample.scores, sample.ranking, sample.reason) == ((2, 4), 5, "json")
    bad = parse_genrm('{"score_1": 2, "score_2": 9, "ranking": 5}', 2)
    assert not bad.ok and "score_2: 9 outside 1..5" in bad.reason


SCORES = "[The Begin of Individual Scores]\n{box}\n[The End of Individual Scores]"
RANK = "\n[The Begin of Ranking Score]\n{box}\n[The End of Ranking Score]"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I like response 1 better.", "no [The Begin of Individual Scores] section"),
        ("[The Begin of Individual Scores]\n\\boxed{4, 2}", "without [The End of Individual"),
        (SCORES.format(box="4, 2"), "no \\boxed{} in Individual Scores"),
        (SCORES.format(box="\\boxed{4, 2} \\boxed{3, 2}"), "several different \\boxed{}"),
        (SCORES.format(box="\\boxed{4}") + RANK.format(box="\\boxed{2}"), "expected 2 indiv"),
        (SCORES.format(box="\\boxed{4, 7}") + RANK.format(box="\\boxed{2}"), "7 outside 1..5"),
        (SCORES.format(box="\\boxed{4, 0}") + RANK.format(box="\\boxed{2}"), "0 outside 1..5"),
        (SCORES.format(box="\\boxed{4.5, 2}") + RANK.format(box="\\boxed{2}"), "'4.5' is not"),
        (SCORES.format(box="\\boxed{x, y}") + RANK.format(box="\\boxed{2}"), "'x' is not an"),
        (SCORES.format(box="\\boxed{4, 2}"), "no [The Begin of Ranking Score] section"),
        (SCORES.format(box="\\boxed{4, 2}") + RANK.format(box="\\boxed{7}"), "7 outside 1..6"),
        (SCORES.format(box="\\boxed{4, 2}") + RANK.format(box="\\boxed{2, 3}"), "one ranking"),
        (SCORES.format(box="\\boxed{4, 2}") + RANK.format(box="2"), "no \\boxed{} in Ranking"),
    ],
)
def test_malformed_outputs_fail_with_a_reason_and_keep_the_raw(text, reason):
    sample = parse_genrm(text, 2)
    assert not sample.ok and sample.scores is None and sample.ranking is None
    assert reason in sample.reason
    assert sample.raw == text


def test_integral_float_and_repeated_box_are_accepted():
    text = SCORES.format(box="\\boxed{4.0, 2} \\boxed{4.0, 2}") + RANK.format(box="\\boxed{1}")
    assert parse_genrm(text, 2).scores == (4, 2)


def test_flipped_sample_swaps_responses_and_mirrors_the_ranking():
    sample = parse_genrm(genrm_answer([5, 2], 1, ["first", "second"]), 2).flipped()
    assert sample.scores == (2, 5) and sample.ranking == 6
    assert sample.analyses == ("second", "first")


# ------------------------------------------------------------------ voting


def _sample(scores, ranking=None):
    return GenRMSample(tuple(scores), ranking, ("",) * len(scores), "raw", "ok")


def _bad():
    return GenRMSample(None, None, (), "garbage", "no [The Begin of Individual Scores] section")


def test_vote_means_scores_and_takes_the_majority_ranking():
    v = vote([_sample([4, 2], 2), _sample([5, 3], 2), _sample([3, 3], 4), _bad()], 2)
    assert v.scores == pytest.approx((4.0, 8 / 3))
    assert v.ranking == 2 and v.votes == {2: 2, 4: 1}
    assert v.ranking_mean == pytest.approx(8 / 3)
    assert v.valid == 3 and v.reason == "3 of 4 parsed"
    assert v.side == "A" and v.strength == -2
    assert len(v.raws) == 4


def test_vote_of_one_response_has_no_ranking():
    v = vote([_sample([2]), _sample([5])], 1)
    assert v.scores == (3.5,) and v.ranking is None and v.side is None


def test_majority_tie_breaks():
    assert majority([2, 2, 6, 6, 1]) == 2  # tied 2 and 6: 2 is nearer the mean 3.4
    assert majority([2, 3]) == 3  # equally near the mean 2.5: the less extreme wins
    assert majority([3, 4]) is None and majority([1, 1, 6, 6]) is None


def test_split_vote_is_a_tie_with_strength_zero():
    v = vote([_sample([4, 4], 3), _sample([4, 4], 4)], 2)
    assert v.ranking is None and v.side == "tie" and v.strength == 0
    assert v.reason.startswith("split vote")


def test_nothing_parsed_keeps_the_first_reason():
    v = vote([_bad(), _bad()], 2)
    assert not v.ok and v.side is None and v.strength is None
    assert v.reason == "no sample parsed: no [The Begin of Individual Scores] section"


def test_ranking_strength_mapping():
    assert [ranking_strength(r) for r in range(1, 7)] == [-3, -2, -1, 1, 2, 3]


# ------------------------------------------------------------------ prompts


def test_builtin_prompt_renders_the_genrm_layout():
    judge = GenRMJudge(client=None)
    request = judge.request(ASK, ["4", "5"])
    text = request.messages[-1].content
    assert "User: What is 2 + 2?" in text
    assert "[The Begin of Response 1]\n4\n[The End of Response 1]" in text
    assert "[The Begin of Response 2]\n5\n[The End of Response 2]" in text
    assert "\\boxed{x, y}" in text and "{{" not in text
    assert request.n == 1 and request.temperature == 0.0 and request.top_p is None


def test_user_prompt_file_overrides_the_template(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        '[short]\ntype = "genrm"\noutput_format = "genrm"\nsystem_prompt = "Be strict."\n'
        "prompt_template = '''{context}\n---\n{responses}'''\n"
    )
    judge = GenRMJudge(client=None, prompt=load_genrm_prompt("short", path))
    messages = judge.request(ASK, ["4"]).messages
    assert messages[0].content == "Be strict."
    assert messages[1].content == "User: What is 2 + 2?\n---\n[The Begin of Response 1]\n4\n" + (
        "[The End of Response 1]"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('output_format = "[[A]]"\nprompt_template = "{context}"', "needs 'genrm'"),
        ('output_format = "genrm"\nprompt_template = "{question}"', "unknown fields"),
    ],
)
def test_unusable_prompt_files_are_named(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'[p]\ntype = "genrm"\nsystem_prompt = ""\n{table}\n')
    with pytest.raises(JudgeError, match=message):
        load_genrm_prompt("p", path)
    with pytest.raises(JudgeError, match="no prompt named 'x'"):
        load_genrm_prompt("x")


def test_voting_needs_sampling():
    with pytest.raises(JudgeError, match="temperature > 0"):
        GenRMJudge(client=None, sampling=GenRMSampling(samples=4, temperature=0))
    sampling = GenRMSampling(samples=4)
    assert (sampling.effective_temperature(), sampling.effective_top_p()) == (0.6, 0.95)


# ------------------------------------------------------------------ through the fake server


def test_scores_single_responses_with_voting(tmp_path):
    def mixed(body):
        # Sample i of k: scores 5, 4, 5, ... for the good answer; one sample is garbage.
        if "good" in genrm_shown(body)[0]:
            return [genrm_answer([5]), genrm_answer([4]), "no scores here", genrm_answer([5])]
        return [genrm_answer([1])] * 4

    items = [SingleItem("g", ASK, "a good answer"), SingleItem("b", ASK, "a bad answer")]
    with judge_client(mixed) as (client, server):
        judge = GenRMJudge(client, sampling=GenRMSampling(samples=4))
        good, bad = judge.score(items)
    assert good.score == pytest.approx(14 / 3) and good.vote.valid == 3
    assert good.vote.raws[2] == "no scores here"
    assert bad.score == 1.0
    body = server.requests[0].body
    assert body["n"] == 4 and body["temperature"] == 0.6 and body["top_p"] == 0.95
    assert len(server.requests) == 2


def test_pairs_are_oriented_back_whatever_order_was_shown(tmp_path):
    items = [PairItem(f"p{i}", ASK, "a good answer", "a bad answer") for i in range(8)]
    with judge_client(good_genrm) as (client, server):
        results = GenRMJudge(client).compare(items)
    orders = {r.orders for r in results}
    assert orders == {("AB",), ("BA",)}  # the seeded coin flip used both
    for r in results:
        assert r.vote.side == "A" and r.vote.scores == (5.0, 1.0)
        assert r.vote.ranking == 2 and r.vote.strength == -2
    assert len(server.requests) == 8


def test_both_orders_vote_together_and_report_consistency():
    def first_shown_wins(body):
        return [genrm_answer([4, 4], 3)]

    items = [PairItem("p", ASK, "x", "y")]
    with judge_client(first_shown_wins) as (client, server):
        (biased,) = GenRMJudge(client, both_orders=True).compare(items)
    assert set(biased.orders) == {"AB", "BA"} and len(server.requests) == 2
    assert biased.consistent is False
    assert biased.vote.votes == {3: 1, 4: 1} and biased.vote.side == "tie"
    with judge_client(good_genrm) as (client, _):
        (fair,) = GenRMJudge(client, both_orders=True).compare([PairItem("p", ASK, "bad", "good")])
    assert fair.consistent is True and fair.vote.side == "B" and fair.vote.ranking == 5


def test_llm_errors_become_unparsed_judgments():
    with judge_client(good_genrm) as (client, server):
        server.plan("400")
        (failed,) = GenRMJudge(client).score([SingleItem("s", ASK, "good")])
    assert not failed.vote.ok and failed.errors
    assert failed.vote.reason.startswith("no sample parsed: LLM error")


def test_fake_genrm_helpers_agree_with_the_parser():
    prompt = "[The Begin of Response 1]\ngood\n[The End of Response 1]"
    body = {"messages": [{"role": "user", "content": prompt}], "n": 2}
    texts = good_genrm(body)
    assert len(texts) == 2 and parse_genrm(texts[0], 1).scores == (quality("good"),)
    assert ranking_for([3, 3]) == 3
    assert json.dumps(good_genrm({"messages": [{"role": "user", "content": "hi"}]})) == "null"
