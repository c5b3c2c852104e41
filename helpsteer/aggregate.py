"""HelpSteer2's aggregation of raw annotations into labelled records.

The label of an attribute (or a preference strength) is the mean of the 3 most agreeing
of the 3-5 annotations, rounded half away from zero. "Most agreeing" = the 3 values
with the smallest range; ties go to the smallest variance, then to the mean closest to
the median of all values, then to the lower values.

Because values are small integers, the outcome depends only on how many annotators
gave each value. Each item is reduced to that count vector in one group-by, the few
distinct count vectors are solved once in Python, and the answers are joined back:
no Python loop over items.
"""

from __future__ import annotations

import math
import statistics
from functools import cache

import polars as pl

from helpsteer.attributes import ATTRIBUTES, LIKERT_MAX, LIKERT_MIN, STRENGTH_MAX, STRENGTH_MIN
from helpsteer.io import LINE

RATING_VALUES = tuple(range(LIKERT_MIN, LIKERT_MAX + 1))
STRENGTH_VALUES = tuple(range(STRENGTH_MIN, STRENGTH_MAX + 1))
_BASE = 256  # count vectors are packed into one integer key; an item may have <256 annotators


def round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def most_agreeing(values: tuple[int, ...], k: int = 3) -> tuple[int, ...]:
    """The k values (of a sorted tuple) that agree most; all of them when there are <= k."""
    if len(values) <= k:
        return values
    median = statistics.median(values)
    windows = [values[i : i + k] for i in range(len(values) - k + 1)]

    twice_median = int(2 * median)

    def badness(window: tuple[int, ...]) -> tuple[int, int, int, int]:
        # integer forms of (range, variance, |mean - median|, mean): exact tie-breaking
        total = sum(window)
        return (
            window[-1] - window[0],
            k * sum(v * v for v in window) - total * total,
            abs(2 * total - k * twice_median),
            total,
        )

    return min(windows, key=badness)


@cache
def solve_counts(key: int, values: tuple[int, ...]) -> tuple[int | None, int, int, tuple[int, ...]]:
    """(label, spread of the 3 most agreeing, spread of all, chosen count per value)."""
    counts = [(key // _BASE**i) % _BASE for i in range(len(values))]
    flat = tuple(v for v, c in zip(values, counts, strict=True) for _ in range(c))
    if not flat:
        return None, 0, 0, tuple(0 for _ in values)
    chosen = most_agreeing(flat)
    label = round_half_away(sum(chosen) / len(chosen))
    chosen_counts = tuple(chosen.count(v) for v in values)
    return label, chosen[-1] - chosen[0], flat[-1] - flat[0], chosen_counts


def _count_key(column: str, values: tuple[int, ...]) -> pl.Expr:
    terms = [(pl.col(column) == v).sum().cast(pl.Int64) * (_BASE**i) for i, v in enumerate(values)]
    return pl.sum_horizontal(terms).alias(f"_key_{column}")


def _solved(keys: pl.Series, values: tuple[int, ...]) -> pl.DataFrame:
    """The lookup table for the distinct count keys present."""
    rows = [(k, *solve_counts(k, values)[:3]) for k in keys.unique().to_list()]
    return pl.DataFrame(
        rows, schema=["key", "label", "spread3", "spread"], orient="row"
    ).with_columns(pl.col("label").cast(pl.Int8), pl.col("spread3", "spread").cast(pl.Int8))


def aggregate_ratings(raw: pl.DataFrame, flag_spread: int = 2, max_annotators: int = 5):
    """Raw rating annotations -> one row per item with the five labels.

    Extra columns: `n_annotators`, `helpfulness_spread` (all annotators),
    `helpfulness_spread3` (the 3 used), `needs_more_annotators` (spread above
    `flag_spread` with fewer than `max_annotators` annotators, HelpSteer2's rule for
    asking more people).
    """
    grouped = raw.group_by("item_id").agg(
        pl.col("prompt").first(),
        pl.col("response").first(),
        pl.len().alias("n_annotators"),
        pl.col(LINE).min().alias("_first_line"),
        *[_count_key(a, RATING_VALUES) for a in ATTRIBUTES],
    )
    columns = []
    for attribute in ATTRIBUTES:
        table = _solved(grouped[f"_key_{attribute}"], RATING_VALUES)
        key = pl.col(f"_key_{attribute}")
        columns.append(_lookup(key, table, "label").alias(attribute))
        if attribute == "helpfulness":
            columns.append(_lookup(key, table, "spread").alias("helpfulness_spread"))
            columns.append(_lookup(key, table, "spread3").alias("helpfulness_spread3"))
    out = grouped.with_columns(columns).sort("_first_line")
    out = out.with_columns(
        (
            (pl.col("helpfulness_spread") > flag_spread) & (pl.col("n_annotators") < max_annotators)
        ).alias("needs_more_annotators")
    )
    return out.select(
        "item_id",
        "prompt",
        "response",
        *ATTRIBUTES,
        "n_annotators",
        "helpfulness_spread",
        "helpfulness_spread3",
        "needs_more_annotators",
    )


def _lookup(key: pl.Expr, table: pl.DataFrame, field: str) -> pl.Expr:
    return key.replace_strict(table["key"], table[field], return_dtype=table.schema[field])


SENTENCE_END = r"[.!?](?:\s|$)"
"""The end of the first sentence: `.`, `!` or `?` followed by whitespace or the end."""


def split_justification(column: str = "justification") -> list[pl.Expr]:
    """HelpSteer2-Preference's split: the first sentence is the statement, the rest the
    elaboration (the whole text is the statement when no sentence ends).

    The first sentence end is found with `str.find` and the text cut at its byte offset
    (the end is one ASCII byte, so each side stays valid UTF-8): on 300k justifications
    0.08 s, where extracting the first sentence with a lazy regex group took 0.24 s.
    """
    text = pl.col(column).fill_null("").str.strip_chars()
    cut = text.str.find(SENTENCE_END) + 1
    raw = text.cast(pl.Binary)
    statement = pl.when(cut.is_null()).then(text).otherwise(raw.bin.slice(0, cut).cast(pl.String))
    rest = raw.bin.slice(cut).cast(pl.String).str.strip_chars()
    elaboration = pl.when(cut.is_null()).then(pl.lit("")).otherwise(rest)
    return [statement.alias("statement"), elaboration.alias("elaboration")]


def choose_preferences(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """HelpSteer2-Preference's label for each pair of `raw` (`pair_id`, `annotator_id`,
    `preference_strength`, `_line`): the rounded mean of the 3 most similar strengths.

    Returns (per pair: `pair_id`, `n_annotators`, `preference_strength`, `spread3`;
    per annotation, in file order: the raw columns plus `strength`, `label` and `chosen`,
    whether it is one of its pair's 3 most similar). HelpSteer3 shares this rule.
    """
    grouped = raw.group_by("pair_id").agg(
        pl.len().alias("n_annotators"),
        _count_key("preference_strength", STRENGTH_VALUES),
    )
    table = _solved(grouped["_key_preference_strength"], STRENGTH_VALUES)
    key = pl.col("_key_preference_strength")
    grouped = grouped.with_columns(
        _lookup(key, table, "label").alias("preference_strength"),
        _lookup(key, table, "spread3").alias("spread3"),
    )
    return grouped, _annotations_with_choice(raw, grouped)


def aggregate_preferences(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw preference annotations -> one row per pair in nvidia/HelpSteer2 `preference`
    columns (without `split`), plus `pair_id`, `n_annotators` and `spread3`."""
    grouped, rows = choose_preferences(raw)
    rows = rows.with_columns(*split_justification())
    item = pl.struct(pl.col("statement"), pl.col("elaboration"), pl.col("strength").cast(pl.Int64))
    # nvidia/HelpSteer2 keeps each annotator's whole text here, unsplit.
    annotation = pl.struct(
        pl.col("strength").cast(pl.Int64),
        pl.col("justification").fill_null("").str.strip_chars(),
    )
    # The record's statement/elaboration is the chosen annotator closest to the label.
    closeness = (pl.col("strength") - pl.col("label")).abs() + pl.when(pl.col("chosen")).then(
        0
    ).otherwise(100)
    per_pair = rows.group_by("pair_id").agg(
        pl.col("prompt", "response_1", "response_2").first(),
        pl.col(LINE).min().alias("_first_line"),
        pl.col("statement").sort_by(closeness, LINE).first().alias("preference_statement"),
        pl.col("elaboration").sort_by(closeness, LINE).first().alias("preference_elaboration"),
        # rows are in file order and group-by keeps that order within each group
        item.filter(pl.col("chosen")).alias("three_most_similar_preferences"),
        annotation.alias("all_preferences_unprocessed"),
    )
    out = per_pair.join(grouped, on="pair_id").sort("_first_line")
    return out.select(
        "pair_id",
        "prompt",
        "response_1",
        "response_2",
        "preference_strength",
        "preference_statement",
        "preference_elaboration",
        "three_most_similar_preferences",
        "all_preferences_unprocessed",
        "n_annotators",
        "spread3",
    )


def _annotations_with_choice(raw: pl.DataFrame, grouped: pl.DataFrame) -> pl.DataFrame:
    """Each annotation with `chosen`: whether it is one of the pair's 3 most similar."""
    keys = grouped["_key_preference_strength"].unique().to_list()
    chosen = [
        (key, value, count)
        for key in keys
        for value, count in zip(STRENGTH_VALUES, solve_counts(key, STRENGTH_VALUES)[3], strict=True)
        if count
    ]
    quota = pl.DataFrame(
        chosen, schema={"_key": pl.Int64, "strength": pl.Int64, "quota": pl.Int64}, orient="row"
    )
    rows = raw.sort(LINE).with_columns(
        pl.col("preference_strength").cast(pl.Int64).alias("strength"),
    )
    rows = rows.join(
        grouped.select(
            "pair_id",
            pl.col("_key_preference_strength").alias("_key"),
            pl.col("preference_strength").cast(pl.Int64).alias("label"),
        ),
        on="pair_id",
    )
    # Joins do not keep row order; the rank below must follow file order.
    rows = rows.join(quota, on=["_key", "strength"], how="left").sort(LINE)
    rank = pl.int_range(pl.len()).over("pair_id", "strength")
    return rows.with_columns((rank < pl.col("quota").fill_null(0)).alias("chosen"))
