"""The leaderboard: every run's results.json under a folder, as Markdown and one static
HTML page (sortable tables, plots embedded as PNG, each entry's config and versions)."""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import RESULT_FILE, EvalError


@dataclass
class Entry:
    run: str
    """The run folder, relative to the results folder."""
    doc: dict[str, Any]

    @property
    def benchmark(self) -> str:
        return self.doc.get("benchmark", "unknown")


def collect(results: Path) -> list[Entry]:
    """Every results.json below `results`; an unreadable one is an error naming it."""
    if not results.is_dir():
        raise EvalError(f"{results}: not a folder")
    entries = []
    for path in sorted(results.rglob(RESULT_FILE)):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvalError(f"{path}: not a readable results file: {exc}") from None
        if not isinstance(doc, dict) or "benchmark" not in doc:
            raise EvalError(f"{path}: no 'benchmark' field; not a results file of hs eval")
        entries.append(Entry(str(path.parent.relative_to(results)) or ".", doc))
    if not entries:
        raise EvalError(f"{results}: no {RESULT_FILE} found in it or below")
    return entries


# ------------------------------------------------------------------ tables


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _num(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def rewardbench_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "score", "Chat", "Chat Hard", "Safety", "Reasoning", "with prior sets",
            "examples", "run"]  # fmt: skip
    rows = []
    for e in entries:
        d = e.doc
        s = d.get("sections", {})
        rows.append([d.get("model", ""), _pct(d.get("score")), _pct(s.get("Chat")),
                     _pct(s.get("Chat Hard")), _pct(s.get("Safety")), _pct(s.get("Reasoning")),
                     _pct(d.get("score_with_prior_sets")), str(d.get("examples", "")),
                     e.run])  # fmt: skip
    return head, rows


def rewardbench2_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    from eval.rewardbench import V2_SUBSETS

    head = ["model", "score", *V2_SUBSETS, "examples", "run"]
    rows = []
    for e in entries:
        d = e.doc
        subsets = d.get("subsets", {})
        rows.append([d.get("model", ""), _pct(d.get("score")),
                     *[_pct(subsets.get(s)) for s in V2_SUBSETS], str(d.get("examples", "")),
                     e.run])  # fmt: skip
    return head, rows


def rmbench_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    from eval.rmbench import DOMAINS

    head = ["model", "score", "easy", "normal", "hard", *DOMAINS, "prompts", "run"]
    rows = []
    for e in entries:
        d = e.doc
        domains = d.get("domains", {})
        rows.append([d.get("model", ""), _pct(d.get("score")), _pct(d.get("easy")),
                     _pct(d.get("normal")), _pct(d.get("hard")),
                     *[_pct((domains.get(x) or {}).get("score")) for x in DOMAINS],
                     str(d.get("examples", "")), e.run])  # fmt: skip
    return head, rows


def judgebench_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    from eval.judgebench import CATEGORIES

    names = list(CATEGORIES.values())
    head = ["judge", "accuracy", *names, "pairs", "split", "run"]
    rows = []
    for e in entries:
        d = e.doc
        cats = d.get("categories", {})
        rows.append([d.get("model", ""), _pct(d.get("accuracy")),
                     *[_pct((cats.get(n) or {}).get("accuracy")) for n in names],
                     str(d.get("pairs", "")), str(d.get("config", {}).get("split", "")),
                     e.run])  # fmt: skip
    return head, rows


def alpaca_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """AlpacaEval leaderboard columns, one row per model of each scored annotation set."""
    head = ["model", "LC win rate", "win rate", "std. error", "n_wins", "n_wins_base",
            "n_draws", "n_total", "discrete", "avg length", "run"]  # fmt: skip
    rows = []
    for e in entries:
        for model, m in e.doc.get("models", {}).items():
            rows.append([model, _num(m.get("length_controlled_winrate")),
                         _num(m.get("win_rate")), _num(m.get("standard_error")),
                         *[str(m.get(k, "")) for k in ("n_wins", "n_wins_base", "n_draws",
                                                       "n_total")],
                         _num(m.get("discrete_win_rate")), str(m.get("avg_length") or ""),
                         e.run])  # fmt: skip
    return head, rows


def _mtbench_model_rows(e: Entry) -> list[list[str]]:
    """Rows of a scored judgment file: one per model (single or pairwise)."""
    d, rows = e.doc, []
    judge = ", ".join(d.get("judges", []))
    for model, m in d["models"].items():
        if d.get("mode") == "single":
            rows.append([model, judge, _num(m.get("score")), _num(m.get("turn_1")),
                         _num(m.get("turn_2")), str(m.get("judgments", "")),
                         str(m.get("failed_parses", "")), e.run])  # fmt: skip
        else:
            against = f" vs {d['baseline']}" if d.get("baseline") else ""
            rows.append([model + against, judge, f"win {_pct(m.get('win_rate_adjusted'))}%",
                         _pct(m.get("turn_1")), _pct(m.get("turn_2")), "",
                         str(m.get("errors", "")), e.run])  # fmt: skip
    return rows


def mtbench_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "judge", "score", "turn 1", "turn 2", "questions", "unparsed", "run"]
    rows = []
    for e in entries:
        d, cfg = e.doc, e.doc.get("config", {})
        if "models" in d:
            rows += _mtbench_model_rows(e)
        elif "single" in d:
            s = d["single"]
            rows.append([d.get("model", ""), str(cfg.get("judge", "")), _num(s.get("score")),
                         _num(s.get("turn_1")), _num(s.get("turn_2")),
                         str(cfg.get("questions", "")), str(s.get("failed_parses", "")),
                         e.run])  # fmt: skip
        elif "pairwise" in d:
            p = d["pairwise"]
            rows.append([f"{d.get('model', '')} vs {d.get('baseline', '')}",
                         str(cfg.get("judge", "")), f"win {_pct(p.get('win_rate_adjusted'))}%",
                         "", "", str(cfg.get("questions", "")), str(p.get("errors", "")),
                         e.run])  # fmt: skip
    return head, rows


def aegis_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "safety judge", "unsafe %", "95% CI", "prompts", "malformed", "run"]
    rows = []
    for e in entries:
        d = e.doc
        o = d.get("overall", {})
        ci = o.get("ci95") or [None, None]
        rows.append([d.get("model", ""), d.get("safety_judge", ""), _pct(o.get("rate")),
                     f"{_pct(ci[0])} - {_pct(ci[1])}", str(d.get("total", "")),
                     str(d.get("malformed", "")), e.run])  # fmt: skip
    return head, rows


def harness_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    head = ["benchmark", "model", "task", "metric", "value", "run"]
    rows = []
    for e in entries:
        d = e.doc
        for task, metrics in sorted(d.get("metrics", {}).items()):
            for name, value in sorted(metrics.items()):
                shown = _num(value, 4) if isinstance(value, int | float) else str(value)
                rows.append([e.benchmark, d.get("model", ""), task, name, shown, e.run])
    return head, rows


SECTIONS = [
    ("rewardbench", "RewardBench", rewardbench_table),
    ("rewardbench2", "RewardBench 2", rewardbench2_table),
    ("rm-bench", "RM-Bench", rmbench_table),
    ("judgebench", "JudgeBench", judgebench_table),
    ("mt-bench", "MT-Bench", mtbench_table),
    ("alpaca-eval", "AlpacaEval (scored annotations)", alpaca_table),
    ("aegis", "AEGIS content safety", aegis_table),
    ("harness", "lm-eval and alpaca-eval", harness_table),
]


def _group(entries: list[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        key = e.benchmark
        # Generated alpaca-eval runs hold alpaca_eval's metrics; scored annotation sets
        # hold per-model leaderboard rows and get their own table.
        if key == "lm-eval" or (key == "alpaca-eval" and "models" not in e.doc):
            key = "harness"
        groups.setdefault(key, []).append(e)
    return groups


def markdown(entries: list[Entry], plots: dict[str, str]) -> str:
    lines = ["# Leaderboard", "", f"{len(entries)} runs; generated {_now()}.", ""]
    groups = _group(entries)
    for key, title, table in SECTIONS:
        if key not in groups:
            continue
        head, rows = table(groups[key])
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |"]
        lines += ["|" + "---|" * len(head)]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
        ]
        lines += [""]
        lines += [f"![{name}]({name})" for name in plots if name.startswith(key + "_")]
        lines += [""]
    return "\n".join(lines)


# ------------------------------------------------------------------ plots


def make_plots(entries: list[Entry], out: Path) -> dict[str, str]:
    """Combined plots across runs; returns file name -> caption."""
    groups = _group(entries)
    plots: dict[str, str] = {}
    rb = groups.get("rewardbench", [])
    if rb:
        _grouped_bars(
            {f"{e.doc.get('model')} ({e.run})": e.doc.get("sections", {}) for e in rb},
            out / "rewardbench_sections.png",
            "RewardBench sections (accuracy %)",
        )
        plots["rewardbench_sections.png"] = "RewardBench section accuracy by model"
    radar = {}
    for e in groups.get("mt-bench", []):
        if "single" in e.doc:
            radar[f"{e.doc.get('model')} ({e.run})"] = e.doc["single"]["categories"]
        elif e.doc.get("mode") == "single":
            radar.update({f"{m} ({e.run})": v["categories"] for m, v in e.doc["models"].items()})
    if radar:
        from eval.mtbench import radar_plot

        radar_plot(radar, out / "mt-bench_radar.png")
        plots["mt-bench_radar.png"] = "MT-Bench score by category"
    plots.update(_new_benchmark_plots(groups, out))
    for i, e in enumerate(groups.get("aegis", [])):
        from eval.aegis import category_plot

        name = f"aegis_{i}.png"
        category_plot(e.doc, out / name)
        plots[name] = f"AEGIS unsafe rate by prompt category: {e.doc.get('model')} ({e.run})"
    return plots


def _new_benchmark_plots(groups: dict[str, list[Entry]], out: Path) -> dict[str, str]:
    plots = {}
    if groups.get("rm-bench"):
        from eval.rmbench import difficulty_plot

        difficulty_plot({f"{e.doc.get('model')} ({e.run})": e.doc for e in groups["rm-bench"]},
                        out / "rm-bench_difficulty.png")  # fmt: skip
        plots["rm-bench_difficulty.png"] = "RM-Bench Easy / Normal / Hard / overall by model"
    if groups.get("judgebench"):
        from eval.judgebench import category_plot

        category_plot({f"{e.doc.get('model')} ({e.run})": e.doc for e in groups["judgebench"]},
                      out / "judgebench_categories.png")  # fmt: skip
        plots["judgebench_categories.png"] = "JudgeBench accuracy by category"
    if groups.get("alpaca-eval"):
        from eval.alpaca_results import win_rate_plot

        models = {f"{m} ({e.run})": v for e in groups["alpaca-eval"]
                  for m, v in e.doc["models"].items()}  # fmt: skip
        win_rate_plot(models, out / "alpaca-eval_win_rates.png")
        plots["alpaca-eval_win_rates.png"] = "AlpacaEval win rate (and LC win rate) by model"
    return plots


def _grouped_bars(series: dict[str, dict[str, float | None]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpsteer.atomic import atomic_path

    categories = list(dict.fromkeys(k for v in series.values() for k in v))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for i, (name, values) in enumerate(series.items()):
        xs = [c + i * width for c in range(len(categories))]
        ax.bar(xs, [100 * (values.get(c) or 0.0) for c in categories], width, label=name)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(categories))])
    ax.set_xticklabels(categories)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ------------------------------------------------------------------ HTML

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#eef;cursor:pointer;user-select:none}th:after{content:" \\2195";color:#999}
tr:nth-child(even){background:#f8f8f8}td.num{text-align:right}
details{margin:.3em 0}pre{background:#f4f4f4;padding:.6em;overflow:auto;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}"""

# Clicking a header sorts its table by that column; numbers sort as numbers, a second click
# reverses the order.
_SCRIPT = """document.querySelectorAll("table.sortable th").forEach(function(th,col){
th.addEventListener("click",function(){var body=th.closest("table").tBodies[0];
var rows=Array.from(body.rows);var dir=th.dataset.dir==="asc"?-1:1;
th.dataset.dir=dir>0?"asc":"desc";
rows.sort(function(a,b){var x=a.cells[col].textContent.trim(),y=b.cells[col].textContent.trim();
var nx=parseFloat(x),ny=parseFloat(y);if(!isNaN(nx)&&!isNaN(ny))return dir*(nx-ny);
return dir*x.localeCompare(y);});rows.forEach(function(r){body.appendChild(r);});});});"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(value: str) -> str:
        numeric = value.replace(".", "", 1).isdigit()
        return f"<td{' class=num' if numeric else ''}>{html.escape(value)}</td>"

    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table class=sortable><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption)
    image = f'<img alt="{alt}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{alt}</figcaption></figure>"


def page(entries: list[Entry], plots: dict[str, str], out: Path) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>helpsteer-workbench leaderboard</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Leaderboard</h1>",
        f"<p>{len(entries)} runs; generated {html.escape(_now())}. Click a column to sort.</p>",
    ]
    groups = _group(entries)
    for key, title, table in SECTIONS:
        if key not in groups:
            continue
        head, rows = table(groups[key])
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(head, rows)]
        parts += [_image(out / n, c) for n, c in plots.items() if n.startswith(key + "_")]
    parts.append("<h2>Runs: configuration and versions</h2>")
    for e in entries:
        info = {k: e.doc.get(k) for k in ("benchmark", "created", "config", "versions")}
        text = html.escape(json.dumps(info, indent=2, default=str))
        summary = html.escape(f"{e.benchmark}: {e.doc.get('model', '')} ({e.run})")
        parts.append(f"<details><summary>{summary}</summary><pre>{text}</pre></details>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def build_report(results: Path, out: Path) -> dict[str, Any]:
    """leaderboard.md, index.html, leaderboard.json and the plots in `out`."""
    from helpsteer.atomic import write_json, write_text

    entries = collect(results)
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots(entries, out)
    write_text(out / "leaderboard.md", markdown(entries, plots))
    write_text(out / "index.html", page(entries, plots, out))
    summary = {
        "runs": [
            {"run": e.run, "benchmark": e.benchmark, "model": e.doc.get("model")} for e in entries
        ],  # fmt: skip
        "plots": sorted(plots),
    }
    write_json(out / "leaderboard.json", summary)
    return summary
