"""Submitted answers as raw annotation tables (DESIGN.md), and live agreement on them.

Ratings: item_id, prompt, response, annotator_id, the five attributes (null = not
ratable), created_at. Preferences: pair_id, prompt, response_1, response_2, annotator_id,
preference_strength, justification, created_at. The optional attribute ratings given on
a preference screen become rating rows of the two responses, keyed like imported rating
items (`importing.rating_key`), so they aggregate with ratings of the same response.

HelpSteer3 tasks, in the nvidia/HelpSteer3 layouts `hs build-dataset` reads (written only
when the project has items of the task):
- `hs3_preferences`: raw preferences, one row per (pair, annotator): pair_id, domain,
  language, context, response1, response2, annotator_id, score, reasoning, created_at;
  `hs build-dataset` aggregates them into `overall_preference` and the
  `individual_preference` list of {score, reasoning} (helpsteer/helpsteer3.py);
- `hs3_feedback`: the `feedback` config, one row per pair with every annotator's feedback
  in `feedback1` / `feedback2` (in annotator order), plus `pair_id`;
- `hs3_edit`: the `edit` config, one row per (item, annotator): domain, language, context,
  original_response, feedback, edited_response, change_summary, plus item_id,
  annotator_id and created_at.
"""

from __future__ import annotations

import io
import sqlite3

import polars as pl

from annotation_ui import store
from annotation_ui.importing import rating_key
from annotation_ui.tasks import EDIT, FEEDBACK, HS3_PREFERENCE, PREFERENCE, RATING, SCALE
from helpsteer.attributes import ATTRIBUTES, STRENGTH_MAX, STRENGTH_MIN
from helpsteer.features import CONTEXT
from helpsteer.features import FEEDBACK as TEXTS

RATING_COLUMNS = ("item_id", "prompt", "response", "annotator_id", *ATTRIBUTES, "created_at")
PREFERENCE_COLUMNS = (
    "pair_id",
    "prompt",
    "response_1",
    "response_2",
    "annotator_id",
    "preference_strength",
    "justification",
    "created_at",
)
FORMATS = ("jsonl", "parquet")

_META = {"domain": pl.String, "language": pl.String, "context": CONTEXT}
HS3_PREFERENCE_SCHEMA = {
    "pair_id": pl.String,
    **_META,
    "response1": pl.String,
    "response2": pl.String,
    "annotator_id": pl.String,
    "score": pl.Int64,
    "reasoning": pl.String,
    "created_at": pl.String,
}
FEEDBACK_ANSWER_SCHEMA = {
    "pair_id": pl.String,
    **_META,
    "response1": pl.String,
    "response2": pl.String,
    "annotator_id": pl.String,
    "feedback1": pl.String,
    "feedback2": pl.String,
}
"""One annotator's feedback on a pair, before `group_feedback` makes the Hub's rows."""
HS3_FEEDBACK_SCHEMA = {
    "pair_id": pl.String,
    **_META,
    "response1": pl.String,
    "response2": pl.String,
    "feedback1": TEXTS,
    "feedback2": TEXTS,
}
HS3_EDIT_SCHEMA = {
    "item_id": pl.String,
    **_META,
    "original_response": pl.String,
    "feedback": TEXTS,
    "edited_response": pl.String,
    "change_summary": pl.String,
    "annotator_id": pl.String,
    "created_at": pl.String,
}
HS3_TABLES = {HS3_PREFERENCE: "hs3_preferences", FEEDBACK: "hs3_feedback", EDIT: "hs3_edit"}
"""Task -> the export table its answers go to."""
TABLE_NAMES = ("ratings", "preferences", *HS3_TABLES.values())

_LIKERT = pl.Struct({a: pl.Int64 for a in ATTRIBUTES})
_PREFERENCE_ANSWER = pl.Struct(
    {
        "preference_strength": pl.Int64,
        "justification": pl.String,
        "r1": _LIKERT,
        "r2": _LIKERT,
        "r1_set": pl.List(pl.String),
        "r2_set": pl.List(pl.String),
    }
)
_BASE_SCHEMA = {
    "item_key": pl.String,
    "kind": pl.String,
    "prompt": pl.String,
    "response": pl.String,
    "response_1": pl.String,
    "response_2": pl.String,
    "annotator_id": pl.String,
    "answer": pl.String,
    "created_at": pl.String,
    "context": pl.String,
    "domain": pl.String,
    "language": pl.String,
    "feedback": pl.String,
}


def _answers(conn: sqlite3.Connection) -> pl.DataFrame:
    rows = store.annotation_rows(conn)
    return pl.DataFrame([tuple(r) for r in rows], schema=_BASE_SCHEMA, orient="row")


def tables(conn: sqlite3.Connection) -> dict[str, pl.DataFrame]:
    """{'ratings': ..., 'preferences': ...} with exactly the raw-annotation columns, and
    the HelpSteer3 tables of the tasks the project has items of."""
    answers = _answers(conn)
    out = {"ratings": _ratings(answers), "preferences": _preferences(answers)}
    kinds = {row[0] for row in conn.execute("SELECT DISTINCT kind FROM items")}
    makers = {HS3_PREFERENCE: _hs3_preferences, FEEDBACK: _feedback, EDIT: _edits}
    for kind, name in HS3_TABLES.items():
        if kind in kinds:
            out[name] = makers[kind](answers.filter(pl.col("kind") == kind))
    return out


def _hs3_common() -> list[pl.Expr]:
    return [
        pl.col("domain"),
        pl.col("language"),
        pl.col("context").str.json_decode(CONTEXT),
    ]


def _hs3_pair_columns() -> list[pl.Expr]:
    """The HelpSteer3 columns of a pair task's answer rows, named as the Hub names them."""
    return [
        *_hs3_common(),
        pl.col("item_key").alias("pair_id"),
        pl.col("response_1").alias("response1"),
        pl.col("response_2").alias("response2"),
    ]


def _hs3_preferences(answers: pl.DataFrame) -> pl.DataFrame:
    answer = pl.col("answer").str.json_decode(
        pl.Struct({"score": pl.Int64, "reasoning": pl.String})
    )
    frame = answers.with_columns(
        answer.struct.field("score"),
        answer.struct.field("reasoning"),
        *_hs3_pair_columns(),
    )
    return frame.select(list(HS3_PREFERENCE_SCHEMA)).cast(HS3_PREFERENCE_SCHEMA)


def _feedback(answers: pl.DataFrame) -> pl.DataFrame:
    texts = pl.Struct({"feedback1": pl.String, "feedback2": pl.String})
    answer = pl.col("answer").str.json_decode(texts)
    frame = answers.with_columns(
        answer.struct.field("feedback1"),
        answer.struct.field("feedback2"),
        *_hs3_pair_columns(),
    )
    return group_feedback(frame.select(list(FEEDBACK_ANSWER_SCHEMA)))


def group_feedback(rows: pl.DataFrame) -> pl.DataFrame:
    """Per-annotator feedback rows (FEEDBACK_ANSWER_SCHEMA) -> the `feedback` config: one
    row per pair, each annotator's feedback on a response an item of its list (an empty
    text is left out), in the order the rows come."""
    rows = rows.cast(FEEDBACK_ANSWER_SCHEMA).with_row_index("_order")
    kept = [pl.col(c).filter(pl.col(c).str.strip_chars() != "") for c in ("feedback1", "feedback2")]
    grouped = rows.group_by("pair_id", maintain_order=True).agg(
        pl.col("domain", "language", "context", "response1", "response2").first(),
        *kept,
    )
    return grouped.select(list(HS3_FEEDBACK_SCHEMA)).cast(HS3_FEEDBACK_SCHEMA)


def _edits(answers: pl.DataFrame) -> pl.DataFrame:
    fields = pl.Struct({"edited_response": pl.String, "change_summary": pl.String})
    answer = pl.col("answer").str.json_decode(fields)
    frame = answers.with_columns(
        answer.struct.field("edited_response"),
        answer.struct.field("change_summary"),
        *_hs3_common(),
        pl.col("feedback").str.json_decode(TEXTS),
        pl.col("item_key").alias("item_id"),
        pl.col("response").alias("original_response"),
    )
    return frame.select(list(HS3_EDIT_SCHEMA)).cast(HS3_EDIT_SCHEMA)


def _ratings(answers: pl.DataFrame) -> pl.DataFrame:
    direct = (
        answers.filter(pl.col("kind") == RATING)
        .with_columns(pl.col("answer").str.json_decode(_LIKERT).alias("a"))
        .unnest("a")
        .rename({"item_key": "item_id"})
        .select(RATING_COLUMNS)
    )
    prefs = answers.filter(pl.col("kind") == PREFERENCE).with_columns(
        pl.col("answer").str.json_decode(_PREFERENCE_ANSWER).alias("a")
    )
    sides = [_side_ratings(prefs, side) for side in (1, 2)]
    return pl.concat([direct, *sides]).with_columns(pl.col(a).cast(pl.Int64) for a in ATTRIBUTES)


def _side_ratings(prefs: pl.DataFrame, side: int) -> pl.DataFrame:
    """Rating rows for one response of each preference where the annotator rated it."""
    response = f"response_{side}"
    rated = prefs.filter(pl.col("a").struct.field(f"r{side}_set").list.len() > 0)
    keys = [rating_key(p, r) for p, r in zip(rated["prompt"], rated[response], strict=True)]
    return (
        rated.with_columns(
            pl.Series("item_id", keys, dtype=pl.String),
            pl.col(response).alias("response"),
            pl.col("a").struct.field(f"r{side}").alias("r"),
        )
        .unnest("r")
        .select(RATING_COLUMNS)
    )


def _preferences(answers: pl.DataFrame) -> pl.DataFrame:
    return (
        answers.filter(pl.col("kind") == PREFERENCE)
        .with_columns(pl.col("answer").str.json_decode(_PREFERENCE_ANSWER).alias("a"))
        .with_columns(
            pl.col("a").struct.field("preference_strength"),
            pl.col("a").struct.field("justification"),
        )
        .rename({"item_key": "pair_id"})
        .select(PREFERENCE_COLUMNS)
    )


def to_bytes(frame: pl.DataFrame, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.write_parquet(buffer)
    else:
        frame.write_ndjson(buffer)
    return buffer.getvalue()


def agreement(frames: dict[str, pl.DataFrame], min_overlap: int = 5) -> dict[str, dict]:
    """Krippendorff's alpha, pairwise quadratic kappa and pooled Pearson, per attribute and
    for preference strength, on what has been submitted so far."""
    from helpsteer.agreement import agreement_table

    out: dict[str, dict] = {}
    ratings = frames["ratings"]
    if ratings.height:
        out |= agreement_table(ratings, "item_id", "annotator_id", ATTRIBUTES, SCALE, min_overlap)
    prefs = frames["preferences"]
    if prefs.height:
        strengths = range(STRENGTH_MIN, STRENGTH_MAX + 1)
        out |= agreement_table(
            prefs, "pair_id", "annotator_id", ["preference_strength"], strengths, min_overlap
        )
    hs3 = frames.get("hs3_preferences")
    if hs3 is not None and hs3.height:
        strengths = range(STRENGTH_MIN, STRENGTH_MAX + 1)
        out |= agreement_table(hs3, "pair_id", "annotator_id", ["score"], strengths, min_overlap)
    return out
