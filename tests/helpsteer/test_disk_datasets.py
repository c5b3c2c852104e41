"""`datasets` folders written with pyarrow alone are the folders `save_to_disk` writes.

Each case writes the same tables both ways and compares the files; a `datasets` release
that changes its layout fails here, not in a user's `load_from_disk`.
"""

import json

import datasets
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from typer.testing import CliRunner

from helpsteer import disk_datasets, exports
from helpsteer.cli import app
from helpsteer.features import HUB_SCHEMAS, hub_arrow_schema, hub_features, to_arrow
from tests.helpsteer.builders import preference, write_jsonl


def _hub_preference(rows: int) -> pa.Table:
    """Hub-format rows (list-of-struct columns, `huggingface` metadata) as exports make them."""
    three = [{"statement": "B.", "elaboration": "Why.", "strength": 1}]
    table = pl.DataFrame(
        {
            "split": ["train"] * rows,
            "prompt": [f"prompt {i}" for i in range(rows)],
            "response_1": ["a"] * rows,
            "response_2": [f"b {i}" for i in range(rows)],
            "preference_strength": [i % 7 - 3 for i in range(rows)],
            "preference_statement": ["B."] * rows,
            "preference_elaboration": ["Why."] * rows,
            "three_most_similar_preferences": [three * (i % 4) for i in range(rows)],
            "all_preferences_unprocessed": [[{"strength": 1, "justification": "B. Why."}]] * rows,
        }
    )
    return to_arrow(exports.preference(table), "preference")


def _plain(rows: int) -> pa.Table:
    """What a non-Hub format hands over: polars' large types, no metadata."""
    return pl.DataFrame(
        {
            "text": [f"row {i} " * (i % 7) for i in range(rows)],
            "label": [[i, -100, i % 5] for i in range(rows)],
            "messages": [[{"role": "user", "content": f"m{i}"}] for i in range(rows)],
        }
    ).to_arrow()


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _json(path):
    return json.loads(path.read_text())


def _batches(path):
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_stream(source)
        batches = list(reader)
    return [b.num_rows for b in batches], pa.Table.from_batches(batches, reader.schema)


def _both(tmp_path, tables, shard_bytes=None):
    prints = {split: f"{i:016x}" for i, split in enumerate(tables)}
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    disk_datasets.save_dataset_dict(tables, ours, prints)
    reference = datasets.DatasetDict(
        {s: datasets.Dataset(t, fingerprint=prints[s]) for s, t in tables.items()}
    )
    options = {"max_shard_size": shard_bytes} if shard_bytes else {}
    reference.save_to_disk(str(theirs), **options)
    return ours, theirs


def _same_folders(ours, theirs):
    assert _files(ours) == _files(theirs)
    assert _json(ours / "dataset_dict.json") == _json(theirs / "dataset_dict.json")
    for split in _json(theirs / "dataset_dict.json")["splits"]:
        assert _json(ours / split / "state.json") == _json(theirs / split / "state.json")
        info, reference = (
            _json(ours / split / "dataset_info.json"),
            _json(theirs / split / "dataset_info.json"),
        )
        features = info.pop("features", None)
        wanted = reference.pop("features")
        assert info == reference
        if features is not None:  # ours writes them only where the schema declares them
            assert datasets.Features.from_dict(features) == datasets.Features.from_dict(wanted)
            assert list(features) == list(wanted)  # column order
        for name in (f["filename"] for f in _json(theirs / split / "state.json")["_data_files"]):
            our_rows, our_table = _batches(ours / split / name)
            their_rows, their_table = _batches(theirs / split / name)
            assert our_rows == their_rows
            assert our_table.equals(their_table)
            assert our_table.schema.equals(their_table.schema)


def _same_loaded(ours, theirs, tables):
    loaded, reference = datasets.load_from_disk(str(ours)), datasets.load_from_disk(str(theirs))
    for i, (split, table) in enumerate(tables.items()):
        assert loaded[split].features == reference[split].features
        assert loaded[split]._fingerprint == reference[split]._fingerprint
        assert _json(ours / split / "state.json")["_fingerprint"] == f"{i:016x}"
        assert loaded[split].data.table.equals(table)
        assert loaded[split][-1] == reference[split][-1]


def test_hub_format_folder_matches_save_to_disk(tmp_path):
    tables = {"train": _hub_preference(40), "validation": _hub_preference(7)}
    ours, theirs = _both(tmp_path, tables)
    _same_folders(ours, theirs)
    _same_loaded(ours, theirs, tables)
    assert datasets.load_from_disk(str(ours))["train"].features == hub_features("preference")


def test_plain_table_folder_matches_save_to_disk(tmp_path):
    tables = {"train": _plain(2500)}  # three record batches, the last one short
    ours, theirs = _both(tmp_path, tables)
    _same_folders(ours, theirs)
    _same_loaded(ours, theirs, tables)


def test_large_tables_are_sharded_like_save_to_disk(tmp_path, monkeypatch):
    table = _plain(1001)
    shard_bytes = table.nbytes // 3 + 1  # three shards; 1001 rows deal out as 334/334/333
    monkeypatch.setattr(disk_datasets, "MAX_SHARD_BYTES", shard_bytes)
    tables = {"train": table}
    ours, theirs = _both(tmp_path, tables, shard_bytes=shard_bytes)
    assert len(_json(ours / "train" / "state.json")["_data_files"]) == 3
    _same_folders(ours, theirs)
    _same_loaded(ours, theirs, tables)


def test_an_empty_table_loads_with_its_columns(tmp_path):
    """`save_to_disk` writes no data file for no rows, and `load_from_disk` then fails."""
    table = _hub_preference(1).slice(0, 0)
    disk_datasets.save_dataset_dict({"train": table}, tmp_path / "ds", {"train": "0" * 16})
    loaded = datasets.load_from_disk(str(tmp_path / "ds"))["train"]
    assert len(loaded) == 0
    assert loaded.features == hub_features("preference")


@pytest.mark.parametrize("fmt", sorted(HUB_SCHEMAS))
def test_hub_arrow_schema_is_the_one_datasets_derives_from_the_features(fmt):
    ours = hub_arrow_schema(fmt)
    wanted = hub_features(fmt).arrow_schema
    assert ours.equals(wanted, check_metadata=False)
    stored = json.loads(ours.metadata[b"huggingface"])["info"]["features"]
    assert datasets.Features.from_dict(stored) == hub_features(fmt)


def test_an_export_with_no_rows_still_opens_with_load_from_disk(tmp_path):
    """Only ties: the Bradley-Terry export has no pairs, and its folder still loads."""
    prefs = write_jsonl(
        tmp_path / "prefs.jsonl",
        [preference(f"p{i}", f"u{k}", 0, "Both are the same.") for i in range(8) for k in range(3)],
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["build-dataset", "-q", "--preferences", str(prefs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    bt = datasets.load_from_disk(str(out / "datasets" / "bt"))
    assert sum(len(split) for split in bt.values()) == 0
    assert "chosen" in bt["train"].column_names
    assert len(datasets.load_from_disk(str(out / "datasets" / "preference"))["train"]) > 0
