"""The dataset card: README.md (Hub front matter, counts, histograms, agreement, lengths)
and PNG plots."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from helpsteer.atomic import atomic_path, write_text
from helpsteer.attributes import ATTRIBUTES
from helpsteer.pipeline import StageContext, Tables

DEFAULT_CONFIGS = ("ratings", "preference", "hs3_preference")
"""The first of these that was exported opens with `load_dataset(folder)`: ratings, as
nvidia/HelpSteer2's default config does."""


def _front_matter(out_dir: Path, exported: set[str] | None, warn) -> str:
    """Hub `configs` so that `load_dataset(folder, name=...)` finds each export: those this
    run exported (`exported`; None: every export folder), not an earlier run's left in
    the folder, which `load_dataset(folder)` would otherwise open."""
    found = {}
    for fmt_dir in sorted(p for p in out_dir.iterdir() if p.is_dir() and p.name != "datasets"):
        if files := sorted(fmt_dir.glob("*.parquet")):
            if exported is None or fmt_dir.name in exported:
                found[fmt_dir.name] = files
            else:
                warn(f"{fmt_dir}: left by an earlier run, not written by this one; not in the card")
    default = next((name for name in DEFAULT_CONFIGS if name in found), None)
    lines = ["---", "configs:"]
    for name, files in found.items():
        lines += [f"- config_name: {name}"]
        if name == default:
            lines += ["  default: true"]
        lines += ["  data_files:"]
        lines += [f"  - split: {f.stem}\n    path: {name}/{f.name}" for f in files]
    return "\n".join([*lines, "---", ""])


def _exported(run_info: dict) -> set[str] | None:
    files = run_info.get("export", {}).get("files")
    return None if files is None else set(files)


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


HS3_TABLES = ("hs3_preference", "hs3_feedback", "hs3_edit", "hs3_edit_quality", "hs3_principle")


def _counts(tables: Tables) -> str:
    rows = []
    for name in ("ratings", "preference", *HS3_TABLES):
        if name in tables:
            by_split = dict(tables[name].group_by("split").len().iter_rows())
            rows.append([name, by_split.get("train", 0), by_split.get("validation", 0)])
    return _table(["table", "train", "validation"], rows)


def _histogram(tables: Tables) -> str:
    if "ratings" not in tables or not tables["ratings"].height:
        return ""
    ratings = tables["ratings"]
    rows = []
    for attribute in ATTRIBUTES:
        counts = dict(ratings[attribute].value_counts().iter_rows())
        rows.append([attribute, *[counts.get(v, 0) for v in range(5)], counts.get(None, 0)])
    return _table(["attribute", "0", "1", "2", "3", "4", "not ratable"], rows)


def _strengths(tables: Tables) -> str:
    rows = []
    for name, column in (
        ("preference", "preference_strength"),
        ("hs3_preference", "overall_preference"),
    ):
        if name in tables:
            counts = dict(tables[name][column].value_counts().iter_rows())
            rows.append([f"{name} pairs", *[counts.get(v, 0) for v in range(-3, 4)]])
    if not rows:
        return ""
    return _table(["strength", *[str(v) for v in range(-3, 4)]], rows)


def _hs3_breakdown(tables: Tables, run_info: dict) -> str | None:
    """HelpSteer3: rows per domain and language in every HelpSteer3 table, and the
    agreement of the raw scores per domain and language (after the pair filters)."""
    present = [n for n in HS3_TABLES if n in tables]
    if not present:
        return None
    parts = []
    for column in ("domain", "language"):
        counts = {
            name: dict(tables[name].group_by(pl.col(column).fill_null("(none)")).len().iter_rows())
            for name in present
        }
        values = sorted({v for c in counts.values() for v in c})
        rows = [[v, *[counts[n].get(v, 0) for n in present]] for v in values]
        parts += [f"\n### Rows by {column}\n", _table([column, *present], rows)]
    by = run_info.get("aggregate", {}).get("hs3_preference", {}).get("agreement_by") or {}
    rows = [
        [
            column,
            value,
            m["krippendorff_alpha"],
            m["cohen_kappa_quadratic"],
            m["pearson"],
            m["units"],
        ]
        for column, groups in by.items()
        for value, measures in groups.items()
        for m in [measures["score"]]
    ]
    if rows:
        header = [
            "by",
            "value",
            "Krippendorff α (ordinal)",
            "Cohen κ (quadratic)",
            "Pearson r",
            "pairs",
        ]
        parts += ["\n### Agreement by domain and language\n", _table(header, rows)]
    return "\n".join(parts)


def _agreement(run_info: dict) -> str:
    info = run_info.get("aggregate", {})
    rows = []
    for kind in ("ratings", "preference", "hs3_preference"):
        for when in ("before", "after"):
            for column, m in (info.get(kind, {}).get(f"agreement_{when}") or {}).items():
                rows.append(
                    [
                        kind,
                        column,
                        when,
                        m["krippendorff_alpha"],
                        m["cohen_kappa_quadratic"],
                        m["kappa_annotator_pairs"],
                        m["pearson"],
                        m["units"],
                    ]
                )
    if not rows:
        return "No raw annotations: agreement not measured."
    header = [
        "table",
        "label",
        "filtering",
        "Krippendorff α (ordinal)",
        "Cohen κ (quadratic)",
        "κ annotator pairs",
        "Pearson r",
        "items",
    ]
    return _table(header, rows)


def _lengths(tables: Tables) -> str:
    rows = []
    sources = {
        "ratings": ("prompt", "response"),
        "preference": ("prompt", "response_1", "response_2"),
        "hs3_preference": ("response1", "response2"),
    }
    for name, columns in sources.items():
        if name not in tables:
            continue
        stats = (
            tables[name]
            .select(
                [
                    pl.struct(
                        words=pl.col(c).str.count_matches(r"\S+").mean().round(1),
                        chars_median=pl.col(c).str.len_chars().median(),
                        chars_p95=pl.col(c).str.len_chars().quantile(0.95),
                        chars_max=pl.col(c).str.len_chars().max(),
                    ).alias(c)
                    for c in columns
                ]
            )
            .row(0, named=True)
        )
        for column, s in stats.items():
            rows.append(
                [name, column, s["words"], s["chars_median"], s["chars_p95"], s["chars_max"]]
            )
    return _table(["table", "field", "mean words", "median chars", "p95 chars", "max chars"], rows)


def _figure(width: float, height: float, columns: int = 1):
    """A figure without pyplot: no global state, and a lighter import."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, columns, sharey=True) if columns > 1 else fig.subplots()


def _plots(tables: Tables) -> dict[str, bytes]:
    """file name -> PNG bytes, rendered in memory (see `prepare_card`)."""
    made = {}
    if "ratings" in tables:
        ratings = tables["ratings"]
        fig, axes = _figure(15, 3, len(ATTRIBUTES))
        for ax, attribute in zip(axes, ATTRIBUTES, strict=True):
            counts = dict(ratings[attribute].value_counts().iter_rows())
            ax.bar(range(5), [counts.get(v, 0) for v in range(5)], color="#4C72B0")
            ax.set_title(attribute)
            ax.set_xticks(range(5))
        axes[0].set_ylabel("items")
        made["attributes.png"] = _png(fig)
    if "preference" in tables:
        counts = dict(tables["preference"]["preference_strength"].value_counts().iter_rows())
        fig, ax = _figure(6, 3)
        ax.bar(range(-3, 4), [counts.get(v, 0) for v in range(-3, 4)], color="#DD8452")
        ax.set_xlabel("preference strength (negative: response 1 better)")
        ax.set_ylabel("pairs")
        made["preference_strength.png"] = _png(fig)
    return made


def _png(fig) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _save_plots(plots: dict[str, bytes], folder: Path) -> list[str]:
    made = []
    for name, png in plots.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(png)
        made.append(f"plots/{name}")
    return made


def _has_rows(tables: Tables) -> bool:
    return any(name in tables for name in ("ratings", "preference", *HS3_TABLES))


def prepare_card(tables: Tables, cfg) -> dict:
    """The card's parts that need only the tables: the plots (as PNG bytes) and the
    length statistics. The pipeline runs this in a thread beside the export, whose
    writes spend their time in polars' and pyarrow's native code with the GIL released
    (about 0.6 s of rendering off the critical path of the 1.3 M-annotation benchmark);
    nothing is written here, so the export's sweep of temporaries cannot race with it.
    """
    return {
        "plots": _plots(tables) if cfg.plots else {},
        "lengths": _lengths(tables) if _has_rows(tables) else "",
    }


def _hs3_section(tables: Tables, run_info: dict) -> str | None:
    breakdown = _hs3_breakdown(tables, run_info)
    if breakdown is None:
        return None
    return (
        "\n## HelpSteer3\n\nHelpSteer3 labels (`overall_preference`) follow the same rule "
        "as HelpSteer2-Preference: the rounded mean of the 3 most similar of 3-5 "
        "annotations, which are kept as `individual_preference`.\n" + breakdown
    )


BUILT_BY = "Built by `hs build-dataset` (helpsteer-workbench)."


def _provenance(run_info: dict, inputs: list) -> str:
    """What the labels are: HelpSteer2 aggregation of raw annotations, the inputs' own
    labels, or (below) what the synthetic stages did."""
    if _has_agreement(run_info):
        return (
            "Labels follow HelpSteer2: the rounded mean of the 3 most agreeing of 3-5 annotators."
        )
    if inputs:
        return "Labels are those of the inputs (already aggregated records)."
    return ""


def _has_agreement(run_info: dict) -> bool:
    info = run_info.get("aggregate", {})
    return any(
        info.get(kind, {}).get(f"agreement_{when}")
        for kind in ("ratings", "preference")
        for when in ("before", "after")
    )


def _stage_line(name: str, info: dict) -> str | None:
    """One bullet for a generating or judging stage; None for the other stages."""
    if not name.startswith(("synth.", "judge.")) and not {"llm", "judge_model"} & set(info):
        return None
    facts = []
    used = info.get("llm")
    for item in used if isinstance(used, list) else []:
        facts.append(f"model {item.get('backend')}:{item.get('model')}")
    if info.get("judge_model"):
        facts.append(f"judge model {info['judge_model']}")
    if info.get("pairing"):
        facts.append(info["pairing"])
    for key in ("prompts", "rated", "unparsed", "scored", "pairs"):
        if isinstance(info.get(key), int):
            facts.append(f"{key} {info[key]}")
    return f"- `{name}`: " + ("; ".join(facts) if facts else "ran")


def _how_made(run_info: dict) -> str:
    lines = [line for name, info in run_info.items() if (line := _stage_line(name, info))]
    return "\n".join(lines)


def _section(title: str, body: str) -> list[str]:
    """A `## title` section, or nothing when it would be empty."""
    return [f"\n## {title}\n", body] if body and body.strip() else []


def write_card(ctx: StageContext, tables: Tables, cfg) -> None:
    prepared = ctx.prepared(lambda: prepare_card(tables, cfg))
    plots = _save_plots(prepared["plots"], ctx.out_dir / "plots")
    load = ctx.run_info.get("load", {})
    inputs = load.get("inputs", [])
    input_rows = [
        [i["path"], i.get("kind"), i["rows"], i.get("accepted"), i.get("rejected")] for i in inputs
    ]
    has_rows = _has_rows(tables)
    sections = [
        _front_matter(ctx.out_dir, _exported(ctx.run_info), ctx.reporter.warn),
        f"# {cfg.title}\n",
        f"{BUILT_BY} {_provenance(ctx.run_info, inputs)}".rstrip() + "\n",
        *_section("How it was made", _how_made(ctx.run_info)),
        *_section(
            "Inputs",
            _table(["input", "read as", "rows", "accepted", "rejected"], input_rows)
            if input_rows
            else "",
        ),
        *_section("Counts", _counts(tables) if has_rows else ""),
        *_section("Attribute histograms", _histogram(tables)),
        *_section("Preference strength", _strengths(tables)),
        _hs3_section(tables, ctx.run_info) or "",
        *_section(
            "Annotator agreement",
            _agreement(ctx.run_info) if inputs or _has_agreement(ctx.run_info) else "",
        ),
        *_section("Lengths", prepared["lengths"]),
        *_section("Plots", "\n".join(f"![{Path(p).stem}]({p})" for p in plots)),
        "",
    ]
    write_text(ctx.out_dir / "README.md", "\n".join(sections))
