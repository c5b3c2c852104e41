import re

import polars as pl
import pytest

from helpsteer.aggregate import (
    aggregate_preferences,
    aggregate_ratings,
    most_agreeing,
    round_half_away,
    split_justification,
)
from helpsteer.attributes import ATTRIBUTES
from helpsteer.io import LINE
from helpsteer.testing import raw_ratings


@pytest.mark.parametrize(
    ("values", "chosen"),
    [
        ((0, 3, 3, 4, 4), (3, 3, 4)),  # smallest range, then smallest variance
        ((1, 2, 3), (1, 2, 3)),
        ((0, 1, 2, 3, 4), (1, 2, 3)),  # equal ranges: mean closest to the median
        ((0, 0, 4, 4), (0, 0, 4)),  # full tie: the lower window
        ((2, 2), (2, 2)),
    ],
)
def test_most_agreeing(values, chosen):
    assert most_agreeing(values) == chosen


def test_round_half_away_from_zero():
    assert [round_half_away(x) for x in (2.5, -2.5, 1.49, -1.67, 0.33)] == [3, -3, 1, -2, 0]


def _raw(rows):
    frame = pl.DataFrame(
        rows, schema=["item_id", "annotator_id", *ATTRIBUTES], orient="row"
    ).with_columns(
        pl.lit("p").alias("prompt"),
        pl.lit("r").alias("response"),
        pl.int_range(1, pl.len() + 1).alias(LINE),
    )
    return frame.with_columns(pl.col(a).cast(pl.Int8) for a in ATTRIBUTES)


def test_rating_labels_use_the_three_most_agreeing_per_attribute():
    raw = _raw(
        [
            ("a", "u1", 0, 4, 2, None, 1),
            ("a", "u2", 3, 4, 2, 3, 1),
            ("a", "u3", 3, 1, 2, 3, 2),
            ("a", "u4", 4, 4, 3, 3, 2),
            ("a", "u5", 4, 0, 2, 2, 2),
        ]
    )
    item = aggregate_ratings(raw).row(0, named=True)
    # helpfulness: (3,3,4) is closer to the median 3 than (3,4,4) -> 3.33 -> 3;
    # correctness (4,4,4); coherence (2,2,2); complexity ignores the null: (3,3,3) of
    # (2,3,3,3); verbosity: the most agreeing of (1,1,2,2,2) is (2,2,2).
    assert [item[a] for a in ATTRIBUTES] == [3, 4, 2, 3, 2]
    assert item["n_annotators"] == 5
    assert item["helpfulness_spread"] == 4
    assert item["helpfulness_spread3"] == 1
    assert item["needs_more_annotators"] is False


def test_items_with_spread_and_few_annotators_are_flagged():
    raw = _raw([("b", "u1", 0, 1, 1, 1, 1), ("b", "u2", 3, 1, 1, 1, 1), ("b", "u3", 4, 1, 1, 1, 1)])
    item = aggregate_ratings(raw).row(0, named=True)
    assert item["needs_more_annotators"] is True
    assert item["helpfulness"] == 2  # (0+3+4)/3 = 2.33


def test_aggregation_recovers_the_truth_of_synthetic_annotations():
    raw = raw_ratings(400, 5, seed=3, noise=0.5).with_columns(
        pl.int_range(1, pl.len() + 1).alias(LINE), *[pl.col(a).cast(pl.Int8) for a in ATTRIBUTES]
    )
    items = aggregate_ratings(raw)
    assert items.height == 400
    # with low noise most labels equal the per-item majority
    majority = raw.group_by("item_id").agg(pl.col("helpfulness").mode().first().alias("m"))
    joined = items.join(majority, on="item_id")
    assert (joined["helpfulness"] == joined["m"]).mean() > 0.9


def _raw_prefs(rows):
    return pl.DataFrame(
        rows,
        schema=["pair_id", "annotator_id", "preference_strength", "justification"],
        orient="row",
    ).with_columns(
        pl.lit("p").alias("prompt"),
        pl.lit("r1").alias("response_1"),
        pl.lit("r2").alias("response_2"),
        pl.int_range(1, pl.len() + 1).alias(LINE),
        pl.col("preference_strength").cast(pl.Int8),
    )


def test_preference_three_most_similar_and_statement():
    raw = _raw_prefs(
        [
            ("p", "u1", 3, "@Response 2 is far better. Much more detail."),
            ("p", "u2", -2, "@Response 1 is better. Shorter."),
            ("p", "u3", 2, "@Response 2 is better! It answers the question."),
            ("p", "u4", 1, "@Response 2 is slightly better."),
            ("p", "u5", 2, "Response 2 wins"),
        ]
    )
    pair = aggregate_preferences(raw).row(0, named=True)
    assert pair["preference_strength"] == 2  # (1, 2, 2) -> 1.67 -> 2
    assert [p["strength"] for p in pair["three_most_similar_preferences"]] == [2, 1, 2]
    assert len(pair["all_preferences_unprocessed"]) == 5
    assert pair["preference_statement"] == "@Response 2 is better!"
    assert pair["preference_elaboration"] == "It answers the question."
    assert pair["spread3"] == 1


def test_justification_split_first_sentence():
    frame = pl.DataFrame({"justification": ["One. Two three.", "No punctuation", "Q? A.", None]})
    out = frame.select(split_justification())
    assert out["statement"].to_list() == ["One.", "No punctuation", "Q?", ""]
    assert out["elaboration"].to_list() == ["Two three.", "", "A.", ""]


def _first_sentence(text: str) -> tuple[str, str]:
    """The rule as a regex on one string: the definition the expressions must follow."""
    text = text.strip()
    match = re.match(r"(?s)^\s*(.*?[.!?])(?:\s+|$)", text)
    statement = match.group(1) if match else text
    return statement, text[len(statement) :].strip()


def test_justification_split_matches_the_regex_rule_on_unicode_and_edges():
    texts = [
        "",
        "   ",
        "End.",
        "Héllo wörld! Then more.",
        "a.b. c",
        "Why?\nBecause.",
        "日本語です。 Then. x",
        "Ünïcode first… then? yes. more",
        "x.\u00a0y",
        "Dots... and more",
        "  lead. trail  ",
        "?",
        "a!b?c. d!",
        "emoji 🙂. after",
    ]
    out = pl.DataFrame({"justification": texts}).select(split_justification())
    assert list(zip(out["statement"], out["elaboration"], strict=True)) == [
        _first_sentence(t) for t in texts
    ]
