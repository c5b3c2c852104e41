"""LLM judges through the client layer against the fake OpenAI server."""

from __future__ import annotations

import json
import math

import pytest

from judge.llm_judge import (
    AttributeJudge,
    JudgeError,
    PairItem,
    PairwiseJudge,
    SamplingConfig,
    SingleItem,
    SingleJudge,
    fields_for_answers,
    load_prompt,
    preference_statement,
    relabel,
    round_strength,
)
from judge.pairwise import first_order
from tests.judge.fake_judge import (
    always_first,
    good_wins,
    judge_client,
    shown_answers,
    strength_good,
)

Q = [{"role": "user", "content": "What is 2 + 2?"}]


def _items(n=6):
    out = []
    for i in range(n):
        good, bad = "good: 4", "bad: 5"
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        out.append(PairItem(f"item-{i}", Q, a, b))
    return out


def test_consistent_verdicts_map_back_to_the_pair_labels(tmp_path):
    with judge_client(good_wins) as (client, server):
        judge = PairwiseJudge(client, load_prompt("pairwise"), sampling=SamplingConfig(seed=3))
        results = judge.judge(_items())
        assert len(server.requests) == 12
    for i, result in enumerate(results):
        assert result.outcome.outcome == ("A" if i % 2 == 0 else "B")
        assert result.consistent is True
        assert result.first_order == first_order(f"item-{i}", 3)
        assert "[[" in result.raw_ab and "[[" in result.raw_ba


def test_first_order_is_asked_first_and_both_orders_are_sent():
    with judge_client(good_wins) as (client, server):
        judge = PairwiseJudge(client, load_prompt("pairwise"), sampling=SamplingConfig(seed=1))
        item = PairItem("x", Q, "first answer good", "second answer")
        (order1, req1), (order2, req2) = judge.requests(item)
        assert {order1, order2} == {"AB", "BA"} and order1 == first_order("x", 1)
        judge.judge([item])
        bodies = [r.body["messages"][-1]["content"] for r in server.requests]
    shown_first = bodies[0].index("first answer good") < bodies[0].index("second answer")
    assert shown_first == (order1 == "AB")
    assert {True, False} == {b.index("first answer") < b.index("second answer") for b in bodies}


@pytest.mark.parametrize(("policy", "winner"), [("discard", None), ("tie", "tie")])
def test_position_bias_is_inconsistent_and_the_policy_decides(policy, winner):
    with judge_client(always_first) as (client, _):
        judge = PairwiseJudge(client, load_prompt("pairwise"), policy=policy)
        (result,) = judge.judge([PairItem("p", Q, "one", "two")])
    assert result.outcome.outcome == "inconsistent"
    assert result.outcome.winner == winner
    assert result.consistent is False
    assert result.outcome.verdict_ab == "A" and result.outcome.verdict_ba == "B"


def test_unparseable_verdict_keeps_raw_and_is_an_error():
    with judge_client(lambda body: ["I cannot decide."]) as (client, _):
        (result,) = PairwiseJudge(client, load_prompt("pairwise")).judge([_items(1)[0]])
    assert result.outcome.outcome == "error" and result.consistent is None
    assert result.raw_ab == "I cannot decide."
    assert "no verdict found" in result.outcome.reason


def test_strength_prompt_gives_mean_strength_and_relabelled_justification():
    with judge_client(strength_good) as (client, _):
        judge = PairwiseJudge(client, load_prompt("pairwise-strength"))
        results = judge.judge([PairItem("s1", Q, "good", "bad"), PairItem("s2", Q, "bad", "good")])
    assert [r.strength.strength for r in results] == [-2.0, 2.0]
    assert all(r.strength.consistent for r in results)
    # "Response A" as shown in the (B, A) order is the pair's response 2.
    assert results[0].justification_ab == "@Response 1 is worse than @Response 2."
    assert results[0].justification_ba == "@Response 2 is worse than @Response 1."


def test_strength_helpers():
    assert round_strength(-1.5) == -2 and round_strength(1.5) == 2 and round_strength(0.4) == 0
    assert preference_statement(-3) == "@Response 1 is much better than @Response 2."
    assert preference_statement(1) == "@Response 2 is slightly better than @Response 1."
    assert relabel("Answer B wins over Assistant A", "BA") == "@Response 1 wins over @Response 2"


def test_multi_turn_and_reference_fields():
    conversation = [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    values = fields_for_answers(conversation, {"_a": "x", "_b": "y"}, ["r1", "r2"])
    assert values["question_1"] == "u1" and values["question_2"] == "u2"
    assert values["answer_a_1"] == values["answer_b_1"] == "a1"
    assert values["answer_a_2"] == "x" and values["answer_b"] == "y"
    assert values["ref_answer_1"] == "r1" and values["ref_answer"] == values["ref_answer_2"] == "r2"
    assert "u1" in values["question"] and values["question"].endswith("u2")
    with pytest.raises(JudgeError):
        fields_for_answers([{"role": "assistant", "content": "x"}], {"": "y"})


def test_single_judge_multi_turn_reference_and_errors():
    def rate(body):
        text = body["messages"][-1]["content"]
        if "Reference answer" in text:
            return ["Rating: [[9]]"]
        if "turn 2" in text:
            return ["Rating: [[3]]"]
        return ["no rating at all"] if "bad" in text else ["Rating: [[7]]"]

    two_turns = [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    with judge_client(rate) as (client, _):
        judge = SingleJudge(
            client,
            load_prompt("single"),
            multi_turn_prompt=load_prompt("single-multi-turn"),
            reference_prompt=load_prompt("single-reference"),
        )
        results = judge.judge(
            [
                SingleItem("plain", Q, "fine"),
                SingleItem("multi", two_turns, "fine"),
                SingleItem("ref", Q, "fine", reference="4"),
                SingleItem("broken", Q, "bad"),
            ]
        )
    assert [r.score for r in results] == [7.0, 3.0, 9.0, None]
    assert results[3].raw == "no rating at all" and "no [[rating]]" in results[3].reason


def test_fastchat_prompt_file_by_name(tmp_path):
    record = {
        "name": "pair-x",
        "type": "pairwise",
        "system_prompt": "Judge.",
        "prompt_template": "Q: {question}\n## Answer A\n{answer_a}\n## End of answer A\n"
        "## Answer B\n{answer_b}\n## End of answer B",
        "description": "",
        "category": "general",
        "output_format": "[[A]]",
    }
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with judge_client(good_wins) as (client, server):
        (result,) = PairwiseJudge(client, load_prompt("pair-x", path)).judge(
            [PairItem("f", Q, "good", "bad")]
        )
        assert server.requests[0].body["messages"][0]["content"] == "Judge."
    assert result.outcome.outcome == "A"
    with pytest.raises(JudgeError, match="no prompt named"):
        load_prompt("missing", path)


def test_attribute_judge_uses_json_schema_and_validates_ranges():
    def attributes(body):
        assert body["response_format"]["type"] in ("json_schema", "json_object")
        good = "good" in body["messages"][-1]["content"]
        values = dict(helpfulness=4, correctness=3, coherence=4, complexity=1, verbosity=2)
        if not good:
            values["verbosity"] = 9
        return [json.dumps(values)]

    with judge_client(attributes) as (client, _):
        client.config.json_repair_retries = 0
        judge = AttributeJudge(client, load_prompt("helpsteer2-attributes"))
        ok, bad = judge.judge([SingleItem("a", Q, "good"), SingleItem("b", Q, "meh")])
    assert ok.values == dict(helpfulness=4, correctness=3, coherence=4, complexity=1, verbosity=2)
    assert bad.values is None and "schema" in bad.reason and '"verbosity": 9' in bad.raw


def test_judges_reject_prompts_of_the_wrong_format():
    with pytest.raises(JudgeError):
        PairwiseJudge(None, load_prompt("single"))
    with pytest.raises(JudgeError):
        SingleJudge(None, load_prompt("pairwise"))


def test_rerun_is_served_from_the_cache(tmp_path):
    items = _items(2)
    with judge_client(good_wins, tmp_path) as (client, server):
        first = PairwiseJudge(client, load_prompt("pairwise")).judge(items)
        again = PairwiseJudge(client, load_prompt("pairwise")).judge(items)
        assert len(server.requests) == 4
        assert client.stats.cache_hits == 4
    assert [r.outcome for r in first] == [r.outcome for r in again]


# ------------------------------------------------------------------ verdict-token probabilities


def biased_logprobs(body: dict) -> list[dict]:
    """A position-biased judge: it favours the answer shown first, but less so when the
    'good' answer is shown second. It opens with a space token before the letter."""
    shown = shown_answers(body)
    p_first = 0.6 if "good" in shown.get("B", "") else 0.9
    letters = {" A": math.log(p_first), "[[B": math.log(1 - p_first), "The": math.log(0.5)}
    return [{"text": " A", "logprobs": [{" ": -0.1, "\n": -2.0}, letters]}]


def test_logprob_pairwise_reads_probabilities_and_averages_both_orders():
    with judge_client(biased_logprobs) as (client, server):
        judge = PairwiseJudge(client, load_prompt("pairwise-logprob"), policy="probability")
        results = judge.judge(_items(4))
        bodies = [r.body for r in server.requests]
    assert all(b["logprobs"] and b["top_logprobs"] == 20 and b["max_tokens"] == 3 for b in bodies)
    for item, result in zip(_items(4), results, strict=True):
        good_is_a = "good" in item.answer_a
        # Shown first it wins with 0.9; shown second it still gets 0.4: mean 0.65.
        assert result.prob_a == pytest.approx(0.65 if good_is_a else 0.35)
        assert result.outcome.outcome == "inconsistent"  # A wins in both orders as shown
        assert result.outcome.winner == ("A" if good_is_a else "B")
        assert "mean P(A better) 0.6" in result.outcome.reason or not good_is_a


def test_logprob_pairwise_other_policies_and_missing_choices():
    with judge_client(biased_logprobs) as (client, _):
        (tie,) = PairwiseJudge(client, load_prompt("pairwise-logprob"), policy="tie").judge(
            _items(1)
        )
    assert tie.outcome.winner == "tie" and tie.prob_a == pytest.approx(0.65)
    no_letter = [{"text": "Well", "logprobs": [{"Well": -0.1, "I": -1.0}]}]
    with judge_client(lambda body: no_letter) as (client, _):
        (result,) = PairwiseJudge(client, load_prompt("pairwise-logprob")).judge(_items(1))
    assert result.outcome.outcome == "error" and result.prob_a is None
    assert "none of A, B among the top tokens" in result.outcome.reason


def test_probability_policy_needs_a_logprob_prompt():
    with pytest.raises(JudgeError, match="needs a 'logprob:A,B' prompt"):
        PairwiseJudge(None, load_prompt("pairwise"), policy="probability")


def test_logprob_single_rating_is_the_expected_digit():
    def digits(body):
        probs = {"3": 0.5, "4": 0.25, "x": 0.2, "1": 0.05}
        return [{"text": "3", "logprobs": [{k: math.log(v) for k, v in probs.items()}]}]

    with judge_client(digits) as (client, _):
        judge = SingleJudge(client, load_prompt("single-logprob"))
        (result,) = judge.judge([SingleItem("s", Q, "4")])
    assert result.score == pytest.approx((3 * 0.5 + 4 * 0.25 + 1 * 0.05) / 0.8)
    with pytest.raises(JudgeError, match="numeric choices"):
        SingleJudge(None, load_prompt("pairwise-logprob"))


def test_logprob_judge_falls_back_to_the_reply_without_logprobs():
    with judge_client(lambda body: ["B is better"]) as (client, _):
        judge = SingleJudge(client, load_prompt("single-logprob"))
        (unrated,) = judge.judge([SingleItem("s", Q, "4")])
        with_text = [{"text": "Rating 2", "logprobs": []}]
    assert unrated.score is None
    with judge_client(lambda body: with_text) as (client, _):
        (rated,) = SingleJudge(client, load_prompt("single-logprob")).judge(
            [SingleItem("s", Q, "4")]
        )
    assert rated.score == 2.0


class _Answers:
    """A client whose answers are given: an error text, or None for a success."""

    def __init__(self, errors, permanent=False):
        self.errors, self.permanent = errors, permanent

    def complete_batch(self, requests, reporter=None):
        from helpsteer.llm import Completion

        return [
            Completion(error=e, permanent=self.permanent) if e else Completion(texts=["ok"])
            for e in self.errors
        ]


def test_a_batch_the_server_answered_none_of_is_an_error():
    from helpsteer.llm import ChatRequest
    from judge.llm_judge import JudgeError, answered

    requests = [ChatRequest(messages=[{"role": "user", "content": "q"}])] * 2
    with pytest.raises(JudgeError, match="all 2 LLM requests failed.*refused"):
        answered(_Answers(["refused", "refused"]), requests, None)
    # one answer, or failures that are the requests' own (recorded), keep the batch
    assert len(answered(_Answers(["refused", None]), requests, None)) == 2
    assert len(answered(_Answers(["400 bad", "400 bad"], permanent=True), requests, None)) == 2
    assert answered(_Answers([]), [], None) == []
