"""Export formats, each a whole-column transformation of the aggregated tables.

- `ratings`: nvidia/HelpSteer2 columns, with the Hub's features (helpsteer/features.py).
- `preference`: nvidia/HelpSteer2 `preference` columns, with the Hub's features.
- `regression`: NeMo-Aligner attribute regression (`text` in the SteerLM template and a
  9-slot `label` with -100 for missing) plus `messages`.
- `regression_columns`: `messages`, `prompt`, `response` and one column per attribute.
- `bt`: Bradley-Terry pairs, TRL's implicit-prompt layout (`chosen`/`rejected` are whole
  conversations) with the signed `preference_strength`; ties are left out. There is no
  `margin` column: TRL's RewardTrainer turns its loss into a margin loss whenever one exists.
- `bt_margin`: `bt` plus `margin` = |preference strength|, for a margin loss in TRL.
- `dpo`: TRL's conversational DPO layout: `prompt` messages, `chosen`/`rejected` as one
  assistant message each.
- `steerlm`: NeMo SteerLM attribute-conditioned SFT records.
- `hs3_*`: from HelpSteer3 tables: each Hub config in its own layout and features
  (`hs3_preference`, `hs3_feedback`, `hs3_edit`, `hs3_edit_quality`, `hs3_principle`),
  `hs3_bt` and `hs3_dpo` from preferences, `hs3_edit_sft` (context + original + feedback
  -> edited response) and `hs3_edit_quality_dpo` (good edit over bad edit).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from helpsteer import helpsteer3
from helpsteer.attributes import ATTRIBUTES, MISSING_LABEL, NEMO_ALIGNER_SLOTS
from helpsteer.conversation import flat_to_messages
from helpsteer.features import hub_preference, hub_ratings

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
MESSAGES = pl.List(MESSAGE)


_MULTI_TURN = r"\n<extra_id_1>(User|Assistant)\n"
_REPLY_POSITION = 1 << 30


def _prompt_turns(frame: pl.DataFrame, prompt: str) -> pl.DataFrame:
    """Long table (_r, _k, role, content) of every row's prompt messages; only
    multi-turn prompts are parsed in Python."""
    rows = frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_r"), pl.col(prompt))
    multi = rows[prompt].str.contains(_MULTI_TURN)
    turns = [
        rows.filter(~multi).select(
            "_r",
            pl.lit(0, dtype=pl.Int64).alias("_k"),
            pl.lit("user").alias("role"),
            pl.col(prompt).alias("content"),
        )
    ]
    if multi.any():
        parsed = (
            rows.filter(multi)
            .with_columns(pl.col(prompt).map_elements(flat_to_messages, return_dtype=MESSAGES))
            .explode(prompt)
            .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("_r").alias("_k"))
            .unnest(prompt)
        )
        turns.append(parsed.select("_r", "_k", "role", "content"))
    return pl.concat(turns)


def messages(frame: pl.DataFrame, prompt: str, response: str | None = None) -> pl.Series:
    """Each row's conversation as a list of {role, content}: the flat HelpSteer2 prompt
    as messages, then the assistant `response` when given.

    Built as a long table and grouped back, which is an order of magnitude faster in
    polars than concatenating per-row lists of structs.
    """
    turns = _prompt_turns(frame, prompt)
    if response is not None:
        reply = frame.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_r"),
            pl.lit(_REPLY_POSITION, dtype=pl.Int64).alias("_k"),
            pl.lit("assistant").alias("role"),
            pl.col(response).alias("content"),
        )
        turns = pl.concat([turns, reply])
    grouped = (
        turns.sort("_r", "_k")
        .group_by("_r", maintain_order=True)
        .agg(pl.struct("role", "content").alias("messages"))
    )
    return grouped["messages"].cast(MESSAGES)


def _reply(frame: pl.DataFrame, column: str) -> pl.Series:
    """One assistant message per row, as a list."""
    return messages(frame.select(pl.lit("").alias("_p"), pl.col(column)), "_p", column).list.slice(
        1
    )


def ratings(table: pl.DataFrame) -> pl.DataFrame:
    return hub_ratings(table)


def preference(table: pl.DataFrame) -> pl.DataFrame:
    return hub_preference(table)


STEERLM_SYSTEM = ""


def regression(table: pl.DataFrame, system: str = STEERLM_SYSTEM) -> pl.DataFrame:
    # HelpSteer2's flat prompt already uses the SteerLM turn separators, so the
    # template is one string concatenation even for multi-turn prompts.
    text = pl.concat_str(
        pl.lit(f"<extra_id_0>System\n{system}\n<extra_id_1>User\n"),
        pl.col("prompt"),
        pl.lit("\n<extra_id_1>Assistant\n"),
        pl.col("response"),
        pl.lit("\n<extra_id_2>"),
    )
    missing = pl.repeat(MISSING_LABEL, pl.len(), dtype=pl.Int64)
    slots = [
        pl.col(s).cast(pl.Int64).fill_null(MISSING_LABEL) if s in ATTRIBUTES else missing
        for s in NEMO_ALIGNER_SLOTS
    ]
    # A fixed-size array made a list: `concat_list` of the same slots took 0.36 s on
    # 200k rows, this 0.008 s (the same List(Int64) column).
    label = pl.concat_arr(slots).arr.to_list()
    return table.select(text.alias("text"), label.alias("label")).with_columns(conversation(table))


def regression_columns(table: pl.DataFrame) -> pl.DataFrame:
    return table.select("prompt", "response", *ATTRIBUTES).insert_column(0, conversation(table))


CONVERSATION = "_messages"
"""A ratings table's column holding `messages(prompt, response)` when `prepare` made it."""
_CONVERSATION_FORMATS = ("regression", "regression_columns", "steerlm")


def conversation(table: pl.DataFrame) -> pl.Series:
    """`messages(table, "prompt", "response")`, from the prepared column when there is one."""
    if CONVERSATION in table.columns:
        return table[CONVERSATION].alias("messages")
    return messages(table, "prompt", "response")


def prepare(tables: dict[str, pl.DataFrame], formats) -> dict[str, pl.DataFrame]:
    """The tables with what several formats share made once: the ratings' conversations
    (regression, regression_columns and steerlm each built them: 0.17 s apiece on 200k
    rows). A format selects its own columns, so the extra column never reaches a file."""
    if "ratings" not in tables or sum(f in _CONVERSATION_FORMATS for f in formats) < 2:
        return tables
    ratings = tables["ratings"]
    return {**tables, "ratings": ratings.with_columns(conversation(ratings).alias(CONVERSATION))}


def _decided(table: pl.DataFrame) -> pl.DataFrame:
    """Pairs with a winner; negative strength means response 1 is better."""
    return table.filter(pl.col("preference_strength") != 0).with_columns(
        pl.when(pl.col("preference_strength") < 0)
        .then(pl.col("response_1"))
        .otherwise(pl.col("response_2"))
        .alias("_chosen"),
        pl.when(pl.col("preference_strength") < 0)
        .then(pl.col("response_2"))
        .otherwise(pl.col("response_1"))
        .alias("_rejected"),
    )


def bt(table: pl.DataFrame, margin: bool = False) -> pl.DataFrame:
    decided = _decided(table)
    columns = [
        "pair_id",
        messages(decided, "prompt", "_chosen").alias("chosen"),
        messages(decided, "prompt", "_rejected").alias("rejected"),
        pl.col("preference_strength").cast(pl.Int64),
    ]
    if margin:
        columns.append(pl.col("preference_strength").abs().cast(pl.Float64).alias("margin"))
    return decided.select(columns)


def bt_margin(table: pl.DataFrame) -> pl.DataFrame:
    """`bt` with TRL's `margin` column: a format of its own because TRL uses it unasked."""
    return bt(table, margin=True)


def dpo(table: pl.DataFrame) -> pl.DataFrame:
    decided = _decided(table)
    return decided.select(
        messages(decided, "prompt").alias("prompt"),
        _reply(decided, "_chosen").alias("chosen"),
        _reply(decided, "_rejected").alias("rejected"),
        pl.col("preference_strength").abs().cast(pl.Float64).alias("margin"),
    )


def steerlm(table: pl.DataFrame) -> pl.DataFrame:
    attribute_string = pl.concat_str(
        [pl.format(f"{a}:{{}}", pl.col(a)) for a in ATTRIBUTES], separator=",", ignore_nulls=True
    )
    turn = pl.struct(
        pl.col("role").alias("from"), pl.col("content").alias("value"), pl.col("label")
    )
    frame = (
        table.select(attribute_string.alias("_attrs"))
        .with_columns(conversation(table).alias(CONVERSATION))
        .with_row_index("_row")
    )
    turns = (
        frame.explode(CONVERSATION)
        .unnest(CONVERSATION)
        .with_columns(
            pl.when(pl.col("role") == "assistant")
            .then(pl.col("_attrs"))
            .otherwise(None)
            .alias("label"),
            pl.col("role").replace({"user": "User", "assistant": "Assistant"}),
        )
        .group_by("_row", maintain_order=True)
        .agg(turn.alias("conversations"))
    )
    return turns.select(
        pl.lit("").alias("system"),
        "conversations",
        pl.lit("User").alias("mask"),
        pl.lit("VALUE_TO_TEXT").alias("type"),
    )


RATINGS_FORMATS: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "ratings": ratings,
    "regression": regression,
    "regression_columns": regression_columns,
    "steerlm": steerlm,
}
PREFERENCE_FORMATS: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "preference": preference,
    "bt": bt,
    "bt_margin": bt_margin,
    "dpo": dpo,
}
HS3_FORMATS = helpsteer3.FORMATS
"""HelpSteer3 formats: name -> (source table, function); see helpsteer/helpsteer3.py."""
ALL_FORMATS = (*RATINGS_FORMATS, *PREFERENCE_FORMATS, *HS3_FORMATS)
