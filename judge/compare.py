"""`hs judge compare`: several judges over one labelled preference set.

Each judge gives every pair a prediction, "A", "B", "tie" or none (a discarded
inconsistent pair, an unparseable verdict, an LLM error). Reported per judge:

- accuracy: (correct + ties / 2) / pairs, so a judge cannot gain by abstaining or tying;
- accuracy_decided: correct / pairs it decided (A or B);
- coverage: pairs with any prediction / pairs; tie_rate: ties / pairs;
- position_consistency (pairwise LLM judges, and GenRM judges with `both_orders`): pairs
  with the same verdict in both orders / pairs with both verdicts parsed;
- accuracy by category (same definition as accuracy);
- cost and seconds per judgment (a judgment is one pair);
- the agreement matrix: for two judges, the share of pairs both predicted where the
  predictions are equal (ties included), with the number of such pairs.

The configuration (TOML) is validated before any model loads; see
`examples/judge_compare.toml`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from helpsteer.atomic import atomic_path
from helpsteer.llm import LLMConfig
from judge.genrm import GenRMSampling
from judge.llm_judge import SamplingConfig

PREDICTIONS_SCHEMA = {
    "pair_id": pl.String,
    "judge": pl.String,
    "prediction": pl.String,
    "consistent": pl.Boolean,
    "detail": pl.String,
    "score_a": pl.Float64,
    "score_b": pl.Float64,
}
"""`score_a`/`score_b`: the scores a scoring judge (reward model, single rating, GenRM)
gave each response, as numbers; null for verdict-only judges."""


# ------------------------------------------------------------------ configuration


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="Label in the report; unique.")


class LLMPairwiseSpec(_Spec):
    kind: Literal["llm_pairwise"]
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "pairwise"
    prompts_file: str | None = Field(None, description="FastChat judge_prompts.jsonl.")
    multi_turn_prompt: str | None = None
    policy: Literal["discard", "tie", "probability"] = "tie"
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


class LLMSingleSpec(_Spec):
    kind: Literal["llm_single"]
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "single"
    prompts_file: str | None = None
    multi_turn_prompt: str | None = "single-multi-turn"
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


class GenRMSpec(_Spec):
    """A generative reward model (Nemotron GenRM format; see judge/genrm.py)."""

    kind: Literal["genrm"]
    llm: LLMConfig = Field(default_factory=LLMConfig)
    prompt: str = "genrm"
    prompts_file: str | None = Field(None, description="Your GenRM prompts (.toml or .jsonl).")
    sampling: GenRMSampling = Field(default_factory=GenRMSampling)
    both_orders: bool = Field(False, description="Ask in both orders (else a seeded one).")


class RewardSpec(_Spec):
    kind: Literal["reward"]
    model: str = Field(description="Local folder or Hub id of a sequence-classification RM.")
    attribute_weights: dict[str, float] | None = None
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(4096, ge=8)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    device: str = "cpu"


class RewardEndpointSpec(_Spec):
    kind: Literal["reward_endpoint"]
    model: str
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    attribute_weights: dict[str, float] | None = None


JudgeSpec = Annotated[
    LLMPairwiseSpec | LLMSingleSpec | GenRMSpec | RewardSpec | RewardEndpointSpec,
    Field(discriminator="kind"),
]


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal[
        "helpsteer2_preference", "reward_bench", "alpaca_eval", "hh_rlhf", "pairs", "bt", "dpo"
    ]
    path: str
    limit: int | None = Field(None, ge=1, description="Seeded sample of at most this many.")
    categories: list[str] | None = Field(None, description="Keep only these categories.")


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out: str = "out/judge-compare"
    seed: int = 0
    data: DataSpec
    judges: list[JudgeSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        names = [j.name for j in self.judges]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"judge names must be unique; repeated: {duplicated}")
        return self


# ------------------------------------------------------------------ metrics


def judge_metrics(pred: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per judge: pairs, correct, ties, decided, accuracy, accuracy_decided, coverage,
    tie_rate, position_consistency. `pred` has pair_id, judge, prediction, consistent."""
    joined = pred.join(pairs.select("pair_id", "label"), on="pair_id", how="inner")
    return (
        joined.group_by("judge", maintain_order=True)
        .agg(
            pl.len().alias("pairs"),
            (pl.col("prediction") == pl.col("label")).fill_null(False).sum().alias("correct"),
            (pl.col("prediction") == "tie").fill_null(False).sum().alias("ties"),
            pl.col("prediction").is_in(["A", "B"]).fill_null(False).sum().alias("decided"),
            pl.col("prediction").is_not_null().sum().alias("predicted"),
            pl.col("consistent").sum().alias("_consistent"),
            pl.col("consistent").is_not_null().sum().alias("_checked"),
        )
        .with_columns(
            ((pl.col("correct") + 0.5 * pl.col("ties")) / pl.col("pairs")).alias("accuracy"),
            (pl.col("correct") / pl.col("decided")).alias("accuracy_decided"),
            (pl.col("predicted") / pl.col("pairs")).alias("coverage"),
            (pl.col("ties") / pl.col("pairs")).alias("tie_rate"),
            pl.when(pl.col("_checked") > 0)
            .then(pl.col("_consistent") / pl.col("_checked"))
            .alias("position_consistency"),
        )
        .drop("_consistent", "_checked")
        .with_columns(pl.col("accuracy_decided").fill_nan(None))
    )


def category_accuracy(pred: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Accuracy (ties count half) per judge and category."""
    joined = pred.join(pairs.select("pair_id", "label", "category"), on="pair_id")
    score = pl.when(pl.col("prediction") == pl.col("label")).then(1.0)
    score = score.when(pl.col("prediction") == "tie").then(0.5).otherwise(0.0)
    return (
        joined.with_columns(score.alias("_score"))
        .group_by("judge", "category", maintain_order=True)
        .agg(pl.len().alias("pairs"), pl.col("_score").mean().alias("accuracy"))
        .sort("judge", "category", maintain_order=True)
    )


def agreement_matrix(pred: pl.DataFrame, judges: Sequence[str]) -> dict[str, dict[str, Any]]:
    """agreement[a][b] = {"rate": share equal among pairs both predicted, "pairs": n}."""
    wide = pred.pivot(on="judge", index="pair_id", values="prediction")
    out: dict[str, dict[str, Any]] = {}
    for a in judges:
        out[a] = {}
        for b in judges:
            both = wide.filter(pl.col(a).is_not_null() & pl.col(b).is_not_null())
            rate = (both[a] == both[b]).mean() if both.height else None
            out[a][b] = {"rate": rate, "pairs": both.height}
    return out


# ------------------------------------------------------------------ running judges


class JudgeRun:
    """Predictions of one judge, with what it cost."""

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.cost_usd = 0.0
        self.usage: dict[str, Any] = {}

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=PREDICTIONS_SCHEMA)


def _client(llm: LLMConfig, cache_dir: Path):
    from helpsteer.llm.shared import shared_client

    if llm.cache_dir is None:
        llm = llm.model_copy(update={"cache_dir": cache_dir})
    return shared_client(llm)


def _prompt(name: str | None, path: str | None):
    from judge.llm_judge import load_prompt

    return load_prompt(name, path) if name else None


def run_llm_pairwise(spec: LLMPairwiseSpec, pairs: pl.DataFrame, cache: Path, reporter) -> JudgeRun:
    from judge.llm_judge import PairItem, PairwiseJudge, UsageSnapshot

    client = _client(spec.llm, cache)
    judge = PairwiseJudge(
        client,
        _prompt(spec.prompt, spec.prompts_file),
        policy=spec.policy,
        sampling=spec.sampling,
        multi_turn_prompt=_prompt(spec.multi_turn_prompt, spec.prompts_file),
    )
    items = [
        PairItem(r["pair_id"], r["messages"], r["response_a"], r["response_b"])
        for r in pairs.iter_rows(named=True)
    ]
    run, usage = JudgeRun(spec.name, spec.kind), UsageSnapshot(client).start()
    for result in judge.judge(items, reporter=_labelled(reporter, spec.name)):
        o = result.outcome
        run.rows.append(
            {
                "pair_id": result.item_id,
                "judge": spec.name,
                "prediction": o.winner,
                "consistent": result.consistent,
                "detail": f"first {o.first_order}; {o.reason}",
            }
        )
    _account(run, usage.stop())
    return run


def run_llm_single(spec: LLMSingleSpec, pairs: pl.DataFrame, cache: Path, reporter) -> JudgeRun:
    from judge.llm_judge import SingleItem, SingleJudge, UsageSnapshot

    client = _client(spec.llm, cache)
    judge = SingleJudge(
        client,
        _prompt(spec.prompt, spec.prompts_file),
        sampling=spec.sampling,
        multi_turn_prompt=_prompt(spec.multi_turn_prompt, spec.prompts_file),
    )
    items = []
    for r in pairs.iter_rows(named=True):
        items.append(SingleItem(r["pair_id"] + "/a", r["messages"], r["response_a"]))
        items.append(SingleItem(r["pair_id"] + "/b", r["messages"], r["response_b"]))
    run, usage = JudgeRun(spec.name, spec.kind), UsageSnapshot(client).start()
    results = judge.judge(items, reporter=_labelled(reporter, spec.name))
    for pair_id, (a, b) in zip(
        pairs["pair_id"], zip(results[::2], results[1::2], strict=True), strict=True
    ):
        run.rows.append(
            {
                "pair_id": pair_id,
                "judge": spec.name,
                "prediction": _from_scores(a.score, b.score),
                "consistent": None,
                "detail": f"A {a.score if a.score is not None else a.reason}; "
                f"B {b.score if b.score is not None else b.reason}",
                "score_a": a.score,
                "score_b": b.score,
            }
        )
    _account(run, usage.stop())
    return run


def run_genrm(spec: GenRMSpec, pairs: pl.DataFrame, cache: Path, reporter) -> JudgeRun:
    from judge.genrm import GenRMJudge, load_genrm_prompt
    from judge.llm_judge import PairItem, UsageSnapshot

    client = _client(spec.llm, cache)
    judge = GenRMJudge(
        client,
        load_genrm_prompt(spec.prompt, spec.prompts_file),
        sampling=spec.sampling,
        both_orders=spec.both_orders,
    )
    items = [
        PairItem(r["pair_id"], r["messages"], r["response_a"], r["response_b"])
        for r in pairs.iter_rows(named=True)
    ]
    run, usage = JudgeRun(spec.name, spec.kind), UsageSnapshot(client).start()
    for result in judge.compare(items, reporter=_labelled(reporter, spec.name)):
        v = result.vote
        scores = "n/a" if v.scores is None else ", ".join(f"{s:.2f}" for s in v.scores)
        run.rows.append(
            {
                "pair_id": result.item_id,
                "judge": spec.name,
                "prediction": v.side,
                "consistent": result.consistent,
                "detail": f"orders {'/'.join(result.orders)}; scores {scores}; "
                f"ranking {v.ranking}; votes {v.votes}; {v.reason}",
                **_pair_scores(v.scores),
            }
        )
    _account(run, usage.stop())
    return run


def _pair_scores(scores) -> dict[str, float | None]:
    if scores is None or len(scores) != 2:
        return {"score_a": None, "score_b": None}
    return {"score_a": float(scores[0]), "score_b": float(scores[1])}


def _from_scores(a: float | None, b: float | None) -> str | None:
    if a is None or b is None:
        return None
    return "A" if a > b else "B" if b > a else "tie"


def _conversations(pairs: pl.DataFrame) -> list[list[dict]]:
    out = []
    for r in pairs.iter_rows(named=True):
        for side in ("response_a", "response_b"):
            out.append([*r["messages"], {"role": "assistant", "content": r[side]}])
    return out


def run_reward(spec: RewardSpec, pairs: pl.DataFrame, reporter) -> JudgeRun:
    from judge.reward import RewardJudge, RewardModelError

    started = time.perf_counter()
    try:
        judge = RewardJudge(
            spec.model,
            attribute_weights=spec.attribute_weights,
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            dtype=spec.dtype,
            device=spec.device,
        )
        scores = judge.score(_conversations(pairs), reporter=reporter)
    except RewardModelError as exc:
        raise CompareError(f"judge {spec.name!r}: {exc}") from None
    return _score_run(spec, pairs, scores, time.perf_counter() - started)


def run_reward_endpoint(spec: RewardEndpointSpec, pairs: pl.DataFrame, reporter) -> JudgeRun:
    import os

    from judge.reward import RewardEndpointJudge, RewardModelError

    started = time.perf_counter()
    judge = RewardEndpointJudge(
        spec.model,
        spec.base_url,
        api_key=os.environ.get(spec.api_key_env),
        attribute_weights=spec.attribute_weights,
    )
    conversations = _conversations(pairs)
    scores = []
    with reporter.task(f"{spec.name}: reward endpoint", total=len(conversations)) as bar:
        for conversation in conversations:
            try:
                scores.append(float(judge.score([conversation])[0]))
            except RewardModelError as exc:
                raise CompareError(f"judge {spec.name!r}: {exc}") from None
            bar.advance()
    return _score_run(spec, pairs, scores, time.perf_counter() - started)


def _score_run(spec, pairs: pl.DataFrame, scores, seconds: float) -> JudgeRun:
    run = JudgeRun(spec.name, spec.kind)
    flat = [float(s) for s in scores]
    for i, pair_id in enumerate(pairs["pair_id"]):
        a, b = flat[2 * i], flat[2 * i + 1]
        run.rows.append(
            {
                "pair_id": pair_id,
                "judge": spec.name,
                "prediction": _from_scores(a, b),
                "consistent": None,
                "detail": f"A {a:.4f}; B {b:.4f}",
                "score_a": a,
                "score_b": b,
            }
        )
    run.seconds = seconds
    return run


def _account(run: JudgeRun, spent: dict[str, Any]) -> None:
    run.seconds = spent.get("wall_s", 0.0)
    run.cost_usd = spent.get("cost_usd", 0.0)
    run.usage = {
        k: spent[k]
        for k in ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "errors")
    }


class _labelled:
    """A reporter whose bars carry the judge's name."""

    def __init__(self, reporter, name: str):
        self.reporter, self.name = reporter, name

    def task(self, description: str, total: float | None = None):
        return self.reporter.task(f"{self.name}: {description}", total)


class CompareError(ValueError):
    """A comparison that cannot run (bad data, unusable judge); one line for the user."""


def run_judge(spec, pairs: pl.DataFrame, cache: Path, reporter) -> JudgeRun:
    if isinstance(spec, LLMPairwiseSpec):
        return run_llm_pairwise(spec, pairs, cache, reporter)
    if isinstance(spec, LLMSingleSpec):
        return run_llm_single(spec, pairs, cache, reporter)
    if isinstance(spec, GenRMSpec):
        return run_genrm(spec, pairs, cache, reporter)
    if isinstance(spec, RewardSpec):
        return run_reward(spec, pairs, reporter)
    return run_reward_endpoint(spec, pairs, reporter)


# ------------------------------------------------------------------ config file


def load_config(path: Path, overrides: Sequence[str] = ()) -> CompareConfig:
    """The TOML config with `--set` overrides applied: `out=DIR`, `data.limit=50`,
    `judges.<name>.policy=discard`; relative paths resolve against the config's folder."""
    import tomllib

    from pydantic import ValidationError

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CompareError(f"{path}: not valid TOML: {exc}") from None
    for item in overrides:
        _override(raw, item)
    _resolve_paths(raw, path.parent)
    try:
        return CompareConfig.model_validate(raw)
    except ValidationError as exc:
        from helpsteer.overrides import validation_lines

        # the first problem only, with a did-you-mean for a mistyped key
        raise CompareError(f"{path}: {validation_lines(exc, CompareConfig)[0].strip()}") from None


def _override(raw: dict, item: str) -> None:
    """Like any `--set`, except that `judges.NAME.key` addresses a judge by its name."""
    from helpsteer.overrides import OverrideError, set_path, split_item

    try:
        parts, value = split_item(item)
        target = raw
        if parts[0] == "judges" and len(parts) > 2:
            judges = raw.get("judges", [])
            target = next((j for j in judges if j.get("name") == parts[1]), None)
            if target is None:
                names = [j.get("name") for j in judges]
                raise OverrideError(
                    f"--set {item!r}: no judge named {parts[1]!r} (judges: {names})"
                )
            parts = parts[2:]
        set_path(target, parts, value, item)
    except OverrideError as exc:
        raise CompareError(str(exc)) from None


def _resolve_paths(raw: dict, base: Path) -> None:
    def resolve(value: str) -> str:
        candidate = Path(value).expanduser()
        if candidate.is_absolute() or not (base / candidate).exists():
            return value
        return str(base / candidate)

    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = resolve(data["path"])
    for judge in raw.get("judges", []):
        for key in ("model", "prompts_file"):
            if isinstance(judge, dict) and isinstance(judge.get(key), str):
                judge[key] = resolve(judge[key])


# ------------------------------------------------------------------ the whole run


def load_pairs(cfg: CompareConfig):
    from judge.datasets import DatasetError, load, sample

    try:
        loaded = load(cfg.data.format, cfg.data.path, seed=cfg.seed)
    except DatasetError as exc:
        raise CompareError(str(exc)) from None
    pairs = loaded.pairs
    if cfg.data.categories:
        pairs = pairs.filter(pl.col("category").is_in(cfg.data.categories))
    pairs = sample(pairs, cfg.data.limit, cfg.seed)
    if pairs.height == 0:
        raise CompareError(
            f"{cfg.data.path}: no usable labelled pairs "
            f"(excluded {loaded.excluded}, rejected {len(loaded.rejected)})"
        )
    return loaded, pairs


def run_compare(cfg: CompareConfig, reporter) -> dict[str, Any]:
    """Run every judge, write the report folder, return the summary document."""
    out = Path(cfg.out)
    started = time.perf_counter()
    loaded, pairs = load_pairs(cfg)
    runs = []
    for spec in cfg.judges:
        try:
            runs.append(run_judge(spec, pairs, out / ".llm-cache", reporter))
        except ValueError as exc:  # JudgeError, PromptError: configuration problems
            raise CompareError(f"judge {spec.name!r}: {exc}") from None
    pred = pl.concat([r.frame() for r in runs])
    document = summarise(cfg, loaded, pairs, pred, runs)
    document["seconds"] = round(time.perf_counter() - started, 3)
    write_report(out, document, pred, pairs, loaded.rejected)
    return document


def summarise(cfg: CompareConfig, loaded, pairs: pl.DataFrame, pred: pl.DataFrame, runs) -> dict:
    names = [r.name for r in runs]
    metrics = {r["judge"]: r for r in judge_metrics(pred, pairs).to_dicts()}
    for run in runs:
        metrics[run.name].update(
            kind=run.kind,
            seconds=round(run.seconds, 3),
            seconds_per_judgment=run.seconds / pairs.height,
            cost_usd=run.cost_usd,
            cost_per_judgment_usd=run.cost_usd / pairs.height,
            llm=run.usage or None,
        )
    by_category: dict[str, dict[str, Any]] = {}
    for r in category_accuracy(pred, pairs).iter_rows(named=True):
        by_category.setdefault(r["judge"], {})[r["category"]] = {
            "pairs": r["pairs"],
            "accuracy": r["accuracy"],
        }
    return {
        "data": {
            **cfg.data.model_dump(),
            "pairs": pairs.height,
            "excluded": loaded.excluded,
            "rejected": len(loaded.rejected),
            "categories": dict(pairs.group_by("category").len().sort("category").iter_rows()),
        },
        "judges": [metrics[n] for n in names],
        "by_category": by_category,
        "agreement": agreement_matrix(pred, names),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown_report(document: dict) -> str:
    data = document["data"]
    lines = [
        "# Judge comparison",
        "",
        f"{data['pairs']} labelled pairs from `{data['path']}` ({data['format']}); "
        f"excluded {data['excluded'] or 'none'}; unreadable rows {data['rejected']}.",
        "Accuracy counts a tie as half right; consistency is the share of pairs with the same "
        "verdict in both orders.",
        "",
        "| judge | kind | accuracy | accuracy (decided) | coverage | tie rate "
        "| position consistency | s / judgment | $ / judgment |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in document["judges"]:
        lines.append(
            f"| {m['judge']} | {m['kind']} | {_pct(m['accuracy'])} | "
            f"{_pct(m['accuracy_decided'])} | {_pct(m['coverage'])} | {_pct(m['tie_rate'])} | "
            f"{_pct(m['position_consistency'])} | {m['seconds_per_judgment']:.4f} | "
            f"{m['cost_per_judgment_usd']:.6f} |"
        )
    names = [m["judge"] for m in document["judges"]]
    categories = sorted({c for per in document["by_category"].values() for c in per})
    lines += ["", "## Accuracy by category", "", "| category | " + " | ".join(names) + " |"]
    lines.append("| --- " * (len(names) + 1) + "|")
    for category in categories:
        cells = [
            _pct(document["by_category"].get(n, {}).get(category, {}).get("accuracy"))
            for n in names
        ]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines += ["", "## Agreement between judges", "", "| | " + " | ".join(names) + " |"]
    lines.append("| --- " * (len(names) + 1) + "|")
    for a in names:
        cells = [
            f"{_pct(document['agreement'][a][b]['rate'])} ({document['agreement'][a][b]['pairs']})"
            for b in names
        ]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m["judge"] for m in document["judges"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    values = [m["accuracy"] for m in document["judges"]]
    left.barh(names, values, color="tab:blue")
    left.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    left.set_xlim(0, 1)
    left.set_xlabel("accuracy vs labels (tie = 1/2)")
    matrix = [[document["agreement"][a][b]["rate"] or 0.0 for b in names] for a in names]
    image = right.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    right.set_xticks(range(len(names)), names, rotation=45, ha="right")
    right.set_yticks(range(len(names)), names)
    right.set_title("agreement")
    fig.colorbar(image, ax=right)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_report(out: Path, document: dict, pred: pl.DataFrame, pairs, rejected) -> None:
    from helpsteer.atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    table = pred.join(pairs.select("pair_id", "label", "category"), on="pair_id", how="left")
    with atomic_path(out / "predictions.parquet") as tmp:
        table.write_parquet(tmp)
    with atomic_path(out / "predictions.jsonl") as tmp:
        table.write_ndjson(tmp)  # scores stay numbers (score_a, score_b), unrounded
    write_json(out / "report.json", document)
    write_text(out / "report.md", markdown_report(document))
    plot(document, out / "accuracy.png")
    if rejected:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected)
        write_text(out / "rejected.jsonl", lines)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    write_json(
        out / "manifest.json",
        {
            "command": "hs judge compare",
            "data": document["data"],
            "judges": [m["judge"] for m in document["judges"]],
            "seconds": document.get("seconds"),
            "versions": _versions(),
            "files": files,
        },
    )


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("helpsteer-workbench", "polars", "transformers", "torch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
