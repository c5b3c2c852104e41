"""HelpSteer3 (issue 14 §1): read every Hub config, aggregate raw preferences, export.

No download: `tests/helpsteer/hs3_hub.py` writes a local folder in nvidia/HelpSteer3's
Hub layout; `datasets` reads it the way it reads the Hub.
"""

import json
from pathlib import Path

import datasets
import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer import aggregate as agg
from helpsteer import helpsteer3 as h3
from helpsteer.cli import app
from helpsteer.features import hub_features
from helpsteer.io import LINE, read_table
from helpsteer.records import ColumnError, Kind, detect_kind
from helpsteer.testing import raw_hs3_preferences
from tests.helpsteer.builders import write_jsonl
from tests.helpsteer.hs3_hub import CONFIGS, write_hub_folder

runner = CliRunner()
KIND_OF = {
    "preference": Kind.HS3_PREFERENCE,
    "feedback": Kind.HS3_FEEDBACK,
    "edit": Kind.HS3_EDIT,
    "edit_quality": Kind.HS3_EDIT_QUALITY,
    "principle": Kind.HS3_PRINCIPLE,
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return write_hub_folder(tmp_path_factory.mktemp("hs3") / "HelpSteer3")


def _build(*args):
    return runner.invoke(app, ["build-dataset", "-q", *map(str, args)])


def _build_every_config(hub, out):
    """A pipeline that reads all five configs of the Hub-layout folder."""
    inputs = ", ".join(f'{{path = "{hub}", config = "{c}"}}' for c in CONFIGS)
    config = out.parent / "hs3.toml"
    config.write_text(
        f'out = "{out}"\n[[stages]]\nuses = "load"\npreferences = [{inputs}]\n'
        + "".join(f'[[stages]]\nuses = "{s}"\n' for s in ("aggregate", "split", "export", "card"))
    )
    return _build(config)


def _numbered(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    return frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))


def _raw(pair, annotator, score, context=None, **extra):
    return {
        "pair_id": pair,
        "domain": "code",
        "language": "python",
        "context": [{"role": "user", "content": f"prompt of {pair}"}]
        if context is None
        else context,
        "response1": f"first of {pair}",
        "response2": f"second of {pair}",
        "annotator_id": annotator,
        "score": score,
        "reasoning": f"{annotator} thinks {score}. Because.",
        **extra,
    }


# --- reading the Hub layout -----------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_every_hub_config_is_recognised_and_reads_cleanly(hub, config):
    read = read_table(str(hub), config=config)
    kind = detect_kind(read.frame.columns, "preferences")
    assert kind == KIND_OF[config]
    checked = h3.validate(read.frame, kind)
    assert checked.rejected.height == 0, checked.rejected.to_dicts()
    assert checked.good.height == read.frame.height
    assert set(checked.good["split"]) == {"train", "validation"}


def test_hub_features_are_what_datasets_infers_from_the_hub_files(hub):
    for config in CONFIGS:
        loaded = datasets.load_dataset(str(hub), config)["train"]
        assert loaded.features == hub_features(f"hs3_{config}"), config


def test_detection_does_not_depend_on_the_role_and_names_missing_columns():
    columns = ["context", "response1", "response2", "individual_preference"]
    with pytest.raises(ColumnError, match="overall_preference"):
        detect_kind(columns, "ratings")
    raw = ["context", "response1", "response2", "annotator_id", "overall_preference"]
    with pytest.raises(ColumnError, match=r"'score' \(found 'overall_preference'"):
        detect_kind(raw, "preferences")
    # HelpSteer2 layouts are untouched
    assert detect_kind(["prompt", "response_1", "response_2", "preference_strength"], "x") == (
        Kind.PREFERENCE
    )


# --- aggregation ----------------------------------------------------------------------------


def _aggregated(scores: list[int]) -> dict:
    rows = [_raw("p", f"annotator-{i}", s) for i, s in enumerate(scores)]
    checked = h3.validate(_numbered(rows), Kind.HS3_RAW_PREFERENCES)
    return h3.aggregate_preferences(checked.good).row(0, named=True)


def test_the_cards_example_aggregates_to_its_overall_preference():
    assert _aggregated([-1, -3, -2])["overall_preference"] == -2


def test_overall_preference_is_the_rounded_mean_of_the_three_most_similar():
    # 5 annotators; the one who gave 3 and the one who gave -3 are the outliers
    pair = _aggregated([-1, -3, -2, 3, -1])
    kept = [item["score"] for item in pair["individual_preference"]]
    assert sorted(kept) == [-2, -1, -1]
    assert pair["overall_preference"] == agg.round_half_away(sum(kept) / 3) == -1
    assert pair["n_annotators"] == 5
    assert pair["spread3"] == 1
    assert [i["score"] for i in pair["all_individual_preference"]] == [-1, -3, -2, 3, -1]
    # the kept reasoning is each annotator's whole text, in file order
    assert pair["individual_preference"][0]["reasoning"] == "annotator-0 thinks -1. Because."


def test_the_rule_is_the_helpsteer2_preference_code():
    raw = raw_hs3_preferences(60, 5, seed=4, noise=1.2)
    hs3 = h3.aggregate_preferences(
        h3.validate(raw.pipe(_with_lines), Kind.HS3_RAW_PREFERENCES).good
    )
    as_hs2 = _with_lines(raw).with_columns(h3.prompt_key().alias("prompt"))
    as_hs2 = as_hs2.rename(
        {
            "score": "preference_strength",
            "reasoning": "justification",
            "response1": "response_1",
            "response2": "response_2",
        }
    )
    hs2 = agg.aggregate_preferences(as_hs2)
    joined = hs3.join(hs2, on="pair_id")
    assert joined.height == 60
    assert (joined["overall_preference"] == joined["preference_strength"]).all()


def _with_lines(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))


# --- bad input ------------------------------------------------------------------------------


def test_bad_rows_are_rejected_with_the_field_and_reason():
    rows = [
        _raw("ok", "a", 1),
        _raw("p1", "a", 1, context=[{"role": "assistant", "content": "hi"}]),
        _raw("p2", "a", 1, context=[{"role": "bot", "content": "hi"}]),
        _raw("p3", "a", 5),
        _raw("p4", "a", 1, context=[]),
        _raw("ok", "a", 2),  # the same annotator twice
    ]
    checked = h3.validate(_numbered(rows), Kind.HS3_RAW_PREFERENCES)
    reasons = dict(zip(checked.rejected["line"], checked.rejected["reason"], strict=True))
    assert checked.good.height == 1
    assert "last message is the assistant's" in reasons[2]
    assert "role 'bot'" in reasons[3]
    assert "score: 5.0 is outside -3..3" in reasons[4]
    assert "context: no messages" in reasons[5]
    assert "duplicate (pair_id, annotator_id) = (ok, a); first at line 1" in reasons[6]


def test_a_context_that_is_text_in_some_rows_is_judged_row_by_row(tmp_path):
    good = _raw("p", "a", 1)
    text = dict(_raw("q", "a", 1), context="just a string")
    path = write_jsonl(tmp_path / "mixed.jsonl", [good, text])
    read = read_table(str(path))
    checked = h3.validate(read.frame, detect_kind(read.frame.columns, "preferences"))
    assert checked.good["pair_id"].to_list() == ["p"]
    assert checked.good["context"].to_list() == [good["context"]]
    assert "context: expected messages" in checked.rejected["reason"][0]


def test_feedback_edit_and_principle_rules(hub):
    feedback = read_table(str(hub), config="feedback").frame.with_columns(
        pl.lit([], dtype=pl.List(pl.String)).alias("feedback1"),
        pl.lit([], dtype=pl.List(pl.String)).alias("feedback2"),
    )
    assert "no feedback at all" in h3.validate(feedback, Kind.HS3_FEEDBACK).rejected["reason"][0]
    principle = read_table(str(hub), config="principle").frame
    principle = principle.with_columns(pl.Series("fulfilment", ["yes", "maybe"]))
    checked = h3.validate(principle, Kind.HS3_PRINCIPLE)
    assert checked.good["fulfilment"].to_list() == ["Yes"]
    assert "expected Yes or No, got 'maybe'" in checked.rejected["reason"][0]


# --- hs build-dataset end to end ------------------------------------------------------------


def test_build_from_raw_preferences_writes_hub_bt_and_dpo(tmp_path):
    raw = raw_hs3_preferences(40, 4, seed=3)
    path = tmp_path / "raw.jsonl"
    raw.write_ndjson(path)
    out = tmp_path / "out"
    result = _build("--preferences", path, "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["tables"]["hs3_preference"] + manifest["counts"]["filtered"] == 40
    ours = datasets.load_dataset(str(out / "hs3_preference"))["train"]
    assert ours.features == hub_features("hs3_preference")
    bt = pl.read_parquet(out / "hs3_bt" / "train.parquet")
    hub = pl.read_parquet(out / "hs3_preference" / "train.parquet")
    decided = hub.filter(pl.col("overall_preference") != 0)
    assert bt.height == decided.height
    first = decided.row(0, named=True)
    winner = first["response1"] if first["overall_preference"] < 0 else first["response2"]
    assert bt["chosen"][0].to_list()[-1] == {"role": "assistant", "content": winner}
    assert bt["chosen"][0].to_list()[:-1] == first["context"]
    dpo = pl.read_parquet(out / "hs3_dpo" / "train.parquet")
    assert dpo.columns == ["prompt", "chosen", "rejected", "margin", "domain", "language"]
    assert (dpo["margin"] == decided["overall_preference"].abs().cast(pl.Float64)).all()
    card = (out / "README.md").read_text()
    assert "### Rows by domain" in card and "| multilingual |" in card
    assert "### Agreement by domain and language" in card


def test_exports_concatenate_with_the_hub_without_a_cast(hub, tmp_path):
    out = tmp_path / "out"
    result = _build_every_config(hub, out)
    assert result.exit_code == 0, result.output
    for config in CONFIGS:
        ours = datasets.load_from_disk(str(out / "datasets" / f"hs3_{config}"))["train"]
        theirs = datasets.load_dataset(str(hub), config)["train"]
        both = datasets.concatenate_datasets([ours, theirs])
        assert both.num_rows == ours.num_rows + theirs.num_rows, config


def test_edit_and_edit_quality_pairs(hub, tmp_path):
    out = tmp_path / "out"
    assert _build_every_config(hub, out).exit_code == 0
    sft = pl.read_parquet(out / "hs3_edit_sft" / "train.parquet").row(0, named=True)
    edit = pl.read_parquet(out / "hs3_edit" / "train.parquet").row(0, named=True)
    assert sft["prompt"][: len(edit["context"])] == edit["context"]
    assert sft["prompt"][-2] == {"role": "assistant", "content": edit["original_response"]}
    assert sft["prompt"][-1]["role"] == "user"
    assert edit["feedback"][1] in sft["prompt"][-1]["content"]
    assert sft["completion"] == [{"role": "assistant", "content": edit["edited_response"]}]
    pairs = pl.read_parquet(out / "hs3_edit_quality_dpo" / "train.parquet").row(0, named=True)
    quality = pl.read_parquet(out / "hs3_edit_quality" / "train.parquet").row(0, named=True)
    assert pairs["chosen"][0]["content"] == quality["good_edited_response"]
    assert pairs["rejected"][0]["content"] == quality["bad_edited_response"]


def test_domain_and_language_filters_send_rows_to_filtered(tmp_path):
    path = tmp_path / "raw.jsonl"
    raw_hs3_preferences(40, 3, seed=5).write_ndjson(path)
    out = tmp_path / "out"
    result = _build(
        "--preferences", path, "--out", out, "--set", "aggregate.domains=['Code', 'general']"
    )
    assert result.exit_code == 0, result.output
    kept = pl.read_parquet(out / "hs3_preference" / "*.parquet")
    assert set(kept["domain"]) == {"code", "general"}
    filtered = pl.read_ndjson(out / "filtered.jsonl")
    outside = filtered.filter(pl.col("reason").str.starts_with("domain not in"))
    assert outside.height == 20  # one entry per pair, not per annotation
    assert set(outside["kind"]) == {"hs3_preference"}


def test_a_file_that_matches_no_layout_is_reported_with_its_name(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"context": [], "response1": "a"}])
    out = tmp_path / "out"
    result = _build("--preferences", path, "--out", out)
    assert result.exit_code != 0
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["source"] == str(path)
    assert "read as hs3_preference: missing column(s) 'response2'" in rejected[0]["reason"]


def test_the_offline_example_builds_helpsteer3_exports(tmp_path):
    example = Path(__file__).parents[2] / "examples" / "build_helpsteer3.toml"
    out = tmp_path / "out"
    result = _build(example, "--set", f"out={out}")
    assert result.exit_code == 0, result.output
    for fmt in ("hs3_preference", "hs3_bt", "hs3_dpo"):
        assert (out / fmt / "train.parquet").exists(), fmt
    pairs = pl.read_parquet(out / "hs3_preference" / "*.parquet")
    assert pairs["individual_preference"].list.len().unique().to_list() == [3]
    assert set(pairs["domain"]) == {"general", "stem", "code", "multilingual"}
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in rejected) == [169, 170]
    manifest = json.loads((out / "manifest.json").read_text())
    aggregate = next(s for s in manifest["stages"] if s["name"] == "aggregate")
    assert aggregate["info"]["hs3_preference"]["agreement_after"]["score"]["units"] > 0
