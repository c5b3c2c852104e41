"""Judge stages for `hs build-dataset` pipelines (registered on import).

- `judge.reward`: a reward model (local checkpoint or OpenAI-compatible reward endpoint)
  scores each row of `responses` -> `reward` (plus one column per head output when the
  model has several, prefixed `reward_`).
- `judge.llm_score`: MT-Bench single-answer 1-10 rating by an LLM -> `reward` (name
  configurable); rows with two or more user turns use the multi-turn prompt, rows whose
  `meta` carries a reference use the reference prompt.
- `judge.attributes`: HelpSteer2's five attributes by an LLM (JSON with schema) -> the
  five columns on `responses`, and a `ratings` table (prompt, response, five attributes)
  that the core `split`/`export` stages export.
- `judge.pairwise`: 7-point pairwise preference by an LLM in both orders, on a
  `preference` table or on pairs of `responses` -> `preference_strength`,
  `preference_statement`, `preference_elaboration`; inconsistent pairs are rejected
  ("discard", Nemotron-4) or become ties ("tie", MT-Bench).
- `judge.genrm`: a generative reward model in the Nemotron GenRM format (judge/genrm.py),
  voted over k samples: "single" scores each row of `responses` -> `genrm` (mean
  helpfulness 1-5, usable as `synth.preference_pairs`' `score_column`); "pairs" judges
  pairs like `judge.pairwise` -> `preference` rows whose strength is the majority ranking.
- `judge.ground_truth`: math answers, Python tests and verifiable constraints, on rows
  whose `meta` (or `constraints` column) carries them -> `ground_truth` 1.0 / 0.0.

Unparseable judge outputs go to `rejected` with the raw completion; the row keeps a null
score, so nothing disappears without a trace.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from helpsteer.attributes import ATTRIBUTES
from helpsteer.conversation import Message, flat_to_messages
from helpsteer.llm import LLMConfig
from helpsteer.pipeline import (
    Needs,
    PipelineError,
    StageConfig,
    StageContext,
    Tables,
    llm_needs,
    stage,
)
from helpsteer.records import PREFERENCE_ITEM
from judge.genrm import GenRMSampling
from judge.llm_judge import JudgeError, SamplingConfig

REJECT_SCHEMA = {"source": pl.String, "line": pl.Int64, "reason": pl.String, "record": pl.String}


# ------------------------------------------------------------------ shared helpers


class LLMStageConfig(StageConfig):
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="The judge LLM (default: the embedded local model); without a cache_dir "
        "the completion cache goes to OUT/.llm-cache.",
    )
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    prompts_file: str | None = Field(None, description="FastChat judge_prompts.jsonl to use.")
    table: str = Field("responses", description="The table to judge.")


def _client(ctx: StageContext, llm: LLMConfig):
    from helpsteer.llm.shared import shared_client

    if llm.cache_dir is None:
        llm = llm.model_copy(update={"cache_dir": Path(ctx.out_dir) / ".llm-cache"})
    # Named in the dataset card: which model judged.
    ctx.info["judge_model"] = f"{llm.backend}:{llm.model}" if llm.model else llm.backend
    return shared_client(llm)


def _prompt(name: str | None, path: str | None):
    from judge.llm_judge import load_prompt

    if not name:
        return None
    try:
        return load_prompt(name, path)
    except (JudgeError, ValueError) as exc:
        raise PipelineError(str(exc)) from None


def _table(ctx: StageContext, tables: Tables, name: str, needs: tuple[str, ...]) -> pl.DataFrame:
    if name not in tables:
        raise PipelineError(
            f"{ctx.name}: no table {name!r} (tables: {', '.join(tables) or 'none'})"
        )
    frame = tables[name]
    missing = [c for c in needs if c not in frame.columns]
    if missing:
        raise PipelineError(
            f"{ctx.name}: table {name!r} lacks column(s) {', '.join(missing)} "
            f"(has {', '.join(frame.columns)})"
        )
    return frame


def conversation_of(row: dict[str, Any]) -> list[Message]:
    """The prompt messages of a row: `messages` when present, else the flat `prompt`."""
    messages = row.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return flat_to_messages(row["prompt"])


def meta_of(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("meta")
    if isinstance(meta, dict):
        return meta
    if isinstance(meta, str) and meta.strip():
        try:
            value = json.loads(meta)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _row_id(row: dict[str, Any], index: int) -> str:
    return str(row.get("response_id") or row.get("pair_id") or index)


def _reject(ctx: StageContext, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        frame = pl.DataFrame(rows, schema={k: v for k, v in REJECT_SCHEMA.items()})
        ctx.reject(frame.with_columns(pl.lit(f"table {table}").alias("source")))


def _record(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False, default=str)


def _usage(ctx: StageContext, spent: dict[str, Any]) -> None:
    keys = ("requests", "cache_hits", "errors", "prompt_tokens", "completion_tokens", "cost_usd")
    ctx.info["llm"] = {k: spent.get(k) for k in keys}


# ------------------------------------------------------------------ judge.reward


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"


class RewardStageConfig(StageConfig):
    table: str = "responses"
    column: str = Field("reward", description="Column for the (combined) reward.")
    model: str | None = Field(None, description="Reward model folder or Hub id.")
    endpoint: EndpointSpec | None = Field(None, description="OpenAI-compatible reward endpoint.")
    attribute_weights: dict[str, float] | None = Field(
        None, description="Weights by head label for a multi-attribute model."
    )
    attribute_prefix: str = Field("reward_", description="Prefix of per-attribute columns.")
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(4096, ge=8)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = "cpu"

    @model_validator(mode="after")
    def _one_source(self) -> RewardStageConfig:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give exactly one of `model` and `endpoint`")
        return self


def _with_response(frame: pl.DataFrame) -> list[list[Message]]:
    return [
        [*conversation_of(row), {"role": "assistant", "content": row["response"]}]
        for row in frame.iter_rows(named=True)
    ]


def _reward_needs(cfg: RewardStageConfig) -> Needs:
    gpus = 1.0 if cfg.device.startswith("cuda") else 0.0
    return Needs(num_gpus=gpus, llm=cfg.endpoint is not None)


@stage("judge.reward", RewardStageConfig, version="1", shardable=True, needs=_reward_needs)
def reward_stage(ctx: StageContext, tables: Tables, cfg: RewardStageConfig):
    """Score each response with a reward model -> `reward` (+ per-attribute columns)."""
    from judge.reward import RewardModelError

    frame = _table(ctx, tables, cfg.table, ("response",))
    conversations = _with_response(frame)
    try:
        if cfg.model is not None:
            combined, attributes = _local_rewards(ctx, cfg, conversations)
        else:
            combined, attributes = _endpoint_rewards(ctx, cfg, conversations)
    except RewardModelError as exc:
        raise PipelineError(f"{ctx.name}: {exc}") from None
    columns = [pl.Series(cfg.column, combined, dtype=pl.Float64)]
    if len(attributes) > 1:
        columns += [
            pl.Series(f"{cfg.attribute_prefix}{label}", values, dtype=pl.Float64)
            for label, values in attributes.items()
        ]
    ctx.info.update(scored=frame.height, attributes=list(attributes) if len(attributes) > 1 else [])
    return {cfg.table: frame.with_columns(columns)}


def _local_rewards(ctx, cfg: RewardStageConfig, conversations):
    from judge.reward import RewardJudge

    judge = RewardJudge(
        cfg.model,
        attribute_weights=cfg.attribute_weights,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        dtype=cfg.dtype,
        device=cfg.device,
    )
    if not conversations:
        return [], {}
    raw = judge.attribute_scores(conversations, reporter=ctx.reporter)
    combined = judge.combine(raw).tolist()
    return combined, {label: raw[:, i].tolist() for i, label in enumerate(judge.labels)}


def _endpoint_rewards(ctx, cfg: RewardStageConfig, conversations):
    import os

    from judge.reward import RewardEndpointJudge, weighted_reward

    spec = cfg.endpoint
    assert spec is not None
    judge = RewardEndpointJudge(
        spec.model,
        spec.base_url,
        api_key=os.environ.get(spec.api_key_env),
        attribute_weights=cfg.attribute_weights,
    )
    combined: list[float] = []
    attributes: dict[str, list[float]] = {}
    with ctx.reporter.task(f"{ctx.name}: reward endpoint", total=len(conversations)) as bar:
        for conversation in conversations:
            scores = judge.attribute_scores(conversation)
            combined.append(weighted_reward(scores, judge.weights))
            for label in scores:
                attributes.setdefault(label, [None] * (len(combined) - 1))
            for label in attributes:
                attributes[label].append(scores.get(label))
            bar.advance()
    return combined, attributes


# ------------------------------------------------------------------ judge.llm_score


class LLMScoreConfig(LLMStageConfig):
    column: str = Field("reward", description="Column for the rating (on the prompt's scale).")
    prompt: str = Field(
        "single", description="'single' (1-10, written) or 'single-logprob' (0-4, read off "
        "the digit probabilities; fast and usable with a small local model)."
    )  # fmt: skip
    multi_turn_prompt: str | None = Field(
        None,
        description="For rows with two or more user turns (default: 'single-multi-turn' "
        "with the 'single' prompt, else `prompt`).",
    )
    reference_prompt: str | None = Field(
        None,
        description="For rows whose meta has `reference_key` (default: 'single-reference' "
        "with the 'single' prompt, else `prompt`).",
    )
    reference_key: str = "reference"

    def companion(self, given: str | None, for_single: str) -> str | None:
        if given:
            return given
        return for_single if self.prompt == "single" else None


def _llm_stage_needs(cfg: LLMStageConfig) -> Needs:
    return llm_needs(cfg.llm)


@stage("judge.llm_score", LLMScoreConfig, version="1", shardable=True, needs=_llm_stage_needs)
def llm_score_stage(ctx: StageContext, tables: Tables, cfg: LLMScoreConfig):
    """Single-answer rating by an LLM (MT-Bench's 1-10, or 0-4 from digit probabilities)
    -> `reward`."""
    from judge.llm_judge import SingleItem, SingleJudge, UsageSnapshot

    frame = _table(ctx, tables, cfg.table, ("response",))
    client = _client(ctx, cfg.llm)
    try:
        judge = SingleJudge(
            client,
            _prompt(cfg.prompt, cfg.prompts_file),
            sampling=cfg.sampling,
            multi_turn_prompt=_prompt(
                cfg.companion(cfg.multi_turn_prompt, "single-multi-turn"), cfg.prompts_file
            ),
            reference_prompt=_prompt(
                cfg.companion(cfg.reference_prompt, "single-reference"), cfg.prompts_file
            ),
        )
        items = [
            SingleItem(
                _row_id(row, i),
                conversation_of(row),
                row["response"],
                meta_of(row).get(cfg.reference_key),
            )
            for i, row in enumerate(frame.iter_rows(named=True))
        ]
        usage = UsageSnapshot(client).start()
        results = judge.judge(items, reporter=ctx.reporter)
    except JudgeError as exc:
        raise PipelineError(f"{ctx.name}: {exc}") from None
    _usage(ctx, usage.stop())
    rejects = [
        {"line": i, "reason": f"rating: {r.reason}", "record": _record(id=r.item_id, raw=r.raw)}
        for i, r in enumerate(results)
        if r.score is None
    ]
    _reject(ctx, cfg.table, rejects)
    ctx.info.update(rated=frame.height - len(rejects), unparsed=len(rejects))
    return {
        cfg.table: frame.with_columns(
            pl.Series(cfg.column, [r.score for r in results], dtype=pl.Float64),
            pl.Series(f"{cfg.column}_judgment", [r.raw for r in results], dtype=pl.String),
        )
    }


# ------------------------------------------------------------------ judge.attributes


class AttributesConfig(LLMStageConfig):
    prompt: str = "helpsteer2-attributes"
    ratings: Literal["replace", "append", "none"] = Field(
        "replace", description="What to do with the `ratings` table."
    )


# Appending to a `ratings` table that is not keyed by prompt needs the whole table.
@stage(
    "judge.attributes",
    AttributesConfig,
    version="1",
    shardable=lambda cfg: cfg.ratings != "append",
    needs=_llm_stage_needs,
)
def attributes_stage(ctx: StageContext, tables: Tables, cfg: AttributesConfig):
    """HelpSteer2's five attributes by an LLM -> five columns and a `ratings` table."""
    from helpsteer.conversation import ConversationError, messages_to_flat
    from judge.llm_judge import AttributeJudge, SingleItem, UsageSnapshot

    frame = _table(ctx, tables, cfg.table, ("response",))
    client = _client(ctx, cfg.llm)
    try:
        judge = AttributeJudge(client, _prompt(cfg.prompt, cfg.prompts_file), sampling=cfg.sampling)
        items = [
            SingleItem(_row_id(row, i), conversation_of(row), row["response"])
            for i, row in enumerate(frame.iter_rows(named=True))
        ]
        usage = UsageSnapshot(client).start()
        results = judge.judge(items, reporter=ctx.reporter)
    except JudgeError as exc:
        raise PipelineError(f"{ctx.name}: {exc}") from None
    _usage(ctx, usage.stop())
    rejects = [
        {"line": i, "reason": f"attributes: {r.reason}", "record": _record(id=r.item_id, raw=r.raw)}
        for i, r in enumerate(results)
        if r.values is None
    ]
    _reject(ctx, cfg.table, rejects)
    columns = [
        pl.Series(name, [r.values[name] if r.values else None for r in results], dtype=pl.Int64)
        for name in ATTRIBUTES
    ]
    judged = frame.with_columns(
        *columns, pl.Series("attributes_judgment", [r.raw for r in results], dtype=pl.String)
    )
    ctx.info.update(rated=frame.height - len(rejects), unparsed=len(rejects))
    out: dict[str, pl.DataFrame | None] = {cfg.table: judged}
    if cfg.ratings == "none":
        return out
    rated = judged.filter(pl.col("helpfulness").is_not_null())
    prompts = []
    for row in rated.iter_rows(named=True):
        prompt = row.get("prompt")
        if not prompt:
            try:
                prompt = messages_to_flat(conversation_of(row))
            except ConversationError as exc:
                raise PipelineError(f"{ctx.name}: row {row.get('response_id')}: {exc}") from None
        prompts.append(prompt)
    # prompt_id (when the judged rows have one) keys the table by prompt, so it splits
    # and merges like the other tables of a row-wise stage.
    key = ["prompt_id"] if "prompt_id" in rated.columns else []
    ratings = rated.select(
        *key, pl.Series("prompt", prompts, dtype=pl.String), "response", *ATTRIBUTES
    )
    if cfg.ratings == "append" and "ratings" in tables:
        ratings = pl.concat([tables["ratings"], ratings], how="diagonal_relaxed")
    out["ratings"] = ratings
    return out


# ------------------------------------------------------------------ judge.pairwise


class PairwiseStageConfig(LLMStageConfig):
    table: str = Field(
        "auto",
        description="'preference', 'responses', or 'auto' (whichever exists, preference first).",
    )
    prompt: str = Field("pairwise-strength", description="A 7-point ('strength') prompt.")
    multi_turn_prompt: str | None = None
    policy: Literal["discard", "tie"] = "discard"
    pairs_per_prompt: int = Field(
        1, ge=1, description="From `responses`: disjoint pairs per prompt, by response_id."
    )


def _pairs_from_responses(frame: pl.DataFrame, limit: int) -> list[dict[str, Any]]:
    """Disjoint pairs (1st, 2nd), (3rd, 4th), ... of each prompt's responses by response_id."""
    ordered = frame.sort("prompt_id", "response_id", maintain_order=True)
    pairs = []
    for _, group in ordered.group_by("prompt_id", maintain_order=True):
        rows = list(group.iter_rows(named=True))
        for k in range(min(limit, len(rows) // 2)):
            one, two = rows[2 * k], rows[2 * k + 1]
            pair_id = hashlib.sha256(
                f"{one['response_id']}\x1f{two['response_id']}".encode()
            ).hexdigest()[:16]
            pairs.append(
                {
                    "pair_id": pair_id,
                    "prompt_id": one["prompt_id"],
                    "messages": conversation_of(one),
                    "prompt": one.get("prompt"),
                    "response_1": one["response"],
                    "response_2": two["response"],
                    "model_1": one.get("model"),
                    "model_2": two.get("model"),
                }
            )
    return pairs


def _source(
    ctx: StageContext, tables: Tables, cfg: PairwiseStageConfig
) -> tuple[str, pl.DataFrame]:
    name = cfg.table
    if name == "auto":
        name = "preference" if "preference" in tables else "responses"
    if name == "responses":
        frame = _table(ctx, tables, name, ("prompt_id", "response_id", "response"))
        return name, pl.DataFrame(_pairs_from_responses(frame, cfg.pairs_per_prompt))
    frame = _table(ctx, tables, name, ("prompt", "response_1", "response_2"))
    if "pair_id" not in frame.columns:
        frame = frame.with_row_index("pair_id").with_columns(pl.col("pair_id").cast(pl.String))
    return name, frame


@stage("judge.pairwise", PairwiseStageConfig, version="1", shardable=True, needs=_llm_stage_needs)
def pairwise_stage(ctx: StageContext, tables: Tables, cfg: PairwiseStageConfig):
    """7-point pairwise LLM preference in both orders -> HelpSteer2 preference columns."""
    from judge.llm_judge import PairItem, PairwiseJudge, UsageSnapshot

    source, frame = _source(ctx, tables, cfg)
    if frame.height == 0:
        ctx.info.update(source=source, pairs=0)
        return {}
    client = _client(ctx, cfg.llm)
    prompt = _prompt(cfg.prompt, cfg.prompts_file)
    if prompt.output_format != "strength":
        raise PipelineError(
            f"{ctx.name}: prompt {prompt.name!r} gives {prompt.output_format!r} verdicts; this "
            "stage needs a 7-point 'strength' prompt (e.g. the built-in 'pairwise-strength')"
        )
    rows = list(frame.iter_rows(named=True))
    try:
        judge = PairwiseJudge(
            client,
            prompt,
            policy=cfg.policy,
            sampling=cfg.sampling,
            multi_turn_prompt=_prompt(cfg.multi_turn_prompt, cfg.prompts_file),
        )
        items = [
            PairItem(str(r["pair_id"]), conversation_of(r), r["response_1"], r["response_2"])
            for r in rows
        ]
        usage = UsageSnapshot(client).start()
        results = judge.judge(items, reporter=ctx.reporter)
    except JudgeError as exc:
        raise PipelineError(f"{ctx.name}: {exc}") from None
    _usage(ctx, usage.stop())
    kept, rejects, counts = _preference_rows(rows, results)
    _reject(ctx, source, rejects)
    ctx.info.update(source=source, pairs=len(rows), policy=cfg.policy, **counts)
    out = pl.DataFrame(kept, schema_overrides=_PREFERENCE_OVERRIDES) if kept else None
    if out is not None and source == "responses" and "split" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("split"))
    return {"preference": out}


_PREFERENCE_OVERRIDES = {
    "preference_strength": pl.Int64,
    "three_most_similar_preferences": pl.List(PREFERENCE_ITEM),
    "all_preferences_unprocessed": pl.List(PREFERENCE_ITEM),
}


def _preference_rows(rows, results):
    from judge.llm_judge import preference_statement, round_strength

    kept, rejects = [], []
    counts = {"consistent": 0, "inconsistent": 0, "unparsed": 0, "kept": 0}
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        strength = result.strength
        assert strength is not None
        raw = _record(pair_id=result.item_id, raw_ab=result.raw_ab, raw_ba=result.raw_ba)
        if result.outcome.outcome == "error":
            counts["unparsed"] += 1
            rejects.append(
                {"line": i, "reason": f"pairwise: {result.outcome.reason}", "record": raw}
            )
            continue
        counts["consistent" if strength.consistent else "inconsistent"] += 1
        if strength.strength is None:
            rejects.append({"line": i, "reason": f"pairwise: {strength.reason}", "record": raw})
            continue
        value = round_strength(strength.strength)
        per_order = _per_order(result)
        elaboration = (
            result.justification_ab if result.first_order == "AB" else result.justification_ba
        )
        kept.append(
            {
                **{k: v for k, v in row.items() if k != "messages"},
                "preference_strength": value,
                "preference_statement": preference_statement(value),
                "preference_elaboration": elaboration,
                "three_most_similar_preferences": per_order,
                "all_preferences_unprocessed": per_order,
                "judge_first_order": result.first_order,
                "judge_consistent": strength.consistent,
                "judge_raw_ab": result.raw_ab,
                "judge_raw_ba": result.raw_ba,
            }
        )
        counts["kept"] += 1
    return kept, rejects, counts


def _per_order(result) -> list[dict[str, Any]]:
    """Each order's verdict, in the pair's own orientation, as a preference item."""
    from judge.llm_judge import preference_statement
    from judge.parsing import parse_strength

    items = []
    for raw, sign, justification in (
        (result.raw_ab, 1, result.justification_ab),
        (result.raw_ba, -1, result.justification_ba),
    ):
        parsed = parse_strength(raw)
        if parsed.ok:
            value = sign * parsed.strength  # type: ignore[operator]
            items.append(
                {
                    "statement": preference_statement(value),
                    "elaboration": justification,
                    "strength": value,
                }
            )
    return items


# ------------------------------------------------------------------ judge.genrm


class GenRMStageConfig(StageConfig):
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        description="The GenRM (e.g. nvidia/Llama-3_3-Nemotron-Super-49B-GenRM behind the "
        "openai backend); without a cache_dir the cache goes to OUT/.llm-cache.",
    )
    sampling: GenRMSampling = Field(
        default_factory=GenRMSampling, description="samples = k votes per judgment (voting@k)."
    )
    prompt: str = Field("genrm", description="A GenRM prompt (output_format 'genrm').")
    prompts_file: str | None = Field(
        None, description="Your GenRM prompts: a .toml like judge/prompts/genrm.toml, or .jsonl."
    )
    mode: Literal["single", "pairs"] = Field(
        "single",
        description="single: score each response (-> `column` on the table); pairs: judge "
        "two responses (-> a `preference` table).",
    )
    table: str = Field(
        "auto",
        description="single: the table to score (auto: responses); pairs: 'preference', "
        "'responses' or 'auto' (preference first).",
    )
    column: str = Field("genrm", description="single: column for the mean helpfulness (1-5).")
    pairs_per_prompt: int = Field(
        1, ge=1, description="pairs from `responses`: disjoint pairs per prompt, by response_id."
    )
    both_orders: bool = Field(
        False, description="pairs: ask in both orders (2k samples) instead of a seeded one."
    )


@stage("judge.genrm", GenRMStageConfig, version="1", shardable=True, needs=_llm_stage_needs)
def genrm_stage(ctx: StageContext, tables: Tables, cfg: GenRMStageConfig):
    """A generative reward model (Nemotron GenRM format): analysis, helpfulness 1-5 per
    response and a 1-6 ranking for pairs, voted over k samples -> `genrm` on `responses`
    (single) or a `preference` table (pairs)."""
    from judge.genrm import GenRMJudge, load_genrm_prompt
    from judge.llm_judge import UsageSnapshot

    client = _client(ctx, cfg.llm)
    try:
        judge = GenRMJudge(
            client,
            load_genrm_prompt(cfg.prompt, cfg.prompts_file),
            sampling=cfg.sampling,
            both_orders=cfg.both_orders,
        )
        usage = UsageSnapshot(client).start()
        if cfg.mode == "single":
            out = _genrm_single(ctx, tables, cfg, judge)
        else:
            out = _genrm_pairs(ctx, tables, cfg, judge)
    except JudgeError as exc:
        raise PipelineError(f"{ctx.name}: {exc}") from None
    _usage(ctx, usage.stop())
    ctx.info["samples_per_judgment"] = cfg.sampling.samples * (2 if cfg.both_orders else 1)
    return out


def _genrm_reject(i: int, result) -> dict[str, Any]:
    record = _record(id=result.item_id, raw=result.vote.raws, errors=list(result.errors))
    return {"line": i, "reason": f"genrm: {result.vote.reason}", "record": record}


def _genrm_single(ctx, tables, cfg: GenRMStageConfig, judge) -> dict[str, pl.DataFrame]:
    from judge.llm_judge import SingleItem

    name = "responses" if cfg.table == "auto" else cfg.table
    frame = _table(ctx, tables, name, ("response",))
    items = [
        SingleItem(_row_id(row, i), conversation_of(row), row["response"])
        for i, row in enumerate(frame.iter_rows(named=True))
    ]
    results = judge.score(items, reporter=ctx.reporter)
    rejects = [_genrm_reject(i, r) for i, r in enumerate(results) if not r.vote.ok]
    _reject(ctx, name, rejects)
    ctx.info.update(mode="single", scored=frame.height - len(rejects), unparsed=len(rejects))
    return {
        name: frame.with_columns(
            pl.Series(cfg.column, [r.score for r in results], dtype=pl.Float64),
            pl.Series(f"{cfg.column}_samples_ok", [r.vote.valid for r in results], pl.Int64),
            pl.Series(
                f"{cfg.column}_judgments",
                [r.vote.raws for r in results],
                dtype=pl.List(pl.String),
            ),
        )
    }


def _genrm_pairs(ctx, tables, cfg: GenRMStageConfig, judge) -> dict[str, pl.DataFrame | None]:
    from judge.llm_judge import PairItem

    source, frame = _source(ctx, tables, cfg)  # type: ignore[arg-type]
    if frame.height == 0:
        ctx.info.update(mode="pairs", source=source, pairs=0)
        return {}
    rows = list(frame.iter_rows(named=True))
    items = [
        PairItem(str(r["pair_id"]), conversation_of(r), r["response_1"], r["response_2"])
        for r in rows
    ]
    results = judge.compare(items, reporter=ctx.reporter)
    kept, rejects = [], []
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        if result.vote.ok:
            kept.append(_genrm_preference_row(row, result))
        else:
            rejects.append(_genrm_reject(i, result))
    _reject(ctx, source, rejects)
    ties = sum(1 for r in results if r.vote.side == "tie")
    ctx.info.update(
        mode="pairs", source=source, pairs=len(rows), kept=len(kept), unparsed=len(rejects),
        split_votes=ties,
    )  # fmt: skip
    out = pl.DataFrame(kept, schema_overrides=_GENRM_OVERRIDES) if kept else None
    if out is not None and source == "responses" and "split" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("split"))
    return {"preference": out}


_GENRM_OVERRIDES = {
    **_PREFERENCE_OVERRIDES,
    "genrm_score_1": pl.Float64,
    "genrm_score_2": pl.Float64,
    "genrm_ranking": pl.Int64,
    "genrm_ranking_mean": pl.Float64,
    "genrm_samples_ok": pl.Int64,
    "genrm_judgments": pl.List(pl.String),
    "genrm_orders": pl.List(pl.String),
}


def _three_most_similar(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """HelpSteer2-Preference's rule over the samples: the 3 strengths that agree most."""
    from helpsteer.aggregate import most_agreeing

    wanted = list(most_agreeing(tuple(sorted(i["strength"] for i in items))))
    chosen = []
    for item in items:
        if item["strength"] in wanted:
            wanted.remove(item["strength"])
            chosen.append(item)
    return chosen


def _genrm_preference_row(row: dict[str, Any], result) -> dict[str, Any]:
    from judge.genrm import ranking_strength, relabel_analyses
    from judge.llm_judge import preference_statement

    v = result.vote
    strength = v.strength
    per_sample = [
        {
            "statement": preference_statement(ranking_strength(s.ranking)),
            "elaboration": relabel_analyses(s.analyses),
            "strength": ranking_strength(s.ranking),
        }
        for s in v.samples
        if s.ok
    ]
    first = next(s for s in v.samples if s.ok)
    return {
        **{k: val for k, val in row.items() if k != "messages"},
        "preference_strength": strength,
        "preference_statement": preference_statement(strength),
        "preference_elaboration": relabel_analyses(first.analyses),
        "three_most_similar_preferences": _three_most_similar(per_sample),
        "all_preferences_unprocessed": per_sample,
        "genrm_score_1": v.scores[0],
        "genrm_score_2": v.scores[1],
        "genrm_ranking": v.ranking,
        "genrm_ranking_mean": v.ranking_mean,
        "genrm_samples_ok": v.valid,
        "genrm_judgments": v.raws,
        "genrm_orders": list(result.orders),
    }


# ------------------------------------------------------------------ judge.ground_truth


class GroundTruthConfig(StageConfig):
    table: str = "responses"
    column: str = Field(
        "ground_truth", description="1.0 passed, 0.0 failed, null: nothing to check."
    )
    reference_keys: list[str] = Field(
        default_factory=lambda: ["reference", "answer"], description="Meta keys of a math answer."
    )
    tests_key: str = Field("tests", description="Meta key of Python assert-style tests.")
    io_key: str = Field("io_cases", description="Meta key of [{stdin, stdout}] cases.")
    constraints_key: str = Field("constraints", description="Column or meta key (JSON list).")
    wall_seconds: float = Field(10.0, gt=0, description="Per code run.")
    unsafe_no_sandbox: bool = Field(
        False,
        description="Run code candidates without the bubblewrap OS sandbox (unsafe; only for "
        "trusted code on machines without bwrap).",
    )
    math_time_limit: float = Field(5.0, gt=0, description="Per symbolic comparison.")


_CODE_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.S | re.I)


def extract_code(response: str) -> str:
    """The fenced Python blocks of a response joined, or the whole response."""
    blocks = _CODE_FENCE.findall(response)
    return "\n\n".join(blocks) if blocks else response


def _ground_truth(row: dict[str, Any], cfg: GroundTruthConfig) -> tuple[str | None, Any]:
    """(kind, spec) of the first ground truth a row carries, or (None, None)."""
    meta = meta_of(row)
    constraints = row.get(cfg.constraints_key) or meta.get(cfg.constraints_key)
    if constraints:
        return "constraints", constraints
    if meta.get(cfg.tests_key):
        return "tests", meta[cfg.tests_key]
    if meta.get(cfg.io_key):
        return "io", meta[cfg.io_key]
    for key in cfg.reference_keys:
        if meta.get(key) not in (None, ""):
            return "math", str(meta[key])
    return None, None


def _check(kind: str, spec: Any, response: str, cfg: GroundTruthConfig) -> tuple[bool, str]:
    from helpsteer import constraints as cons
    from judge.code import IOCase, Limits, judge_assert_tests, judge_io_cases
    from judge.math import judge_math

    if kind == "constraints":
        text = spec if isinstance(spec, str) else json.dumps(spec)
        results = cons.check_all(response, cons.loads(text))
        failed = [f"{r.id}: {r.reason}" for r in results if not r.ok]
        return not failed, "; ".join(failed) or f"all {len(results)} constraints followed"
    limits = Limits(wall_seconds=cfg.wall_seconds)
    unsafe = cfg.unsafe_no_sandbox
    if kind == "tests":
        verdict = judge_assert_tests(
            extract_code(response), str(spec), limits, unsafe_no_sandbox=unsafe
        )
        return verdict.passed, verdict.reason
    if kind == "io":
        if not isinstance(spec, list) or not all(
            isinstance(c, dict) and "stdin" in c and "stdout" in c for c in spec
        ):
            raise ValueError(f"{cfg.io_key}: expected a list of {{stdin, stdout}} objects")
        cases = [IOCase(str(c["stdin"]), str(c["stdout"])) for c in spec]
        verdict = judge_io_cases(extract_code(response), cases, limits, unsafe_no_sandbox=unsafe)
        return verdict.passed, verdict.reason
    verdict = judge_math(response, spec, time_limit=cfg.math_time_limit)
    return verdict.correct, verdict.reason


@stage("judge.ground_truth", GroundTruthConfig, version="1", shardable=True)
def ground_truth_stage(ctx: StageContext, tables: Tables, cfg: GroundTruthConfig):
    """Math / code / constraint checks on rows that carry a reference, tests or constraints."""
    from helpsteer.constraints import ConstraintError
    from judge.code import SandboxUnavailable

    frame = _table(ctx, tables, cfg.table, ("response",))
    values: list[float | None] = []
    kinds: list[str | None] = []
    reasons: list[str | None] = []
    rejects: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    with ctx.reporter.task(f"{ctx.name}: checking", total=frame.height) as bar:
        for i, row in enumerate(frame.iter_rows(named=True)):
            kind, spec = _ground_truth(row, cfg)
            value, reason = None, None
            if kind is not None:
                try:
                    ok, reason = _check(kind, spec, row["response"], cfg)
                    value = 1.0 if ok else 0.0
                    tally = counts.setdefault(kind, {"passed": 0, "failed": 0})
                    tally["passed" if ok else "failed"] += 1
                except SandboxUnavailable as exc:
                    raise PipelineError(f"{ctx.name}: {exc}") from None
                except (ConstraintError, ValueError) as exc:
                    reason = f"unusable {kind} ground truth: {exc}"
                    rejects.append(
                        {"line": i, "reason": reason, "record": _record(id=_row_id(row, i))}
                    )
            values.append(value)
            kinds.append(kind)
            reasons.append(reason)
            bar.advance()
    _reject(ctx, cfg.table, rejects)
    ctx.info.update(checked=counts, without_ground_truth=kinds.count(None))
    return {
        cfg.table: frame.with_columns(
            pl.Series(cfg.column, values, dtype=pl.Float64),
            pl.Series(f"{cfg.column}_kind", kinds, dtype=pl.String),
            pl.Series(f"{cfg.column}_reason", reasons, dtype=pl.String),
        )
    }
