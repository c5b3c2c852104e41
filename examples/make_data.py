"""Regenerate the example annotations in examples/data (seeded, so the output is stable).

python examples/make_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from helpsteer.testing import raw_hs3_preferences, raw_preferences, raw_ratings

HERE = Path(__file__).parent / "data"
MULTI_TURN = (
    "Can you recommend a book about {t}?\n<extra_id_1>Assistant\nSure, what level are you at?"
    "\n<extra_id_1>User\nA beginner. Something short, please."
)


def _with_multi_turn(frame: pl.DataFrame, every: int = 10) -> pl.DataFrame:
    """Turn every n-th item's prompt into a two-turn HelpSteer2 flat prompt."""
    key = "item_id" if "item_id" in frame.columns else "pair_id"
    number = pl.col(key).str.extract(r"(\d+)$").cast(pl.Int64)
    return frame.with_columns(
        pl.when(number % every == 0)
        .then(pl.format(MULTI_TURN.replace("{t}", "{}"), number))
        .otherwise(pl.col("prompt"))
        .alias("prompt")
    )


def _lines(frame: pl.DataFrame) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in frame.iter_rows(named=True)]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    ratings = _with_multi_turn(raw_ratings(120, 3, seed=7, n_annotators=12, noise=0.7))
    # a third of the items get two more annotators, as HelpSteer2 does for disagreements
    extra = _with_multi_turn(raw_ratings(120, 5, seed=7, n_annotators=12, noise=0.7))
    extra = extra.filter(pl.int_range(pl.len()) % 5 >= 3).filter(
        pl.col("item_id").str.extract(r"(\d+)$").cast(pl.Int64) % 3 == 0
    )
    extra = extra.join(
        ratings.select("item_id", "annotator_id"), on=["item_id", "annotator_id"], how="anti"
    )
    lines = _lines(pl.concat([ratings, extra]))
    bad = dict(json.loads(lines[0]), annotator_id="annotator-99", helpfulness=6)
    lines += [json.dumps(bad), '{"item_id": "item-1", "prompt": "truncated line']
    (HERE / "raw_ratings.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    prefs = _with_multi_turn(raw_preferences(60, 3, seed=8, n_annotators=12, noise=0.8))
    lines = _lines(prefs)
    lines.append(
        json.dumps(
            dict(json.loads(lines[0]), annotator_id="annotator-98", preference_strength=-100)
        )
    )
    (HERE / "raw_preferences.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_hs3()


def write_hs3() -> None:
    """HelpSteer3-style raw preferences: 3-5 annotators per pair, each with a score and
    reasoning, across the four domains; plus two rows the build must reject."""
    three = raw_hs3_preferences(48, 3, seed=9, n_annotators=20, noise=0.7)
    # a quarter of the pairs get two more annotators, as HelpSteer3 does for disagreements
    five = raw_hs3_preferences(48, 5, seed=9, n_annotators=20, noise=0.7)
    extra = five.filter(pl.int_range(pl.len()) % 5 >= 3).filter(
        pl.col("pair_id").str.extract(r"(\d+)$").cast(pl.Int64) % 4 == 1
    )
    extra = extra.join(
        three.select("pair_id", "annotator_id"), on=["pair_id", "annotator_id"], how="anti"
    )
    frame = pl.concat([three, extra]).sort(
        pl.col("pair_id").str.extract(r"(\d+)$").cast(pl.Int64), maintain_order=True
    )
    lines = _lines(frame)
    first = json.loads(lines[0])
    lines.append(json.dumps(dict(first, annotator_id="annotator-97", score=5)))
    lines.append(
        json.dumps(
            dict(first, annotator_id="annotator-96", context=[{"role": "bot", "content": "hi"}])
        )
    )
    (HERE / "hs3_raw_preferences.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
