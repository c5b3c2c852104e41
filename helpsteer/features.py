"""The Hub's declared features of nvidia/HelpSteer2 and nvidia/HelpSteer3, and casting
our tables to them.

Exports of the `ratings` and `preference` formats are cast to these exactly (dtypes, struct
shapes and field order), so `datasets.concatenate_datasets([ours, helpsteer2])` works
without a cast.

Source: nvidia/HelpSteer2 on the Hub ships JSON Lines (`train.jsonl.gz` and
`validation.jsonl.gz` at the root are the default config; `preference/preference.jsonl.gz`
is loaded with `load_dataset("nvidia/HelpSteer2", data_dir="preference")["train"]`). Its
README declares no `dataset_info`, so the Hub's features are what the `datasets` JSON
builder infers from those files: text -> `string`, integers -> `int64`, a list of objects
-> a list of `struct` with the keys in the order the files write them. Columns and item
keys follow the README's examples (huggingface.co/datasets/nvidia/HelpSteer2, README.md)
and issue 13, which compared our exports with the real files: items of
`three_most_similar_preferences` are `{statement, elaboration, strength}`, items of
`all_preferences_unprocessed` are `{strength, justification}`. (Public preprocessing
scripts, e.g. OpenRLHF's, map the preference file's `split` value "val" to "validation";
ours writes "validation". Values are not features, so this does not stop a concatenation.)

Importing this module is cheap; `datasets` is imported only when features are asked for.
"""

from __future__ import annotations

import json
from functools import cache

import polars as pl

from helpsteer.attributes import ATTRIBUTES

THREE_ITEM = pl.Struct({"statement": pl.String, "elaboration": pl.String, "strength": pl.Int64})
"""An item of `three_most_similar_preferences`."""
ALL_ITEM = pl.Struct({"strength": pl.Int64, "justification": pl.String})
"""An item of `all_preferences_unprocessed`: one annotator's strength and full text."""

RATINGS_SCHEMA = pl.Schema(
    {"prompt": pl.String, "response": pl.String, **dict.fromkeys(ATTRIBUTES, pl.Int64)}
)
PREFERENCE_SCHEMA = pl.Schema(
    {
        "split": pl.String,
        "prompt": pl.String,
        "response_1": pl.String,
        "response_2": pl.String,
        "preference_strength": pl.Int64,
        "preference_statement": pl.String,
        "preference_elaboration": pl.String,
        "three_most_similar_preferences": pl.List(THREE_ITEM),
        "all_preferences_unprocessed": pl.List(ALL_ITEM),
    }
)

# --- nvidia/HelpSteer3 ----------------------------------------------------------------------
# Source: the nvidia/HelpSteer3 dataset card (huggingface.co/datasets/nvidia/HelpSteer3,
# README.md): five configs, each `<config>/train.jsonl.gz` and `<config>/validation.jsonl.gz`,
# no `dataset_info`, so the features are again what the JSON builder infers. Columns and
# key order follow the card's examples of each config.

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
"""One message of `context` (OpenAI ChatCompletion form)."""
CONTEXT = pl.List(MESSAGE)
INDIVIDUAL_ITEM = pl.Struct({"score": pl.Int64, "reasoning": pl.String})
"""An item of `individual_preference`: one annotator's score -3..3 and 1-2 sentences why."""
FEEDBACK = pl.List(pl.String)
_HS3_META = {"domain": pl.String, "language": pl.String, "context": CONTEXT}

HS3_SCHEMAS = {
    "hs3_preference": pl.Schema(
        {
            **_HS3_META,
            "response1": pl.String,
            "response2": pl.String,
            "overall_preference": pl.Int64,
            "individual_preference": pl.List(INDIVIDUAL_ITEM),
        }
    ),
    "hs3_feedback": pl.Schema(
        {
            **_HS3_META,
            "response1": pl.String,
            "response2": pl.String,
            "feedback1": FEEDBACK,
            "feedback2": FEEDBACK,
        }
    ),
    "hs3_edit": pl.Schema(
        {
            **_HS3_META,
            "original_response": pl.String,
            "edited_response": pl.String,
            "feedback": FEEDBACK,
            "change_summary": pl.String,
        }
    ),
    "hs3_edit_quality": pl.Schema(
        {
            **_HS3_META,
            "original_response": pl.String,
            "good_edited_response": pl.String,
            "bad_edited_response": pl.String,
            "feedback": FEEDBACK,
        }
    ),
    "hs3_principle": pl.Schema(
        {
            **_HS3_META,
            "response": pl.String,
            "principle": pl.String,
            "fulfilment": pl.String,
        }
    ),
}
"""Export format -> nvidia/HelpSteer3 config columns (config = the name without `hs3_`)."""

HUB_SCHEMAS = {"ratings": RATINGS_SCHEMA, "preference": PREFERENCE_SCHEMA, **HS3_SCHEMAS}
"""Export format -> the Hub's columns and dtypes, in polars terms."""


# --- polars: our tables in the Hub's shape ------------------------------------------------


def _field(fields: set[str], name: str, fallback: pl.Expr) -> pl.Expr:
    return pl.element().struct.field(name) if name in fields else fallback


def _struct_fields(dtype: pl.DataType) -> set[str] | None:
    """Field names of a list-of-struct column; None when the items are not structs."""
    inner = getattr(dtype, "inner", None)
    if isinstance(inner, pl.Struct):
        return {f.name for f in inner.fields}
    return None


def _items(frame: pl.DataFrame, column: str, build) -> pl.Expr:
    """`column` rebuilt item by item with `build(fields)`; an all-empty or missing column
    (no struct items to read) becomes empty lists of the Hub's item type."""
    target = PREFERENCE_SCHEMA[column]
    if column not in frame.columns:
        return pl.lit([], dtype=target).alias(column)
    fields = _struct_fields(frame.schema[column])
    if fields is None:
        return pl.col(column).cast(target).fill_null([]).alias(column)
    return pl.col(column).list.eval(build(fields)).cast(target).alias(column)


def _three_item(fields: set[str]) -> pl.Expr:
    return pl.struct(
        _field(fields, "statement", pl.lit("")).cast(pl.String).alias("statement"),
        _field(fields, "elaboration", pl.lit("")).cast(pl.String).alias("elaboration"),
        _field(fields, "strength", pl.lit(None)).cast(pl.Int64).alias("strength"),
    )


def _all_item(fields: set[str]) -> pl.Expr:
    # Items built by judges, synth or older runs carry the split {statement, elaboration};
    # the Hub keeps one text, so the two parts are joined back. A table that mixes both
    # shapes has the union of their fields, hence the coalesce.
    texts = []
    if "justification" in fields:
        texts.append(pl.element().struct.field("justification"))
    if parts := [pl.element().struct.field(f) for f in ("statement", "elaboration") if f in fields]:
        texts.append(pl.concat_str(parts, separator=" ", ignore_nulls=True).str.strip_chars())
    return pl.struct(
        _field(fields, "strength", pl.lit(None)).cast(pl.Int64).alias("strength"),
        pl.coalesce(*texts, pl.lit("")).cast(pl.String).alias("justification"),
    )


def hub_ratings(table: pl.DataFrame) -> pl.DataFrame:
    """nvidia/HelpSteer2 default-config columns with the Hub's dtypes."""
    return table.select(pl.col(c).cast(t) for c, t in RATINGS_SCHEMA.items())


def hub_preference(table: pl.DataFrame) -> pl.DataFrame:
    """nvidia/HelpSteer2 `preference` columns with the Hub's dtypes and item shapes."""
    lists = {
        "three_most_similar_preferences": _items(
            table, "three_most_similar_preferences", _three_item
        ),
        "all_preferences_unprocessed": _items(table, "all_preferences_unprocessed", _all_item),
    }
    return table.select(
        lists[c] if c in lists else pl.col(c).cast(t) for c, t in PREFERENCE_SCHEMA.items()
    )


def _context(frame: pl.DataFrame) -> pl.Expr:
    """`context` as {role, content} messages only: extra keys some writers add are dropped."""
    fields = _struct_fields(frame.schema["context"])
    if fields is None:
        return pl.col("context").cast(CONTEXT)
    return pl.col("context").list.eval(
        pl.struct(
            _field(fields, "role", pl.lit(None)).cast(pl.String).alias("role"),
            _field(fields, "content", pl.lit(None)).cast(pl.String).alias("content"),
        )
    )


def _individual(frame: pl.DataFrame) -> pl.Expr:
    column = "individual_preference"
    target = HS3_SCHEMAS["hs3_preference"][column]
    if column not in frame.columns:
        return pl.lit([], dtype=target)
    fields = _struct_fields(frame.schema[column])
    if fields is None:
        return pl.col(column).cast(target).fill_null([])
    item = pl.struct(
        _field(fields, "score", pl.lit(None)).cast(pl.Int64).alias("score"),
        _field(fields, "reasoning", pl.lit("")).cast(pl.String).alias("reasoning"),
    )
    return pl.col(column).list.eval(item).cast(target).fill_null([])


def hub_hs3(table: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """An nvidia/HelpSteer3 config's columns with the Hub's dtypes and item shapes; a
    missing `domain`/`language`/`change_summary` is null, like a value the Hub lacks."""
    columns = []
    for name, dtype in HS3_SCHEMAS[fmt].items():
        if name == "context":
            expr = _context(table)
        elif name == "individual_preference":
            expr = _individual(table)
        elif name in table.columns:
            expr = pl.col(name).cast(dtype)
        else:
            expr = pl.lit(None, dtype=dtype)
        columns.append(expr.alias(name))
    return table.select(columns)


# --- datasets / Arrow: the declared features ----------------------------------------------
# Made without importing `datasets` (0.7 s of CPU, the largest import of an
# `hs build-dataset` run): the Hub's columns are strings, int64s and lists of structs of
# those, whose Arrow types and `datasets` feature JSON do not change. The tests check the
# features against what `datasets` infers from Hub-shaped files (test_hub_features.py,
# test_helpsteer3.py) and the Arrow schema against the one `datasets` derives from the
# features (test_disk_datasets.py).


def _arrow_type(dtype: pl.DataType):
    import pyarrow as pa

    if isinstance(dtype, pl.List):
        return pa.list_(_arrow_type(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pa.struct([(f.name, _arrow_type(f.dtype)) for f in dtype.fields])
    if dtype == pl.Int64:
        return pa.int64()
    if dtype == pl.String:
        return pa.string()
    raise TypeError(f"no Hub feature for the polars type {dtype}")


def _feature_json(dtype: pl.DataType):
    """The feature of this polars type as `Features.to_dict` writes it. A list is a
    one-item JSON list, the form `datasets` 2.x and 3.x write and 4.x and later still
    read (as a `List`; tested with 5.2), while 4.x's own `{"_type": "List"}` is unknown
    to 2.x and 3.x."""
    if isinstance(dtype, pl.List):
        return [_feature_json(dtype.inner)]
    if isinstance(dtype, pl.Struct):
        return {f.name: _feature_json(f.dtype) for f in dtype.fields}
    return {"dtype": "int64" if dtype == pl.Int64 else "string", "_type": "Value"}


def features_json(fmt: str) -> dict:
    """The Hub's features of export format `fmt` as `datasets` stores them in JSON."""
    return {name: _feature_json(dtype) for name, dtype in HUB_SCHEMAS[fmt].items()}


@cache
def hub_arrow_schema(fmt: str):
    """The Hub's Arrow schema of export format `fmt`, with the `huggingface` metadata
    (the features) that `datasets` writes into Parquet and Arrow files."""
    import pyarrow as pa

    metadata = {"huggingface": json.dumps({"info": {"features": features_json(fmt)}})}
    fields = [(name, _arrow_type(dtype)) for name, dtype in HUB_SCHEMAS[fmt].items()]
    return pa.schema(fields, metadata=metadata)


@cache
def hub_features(fmt: str):
    """`datasets.Features` of the Hub's export format `fmt` ("ratings", "preference",
    "hs3_...")."""
    import datasets

    return datasets.Features.from_dict(features_json(fmt))


def ratings_features():
    """`datasets.Features` of nvidia/HelpSteer2's default config."""
    return hub_features("ratings")


def preference_features():
    """`datasets.Features` of nvidia/HelpSteer2's `preference` data (data_dir "preference")."""
    return hub_features("preference")


_CAST_ROWS = 65_536


def to_arrow(frame: pl.DataFrame, fmt: str):
    """`frame` (already in the Hub's columns) as a pyarrow Table with exactly the Hub's
    Arrow schema, carrying the `datasets` feature metadata that `to_parquet` writes.

    polars hands out `large_string` and `large_list`; the Hub's JSON files load as
    `string` and `list`. The cast runs on slices because a `string` array holds at most
    2 GiB of text, which one large column of a big export can exceed.
    """
    import pyarrow as pa

    schema = hub_arrow_schema(fmt)
    table = frame.to_arrow()
    batches = [b.cast(schema) for b in table.to_batches(max_chunksize=_CAST_ROWS)]
    return pa.Table.from_batches(batches, schema=schema)
