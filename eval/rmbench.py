"""RM-Bench (THU-KEG/RM-Bench): style-robustness of reward models and judges.

Each prompt has three chosen and three rejected answers, in the same order of styles:
concise, detailed (plain text), detailed (markdown). Every chosen answer is compared with
every rejected one, giving a 3x3 matrix per prompt (rows: chosen style, columns: rejected
style); a cell is 1 when the chosen answer is strictly preferred. Per domain the matrices
are averaged, and, as RM-Bench's `scripts/utils.py` (`compute_accuracy`, lines 85-106)
defines them:

- Hard = mean of the upper triangle (a plainer chosen answer against a fancier rejected
  one), Normal = mean of the diagonal (same style), Easy = mean of the lower triangle;
- a domain's score is the mean of its Easy, Normal and Hard;
- domains are chat, code, math and safety, where safety holds both safety-refuse and
  safety-response (`split_dataset_by_domain`, lines 35-45, matches by prefix);
- Easy, Normal, Hard and the overall score are the means over the domains (lines 58-66;
  the README's "Overall = (Chat + Code + Math + Safety) / 4").

Reward models score all six answers once and cells compare scores strictly (a tie is
wrong, as in `compute_accuracy`). LLM judges compare each of the nine (chosen, rejected)
pairs in both orders; a cell is 1 only for a consistent win of the chosen answer, so a
tie, an inconsistent pair or an unparsable verdict is wrong there too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from eval.common import EvalError

STYLES = ("concise", "detailed", "markdown")
DOMAINS = ("chat", "code", "math", "safety")
COLUMNS = ("prompt", "chosen", "rejected", "domain")
SIZE = len(STYLES)


# ------------------------------------------------------------------ loading


def load_rmbench(source: str | Path, split: str = "train") -> pl.DataFrame:
    """Rows of `total_dataset.json` (the GitHub `data/` file or the Hub copy), a folder
    holding it (or the per-domain `*_filtered.json` files), or the Hub dataset id."""
    from eval.rewardbench import load_table

    path = Path(source)
    if path.is_dir():
        found = _dataset_file(path)
        frame = load_table(found, split, COLUMNS) if found else _domain_files(path)
    else:
        frame = load_table(source, split, COLUMNS)
    check_rows(frame, str(source))
    return frame


def _dataset_file(folder: Path) -> Path | None:
    for candidate in (folder / "total_dataset.json", folder / "data" / "total_dataset.json"):
        if candidate.is_file():
            return candidate
    return None


def _domain_files(folder: Path) -> pl.DataFrame:
    parts = sorted(folder.glob("*_filtered.json")) or sorted(folder.glob("data/*_filtered.json"))
    if not parts:
        raise EvalError(f"{folder}: no total_dataset.json or *_filtered.json (RM-Bench layout)")
    rows = []
    for part in parts:
        # The per-domain files may lack the domain field; it is the file name's prefix.
        domain = part.name.removesuffix("_filtered.json")
        try:
            records = json.loads(part.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvalError(f"{part}: cannot read: {exc}") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise EvalError(f"{part}: expected a JSON list of records")
        rows += [{"domain": domain, **r} for r in records]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise EvalError(f"{folder}: missing fields {missing} in the *_filtered.json records")
    if "id" not in frame.columns:
        frame = frame.with_row_index("id")
    return frame.with_columns(pl.col("id").cast(pl.Utf8))


def domain_of(name: str) -> str | None:
    """chat, code, math or safety (safety-refuse / safety-response), by prefix as RM-Bench
    splits them; None for anything else."""
    return next((d for d in DOMAINS if name.startswith(d)), None)


def check_rows(frame: pl.DataFrame, source: str) -> None:
    """Three chosen and three rejected strings per row and a known domain, else an error
    naming the row and field."""
    for i, row in enumerate(frame.select("id", *COLUMNS).iter_rows(named=True)):
        where = f"{source}: row {i} (id {row['id']})"
        if not isinstance(row["prompt"], str):
            raise EvalError(f"{where}: field 'prompt' must be a string")
        for field in ("chosen", "rejected"):
            value = row[field]
            if not isinstance(value, list) or len(value) != SIZE:
                raise EvalError(f"{where}: field {field!r} must be a list of {SIZE} answers")
            if not all(isinstance(v, str) for v in value):
                raise EvalError(f"{where}: field {field!r} must hold strings")
        if not isinstance(row["domain"], str) or domain_of(row["domain"]) is None:
            raise EvalError(
                f"{where}: field 'domain' is {row['domain']!r}; expected chat, code, math, "
                "safety-refuse or safety-response"
            )


# ------------------------------------------------------------------ scoring


def cells_from_scores(chosen: list[float], rejected: list[float]) -> list[list[float]]:
    """cell[i][j] = 1 when chosen style i scores strictly above rejected style j."""
    return [[1.0 if c > r else 0.0 for r in rejected] for c in chosen]


def difficulty(matrix: list[list[float]]) -> dict[str, float]:
    """Easy (lower triangle), Normal (diagonal), Hard (upper triangle) of a mean matrix."""
    pairs = SIZE * (SIZE - 1) / 2
    upper = sum(matrix[i][j] for i in range(SIZE) for j in range(SIZE) if j > i)
    lower = sum(matrix[i][j] for i in range(SIZE) for j in range(SIZE) if j < i)
    diagonal = sum(matrix[i][i] for i in range(SIZE))
    return {"easy": lower / pairs, "normal": diagonal / SIZE, "hard": upper / pairs}


def mean_matrix(cells: list[list[list[float]]]) -> list[list[float]]:
    n = len(cells)
    return [[sum(c[i][j] for c in cells) / n for j in range(SIZE)] for i in range(SIZE)]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-domain matrices and scores and the overall means, from rows with `domain` and
    `cells` (3x3)."""
    grouped: dict[str, list[list[list[float]]]] = {}
    for row in rows:
        grouped.setdefault(domain_of(row["domain"]) or row["domain"], []).append(row["cells"])
    domains = {}
    for name in [d for d in DOMAINS if d in grouped]:
        matrix = mean_matrix(grouped[name])
        levels = difficulty(matrix)
        score = (levels["easy"] + levels["normal"] + levels["hard"]) / 3
        domains[name] = {"matrix": matrix, **levels, "score": score, "examples": len(grouped[name])}
    out: dict[str, Any] = {"domains": domains}
    for key in ("easy", "normal", "hard", "score"):
        values = [d[key] for d in domains.values()]
        out[key] = sum(values) / len(values) if values else None
    out["complete"] = all(d in domains for d in DOMAINS)
    return out


def _classifier_cells(frame: pl.DataFrame, scorer: Any, reporter: Any) -> list[dict[str, Any]]:
    groups = [list(c) + list(r) for c, r in zip(frame["chosen"], frame["rejected"], strict=True)]
    scores = scorer.completions(frame["prompt"].to_list(), groups, reporter)
    return [
        {"scores_chosen": s[:SIZE], "scores_rejected": s[SIZE:],
         "cells": cells_from_scores(s[:SIZE], s[SIZE:])}
        for s in scores
    ]  # fmt: skip


def _judge_cells(frame: pl.DataFrame, scorer: Any, reporter: Any) -> list[dict[str, Any]]:
    prompts, chosen, rejected = [], [], []
    for prompt, cs, rs in frame.select("prompt", "chosen", "rejected").iter_rows():
        for c in cs:
            for r in rs:
                prompts.append(prompt)
                chosen.append(c)
                rejected.append(r)
    results = scorer.pairs(prompts, chosen, rejected, reporter).results
    per_cell = SIZE * SIZE
    out = []
    for k in range(frame.height):
        flat = results[k * per_cell : (k + 1) * per_cell]
        cells = [[1.0 if flat[i * SIZE + j] == 1.0 else 0.0 for j in range(SIZE)]
                 for i in range(SIZE)]  # fmt: skip
        out.append({"scores_chosen": None, "scores_rejected": None, "cells": cells})
    return out


def run_rmbench(
    source: str,
    out: Path,
    judge: str,
    split: str = "train",
    limit: int | None = None,
    domains: list[str] | None = None,
    reporter: Any = None,
    **judge_options: Any,
) -> dict[str, Any]:
    from eval.common import write_run
    from eval.scorers import make_scorer
    from helpsteer.atomic import atomic_path, write_text

    started = time.perf_counter()
    frame = load_rmbench(source, split)
    if domains:
        frame = frame.filter(pl.col("domain").map_elements(domain_of, pl.Utf8).is_in(domains))
    if limit:
        frame = frame.head(limit)
    if frame.is_empty():
        raise EvalError(f"{source}: no rows to score (after domain/limit filters)")
    scorer = make_scorer(judge, cache_dir=out / "llm_cache", **judge_options)
    try:
        if scorer.kind == "classifier":
            scored = _classifier_cells(frame, scorer, reporter)
        else:
            scored = _judge_cells(frame, scorer, reporter)
    finally:
        scorer.close()
    rows = [{"id": i, "domain": d, **s}
            for i, d, s in zip(frame["id"], frame["domain"], scored, strict=True)]  # fmt: skip
    with atomic_path(out / "scores.parquet") as tmp:
        pl.DataFrame(rows).write_parquet(tmp)
    results = {**summary(rows), "model": scorer.name, "examples": frame.height,
               "judge_kind": scorer.kind}  # fmt: skip
    config = {"judge": judge, "source": str(source), "split": split, "limit": limit,
              "domains": domains, **judge_options}  # fmt: skip
    document = write_run(out, "rm-bench", results, config, started)
    difficulty_plot({document["model"]: document}, out / "difficulty.png")
    write_text(out / "report.md", markdown_report(document))
    return document


# ------------------------------------------------------------------ report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def markdown_report(document: dict[str, Any]) -> str:
    lines = [
        f"# RM-Bench: {document['model']}",
        "",
        f"{document['examples']} prompts from {document['config']['source']}. "
        f"Score **{_pct(document['score'])}** (easy {_pct(document['easy'])}, normal "
        f"{_pct(document['normal'])}, hard {_pct(document['hard'])}).",
        "",
        "| domain | score | easy | normal | hard | prompts |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in document["domains"].items():
        lines.append(
            f"| {name} | {_pct(d['score'])} | {_pct(d['easy'])} | {_pct(d['normal'])} "
            f"| {_pct(d['hard'])} | {d['examples']} |"
        )
    lines += ["", "Style matrices (rows: chosen style, columns: rejected style):", ""]
    for name, d in document["domains"].items():
        lines += [f"**{name}**", "", "| chosen \\ rejected | " + " | ".join(STYLES) + " |",
                  "|---|---|---|---|"]  # fmt: skip
        for style, row in zip(STYLES, d["matrix"], strict=True):
            lines.append(f"| {style} | " + " | ".join(_pct(v) for v in row) + " |")
        lines.append("")
    if not document.get("complete"):
        lines.append("Not every domain was run: the overall score is over the domains present.")
    lines.append("![difficulty](difficulty.png)")
    return "\n".join(lines) + "\n"


def difficulty_plot(documents: dict[str, dict[str, Any]], path: Path) -> None:
    """Easy / Normal / Hard / overall bars, one group per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpsteer.atomic import atomic_path

    levels = ("easy", "normal", "hard", "score")
    width = 0.8 / max(1, len(documents))
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=100)
    for k, (name, doc) in enumerate(documents.items()):
        xs = [i + k * width for i in range(len(levels))]
        ax.bar(xs, [100 * (doc.get(level) or 0.0) for level in levels], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(levels))])
    ax.set_xticklabels(["Easy", "Normal", "Hard", "Overall"])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("RM-Bench")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
