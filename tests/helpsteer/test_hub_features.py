"""Exports mix with nvidia/HelpSteer2 without a cast (issue 13 §1).

No download: a local folder in the Hub's layout stands in for nvidia/HelpSteer2, written
twice: as the Hub ships it (JSON Lines, features inferred by `datasets`, which is how the
Hub's own features come about) and as Parquet with the declared features.
"""

import gzip
import json

import datasets
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from helpsteer import exports
from helpsteer.attributes import ATTRIBUTES
from helpsteer.cli import app
from helpsteer.features import hub_features, preference_features, ratings_features
from helpsteer.testing import raw_preferences, raw_ratings
from tests.helpsteer.builders import preference, write_jsonl

runner = CliRunner()

HUB_RATING = {
    "prompt": "c#",
    "response": "C# is a high-level, object-oriented programming language.",
    **dict(zip(ATTRIBUTES, [3, 4, 4, 2, 1], strict=True)),
}
HUB_PREFERENCE = {
    "split": "train",
    "prompt": "Name a colour.",
    "response_1": "Blue.",
    "response_2": "Blue is a colour of the sky.",
    "preference_strength": 1,
    "preference_statement": "@Response 2 is slightly better.",
    "preference_elaboration": "It says why.",
    "three_most_similar_preferences": [
        {
            "statement": "@Response 2 is slightly better.",
            "elaboration": "It says why.",
            "strength": 1,
        }
    ]
    * 3,
    "all_preferences_unprocessed": [
        {"strength": 1, "justification": "@Response 2 is slightly better. It says why."}
    ]
    * 3,
}


def _write_jsonl_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)


def _hub_as_shipped(root):
    """nvidia/HelpSteer2's own layout and file type: JSON Lines, no declared features."""
    _write_jsonl_gz(root / "train.jsonl.gz", [HUB_RATING] * 3)
    _write_jsonl_gz(root / "validation.jsonl.gz", [HUB_RATING])
    _write_jsonl_gz(root / "preference" / "preference.jsonl.gz", [HUB_PREFERENCE] * 2)
    return root


def _hub_parquet(root):
    """The same layout as Parquet written by `datasets` with the declared features."""
    (root / "preference").mkdir(parents=True)
    columns = lambda row, n: {k: [v] * n for k, v in row.items()}  # noqa: E731
    for split, n in (("train", 3), ("validation", 1)):
        rows = datasets.Dataset.from_dict(columns(HUB_RATING, n), features=ratings_features())
        rows.to_parquet(str(root / f"{split}.parquet"))
    prefs = datasets.Dataset.from_dict(columns(HUB_PREFERENCE, 2), features=preference_features())
    prefs.to_parquet(str(root / "preference" / "preference.parquet"))
    return root


def _load_hub(root):
    return (
        datasets.load_dataset(str(root), split="train"),
        datasets.load_dataset(str(root), data_dir="preference", split="train"),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One export from raw annotations (justifications with a paragraph break) plus one
    HelpSteer2 `preference` file passed through, so both item shapes meet in one table."""
    tmp = tmp_path_factory.mktemp("build")
    ratings, prefs = tmp / "ratings.jsonl", tmp / "prefs.jsonl"
    raw_ratings(40, 4, seed=1).write_ndjson(ratings)
    text = "@Response 1 is better. It answers.\n\nIt is also shorter."
    rows = [preference(f"p{i}", f"u{k}", -2, text) for i in range(6) for k in range(3)]
    write_jsonl(prefs, rows)
    passed = write_jsonl(tmp / "hub_prefs.jsonl", [HUB_PREFERENCE])
    out = tmp / "out"
    args = ["--ratings", ratings, "--preferences", prefs, "--preferences", passed, "--out", out]
    result = runner.invoke(app, ["build-dataset", "-q", *map(str, args)])
    assert result.exit_code == 0, result.output
    return out, text


def _types(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    """Columns and Arrow types in order, struct field order included; the name of a list's
    child is left out (Parquet files call it `element`, JSON-built tables `item`)."""
    plain = lambda t: pa.list_(t.value_type) if pa.types.is_list(t) else t  # noqa: E731
    return [(f.name, plain(f.type)) for f in schema]


def test_declared_features_are_what_datasets_infers_from_the_hubs_files(tmp_path):
    ratings, prefs = _load_hub(_hub_as_shipped(tmp_path / "hub"))
    assert ratings.features == ratings_features()
    assert prefs.features == preference_features()
    # Features' == compares dicts, which ignores the struct field order; Arrow does not
    assert _types(prefs.data.schema) == _types(preference_features().arrow_schema)
    assert _types(ratings.data.schema) == _types(ratings_features().arrow_schema)


def test_parquet_files_have_the_hubs_arrow_schema_and_feature_metadata(built):
    out, _ = built
    for fmt in ("ratings", "preference"):
        schema = pq.read_schema(out / fmt / "train.parquet")
        assert _types(schema) == _types(hub_features(fmt).arrow_schema)
        stored = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert datasets.Features.from_dict(stored) == hub_features(fmt)


@pytest.mark.parametrize("hub_writer", [_hub_as_shipped, _hub_parquet])
def test_exports_concatenate_with_the_hub_without_a_cast(built, tmp_path, hub_writer):
    out, _ = built
    hub_ratings, hub_prefs = _load_hub(hub_writer(tmp_path / "hub"))
    ours = {
        "parquet": (
            datasets.load_dataset(str(out), "ratings", split="train"),
            datasets.load_dataset(str(out), "preference", split="train"),
        ),
        "datasets folder": (
            datasets.load_from_disk(str(out / "datasets" / "ratings"))["train"],
            datasets.load_from_disk(str(out / "datasets" / "preference"))["train"],
        ),
        "jsonl": (
            datasets.load_dataset("json", data_files=str(out / "ratings/train.jsonl"))["train"],
            datasets.load_dataset("json", data_files=str(out / "preference/train.jsonl"))["train"],
        ),
    }
    for source, (ratings, prefs) in ours.items():
        mixed = datasets.concatenate_datasets([ratings, hub_ratings])
        assert len(mixed) == len(ratings) + len(hub_ratings), source
        assert mixed[-1] == HUB_RATING
        mixed = datasets.concatenate_datasets([prefs, hub_prefs])
        assert mixed.features == preference_features(), source
        assert mixed[-1] == HUB_PREFERENCE


def test_all_preferences_unprocessed_has_one_shape_with_the_full_justification(built):
    out, text = built
    table = pl.concat(
        [pl.read_parquet(out / "preference" / f) for f in ("train.parquet", "validation.parquet")]
        if (out / "preference" / "validation.parquet").exists()
        else [pl.read_parquet(out / "preference" / "train.parquet")]
    )
    everything = table["all_preferences_unprocessed"].explode().struct.unnest()
    assert everything.columns == ["strength", "justification"]
    built_rows = everything.filter(pl.col("strength") == -2)
    assert built_rows.height == 18
    assert set(built_rows["justification"]) == {text}  # unsplit, paragraph break kept
    passed = table.filter(pl.col("prompt") == HUB_PREFERENCE["prompt"]).row(0, named=True)
    assert passed["all_preferences_unprocessed"] == HUB_PREFERENCE["all_preferences_unprocessed"]
    three = table["three_most_similar_preferences"].explode().struct.unnest()
    assert three.columns == ["statement", "elaboration", "strength"]
    assert "@Response 1 is better." in set(three["statement"])


def test_split_items_from_judges_become_hub_items():
    split_items = pl.DataFrame(
        {
            "split": ["train"],
            "prompt": ["P"],
            "response_1": ["a"],
            "response_2": ["b"],
            "preference_strength": pl.Series([2], dtype=pl.Int8),
            "preference_statement": ["B wins."],
            "preference_elaboration": ["Longer."],
            "three_most_similar_preferences": [[]],
            "all_preferences_unprocessed": [
                [{"statement": "B wins.", "elaboration": "Longer.", "strength": 2}]
            ],
        }
    )
    out = exports.preference(split_items)
    assert out.schema["preference_strength"] == pl.Int64
    assert out["all_preferences_unprocessed"].to_list() == [
        [{"strength": 2, "justification": "B wins. Longer."}]
    ]
    assert out["three_most_similar_preferences"].to_list() == [[]]
    assert out.schema["three_most_similar_preferences"] == pl.List(
        pl.Struct({"statement": pl.String, "elaboration": pl.String, "strength": pl.Int64})
    )


def test_load_dataset_without_a_name_opens_the_ratings(built):
    out, _ = built
    folder = datasets.load_dataset(str(out))
    assert folder["train"].features == ratings_features()
    card = (out / "README.md").read_text()
    assert card.count("default: true") == 1
    assert "- config_name: ratings\n  default: true" in card


def test_without_ratings_the_preference_config_is_the_default(tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    raw_preferences(12, 3, seed=2).write_ndjson(prefs)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert datasets.load_dataset(str(out))["train"].features == preference_features()
