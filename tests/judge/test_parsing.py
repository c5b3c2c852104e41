import math

import pytest

from judge.parsing import (
    choice_probabilities,
    expected_rating,
    fastchat_pair_winner,
    fastchat_rating,
    parse_attribute_ratings,
    parse_pair_verdict,
    parse_rating,
    parse_strength,
)

# Messy completions as judges write them: (completion, our winner or None, FastChat's result)
REST = '"correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2}'

PAIR_CORPUS = [
    ("Both answers are fine, but A is more precise.\n\nFinal verdict: [[A]]", "A", "A"),
    ("After careful comparison... [[B]]", "B", "B"),
    ("They are equally good. [[C]]", "tie", "tie"),
    ("Final verdict: [[ tie ]]", "tie", "error"),
    ("**Verdict: A**", "A", "error"),
    ("Final Verdict: [B]", "B", "error"),
    ("Assistant A is better because it cites sources.", "A", "error"),
    ("Overall, Response B is clearly superior.", "B", "error"),
    ("It's a tie: neither adds anything.", "tie", "error"),
    ("My choice: Assistant B", "B", "error"),
    ("The decision is a hard one.", None, "error"),
    ("I'd say [[A]]. Actually, on reflection, [[B]].", None, "A"),
    ("Assistant A is better on style, but Assistant B is better on facts.", None, "error"),
    ("Both have merits and flaws.", None, "error"),
    ("", None, "error"),
    ("Verdict: [[A]]\n(Assistant A)", "A", "A"),
]


@pytest.mark.parametrize(("text", "winner", "fastchat"), PAIR_CORPUS)
def test_pair_verdict_corpus(text, winner, fastchat):
    verdict = parse_pair_verdict(text)
    assert verdict.winner == winner, verdict.rule
    assert verdict.ok == (winner is not None)
    assert verdict.raw == text
    assert fastchat_pair_winner(text) == fastchat


def test_strict_mode_accepts_only_double_brackets():
    assert parse_pair_verdict("Verdict: A", lenient=False).winner is None
    assert parse_pair_verdict("so [[B]]", lenient=False).winner == "B"


def test_conflict_and_ambiguity_reasons_are_kept():
    assert "conflicting" in parse_pair_verdict("[[A]] or [[C]]").rule
    assert "ambiguous" in parse_pair_verdict("Verdict: A. Assistant B is better.").rule


RATING_CORPUS = [
    ("The response is accurate. Rating: [[8]]", 8, 8.0),
    ("Rating: [[7.5]]", 7.5, 7.5),
    ("I would rate it [6] overall.", 6, 6.0),
    ("Rating: [[9]] (earlier I considered [5])", 9, 9.0),
    ("Score: 7/10", -1, None),
    ("Rating: [[ 8 ]]", -1, None),  # FastChat's regex allows no spaces
    ("Rating: [[11]]", 11, None),  # FastChat takes it; we reject out of range
    ("Rating: [[0]]", 0, None),
    ("[[4]] for turn one, [[6]] for turn two", 4, None),
    ("Rating: [[-3]]", -1, None),
]


@pytest.mark.parametrize(("text", "fastchat", "ours"), RATING_CORPUS)
def test_rating_corpus(text, fastchat, ours):
    assert fastchat_rating(text) == fastchat
    rating = parse_rating(text)
    assert rating.score == ours
    assert rating.ok == (ours is not None)
    assert rating.reason


def test_rating_range_is_configurable():
    assert parse_rating("[[0]]", low=0, high=4).score == 0.0


STRENGTH_CORPUS = [
    ('{"justification": "A answers the question.", "preference": -2}', -2, "A answers"),
    ('```json\n{"preference": 3, "justification": "B is correct."}\n```', 3, "B is correct"),
    ("Justification: Response B is more complete.\nPreference: [[1]]", 1, "more complete"),
    ("B misses the point entirely.\n\n[[−3]]", -3, "misses the point"),
    ("Overall, A is slightly better since it is concise.", -1, "concise"),
    ("They are about the same.", 0, "same"),
    ("Preference: 5", None, ""),
    ("[[-1]] hmm, or maybe [[2]]", None, ""),
    ('{"preference": 1.5, "justification": "close"}', None, "close"),
    ("I cannot decide.", None, ""),
]


@pytest.mark.parametrize(("text", "value", "justification"), STRENGTH_CORPUS)
def test_strength_corpus(text, value, justification):
    result = parse_strength(text)
    assert result.strength == value, result.reason
    assert justification in result.justification
    assert result.raw == text


def test_attribute_ratings_from_messy_json():
    text = (
        "Here is my assessment:\n```json\n"
        '{"Helpfulness": 3, "correctness": "4", "coherence": 4.0, "complexity": 1, '
        '"verbosity": 2, "notes": "ok"}\n```'
    )
    result = parse_attribute_ratings(text)
    assert result.values == {
        "helpfulness": 3,
        "correctness": 4,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 2,
    }
    inline = 'Sure! {"helpfulness": 0, ' + REST + " done"
    assert parse_attribute_ratings(inline).ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no json at all", "no JSON object"),
        ('{"helpfulness": 3}', "missing attribute 'correctness'"),
        ('{"helpfulness": 5, ' + REST, "helpfulness: expected an integer 0-4, got 5"),
        (
            '{"helpfulness": 2.5, ' + REST,
            "got 2.5",
        ),
        (
            '{"helpfulness": true, ' + REST,
            "got True",
        ),
    ],
)
def test_attribute_ratings_failures(text, reason):
    result = parse_attribute_ratings(text)
    assert not result.ok
    assert reason in result.reason


def test_choice_probabilities_add_spellings_and_skip_positions_without_a_choice():
    positions = [
        [("\n", math.log(0.9)), ("The", math.log(0.1))],
        [(" A", math.log(0.3)), ("[[A", math.log(0.1)), ("**b**", math.log(0.1)), ("x", -0.1)],
    ]
    got = choice_probabilities(positions, ("A", "B"))
    assert got.position == 1
    assert got.probs == pytest.approx({"A": 0.8, "B": 0.2})
    missing = choice_probabilities(positions[:1], ("A", "B"))
    assert not missing.ok and "none of A, B" in missing.reason
    assert expected_rating({"0": 0.5, "4": 0.5}) == 2.0
