"""Scores from AlpacaEval annotations that already exist (`hs eval alpaca-eval
--annotations`).

Reads annotation files as `alpaca_eval` writes them (`annotations.json`, also `.json.gz`
or JSON Lines): `instruction`, `output_1` (the baseline's answer), `output_2` (the
model's), `generator_1`, `generator_2`, `preference` in [1, 2] (1 = output_1 better, 2 =
output_2 better, continuous for weighted annotators, 1.5 or 0 = a draw). Rows are grouped
by `generator_2`, the model being compared, even when it is the baseline itself.

Per model, the AlpacaEval leaderboard's numbers (`alpaca_eval/metrics/winrate.py`
`get_winrate` with `helpers.py` `AbsoluteScoringRule.describe_head2head` and
`ZeroOneScoringRule`):

- preferences outside [1, 2] (a failed annotation, NaN) are left out; 0 means a draw;
- `win_rate` = 100 x mean(preference - 1); `standard_error` = 100 x its standard error
  (sample standard deviation / sqrt(n)); `n_wins` / `n_wins_base` = preferences above /
  below 1.5; `n_draws` = preferences equal to 1.5 (or 0); `n_total` = rows kept;
- `discrete_win_rate`: the same after rounding each preference to 1 or 2 (a draw stays
  1.5);
- `avg_length`: mean character length of the model's outputs, truncated to an integer;
- `length_controlled_winrate` and `lc_standard_error`: alpaca_eval's own GLM
  (`metrics/glm_winrate.py`, `length_controlled_v1`), when both outputs are known and the
  GLM's reference data (`df_gamed.csv` of the `tatsu-lab/alpaca_eval` Hub dataset) is
  given with `--glm-data` or already in the Hugging Face cache; otherwise left empty, and
  the results say why.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eval.common import EvalError

REQUIRED = ("instruction", "generator_2", "preference")
LEADERBOARD_COLUMNS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws",
                       "n_total", "discrete_win_rate", "mode", "avg_length",
                       "length_controlled_winrate", "lc_standard_error")  # fmt: skip
# alpaca_eval.evaluate labels a run it scores itself "community" (current_leaderboard_mode).
MODE = "community"


# ------------------------------------------------------------------ reading


def _read_text(path: Path) -> str:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise EvalError(f"{path}: cannot read: {exc}") from None


def read_records(path: Path, what: str) -> list[dict[str, Any]]:
    """A JSON list of records, or JSON Lines; errors name the file and record or line."""
    text = _read_text(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise EvalError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    else:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise EvalError(f"{path}: expected a JSON list of {what}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise EvalError(f"{path}: record {i}: expected a JSON object")
    return rows


def _preference(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalError(f"{where}: field 'preference' must be a number, got {value!r:.40}")
    return float(value)


def read_annotations(path: Path) -> list[dict[str, Any]]:
    """Checked annotation records of one file."""
    rows = read_records(path, "annotations")
    if not rows:
        raise EvalError(f"{path}: no annotations")
    out = []
    for i, row in enumerate(rows):
        where = f"{path}: record {i}"
        missing = [f for f in REQUIRED if f not in row]
        if missing:
            raise EvalError(f"{where}: missing field(s) {', '.join(missing)}")
        if not isinstance(row["generator_2"], str) or not isinstance(row["instruction"], str):
            raise EvalError(f"{where}: fields 'instruction' and 'generator_2' must be strings")
        for field in ("output_1", "output_2"):
            if row.get(field) is not None and not isinstance(row[field], str):
                raise EvalError(f"{where}: field {field!r} must be a string")
        out.append({**row, "preference": _preference(row["preference"], where), "_where": where})
    return out


def fill_outputs(rows: list[dict[str, Any]], outputs_file: Path) -> None:
    """Take `output_2` from a model_outputs.json (matched by instruction) where the
    annotations lack it."""
    by_instruction = {}
    for i, r in enumerate(read_records(outputs_file, "model outputs")):
        if not isinstance(r.get("instruction"), str) or not isinstance(r.get("output"), str):
            raise EvalError(f"{outputs_file}: record {i}: needs string 'instruction', 'output'")
        by_instruction[r["instruction"]] = r["output"]
    for row in rows:
        if row.get("output_2") is None and row["instruction"] in by_instruction:
            row["output_2"] = by_instruction[row["instruction"]]


def group_by_model(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows per generator_2, in file order; the same instruction twice for one model is an
    error naming both places."""
    groups: dict[str, list[dict[str, Any]]] = {}
    seen: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["generator_2"], row["instruction"])
        if key in seen:
            raise EvalError(
                f"{row['_where']}: model {key[0]!r} has this instruction already "
                f"({seen[key]}); give each model's annotations once"
            )
        seen[key] = row["_where"]
        groups.setdefault(row["generator_2"], []).append(row)
    return groups


# ------------------------------------------------------------------ metrics


def _sem(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def _is_draw(p: float) -> bool:
    return p in (1.5, 0.0)


def _discrete(p: float) -> float:
    """1, 2 or 1.5 (a draw), or a value outside [1, 2] that is no preference: a draw is
    set to 0 before rounding and 0 after rounding reads as a draw, as in
    ZeroOneScoringRule (Python's round is half-to-even like pandas')."""
    if math.isnan(p):
        return math.nan
    rounded = 0 if _is_draw(p) else round(p)
    return 1.5 if rounded == 0 else float(rounded)


def win_rates(preferences: list[float]) -> dict[str, Any]:
    """AlpacaEval's head-to-head numbers from the preferences of one model."""
    draws = sum(1 for p in preferences if _is_draw(p))
    shifted = [(1.5 if p == 0.0 else p) - 1 for p in preferences]
    kept = [s for s in shifted if 0 <= s <= 1]
    discrete = [d - 1 for d in map(_discrete, preferences) if 1 <= d <= 2]
    n = len(kept)
    return {
        "win_rate": 100 * sum(kept) / n if n else math.nan,
        "standard_error": 100 * _sem(kept),
        "n_wins": sum(1 for s in kept if s > 0.5),
        "n_wins_base": sum(1 for s in kept if s < 0.5),
        "n_draws": draws,
        "n_total": n,
        "discrete_win_rate": 100 * sum(discrete) / len(discrete) if discrete else math.nan,
    }


def glm_data_path(given: Path | None) -> Path | None:
    """df_gamed.csv: the given file, or the copy in the Hugging Face cache."""
    if given is not None:
        if not given.is_file():
            raise EvalError(f"{given}: no such GLM data file (df_gamed.csv)")
        return given
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache("tatsu-lab/alpaca_eval", "df_gamed.csv", repo_type="dataset")
    return Path(found) if isinstance(found, str) else None


@contextlib.contextmanager
def _glm_reads(path: Path) -> Iterator[Any]:
    """alpaca_eval's GLM fetches df_gamed.csv with hf_hub_download; point that one call at
    the local file so the length-controlled win rate is alpaca_eval's own, offline."""
    from eval.harness import _ensure_pkg_resources

    _ensure_pkg_resources()
    from alpaca_eval.metrics import glm_winrate

    original = glm_winrate.hf_hub_download
    glm_winrate.hf_hub_download = lambda *a, **k: str(path)
    try:
        yield glm_winrate
    finally:
        glm_winrate.hf_hub_download = original


def length_controlled(rows: list[dict[str, Any]], glm_data: Path | None) -> dict[str, Any]:
    """alpaca_eval's length-controlled win rate, or why it is missing."""
    if any(not isinstance(r.get(f), str) for r in rows for f in ("output_1", "output_2")):
        return {"lc_note": "needs output_1 and output_2 for every annotation"}
    if glm_data is None:
        return {"lc_note": "needs df_gamed.csv of tatsu-lab/alpaca_eval (--glm-data FILE)"}
    import logging

    import pandas as pd

    frame = pd.DataFrame(
        {
            "preference": [r["preference"] for r in rows],
            "output_1": [r["output_1"] for r in rows],
            "output_2": [r["output_2"] for r in rows],
            "generator_1": [r.get("generator_1", "baseline") for r in rows],
            "generator_2": [r["generator_2"] for r in rows],
        }
    )
    logging.getLogger().setLevel(logging.ERROR)  # alpaca_eval logs each fit at INFO
    with _glm_reads(glm_data) as glm:
        try:
            metrics = glm.get_length_controlled_winrate(
                frame, save_weights_dir=None, is_add_glm_preference_inplace=False
            )
        except (KeyError, ValueError, IndexError) as exc:
            return {"lc_note": f"alpaca_eval's GLM failed on these annotations: {exc}"}
    return {
        "length_controlled_winrate": float(metrics["length_controlled_winrate"]),
        "lc_standard_error": float(metrics["lc_standard_error"]),
    }


def model_row(rows: list[dict[str, Any]], glm_data: Path | None) -> dict[str, Any]:
    row = win_rates([r["preference"] for r in rows])
    row["mode"] = MODE
    lengths = [len(r["output_2"]) for r in rows if isinstance(r.get("output_2"), str)]
    row["avg_length"] = int(sum(lengths) / len(lengths)) if lengths else None
    row.update({"length_controlled_winrate": None, "lc_standard_error": None})
    row.update(length_controlled(rows, glm_data))
    row["baselines"] = sorted({str(r.get("generator_1")) for r in rows})
    return row


def leaderboard_csv(models: dict[str, dict[str, Any]]) -> str:
    """The AlpacaEval leaderboard CSV: unnamed model column, then its columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *LEADERBOARD_COLUMNS])
    for name, row in models.items():
        cells = [row.get(c) for c in LEADERBOARD_COLUMNS]
        writer.writerow([name, *["" if v is None or v != v else v for v in cells]])
    return buffer.getvalue()


def _ranked(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def key(item: tuple[str, dict[str, Any]]) -> float:
        lc = item[1].get("length_controlled_winrate")
        value = lc if lc is not None else item[1]["win_rate"]
        return -value if value == value else math.inf

    return dict(sorted(models.items(), key=key))


def score_annotations(
    paths: list[Path], out: Path, glm_data: Path | None = None, outputs: list[Path] | None = None
) -> dict[str, Any]:
    """leaderboard.csv, results.json, report.md, win_rates.png and manifest.json in `out`."""
    from eval.common import write_run
    from helpsteer.atomic import write_text

    started = time.perf_counter()
    files = expand(paths)
    rows = [row for path in files for row in read_annotations(path)]
    for path in outputs or []:
        fill_outputs(rows, path)
    for path in files:
        beside = path.parent / "model_outputs.json"
        for candidate in (beside, beside.with_suffix(".json.gz")):
            if candidate.is_file():
                fill_outputs([r for r in rows if r["_where"].startswith(f"{path}:")], candidate)
    glm = glm_data_path(glm_data)
    models = _ranked({m: model_row(g, glm) for m, g in group_by_model(rows).items()})
    write_text(out / "leaderboard.csv", leaderboard_csv(models))
    results = {"model": ", ".join(models), "models": models, "annotations": len(rows),
               "annotators": sorted({str(r.get("annotator")) for r in rows if "annotator" in r}),
               "metric": "length_controlled_winrate" if any(
                   m["length_controlled_winrate"] is not None for m in models.values())
               else "win_rate"}  # fmt: skip
    config = {"annotations": [str(f) for f in files], "glm_data": str(glm) if glm else None,
              "model_outputs": [str(p) for p in outputs or []]}  # fmt: skip
    document = write_run(out, "alpaca-eval", _json_safe(results), config, started)
    win_rate_plot({m: v for m, v in models.items()}, out / "win_rates.png")
    write_text(out / "report.md", markdown_report(document))
    return document


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for every annotations.json[.gz] below it."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("annotations.json")) + sorted(
                path.rglob("annotations.json.gz")
            )
            if not found:
                raise EvalError(f"{path}: no annotations.json or annotations.json.gz below it")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EvalError(f"{path}: no such file or folder")
    return files


def _json_safe(value: Any) -> Any:
    """NaN (e.g. the standard error of one annotation) becomes null in results.json."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------ report


def _fmt(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def markdown_report(document: dict[str, Any]) -> str:
    lines = [
        f"# AlpacaEval from {len(document['config']['annotations'])} annotation file(s)",
        "",
        f"{document['annotations']} annotations; annotators: "
        f"{', '.join(document['annotators']) or 'unknown'}.",
        "",
        "| model | LC win rate | win rate | std. error | wins | base wins | draws | total "
        "| discrete | avg length |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for name, m in document["models"].items():
        lines.append(
            f"| {name} | {_fmt(m['length_controlled_winrate'])} | {_fmt(m['win_rate'])} "
            f"| {_fmt(m['standard_error'])} | {m['n_wins']} | {m['n_wins_base']} "
            f"| {m['n_draws']} | {m['n_total']} | {_fmt(m['discrete_win_rate'])} "
            f"| {m['avg_length'] if m['avg_length'] is not None else 'n/a'} |"
        )
        if m.get("lc_note"):
            notes.append(f"- {name}: no length-controlled win rate: {m['lc_note']}")
    lines += ["", *notes, "", "![win rates](win_rates.png)"]
    return "\n".join(lines) + "\n"


def win_rate_plot(models: dict[str, dict[str, Any]], path: Path) -> None:
    """Horizontal bars of the win rate (and the length-controlled one where known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpsteer.atomic import atomic_path

    names = list(models)[::-1]
    height = 0.4
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(names)), dpi=100)
    ys = range(len(names))
    ax.barh([y + height / 2 for y in ys], [models[n]["win_rate"] or 0 for n in names], height,
            label="win rate")  # fmt: skip
    lc = [models[n].get("length_controlled_winrate") for n in names]
    if any(v is not None for v in lc):
        ax.barh([y - height / 2 for y in ys], [v or 0 for v in lc], height, label="LC win rate")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize="small")
    ax.set_xlabel("% preferred over the baseline")
    ax.set_title("AlpacaEval")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
