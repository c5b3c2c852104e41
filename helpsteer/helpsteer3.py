"""HelpSteer3 (nvidia/HelpSteer3, CC-BY-4.0): row validation, aggregation and exports.

The Hub's five configs (columns and dtypes in `helpsteer.features.HS3_SCHEMAS`):

- `preference`: `domain`, `language`, `context` (list of `{role, content}`), `response1`,
  `response2`, `overall_preference` (-3..3, negative: response 1 is better) and
  `individual_preference` (list of `{score, reasoning}`, the annotators kept);
- `feedback`: the same pair with `feedback1` / `feedback2`, lists of written feedback;
- `edit`: `original_response`, `feedback` (list), `edited_response`, `change_summary`;
- `edit_quality`: `original_response`, `good_edited_response`, `bad_edited_response`,
  `feedback` (list);
- `principle`: `response`, `principle`, `fulfilment` ("Yes" / "No").

`domain` is general, stem, code or multilingual; `language` is the programming language
for code, the natural language for multilingual and "english" otherwise (dataset card).

Raw preferences are one row per (pair, annotator): `context`, `response1`, `response2`,
`annotator_id`, `score` (-3..3) and `reasoning`, optionally `pair_id`, `domain`,
`language`. They aggregate by the rule HelpSteer3 uses, which is HelpSteer2-Preference's:
"Every sample (in Preference and Feedback) was independently annotated by a minimum of
three annotators and up to five annotators. We release only the three annotations that
agree with one another the most to remove outliers" (nvidia/HelpSteer3 dataset card,
"Annotation methodology overview", for Wang et al. 2025, "HelpSteer3-Preference: Open
Human-Annotated Preference Data across Diverse Tasks and Languages", arXiv:2505.11475).
So `individual_preference` holds the 3 most similar annotations and `overall_preference`
is their mean rounded half away from zero (the card's example -1, -3, -2 -> -2), computed
by the same code as HelpSteer2-Preference (`helpsteer.aggregate.choose_preferences`).
"""

from __future__ import annotations

import json

import polars as pl

from helpsteer import aggregate as agg
from helpsteer import features
from helpsteer.io import LINE, TYPE_ERRORS
from helpsteer.records import (
    ID_KINDS,
    SPECS,
    TEXT_KINDS,
    Kind,
    Validated,
    _as_rejected,
    _as_string,
    _dtype_kind,
    _kind_problem,
    _reason,
    _strength_rules,
    _text_rules,
    check_consistency,
    normalize_text,
)

DOMAINS = ("general", "stem", "code", "multilingual")
ROLES = ("user", "assistant", "system")
FULFILMENT = ("Yes", "No")
FEEDBACK_COLUMNS = {
    Kind.HS3_FEEDBACK: ("feedback1", "feedback2"),
    Kind.HS3_EDIT: ("feedback",),
    Kind.HS3_EDIT_QUALITY: ("feedback",),
}
OPTIONAL_TEXT = ("domain", "language", "reasoning", "change_summary", "split")

TABLES = {
    Kind.HS3_RAW_PREFERENCES: "hs3_raw_preferences",
    Kind.HS3_PREFERENCE: "hs3_preference_in",
    Kind.HS3_FEEDBACK: "hs3_feedback",
    Kind.HS3_EDIT: "hs3_edit",
    Kind.HS3_EDIT_QUALITY: "hs3_edit_quality",
    Kind.HS3_PRINCIPLE: "hs3_principle",
}
"""Kind -> the pipeline table the load stage puts its rows in."""
DATA_TABLES = ("hs3_preference", "hs3_feedback", "hs3_edit", "hs3_edit_quality", "hs3_principle")
"""The HelpSteer3 tables that go on to split and export."""


# --- context -------------------------------------------------------------------------------


def _context_rules(frame: pl.DataFrame) -> tuple[pl.Expr, list[pl.Expr]]:
    """(`context` as {role, content} messages, reasons a row's context is unusable)."""
    dtype = frame.schema["context"]
    if "_context_reason" in frame.columns:  # parsed from text by `_parse_text_contexts`
        return pl.col("_context_parsed"), [pl.col("_context_reason")]
    fields = features._struct_fields(dtype)
    if fields is None or not {"role", "content"} <= fields:
        kind = _dtype_kind(dtype)
        got = "a list without {role, content} objects" if kind == "array" else f"a {kind}"
        return pl.lit(None, dtype=features.CONTEXT), [
            _reason(pl.col("context").is_not_null(), f"context: expected messages, got {got}"),
            _reason(pl.col("context").is_null(), "context: missing (null)"),
        ]
    context = pl.col("context")
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content")
    bad_role = context.list.eval(role.filter(~role.is_in(ROLES) | role.is_null()).fill_null(""))
    last_role = context.list.last().struct.field("role")
    rules = [
        _reason(context.is_null(), "context: missing (null)"),
        _reason(context.list.len() == 0, "context: no messages"),
        _reason(
            bad_role.list.len() > 0,
            pl.format(
                "context: role '{}' is not one of user, assistant, system",
                bad_role.list.first(),
            ),
        ),
        _reason(
            context.list.eval(content.is_null()).list.any(),
            "context: a message has no content (null)",
        ),
        _reason(
            (context.list.len() > 0) & (last_role != "user") & last_role.is_in(ROLES),
            pl.format("context: the last message is the {}'s; it must be the user's", last_role),
        ),
    ]
    if {f.name: f.dtype for f in dtype.inner.fields}["content"] != pl.String:
        rules.append(_reason(context.is_not_null(), "context: a message's content is not text"))
    return features._context(frame).alias("context"), rules


def _parse_text_contexts(frame: pl.DataFrame) -> pl.DataFrame:
    """When rows disagree on the kind of `context` (some text, some lists), the reader
    hands the lists over JSON-encoded; each row is parsed and checked on its own, in
    Python because this only happens to broken files. The original text stays in
    `context` for the rejected file."""
    if frame.schema.get("context") != pl.String:
        return frame
    errors = frame[TYPE_ERRORS].to_list() if TYPE_ERRORS in frame.columns else None
    values, reasons = [], []
    for i, text in enumerate(frame["context"].to_list()):
        was_list = errors is not None and "context:array" in (errors[i] or [])
        messages, reason = _parse_context(text, was_list)
        values.append(messages)
        reasons.append(reason)
    return frame.with_columns(
        pl.Series("_context_parsed", values, dtype=features.CONTEXT),
        pl.Series("_context_reason", reasons, dtype=pl.String),
    )


def _parse_context(text: str | None, was_list: bool) -> tuple[list | None, str | None]:
    if text is None:
        return None, "context: missing (null)"
    if not was_list:
        return None, "context: expected messages (a list of {role, content}), got text"
    messages = json.loads(text)
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None, f"context: message {i} is not a {{role, content}} object with text"
        if m.get("role") not in ROLES:
            return None, f"context: role '{m.get('role')}' is not one of user, assistant, system"
    if not messages:
        return None, "context: no messages"
    if messages[-1]["role"] != "user":
        last = messages[-1]["role"]
        return None, f"context: the last message is the {last}'s; it must be the user's"
    return [{"role": m["role"], "content": m["content"]} for m in messages], None


def _normalize_context(context: pl.Expr, form: str) -> pl.Expr:
    if form == "none":
        return context
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content").str.normalize(form)
    return context.list.eval(pl.struct(role, content))


# --- other columns ---------------------------------------------------------------------------


def _text_list_rules(frame: pl.DataFrame, column: str) -> tuple[pl.Expr, list[pl.Expr]]:
    """A list of written feedback: a list of strings (null means none)."""
    dtype = frame.schema[column]
    if isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null):
        return pl.col(column).cast(features.FEEDBACK).fill_null([]), [
            _reason(
                pl.col(column).list.eval(pl.element().is_null()).list.any(),
                f"{column}: an item is null",
            )
        ]
    if dtype == pl.Null:
        return pl.lit([], dtype=features.FEEDBACK).alias(column), []
    kind = _dtype_kind(dtype)
    got = "a list of non-text items" if kind == "array" else _an(kind)
    return pl.lit(None, dtype=features.FEEDBACK).alias(column), [
        _reason(pl.col(column).is_not_null(), f"{column}: expected a list of texts, got {got}")
    ]


def _an(kind: str | None) -> str:
    return {"string": "text", "number": "a number", "object": "an object"}.get(kind, str(kind))


def _individual_rules(frame: pl.DataFrame) -> tuple[pl.Expr, list[pl.Expr]]:
    column = "individual_preference"
    if column not in frame.columns or frame.schema[column] == pl.Null:
        return pl.lit([], dtype=features.HS3_SCHEMAS["hs3_preference"][column]).alias(column), []
    fields = features._struct_fields(frame.schema[column])
    if fields is None or "score" not in fields:
        return pl.lit(None).alias(column), [
            _reason(
                pl.col(column).is_not_null(),
                f"{column}: expected a list of {{score, reasoning}} objects",
            )
        ]
    score = pl.element().struct.field("score")
    outside = pl.col(column).list.eval(~score.is_between(-3, 3) | score.is_null()).list.any()
    return features._individual(frame).alias(column), [
        _reason(outside, f"{column}: a score is missing or outside -3..3")
    ]


def _fulfilment_rules(frame: pl.DataFrame) -> tuple[pl.Expr, list[pl.Expr]]:
    kind = _kind_problem(frame, "fulfilment", TEXT_KINDS, "a string")
    if frame.schema["fulfilment"] != pl.String:
        return pl.lit(None, dtype=pl.String).alias("fulfilment"), [
            kind,
            _reason(pl.col("fulfilment").is_null(), "fulfilment: missing (null)"),
        ]
    word = pl.col("fulfilment").str.strip_chars().str.to_titlecase()
    return word.alias("fulfilment"), [
        kind,
        _reason(pl.col("fulfilment").is_null(), "fulfilment: missing (null)"),
        _reason(
            kind.is_null() & pl.col("fulfilment").is_not_null() & ~word.is_in(FULFILMENT),
            pl.format("fulfilment: expected Yes or No, got '{}'", pl.col("fulfilment")),
        ),
    ]


# --- validation ------------------------------------------------------------------------------


def validate(frame: pl.DataFrame, kind: Kind, unicode_normalization: str = "NFC") -> Validated:
    """Normalise types of a HelpSteer3 layout and split usable rows from rejected ones."""
    spec = SPECS[kind]
    frame = _parse_text_contexts(normalize_text(frame, kind, unicode_normalization))
    rules = [_kind_problem(frame, c, TEXT_KINDS, "a string") for c in OPTIONAL_TEXT]
    normalised: list[pl.Expr] = []
    for column in spec.text:
        rules += _text_rules(frame, column)
    context, context_rules = _context_rules(frame)
    rules += context_rules
    normalised.append(_normalize_context(context, unicode_normalization).alias("context"))
    for column in FEEDBACK_COLUMNS.get(kind, ()):
        value, list_rules = _text_list_rules(frame, column)
        normalised.append(value.alias(column))
        rules += list_rules
    rules += _kind_specific(frame, kind, normalised)
    reason = pl.concat_str(rules, separator="; ", ignore_nulls=True)
    checked = frame.with_columns(reason.alias("_reason"))
    checked = checked.with_columns(pl.when(pl.col("_reason") != "").then(pl.col("_reason")))
    bad = checked.filter(pl.col("_reason").is_not_null())
    good = checked.filter(pl.col("_reason").is_null()).with_columns(normalised)
    rejected = [_as_rejected(bad, frame.columns)]
    if kind == Kind.HS3_RAW_PREFERENCES:
        good = with_pair_ids(good)
        good, conflicts = check_consistency(good, "pair_id", _pair_text_hash())
        rejected.append(_as_rejected(conflicts, frame.columns))
    keep = [c for c in dict.fromkeys((*spec.required, *spec.optional)) if c in good.columns]
    keep += [c for c in ("pair_id", "reasoning", "individual_preference") if c in good.columns]
    return Validated(kind, good.select(LINE, *dict.fromkeys(keep)), pl.concat(rejected))


def _kind_specific(frame: pl.DataFrame, kind: Kind, normalised: list[pl.Expr]) -> list[pl.Expr]:
    """Rules (and normalised columns, appended to `normalised`) that only one kind has."""
    rules: list[pl.Expr] = []
    if kind == Kind.HS3_RAW_PREFERENCES:
        value, strength = _strength_rules(frame, "score")
        rules += strength
        rules.append(_kind_problem(frame, "annotator_id", ID_KINDS, "a string or a number"))
        rules.append(_kind_problem(frame, "pair_id", ID_KINDS, "a string or a number"))
        rules.append(_reason(pl.col("annotator_id").is_null(), "annotator_id: missing"))
        normalised += [value, _as_string(frame, "annotator_id"), _reasoning(frame)]
        if "pair_id" in frame.columns:
            normalised.append(_as_string(frame, "pair_id"))
    elif kind == Kind.HS3_PREFERENCE:
        value, strength = _strength_rules(frame, "overall_preference")
        individual, individual_rules = _individual_rules(frame)
        rules += strength + individual_rules
        normalised += [value, individual]
    elif kind == Kind.HS3_FEEDBACK:
        if all(isinstance(frame.schema[c], pl.List) for c in ("feedback1", "feedback2")):
            total = pl.sum_horizontal(pl.col("feedback1", "feedback2").list.len().fill_null(0))
            rules.append(_reason(total == 0, "feedback1, feedback2: no feedback at all"))
    elif kind in (Kind.HS3_EDIT, Kind.HS3_EDIT_QUALITY):
        if isinstance(frame.schema["feedback"], pl.List):
            rules.append(
                _reason(
                    pl.col("feedback").list.len() == 0,
                    "feedback: empty; an edit follows written feedback",
                )
            )
    elif kind == Kind.HS3_PRINCIPLE:
        value, fulfilment = _fulfilment_rules(frame)
        rules += fulfilment
        normalised.append(value)
    return rules


def _reasoning(frame: pl.DataFrame) -> pl.Expr:
    if frame.schema.get("reasoning") == pl.String:
        return pl.col("reasoning").fill_null("").str.strip_chars()
    return pl.lit("").alias("reasoning")


def context_text(column: str = "context") -> pl.Expr:
    """The conversation as one string: a stable key for the pair's text."""
    return pl.struct(pl.col(column)).struct.json_encode()


def _pair_text_hash() -> pl.Expr:
    return pl.concat_str(
        [context_text(), pl.col("response1"), pl.col("response2")], separator="\x00"
    ).hash()


def with_pair_ids(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw rows with `pair_id`: the given one, else one derived from the pair's text."""
    derived = pl.concat_str(pl.lit("pair-"), _pair_text_hash().cast(pl.String))
    if "pair_id" in raw.columns:
        return raw.with_columns(pl.coalesce(pl.col("pair_id").cast(pl.String), derived))
    return raw.with_columns(derived.alias("pair_id"))


# --- aggregation -----------------------------------------------------------------------------


def aggregate_preferences(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw HelpSteer3 preference annotations -> one row per pair in the Hub's `preference`
    columns, plus `pair_id`, `n_annotators`, `spread3` (range of the 3 kept scores) and
    `all_individual_preference` (every annotation, kept or not).

    The rule is HelpSteer2-Preference's (module docstring): the 3 most similar scores
    are kept as `individual_preference`, `overall_preference` is their rounded mean.
    """
    shared = raw.rename({"score": "preference_strength"})
    grouped, rows = agg.choose_preferences(shared)
    item = pl.struct(pl.col("strength").alias("score"), pl.col("reasoning"))
    per_pair = rows.group_by("pair_id").agg(
        *[pl.col(c).first() for c in ("domain", "language") if c in rows.columns],
        pl.col("context", "response1", "response2").first(),
        pl.col(LINE).min().alias("_first_line"),
        # rows are in file order and group-by keeps that order within each group
        item.filter(pl.col("chosen")).alias("individual_preference"),
        item.alias("all_individual_preference"),
    )
    out = per_pair.join(grouped, on="pair_id").sort("_first_line")
    out = out.rename({"preference_strength": "overall_preference"})
    for column in ("domain", "language"):
        if column not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return out.select(
        "pair_id",
        "domain",
        "language",
        "context",
        "response1",
        "response2",
        pl.col("overall_preference").cast(pl.Int64),
        "individual_preference",
        "all_individual_preference",
        "n_annotators",
        "spread3",
    )


def complete_preference(given: pl.DataFrame) -> pl.DataFrame:
    """Aggregated HelpSteer3 rows as they come from the Hub: a `pair_id` per row and the
    optional columns filled."""
    given = given.with_columns(pl.concat_str(pl.lit("row-"), pl.col(LINE)).alias("pair_id"))
    for column in ("domain", "language"):
        if column not in given.columns:
            given = given.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return given


# --- filters ---------------------------------------------------------------------------------


def metadata_filter(
    domains: list[str] | None, languages: list[str] | None
) -> list[tuple[pl.Expr, str]]:
    """Rules for `helpsteer.stages._drop`: rows outside the chosen domains or languages
    (compared without case; a row without the field is outside any list)."""
    rules = []
    for column, wanted in (("domain", domains), ("language", languages)):
        if wanted:
            chosen = [w.lower() for w in wanted]
            inside = pl.col(column).str.to_lowercase().is_in(chosen).fill_null(False)
            rules.append((~inside, f"{column} not in {', '.join(chosen)}"))
    return rules


def last_user_turn(column: str = "context") -> pl.Expr:
    """The text of the last message, which in HelpSteer3 is the user's request."""
    return pl.col(column).list.last().struct.field("content")


def prompt_key(column: str = "context") -> pl.Expr:
    """The conversation in HelpSteer2's flat prompt form, so that a prompt that exists in
    both vocabularies falls in the same split (helpsteer/split.py)."""
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content")
    marker = (
        pl.when(role == "assistant")
        .then(pl.lit("\n<extra_id_1>Assistant\n"))
        .when(role == "system")
        .then(pl.lit("\n<extra_id_1>System\n"))
        .otherwise(pl.lit("\n<extra_id_1>User\n"))
    )
    flat = pl.col(column).list.eval(pl.concat_str(marker, content)).list.join("")
    return flat.str.strip_prefix("\n<extra_id_1>User\n")


# --- exports ---------------------------------------------------------------------------------


def _assistant(column: str) -> pl.Expr:
    return pl.concat_list(
        pl.struct(pl.lit("assistant").alias("role"), pl.col(column).alias("content"))
    )


def _conversation(column: str) -> pl.Expr:
    """`context` followed by the assistant's `column`: a whole conversation."""
    return pl.concat_list(pl.col("context"), _assistant(column))


def _meta() -> list[pl.Expr]:
    return [pl.col("domain").cast(pl.String), pl.col("language").cast(pl.String)]


def _decided(table: pl.DataFrame) -> pl.DataFrame:
    """Pairs with a winner; negative `overall_preference` means response 1 is better."""
    first = pl.col("overall_preference") < 0
    return table.filter(pl.col("overall_preference") != 0).with_columns(
        pl.when(first).then(pl.col("response1")).otherwise(pl.col("response2")).alias("_chosen"),
        pl.when(first).then(pl.col("response2")).otherwise(pl.col("response1")).alias("_rejected"),
    )


def preference(table: pl.DataFrame) -> pl.DataFrame:
    """The Hub's `preference` config, with its features."""
    return features.hub_hs3(table, "hs3_preference")


def bt(table: pl.DataFrame) -> pl.DataFrame:
    """Bradley-Terry pairs, TRL's implicit-prompt layout (whole conversations); ties are
    left out, `overall_preference` keeps the signed strength."""
    decided = _decided(table)
    return decided.select(
        "pair_id",
        _conversation("_chosen").cast(features.CONTEXT).alias("chosen"),
        _conversation("_rejected").cast(features.CONTEXT).alias("rejected"),
        pl.col("overall_preference").cast(pl.Int64),
        *_meta(),
    )


def dpo(table: pl.DataFrame) -> pl.DataFrame:
    """TRL's conversational DPO layout; `margin` = |overall_preference|."""
    decided = _decided(table)
    return decided.select(
        pl.col("context").cast(features.CONTEXT).alias("prompt"),
        _assistant("_chosen").cast(features.CONTEXT).alias("chosen"),
        _assistant("_rejected").cast(features.CONTEXT).alias("rejected"),
        pl.col("overall_preference").abs().cast(pl.Float64).alias("margin"),
        *_meta(),
    )


EDIT_REQUEST = (
    "Here is feedback on your last response:\n\n{feedback}\n\n"
    "Rewrite your response so that it follows this feedback, and change nothing else."
)
"""The user turn that asks for an edit; `{feedback}` is the numbered feedback."""


def _edit_prompt() -> pl.Expr:
    """context + original response + a user turn with the feedback: what an edit model
    (HelpSteer3's Feedback-Edit inference-time scaling) sees before writing the edit."""
    numbered = pl.col("feedback").list.eval(
        pl.format("{}. {}", pl.int_range(1, pl.len() + 1), pl.element())
    )
    before, after = EDIT_REQUEST.split("{feedback}")
    request = pl.concat_str(pl.lit(before), numbered.list.join("\n"), pl.lit(after))
    user = pl.concat_list(pl.struct(pl.lit("user").alias("role"), request.alias("content")))
    return pl.concat_list(pl.col("context"), _assistant("original_response"), user)


def edit_sft(table: pl.DataFrame) -> pl.DataFrame:
    """SFT pairs from `edit`, TRL's conversational prompt-completion layout: the prompt
    ends with the feedback, the completion is the edited response."""
    return table.select(
        _edit_prompt().cast(features.CONTEXT).alias("prompt"),
        _assistant("edited_response").cast(features.CONTEXT).alias("completion"),
        *_meta(),
    )


def edit_quality_dpo(table: pl.DataFrame) -> pl.DataFrame:
    """Preference pairs from `edit_quality`: the edit that follows the feedback (good)
    over the one that does not (bad), same prompt as `edit_sft`."""
    return table.select(
        _edit_prompt().cast(features.CONTEXT).alias("prompt"),
        _assistant("good_edited_response").cast(features.CONTEXT).alias("chosen"),
        _assistant("bad_edited_response").cast(features.CONTEXT).alias("rejected"),
        *_meta(),
    )


def _hub(fmt: str):
    def make(table: pl.DataFrame) -> pl.DataFrame:
        return features.hub_hs3(table, fmt)

    make.__doc__ = f"The Hub's `{fmt.removeprefix('hs3_')}` config, with its features."
    return make


FORMATS = {
    "hs3_preference": ("hs3_preference", preference),
    "hs3_bt": ("hs3_preference", bt),
    "hs3_dpo": ("hs3_preference", dpo),
    "hs3_feedback": ("hs3_feedback", _hub("hs3_feedback")),
    "hs3_edit": ("hs3_edit", _hub("hs3_edit")),
    "hs3_edit_sft": ("hs3_edit", edit_sft),
    "hs3_edit_quality": ("hs3_edit_quality", _hub("hs3_edit_quality")),
    "hs3_edit_quality_dpo": ("hs3_edit_quality", edit_quality_dpo),
    "hs3_principle": ("hs3_principle", _hub("hs3_principle")),
}
"""Export format -> (the table it is made from, the function that makes it)."""
