"""`datasets` folders in `DatasetDict.save_to_disk`'s layout, written with pyarrow alone.

A folder is what `datasets.load_from_disk` opens:

    dataset_dict.json             {"splits": [...]}
    SPLIT/data-00000-of-0000N.arrow   Arrow IPC streams, 1,000-row record batches
    SPLIT/state.json              the data files, fingerprint and (no) format
    SPLIT/dataset_info.json       description fields, and the features when the schema
                                  carries them (`huggingface` metadata)

Shards are cut as `save_to_disk` cuts them: one per started 500 MB of the table (never
more than rows), rows dealt out contiguously, the first shards one row longer; an empty
table gets one file with its schema, which `load_from_disk` opens. Without features in
the files `load_from_disk` infers them from the Arrow schema, as `datasets.Dataset(table)`
does.

Why not `save_to_disk` itself: on the 1.3 M-annotation benchmark
(benchmarks/build_dataset.py) the seven export formats' folders took 0.79-0.86 s of CPU
through `datasets` against 0.18-0.40 s written here, and `import datasets` another 0.73 s
(pandas, fsspec, huggingface_hub), together about 1.2 s of the run's 16 s of CPU on a
machine with 2 cores. tests/helpsteer/test_disk_datasets.py writes the same tables both
ways and compares the files, so a change of the layout in a new `datasets` shows there.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_SHARD_BYTES = 500 * 10**6
"""`save_to_disk`'s default `max_shard_size`, "500MB"."""
BATCH_ROWS = 1000
"""Rows per record batch, as `datasets`' Arrow writer makes them."""


def save_dataset_dict(tables: dict, folder: Path, fingerprints: dict[str, str]) -> None:
    """Write split -> pyarrow Table as a `DatasetDict` into `folder`, a new folder (the
    caller makes it appear at once, helpsteer.writers)."""
    folder.mkdir(parents=True)
    for split, table in tables.items():
        save_dataset(table, folder / split, fingerprints[split])
    _write_json(folder / "dataset_dict.json", {"splits": list(tables)}, indent=None)


def save_dataset(table, folder: Path, fingerprint: str) -> None:
    """One `Dataset` folder (the split of a `DatasetDict`)."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    shards = _shard_bounds(table.num_rows, _shard_count(table.num_rows, table.nbytes))
    files = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for name, (start, stop) in zip(files, shards, strict=True):
        part = table.slice(start, stop - start)
        with (
            pa.OSFile(str(folder / name), "wb") as sink,
            pa.ipc.new_stream(sink, table.schema) as writer,
        ):
            for batch in part.to_batches(max_chunksize=BATCH_ROWS):
                writer.write_batch(batch)
    # Only the first level of keys is sorted, as `datasets` does: a struct's fields keep
    # their order.
    _write_json(folder / "dataset_info.json", _info(table.schema), indent=2, sort_keys=False)
    _write_json(folder / "state.json", _state(files, fingerprint), indent=2)


def _shard_count(rows: int, nbytes: int) -> int:
    """One shard per started MAX_SHARD_BYTES, never more shards than rows, and one for
    no rows (`save_to_disk` writes none then, and `load_from_disk` fails on the folder)."""
    return max(1, min(rows, int(nbytes / MAX_SHARD_BYTES) + 1))


def _shard_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, the first `rows % shards` of them one row longer."""
    size, extra = divmod(rows, shards)
    bounds, start = [], 0
    for i in range(shards):
        stop = start + size + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def _info(schema) -> dict:
    info = {"citation": "", "description": "", "homepage": "", "license": ""}
    stored = (schema.metadata or {}).get(b"huggingface")
    if stored:
        features = json.loads(stored).get("info", {}).get("features")
        if features is not None:
            info["features"] = features
    return dict(sorted(info.items()))


def _state(files: list[str], fingerprint: str) -> dict:
    return {
        "_data_files": [{"filename": name} for name in files],
        "_fingerprint": fingerprint,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }


def _write_json(path: Path, obj: dict, indent: int | None, sort_keys: bool = True) -> None:
    path.write_text(json.dumps(obj, indent=indent, sort_keys=sort_keys), encoding="utf-8")
