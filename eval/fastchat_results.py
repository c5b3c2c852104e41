"""Scores from MT-Bench judgment files that already exist (`hs eval mt-bench --judgments`).

Reads FastChat judgment JSONL (`.jsonl` or `.jsonl.gz`, as `gen_judgment.py` writes them,
with any judge) and reports what FastChat's `show_result.py` reports, unrounded:

- single grading (`model`, `score`, `turn`): per model the mean score of turn 1, of turn 2
  and of both; a score of -1 (unparsed) is dropped first (`display_result_single`);
- pairwise (`model_1`, `model_2`, `g1_winner`, `g2_winner`): rows where either game is
  "error" are dropped; a game is a tie when game 1 says tie or the two games disagree,
  else model_1 or model_2 wins; per model win / loss / tie, `win_rate`, `loss_rate` and
  `win_rate_adjusted` (a tie counts half) (`display_result_pairwise`). With a baseline
  only rows that involve it count and the baseline's own row is left out
  (pairwise-baseline); without one every pair counts (pairwise-all). `--model-list` keeps
  rows whose model_1 is listed, as show_result does.

Beyond show_result, each model also gets per-category numbers, with the categories read
from the benchmark's `question.jsonl` (FastChat's layout puts it one folder above
`model_judgment/`, or give the folder).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from eval.common import EvalError, read_jsonl

SINGLE_FIELDS = ("question_id", "model", "score", "turn")
PAIR_FIELDS = ("question_id", "model_1", "model_2", "g1_winner", "g2_winner")


def read_judgments(path: Path) -> list[dict[str, Any]]:
    """Records of one judgment file; a bad line names the file and line."""
    rows = read_jsonl(path, "judgments", _checked)
    if not rows:
        raise EvalError(f"{path}: no judgments")
    return rows


def _checked(row: dict[str, Any], where: str) -> dict[str, Any]:
    pairwise = "g1_winner" in row or "model_1" in row
    fields = PAIR_FIELDS if pairwise else SINGLE_FIELDS
    missing = [f for f in fields if f not in row]
    if missing:
        kind = "pairwise" if pairwise else "single"
        raise EvalError(f"{where}: a {kind} judgment needs field(s) {', '.join(missing)}")
    if not pairwise:
        score = row["score"]
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise EvalError(f"{where}: field 'score' must be a number, got {score!r:.40}")
        if row["turn"] not in (1, 2):
            raise EvalError(f"{where}: field 'turn' must be 1 or 2, got {row['turn']!r:.20}")
    return {**row, "_kind": "pairwise" if pairwise else "single", "_where": where}


def load_categories(folder: Path | None, judgment_files: list[Path]) -> dict[int, str]:
    """question_id -> category from question.jsonl in `folder`, else beside the judgment
    files in FastChat's layout (`data/mt_bench/model_judgment/X.jsonl` next to
    `data/mt_bench/question.jsonl`); empty when none is found."""
    from eval.common import read_jsonl

    candidates = [folder / "question.jsonl"] if folder else []
    candidates += [p.resolve().parent.parent / "question.jsonl" for p in judgment_files]
    candidates += [p.resolve().parent / "question.jsonl" for p in judgment_files]
    for path in candidates:
        if path.is_file():
            rows = read_jsonl(path, "questions")
            return {r["question_id"]: r.get("category", "unknown") for r in rows}
    if folder:
        raise EvalError(f"{folder}: no question.jsonl")
    return {}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def single_results(
    rows: list[dict[str, Any]], categories: dict[int, str], model_list: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """show_result's single-mode numbers per model, plus categories and counts."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if model_list is None or row["model"] in model_list:
            by_model[row["model"]].append(row)
    out = {}
    for model, members in sorted(by_model.items()):
        valid = [r for r in members if r["score"] != -1]
        per_category: dict[str, list[float]] = defaultdict(list)
        for r in valid:
            per_category[categories.get(r["question_id"], "unknown")].append(r["score"])
        out[model] = {
            "score": _mean([r["score"] for r in valid]),
            "turn_1": _mean([r["score"] for r in valid if r["turn"] == 1]),
            "turn_2": _mean([r["score"] for r in valid if r["turn"] == 2]),
            "categories": {c: _mean(v) for c, v in sorted(per_category.items())},
            "judgments": len(members),
            "failed_parses": len(members) - len(valid),
            "judges": sorted({"/".join(map(str, r.get("judge") or ["?"])) for r in members}),
        }
    return out


def game_winner(row: dict[str, Any]) -> str:
    """'model_1', 'model_2' or 'tie' for one row, by show_result's rule. Files written by
    older hs versions name the winning model instead of model_1/model_2; both are read."""
    g1 = _side(row["g1_winner"], row)
    g2 = _side(row["g2_winner"], row)
    if g1 == "tie" or g1 != g2:
        return "tie"
    return "model_1" if g1 == "model_1" else "model_2"


def _side(winner: str, row: dict[str, Any]) -> str:
    if winner in ("model_1", "model_2", "tie", "error"):
        return winner
    if winner == row["model_1"]:
        return "model_1"
    if winner == row["model_2"]:
        return "model_2"
    raise EvalError(
        f"{row['_where']}: winner {winner!r} is none of model_1, model_2, tie, error or the "
        "two model names"
    )


def _tally(rows: list[dict[str, Any]], baseline: str | None) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"win": 0, "loss": 0, "tie": 0})
    for row in rows:
        winner = game_winner(row)
        m1, m2 = row["model_1"], row["model_2"]
        if winner == "tie":
            counts[m1]["tie"] += 1
            counts[m2]["tie"] += 1
        else:
            won, lost = (m1, m2) if winner == "model_1" else (m2, m1)
            counts[won]["win"] += 1
            counts[lost]["loss"] += 1
    out = {}
    for model, c in sorted(counts.items()):
        if model == baseline:
            continue
        total = c["win"] + c["loss"] + c["tie"]
        out[model] = {
            **c,
            "win_rate": c["win"] / total,
            "loss_rate": c["loss"] / total,
            "win_rate_adjusted": (c["win"] + 0.5 * c["tie"]) / total,
        }
    return out


def pairwise_results(
    rows: list[dict[str, Any]],
    categories: dict[int, str],
    baseline: str | None = None,
    model_list: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """show_result's pairwise numbers per model, plus per-turn and per-category ones."""
    kept = [r for r in rows if "error" not in (r["g1_winner"], r["g2_winner"])]
    if model_list is not None:
        kept = [r for r in kept if r["model_1"] in model_list]
    if baseline is not None:
        kept = [r for r in kept if baseline in (r["model_1"], r["model_2"])]
    out = _tally(kept, baseline)
    errors: dict[str, int] = defaultdict(int)
    for r in rows:
        if "error" in (r["g1_winner"], r["g2_winner"]):
            errors[r["model_1"]] += 1
            errors[r["model_2"]] += 1
    for turn in (1, 2):
        subset = [r for r in kept if r.get("turn", 1) == turn]
        for model, entry in _tally(subset, baseline).items():
            out[model][f"turn_{turn}"] = entry["win_rate_adjusted"]
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in kept:
        by_category[categories.get(r["question_id"], "unknown")].append(r)
    for category, subset in sorted(by_category.items()):
        for model, entry in _tally(subset, baseline).items():
            out[model].setdefault("categories", {})[category] = entry["win_rate_adjusted"]
    for model, entry in out.items():
        entry.setdefault("categories", {})
        entry["errors"] = errors.get(model, 0)
    return out


def score_judgments(
    files: list[Path],
    out: Path,
    bench: Path | None = None,
    baseline: str | None = None,
    model_list: list[str] | None = None,
) -> dict[str, Any]:
    """results.json (per model), report.md, radar.png and manifest.json in `out`."""
    from eval.common import write_run
    from eval.mtbench import radar_plot
    from helpsteer.atomic import write_text

    started = time.perf_counter()
    rows = [row for path in files for row in read_judgments(path)]
    kinds = {r["_kind"] for r in rows}
    if len(kinds) > 1:
        raise EvalError("the judgment files mix single and pairwise judgments; score them apart")
    categories = load_categories(bench, files)
    if kinds == {"single"}:
        mode = "single"
        models = single_results(rows, categories, model_list)
    else:
        mode = "pairwise-baseline" if baseline else "pairwise-all"
        models = pairwise_results(rows, categories, baseline, model_list)
    if not models:
        raise EvalError("no judgments left after the model list / baseline filters")
    judges = sorted({"/".join(map(str, r.get("judge") or ["?"])) for r in rows})
    results = {"model": ", ".join(models), "mode": mode, "models": models, "judges": judges,
               "baseline": baseline, "judgments": len(rows)}  # fmt: skip
    config = {"judgments": [str(f) for f in files], "bench": str(bench) if bench else None,
              "mode": mode, "baseline": baseline, "model_list": model_list,
              "judge": ", ".join(judges), "categories_found": bool(categories)}  # fmt: skip
    document = write_run(out, "mt-bench", results, config, started)
    radar = {m: v["categories"] for m, v in models.items()}
    if mode == "single":
        radar_plot(radar, out / "radar.png")
    write_text(out / "report.md", markdown_report(document))
    return document


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_report(document: dict[str, Any]) -> str:
    mode = document["mode"]
    lines = [
        f"# MT-Bench ({mode}) from {len(document['config']['judgments'])} judgment file(s)",
        "",
        f"Judges: {', '.join(document['judges'])}; {document['judgments']} judgments.",
        "",
    ]
    models = document["models"]
    if mode == "single":
        lines += ["| model | score | turn 1 | turn 2 | judgments | unparsed |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        ranked = sorted(models.items(), key=lambda kv: -(kv[1]["score"] or 0))
        for m, s in ranked:
            lines.append(
                f"| {m} | {_fmt(s['score'], 4)} | {_fmt(s['turn_1'], 4)} "
                f"| {_fmt(s['turn_2'], 4)} | {s['judgments']} | {s['failed_parses']} |"
            )
    else:
        lines += ["| model | win | loss | tie | win rate | loss rate | adjusted | errors |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        ranked = sorted(models.items(), key=lambda kv: -kv[1]["win_rate_adjusted"])
        for m, p in ranked:
            lines.append(
                f"| {m} | {p['win']} | {p['loss']} | {p['tie']} | {_fmt(p['win_rate'], 4)} "
                f"| {_fmt(p['loss_rate'], 4)} | {_fmt(p['win_rate_adjusted'], 4)} "
                f"| {p['errors']} |"
            )
    names = sorted({c for v in models.values() for c in v["categories"]})
    if names:
        lines += ["", "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for m, v in models.items():
            lines.append(
                f"| {m} | " + " | ".join(_fmt(v["categories"].get(c)) for c in names) + " |"
            )
    if mode == "single":
        lines += ["", "![radar](radar.png)"]
    return "\n".join(lines) + "\n"
