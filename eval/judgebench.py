"""JudgeBench (ScalerLab/JudgeBench): can a judge tell the objectively correct answer?

Each pair has a question, `response_A`, `response_B` and a `label` ("A>B" or "B>A"). The
judge sees the pair in both orders. JudgeBench's rule (`utils/metrics.py`,
`compute_final_metrics`, lines 64-76): each order adds +1 when its verdict (mapped back to
the pair's order) equals the label and -1 when it is the reversed label; a tie or a missing
verdict adds 0. The pair is correct when the sum is positive, incorrect when negative, and
a tie otherwise; accuracy is correct pairs / all pairs. Categories follow the `source`
prefixes that `run_judge.py` reports (mmlu-pro -> knowledge, livebench-reasoning ->
reasoning, livebench-math -> math, livecodebench -> coding); the overall accuracy is over
all pairs, so each category weighs by its number of pairs.

Reward models score both answers once; the same verdict holds in both orders, so a win
counts +2 and equal scores 0 (wrong), as JudgeBench's reward judges
(`utils/judges.py`: "A>B" only when score_A > score_B) give in two games.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from eval.common import EvalError

COLUMNS = ("pair_id", "source", "question", "response_A", "response_B", "label")
LABELS = ("A>B", "B>A")
CATEGORIES = {
    "mmlu-pro": "knowledge",
    "livebench-reasoning": "reasoning",
    "livebench-math": "math",
    "livecodebench": "coding",
}


def category_of(source: str) -> str | None:
    return next((c for prefix, c in CATEGORIES.items() if source.startswith(prefix)), None)


def load_judgebench(source: str | Path, split: str = "gpt") -> pl.DataFrame:
    """Pairs from the repository's `data/*.jsonl`, a folder in Hub layout, or the Hub id
    (splits `gpt` and `claude`)."""
    from eval.rewardbench import load_table

    frame = load_table(source, split, COLUMNS)
    for i, row in enumerate(frame.select(*COLUMNS).iter_rows(named=True)):
        where = f"{source}: row {i} (pair_id {row['pair_id']})"
        for field in ("question", "response_A", "response_B", "source"):
            if not isinstance(row[field], str):
                raise EvalError(f"{where}: field {field!r} must be a string")
        if row["label"] not in LABELS:
            raise EvalError(f"{where}: field 'label' is {row['label']!r}; expected A>B or B>A")
        if category_of(row["source"]) is None:
            raise EvalError(
                f"{where}: field 'source' is {row['source']!r}; expected a prefix of "
                + ", ".join(CATEGORIES)
            )
    return frame


# ------------------------------------------------------------------ scoring


def vote(verdict: str | None, correct: str) -> int:
    """+1 for the correct side ("A"/"B"), -1 for the other side, 0 for a tie or nothing."""
    if verdict not in ("A", "B"):
        return 0
    return 1 if verdict == correct else -1


def pair_outcome(total: int) -> str:
    return "correct" if total > 0 else "incorrect" if total < 0 else "tie"


def votes_from_scores(pairs: Any, kind: str) -> list[int]:
    """The summed vote of each (correct, wrong) pair, shown to the judge as (A, B).

    LLM judges keep both orders' verdicts in `raw` (verdict_ab, verdict_ba, both already in
    the pair's own order); classifiers have scores; any other judge counts its one result
    in both orders (1 -> +2, 0 -> -2, 0.5 -> 0)."""
    raw = pairs.raw or []
    if raw and all("verdict_ab" in r and "verdict_ba" in r for r in raw):
        return [vote(r["verdict_ab"], "A") + vote(r["verdict_ba"], "A") for r in raw]
    if kind == "classifier":
        return [
            2 if c > r else -2 if c < r else 0
            for c, r in zip(pairs.chosen, pairs.rejected, strict=True)
        ]
    return [2 if x == 1.0 else -2 if x == 0.0 else 0 for x in pairs.results]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per category and overall from rows with `category` and `vote`."""
    out: dict[str, Any] = {"categories": {}}
    for name in [*CATEGORIES.values(), None]:
        members = [r for r in rows if name is None or r["category"] == name]
        if not members:
            continue
        counts = {k: sum(1 for r in members if pair_outcome(r["vote"]) == k)
                  for k in ("correct", "incorrect", "tie")}  # fmt: skip
        entry = {"accuracy": counts["correct"] / len(members), "pairs": len(members), **counts}
        if name is None:
            out.update(entry)
        else:
            out["categories"][name] = entry
    return out


def run_judgebench(
    source: str,
    out: Path,
    judge: str,
    split: str = "gpt",
    limit: int | None = None,
    reporter: Any = None,
    **judge_options: Any,
) -> dict[str, Any]:
    from eval.common import write_run
    from eval.scorers import make_scorer
    from helpsteer.atomic import atomic_path, write_text

    started = time.perf_counter()
    frame = load_judgebench(source, split)
    if limit:
        frame = frame.head(limit)
    if frame.is_empty():
        raise EvalError(f"{source}: no pairs to judge")
    # The judge sees (correct, wrong); both orders are asked, so nothing is lost by this.
    triples = frame.select("label", "response_A", "response_B").iter_rows()
    correct, wrong = [], []
    for label, a, b in triples:
        correct.append(a if label == "A>B" else b)
        wrong.append(b if label == "A>B" else a)
    scorer = make_scorer(judge, cache_dir=out / "llm_cache", **judge_options)
    try:
        pairs = scorer.pairs(frame["question"].to_list(), correct, wrong, reporter)
    finally:
        scorer.close()
    votes = votes_from_scores(pairs, scorer.kind)
    rows = [
        {"pair_id": p, "source": s, "category": category_of(s), "label": lab, "vote": v,
         "outcome": pair_outcome(v)}
        for p, s, lab, v in zip(frame["pair_id"], frame["source"], frame["label"], votes,
                                strict=True)
    ]  # fmt: skip
    with atomic_path(out / "scores.parquet") as tmp:
        pl.DataFrame(rows).write_parquet(tmp)
    results = {**summary(rows), "model": scorer.name, "judge_kind": scorer.kind}
    config = {"judge": judge, "source": str(source), "split": split, "limit": limit,
              **judge_options}  # fmt: skip
    document = write_run(out, "judgebench", results, config, started)
    category_plot({document["model"]: document}, out / "categories.png")
    write_text(out / "report.md", markdown_report(document))
    return document


# ------------------------------------------------------------------ report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def markdown_report(document: dict[str, Any]) -> str:
    lines = [
        f"# JudgeBench: {document['model']}",
        "",
        f"{document['pairs']} pairs from {document['config']['source']} (split "
        f"{document['config']['split']}), both orders. Accuracy **{_pct(document['accuracy'])}**.",
        "",
        "| category | accuracy | pairs | correct | incorrect | tie |",
        "|---|---|---|---|---|---|",
    ]
    entries = {**document["categories"], "overall": document}
    for name, c in entries.items():
        lines.append(
            f"| {name} | {_pct(c['accuracy'])} | {c['pairs']} | {c['correct']} "
            f"| {c['incorrect']} | {c['tie']} |"
        )
    lines += ["", "![categories](categories.png)"]
    return "\n".join(lines) + "\n"


def category_plot(documents: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy per category and overall, one bar group per judge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpsteer.atomic import atomic_path

    names = [*CATEGORIES.values(), "overall"]
    width = 0.8 / max(1, len(documents))
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=100)
    for k, (label, doc) in enumerate(documents.items()):
        cats = doc.get("categories", {})
        values = [(cats.get(n) or {}).get("accuracy") for n in names[:-1]]
        values.append(doc.get("accuracy"))
        xs = [i + k * width for i in range(len(names))]
        ax.bar(xs, [100 * (v or 0.0) for v in values], width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels(names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("JudgeBench")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
