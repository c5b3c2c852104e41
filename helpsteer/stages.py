"""The core stages of `hs build-dataset`: load, aggregate, split, export, card."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from helpsteer import aggregate as agg
from helpsteer import helpsteer3 as h3
from helpsteer.agreement import agreement_before_after
from helpsteer.attributes import ATTRIBUTES
from helpsteer.io import (
    LINE,
    TYPE_ERRORS,
    InputError,
    UnreadableInput,
    file_fingerprint,
    read_table,
)
from helpsteer.pipeline import PipelineError, StageConfig, StageContext, Tables, stage
from helpsteer.records import (
    HS3_KINDS,
    PREFERENCE_ITEM,
    ColumnError,
    Kind,
    detect_kind,
    validate,
)
from helpsteer.split import SPLITS, assign_splits

# --- load -------------------------------------------------------------------------------


class InputSpec(StageConfig):
    path: str = Field(description="File, folder (`save_to_disk` or Hub layout) or Hub id.")
    config: str | None = Field(None, description="Hub dataset config name, e.g. 'preference'.")
    split: str | None = Field(None, description="Read only this split of a dataset.")
    data_dir: str | None = Field(
        None, description="Hub data folder, e.g. 'preference' for nvidia/HelpSteer2."
    )


def as_input_specs(value) -> list:
    """A load input as written (a path, a spec, or a list of either) as a list of specs."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [{"path": v} if isinstance(v, str) else v for v in items]


class LoadConfig(StageConfig):
    ratings: list[InputSpec] = Field(
        default_factory=list, description="Raw rating annotations or HelpSteer2 ratings files."
    )
    preferences: list[InputSpec] = Field(
        default_factory=list,
        description="Raw preference annotations, HelpSteer2 `preference` files, or any "
        "nvidia/HelpSteer3 config (raw or as on the Hub), recognised by its columns.",
    )

    unicode_normalization: Literal["NFC", "NFKC", "NFD", "NFKD", "none"] = Field(
        "NFC",
        description="Unicode form of prompts and responses, so that text typed or copied "
        "differently is one item; 'none' keeps the text as it is.",
    )

    _coerce = field_validator("ratings", "preferences", mode="before")(as_input_specs)


def _load_fingerprint(cfg: LoadConfig) -> str:
    return ",".join(file_fingerprint(s.path) for s in [*cfg.ratings, *cfg.preferences])


TABLE_OF = {
    Kind.RAW_RATINGS: "raw_ratings",
    Kind.RAW_PREFERENCES: "raw_preferences",
    Kind.RATINGS: "ratings_in",
    Kind.PREFERENCE: "preference_in",
    **h3.TABLES,
}


@stage("load", LoadConfig, fingerprint_extra=_load_fingerprint, version="2")
def load(ctx: StageContext, tables: Tables, cfg: LoadConfig):
    """Read annotation files and validate every row; unusable rows go to `rejected`."""
    parts: dict[str, list[pl.DataFrame]] = {}
    inputs = [("ratings", s) for s in cfg.ratings] + [("preferences", s) for s in cfg.preferences]
    if not inputs:
        raise PipelineError("load: give at least one ratings or preferences input")
    ctx.info["inputs"] = []
    with ctx.reporter.task("load", total=len(inputs)) as bar:
        for role, spec in inputs:
            frame, kind = _load_one(ctx, role, spec, cfg.unicode_normalization)
            if frame is not None and kind is not None:
                parts.setdefault(TABLE_OF[kind], []).append(frame)
            bar.advance()
    return {name: pl.concat(frames, how="diagonal_relaxed") for name, frames in parts.items()}


def _load_one(ctx: StageContext, role: str, spec: InputSpec, normalization: str):
    try:
        read = read_table(spec.path, config=spec.config, split=spec.split, data_dir=spec.data_dir)
    except UnreadableInput as exc:
        return _unreadable_input(ctx, role, spec, str(exc))
    except InputError as exc:
        raise PipelineError(str(exc)) from None
    for warning in read.warnings:
        ctx.reporter.warn(warning)
        ctx.reject(_file_problem(spec.path, warning))
    ctx.reject(read.unreadable.with_columns(pl.lit(spec.path).alias("source")))
    facts = {"path": spec.path, "role": role, "rows": read.frame.height + read.unreadable.height}
    if read.warnings:
        facts["warnings"] = read.warnings
    ctx.info["inputs"].append(facts)
    try:
        kind = detect_kind(read.frame.columns, role)
    except ColumnError as exc:
        message = f"{spec.path}: {exc}"
        ctx.reporter.warn(message)
        ctx.reject(_everything_rejected(read.frame, str(exc), spec.path))
        facts.update(kind=None, accepted=0, rejected=facts["rows"], error=str(exc))
        return None, None
    checker = h3.validate if kind in HS3_KINDS else validate
    checked = checker(read.frame, kind, normalization)
    ctx.reject(checked.rejected.with_columns(pl.lit(spec.path).alias("source")))
    facts.update(
        kind=kind.value,
        accepted=checked.good.height,
        rejected=checked.rejected.height + read.unreadable.height,
        minus_100_read_as_not_ratable=checked.sentinels,
    )
    good = checked.good.with_columns(pl.lit(spec.path).alias("_source"))
    return good, kind


def _unreadable_input(ctx: StageContext, role: str, spec: InputSpec, message: str):
    """A file with no readable table: one warning and one rejected entry; the other
    inputs go on."""
    ctx.reporter.warn(message)
    ctx.reject(_file_problem(spec.path, message))
    ctx.info["inputs"].append(
        {"path": spec.path, "role": role, "rows": 0, "kind": None, "error": message}
    )
    return None, None


def _file_problem(path: str, message: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": [path], "line": [None], "reason": [message], "record": [None]},
        schema={"source": pl.String, "line": pl.Int64, "reason": pl.String, "record": pl.String},
    )


def _everything_rejected(frame: pl.DataFrame, reason: str, path: str) -> pl.DataFrame:
    fields = [c for c in frame.columns if c not in (LINE, TYPE_ERRORS)]
    record = pl.struct(fields).struct.json_encode() if fields else pl.lit("{}")
    return frame.select(
        pl.col(LINE).alias("line"),
        pl.lit(reason).alias("reason"),
        record.alias("record"),
        pl.lit(path).alias("source"),
    )


# --- aggregate ---------------------------------------------------------------------------


class AggregateConfig(StageConfig):
    min_annotators: int = Field(3, ge=1, description="Drop rated items with fewer annotators.")
    flag_spread: int = Field(
        2, ge=0, description="Flag items whose helpfulness ratings spread by more than this..."
    )
    max_annotators: int = Field(5, ge=1, description="...and that have fewer annotators.")
    max_spread: int | None = Field(
        None, ge=0, description="Drop rated items whose 3 most agreeing helpfulness spread more."
    )
    drop_flagged: bool = Field(False, description="Drop items flagged for more annotators.")
    preference_min_annotators: int = Field(3, ge=1)
    preference_max_spread: int | None = Field(
        2, ge=0, description="Drop pairs whose 3 most similar strengths spread more (HS2-Pref)."
    )
    drop_ties: bool = Field(False, description="Drop pairs whose strength is 0.")
    kappa_min_overlap: int = Field(
        5, ge=1, description="Annotator pairs need this many shared items for kappa."
    )
    domains: list[str] | None = Field(
        None,
        description="HelpSteer3: keep only these domains (general, stem, code, multilingual).",
    )
    languages: list[str] | None = Field(
        None, description="HelpSteer3: keep only these languages (e.g. english, python)."
    )


@stage("aggregate", AggregateConfig, version="1")
def aggregate(ctx: StageContext, tables: Tables, cfg: AggregateConfig):
    """HelpSteer2 aggregation of raw annotations, filters and agreement before/after."""
    out: dict[str, pl.DataFrame | None] = {}
    filtered: list[pl.DataFrame] = []
    with ctx.reporter.task("aggregate", total=2) as bar:
        if "raw_ratings" in tables or "ratings_in" in tables:
            out["ratings"], dropped, out["needs_more_annotators"] = _aggregate_ratings(
                ctx, tables, cfg
            )
            filtered.append(dropped)
        bar.advance()
        if "raw_preferences" in tables or "preference_in" in tables:
            out["preference"], dropped = _aggregate_preferences(ctx, tables, cfg)
            filtered.append(dropped)
        bar.advance()
        if "hs3_raw_preferences" in tables or "hs3_preference_in" in tables:
            out["hs3_preference"], dropped = _aggregate_hs3(ctx, tables, cfg)
            filtered.append(dropped)
        for name in h3.DATA_TABLES[1:]:
            if name in tables:
                out[name], dropped = _filter_hs3(tables[name], name, cfg)
                filtered.append(dropped)
    out["filtered"] = pl.concat(filtered) if filtered else None
    # Raw annotations are only needed for agreement; dropping them frees the memory,
    # once no kept table's text still points into their buffers.
    out = {name: None if frame is None else compact_text(frame) for name, frame in out.items()}
    out["raw_ratings"] = out["raw_preferences"] = out["hs3_raw_preferences"] = None
    return out


def compact_text(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its text columns in buffers of their own.

    A polars string column is a column of views into shared byte buffers, and a
    filter, group-by `first` or gather keeps the source's buffers alive: the 200 k
    aggregated items kept the text buffers of all 1 M raw annotations (about 250 MB of
    the 1.3 M-annotation benchmark, held through split and export). `concat_str`
    with an empty string writes each value once into new buffers (same values, nulls
    stay null), so dropping the raw tables frees their text. Nested columns are left
    as they are.
    """
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text:
        return frame
    return frame.with_columns(pl.concat_str(pl.col(name), pl.lit("")).alias(name) for name in text)


FILTERED_SCHEMA = {"kind": pl.String, "id": pl.String, "prompt": pl.String, "reason": pl.String}


def _drop(frame: pl.DataFrame, kind: str, id_col: str, rules: list[tuple[pl.Expr, str]]):
    """Apply filters; return (kept, dropped with the first failing rule as reason)."""
    reason = pl.lit(None, dtype=pl.String)
    for condition, text in reversed(rules):
        reason = pl.when(condition).then(pl.lit(text)).otherwise(reason)
    marked = frame.with_columns(reason.alias("_why"))
    dropped = marked.filter(pl.col("_why").is_not_null()).select(
        pl.lit(kind).alias("kind"),
        pl.col(id_col).cast(pl.String).alias("id"),
        "prompt",
        pl.col("_why").alias("reason"),
    )
    return marked.filter(pl.col("_why").is_null()).drop("_why"), dropped


def _aggregate_ratings(ctx: StageContext, tables: Tables, cfg: AggregateConfig):
    parts, dropped, flagged = [], pl.DataFrame(schema=FILTERED_SCHEMA), None
    info: dict = {}
    if "raw_ratings" in tables:
        raw = tables["raw_ratings"]
        items = agg.aggregate_ratings(raw, cfg.flag_spread, cfg.max_annotators)
        rules = [
            (
                pl.col("n_annotators") < cfg.min_annotators,
                f"fewer than {cfg.min_annotators} annotators",
            )
        ]
        if cfg.max_spread is not None:
            rules.append(
                (
                    pl.col("helpfulness_spread3") > cfg.max_spread,
                    f"helpfulness of the 3 most agreeing spreads more than {cfg.max_spread}",
                )
            )
        if cfg.drop_flagged:
            rules.append((pl.col("needs_more_annotators"), "flagged for more annotators"))
        kept, dropped = _drop(items, "ratings", "item_id", rules)
        # Flagged before filtering: an item with too few annotators is exactly one
        # that needs more, even though it is also filtered out.
        flagged = items.filter("needs_more_annotators").select(
            "item_id", "prompt", "response", "n_annotators", "helpfulness_spread"
        )
        info.update(
            items=items.height,
            kept=kept.height,
            flagged_for_more_annotators=int(items["needs_more_annotators"].sum()),
            flagged_item_ids=items.filter("needs_more_annotators")["item_id"].head(1000).to_list(),
        )
        info["agreement_before"], info["agreement_after"] = agreement_before_after(
            raw,
            "item_id",
            "annotator_id",
            ATTRIBUTES,
            agg.RATING_VALUES,
            kept["item_id"],
            cfg.kappa_min_overlap,
        )
        parts.append(kept)
    if "ratings_in" in tables:
        given = tables["ratings_in"].with_columns(
            pl.concat_str(pl.lit("row-"), pl.col(LINE)).alias("item_id")
        )
        info["already_aggregated"] = given.height
        parts.append(given)
    ctx.info["ratings"] = info
    return pl.concat(parts, how="diagonal_relaxed"), dropped, flagged


def _pair_rules(cfg: AggregateConfig, label: str, values: str, tie: str) -> list:
    """The aggregated-pair filters (HelpSteer2-Preference's, also used for HelpSteer3):
    too few annotators, the 3 most similar `values` too far apart, ties when asked."""
    rules = [
        (
            pl.col("n_annotators") < cfg.preference_min_annotators,
            f"fewer than {cfg.preference_min_annotators} annotators",
        )
    ]
    if cfg.preference_max_spread is not None:
        rules.append(
            (
                pl.col("spread3") > cfg.preference_max_spread,
                f"the 3 most similar {values} spread more than {cfg.preference_max_spread}",
            )
        )
    if cfg.drop_ties:
        rules.append((pl.col(label) == 0, tie))
    return rules


def _aggregate_preferences(ctx: StageContext, tables: Tables, cfg: AggregateConfig):
    parts, dropped = [], pl.DataFrame(schema=FILTERED_SCHEMA)
    info: dict = {}
    if "raw_preferences" in tables:
        raw = tables["raw_preferences"]
        pairs = agg.aggregate_preferences(raw)
        rules = _pair_rules(cfg, "preference_strength", "strengths", "tie (strength 0)")
        kept, dropped = _drop(pairs, "preference", "pair_id", rules)
        info.update(
            pairs=pairs.height,
            kept=kept.height,
            ties=int((kept["preference_strength"] == 0).sum()),
        )
        info["agreement_before"], info["agreement_after"] = agreement_before_after(
            raw,
            "pair_id",
            "annotator_id",
            ["preference_strength"],
            agg.STRENGTH_VALUES,
            kept["pair_id"],
            cfg.kappa_min_overlap,
        )
        parts.append(kept)
    if "preference_in" in tables:
        given = _complete_preference(tables["preference_in"])
        info["already_aggregated"] = given.height
        parts.append(given)
    ctx.info["preference"] = info
    return pl.concat(parts, how="diagonal_relaxed"), dropped


def _filter_hs3(frame: pl.DataFrame, kind: str, cfg: AggregateConfig):
    """A HelpSteer3 table without the rows outside `domains` / `languages`."""
    rules = h3.metadata_filter(cfg.domains, cfg.languages)
    marked = frame.with_columns(
        h3.last_user_turn().alias("prompt"),
        pl.concat_str(pl.lit("row-"), pl.col(LINE)).alias("_row_id"),
    )
    kept, dropped = _drop(
        marked, kind, "pair_id" if "pair_id" in frame.columns else "_row_id", rules
    )
    return kept.drop("prompt", "_row_id"), dropped


def _aggregate_hs3(ctx: StageContext, tables: Tables, cfg: AggregateConfig):
    """HelpSteer3 preferences: the domain/language filters first, then the same 3 most
    similar rule and filters as HelpSteer2-Preference (helpsteer/helpsteer3.py)."""
    parts, dropped = [], [pl.DataFrame(schema=FILTERED_SCHEMA)]
    info: dict = {}
    if "hs3_raw_preferences" in tables:
        raw, outside = _filter_hs3(tables["hs3_raw_preferences"], "hs3_preference", cfg)
        # one filtered entry per pair, not per annotation
        dropped.append(outside.unique("id", keep="first", maintain_order=True))
        pairs = h3.aggregate_preferences(raw)
        rules = _pair_rules(cfg, "overall_preference", "scores", "tie (overall_preference 0)")
        kept, removed = _drop(
            pairs.with_columns(h3.last_user_turn().alias("prompt")),
            "hs3_preference",
            "pair_id",
            rules,
        )
        dropped.append(removed)
        kept = kept.drop("prompt")
        info.update(pairs=pairs.height, kept=kept.height)
        info["agreement_before"], info["agreement_after"] = _hs3_agreement(raw, kept, cfg)
        info["agreement_by"] = {
            column: {
                value: _hs3_agreement(raw.filter(pl.col(column) == value), kept, cfg)[1]
                for value in raw[column].drop_nulls().unique().sort().to_list()
            }
            for column in ("domain", "language")
        }
        parts.append(kept)
    if "hs3_preference_in" in tables:
        given, outside = _filter_hs3(
            h3.complete_preference(tables["hs3_preference_in"]), "hs3_preference", cfg
        )
        dropped.append(outside)
        info["already_aggregated"] = given.height
        parts.append(given)
    table = pl.concat(parts, how="diagonal_relaxed")
    info["ties"] = int((table["overall_preference"] == 0).sum())
    info["by"] = {c: _counts_by(table, c) for c in ("domain", "language")}
    ctx.info["hs3_preference"] = info
    return table, pl.concat(dropped)


def _hs3_agreement(raw: pl.DataFrame, kept: pl.DataFrame, cfg: AggregateConfig):
    """Agreement on HelpSteer3 scores before and after the pair filters, as for HS2."""
    return agreement_before_after(
        raw,
        "pair_id",
        "annotator_id",
        ["score"],
        agg.STRENGTH_VALUES,
        kept["pair_id"],
        cfg.kappa_min_overlap,
    )


def _counts_by(table: pl.DataFrame, column: str) -> dict[str, int]:
    counts = table.group_by(pl.col(column).fill_null("(none)")).len().sort(column)
    return dict(counts.iter_rows())


def _complete_preference(given: pl.DataFrame) -> pl.DataFrame:
    """Aggregated preference rows may lack the optional HelpSteer2 columns; fill them."""
    fills = {
        "preference_statement": pl.lit("", dtype=pl.String),
        "preference_elaboration": pl.lit("", dtype=pl.String),
    }
    given = given.with_columns(
        [expr.alias(name) for name, expr in fills.items() if name not in given.columns]
    )
    for name in ("three_most_similar_preferences", "all_preferences_unprocessed"):
        if name not in given.columns or given.schema[name] == pl.Null:
            given = given.with_columns(pl.lit([], dtype=pl.List(PREFERENCE_ITEM)).alias(name))
    return given.with_columns(pl.concat_str(pl.lit("row-"), pl.col(LINE)).alias("pair_id"))


# --- split -------------------------------------------------------------------------------


class SplitConfig(StageConfig):
    validation_fraction: float = Field(0.05, ge=0, le=1, description="Share of prompts.")
    seed: int | None = Field(None, description="Defaults to the pipeline seed.")
    keep_existing: bool = Field(True, description="Keep a `split` column the input already has.")


@stage("split", SplitConfig, version="1")
def split(ctx: StageContext, tables: Tables, cfg: SplitConfig):
    """Deterministic train/validation split by prompt."""
    names = [n for n in ("ratings", "preference", *h3.DATA_TABLES) if n in tables]
    if not names:
        return {}
    keyed = {n: _with_prompt_key(tables[n], n) for n in names}
    prompts = pl.concat([frame["_split_key"] for frame in keyed.values()]).unique()
    seed = ctx.seed if cfg.seed is None else cfg.seed
    mapping = assign_splits(prompts, cfg.validation_fraction, seed).rename({"prompt": "_split_key"})
    out = {}
    for name, frame in keyed.items():
        assigned = frame.join(mapping, on="_split_key", how="left", suffix="_new")
        assigned = assigned.drop("_split_key")
        if "split_new" in assigned.columns:
            keep = pl.col("split").is_in(SPLITS) if cfg.keep_existing else pl.lit(False)
            assigned = assigned.with_columns(
                pl.when(keep).then(pl.col("split")).otherwise(pl.col("split_new")).alias("split")
            ).drop("split_new")
        out[name] = assigned.sort(
            pl.col("split").replace_strict(
                {"train": 0, "validation": 1}, default=2, return_dtype=pl.Int8
            ),
            maintain_order=True,
        )
        ctx.info[name] = dict(assigned.group_by("split").len().sort("split").iter_rows())
    return out


def _with_prompt_key(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """The text a row's split is drawn from: the prompt (HelpSteer3: the conversation in
    the same flat form, so a prompt in both vocabularies gets one split)."""
    key = h3.prompt_key() if name.startswith("hs3_") else pl.col("prompt")
    return frame.with_columns(key.alias("_split_key"))


# --- export ------------------------------------------------------------------------------


class ExportConfig(StageConfig):
    formats: list[str] = Field(
        default_factory=lambda: [
            "ratings",
            "preference",
            "regression",
            "regression_columns",
            "bt",
            "dpo",
            "steerlm",
            *h3.FORMATS,
        ],
        description="Which export formats to write (those whose table exists).",
    )
    file_types: list[Literal["parquet", "jsonl"]] = Field(
        default_factory=lambda: ["parquet", "jsonl"]
    )
    datasets_folder: bool = Field(True, description="Also write `datasets/<format>` folders.")

    @field_validator("formats")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from helpsteer.exports import ALL_FORMATS

        unknown = [f for f in value if f not in ALL_FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; known: {list(ALL_FORMATS)}")
        return value


@stage("export", ExportConfig, cacheable=False, keeps_tables=True, imports=("pyarrow.parquet",))
def export(ctx: StageContext, tables: Tables, cfg: ExportConfig):
    """Write every export format, per split, into the output folder."""
    from helpsteer.writers import write_exports

    ctx.info["files"] = write_exports(ctx, tables, cfg)
    return {}


class CardConfig(StageConfig):
    title: str = "HelpSteer2-style dataset"
    plots: bool = True


def _prepare_card(tables: Tables, cfg: CardConfig):
    from helpsteer.card import prepare_card

    return prepare_card(tables, cfg)


@stage(
    "card",
    CardConfig,
    cacheable=False,
    prepare=_prepare_card,
    imports=("matplotlib.figure", "matplotlib.backends.backend_agg"),
)
def card(ctx: StageContext, tables: Tables, cfg: CardConfig):
    """Dataset card README.md with counts, histograms, agreement and length statistics."""
    from helpsteer.card import write_card

    write_card(ctx, tables, cfg)
    return {}


def default_stages() -> list[dict]:
    """The stage list of the common case (`--ratings/--preferences/--out`)."""
    return [
        {"uses": "load"},
        {"uses": "aggregate"},
        {"uses": "split"},
        {"uses": "export"},
        {"uses": "card"},
    ]
