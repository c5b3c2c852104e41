"""Writing export tables: Parquet and JSON Lines per split, and `datasets` folders.

The files of one format are written by a few threads at once: polars' and pyarrow's
writers release the GIL (`datasets` folders too: helpsteer.disk_datasets), so the
JSON Lines encoding of one file, the Parquet encoding of another and the kernel's
copying of a third overlap instead of waiting for each other. Meanwhile this thread
makes the next format's tables; a format's writes start only once the previous
format's are done, so at most two formats' tables are in memory at a time (the peak
RSS is reached while reading the inputs, not here, once the aggregated tables no
longer hold the raw text: `helpsteer.stages.compact_text`). Each file is still
written through its own `atomic_path` temporary, so what a reader sees is unchanged.

Measured on the 1.3 M-annotation benchmark (benchmarks/build_dataset.py), runs of the
old and new code taking turns: export 3.75-3.80 s -> 2.83-2.91 s with 3 threads
(2 threads: 3.35 s; writing only one format at a time: 3.15 s).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import polars as pl

from helpsteer import exports, features
from helpsteer.atomic import TEMP_PREFIX, atomic_path
from helpsteer.disk_datasets import save_dataset_dict
from helpsteer.pipeline import StageContext, Tables
from helpsteer.split import SPLITS


def _source(fmt: str):
    if fmt in exports.HS3_FORMATS:
        return exports.HS3_FORMATS[fmt]
    if fmt in exports.RATINGS_FORMATS:
        return "ratings", exports.RATINGS_FORMATS[fmt]
    return "preference", exports.PREFERENCE_FORMATS[fmt]


def export_tables(tables: Tables, fmt: str) -> dict[str, pl.DataFrame]:
    """split -> table of one format; empty when its source table does not exist."""
    source, make = _source(fmt)
    if source not in tables:
        return {}
    table = tables[source]
    return {
        split: make(part)
        for split in SPLITS
        if (part := table.filter(pl.col("split") == split)).height
    }


def write_exports(ctx: StageContext, tables: Tables, cfg) -> dict[str, dict[str, int]]:
    # A run killed mid-write leaves temporaries; this run must not leave them in place.
    sweep_leftovers(ctx.out_dir)
    formats = [f for f in cfg.formats if _source(f)[0] in tables]
    tables = exports.prepare(tables, formats)
    steps = len(formats) * len(SPLITS) * (len(cfg.file_types) + cfg.datasets_folder)
    counts: dict[str, dict[str, int]] = {}
    with ctx.reporter.task("export", total=steps) as bar, ThreadPoolExecutor(WRITERS) as pool:
        # One format's files are written by the pool while the next format's tables
        # are made here; then that format waits for the one before it. So at most two
        # formats' export tables are in memory (see the module docstring).
        writing: list[Future] = []
        for fmt in formats:
            splits = export_tables(tables, fmt)
            counts[fmt] = {split: frame.height for split, frame in splits.items()}
            # A Hub format's tables are cast to the Hub's Arrow schema once, for the
            # Parquet files and the `datasets` folder alike.
            hub = fmt in features.HUB_SCHEMAS
            arrows = {split: _arrow(frame, fmt) for split, frame in splits.items() if hub}
            _finish(writing, bar)
            for split, frame in splits.items():
                for file_type in cfg.file_types:
                    path = ctx.out_dir / fmt / f"{split}.{file_type}"
                    task = pool.submit(_write, frame, path, file_type, fmt, arrows.get(split))
                    writing.append(task)
            if cfg.datasets_folder and splits:
                folder = ctx.out_dir / "datasets" / fmt
                prints = {split: _fingerprint(ctx.fingerprint, fmt, split) for split in splits}
                task = pool.submit(_write_datasets, splits, folder, fmt, arrows, prints)
                writing.append(task)
            # the bar's steps for files not written (missing splits) and the folder's
            # steps beyond the one its write advances
            folder_steps = len(SPLITS) * cfg.datasets_folder - bool(cfg.datasets_folder and splits)
            bar.advance((len(SPLITS) - len(splits)) * len(cfg.file_types) + folder_steps)
            del arrows, splits
        _finish(writing, bar)
    if "preference" in tables:
        ctx.info["ties_left_out_of_pairs"] = int(
            (tables["preference"]["preference_strength"] == 0).sum()
        )
    return counts


WRITERS = 3
"""Threads writing one format's files (Parquet, JSON Lines, `datasets`) at once."""


def _finish(writing: list[Future], bar) -> None:
    """Wait for the writes in flight (in order; the first failure is raised)."""
    try:
        for task in writing:
            task.result()
            bar.advance()
    finally:
        for task in writing:
            task.cancel()
        wait(writing)
        writing.clear()


def _write(frame: pl.DataFrame, path: Path, file_type: str, fmt: str = "", arrow=None) -> None:
    with atomic_path(path) as tmp:
        if file_type == "parquet" and fmt in features.HUB_SCHEMAS:
            _write_hub_parquet(frame, tmp, fmt, arrow)
        elif file_type == "parquet":
            frame.write_parquet(tmp)
        else:
            # JSON has no dtypes: the frame already has the Hub's columns and item keys,
            # and `datasets` infers the Hub's features from it as it does from the Hub's files.
            frame.write_ndjson(tmp)


def _write_hub_parquet(frame: pl.DataFrame, path: Path, fmt: str, arrow=None) -> None:
    """pyarrow, not polars, writes these: polars would record `large_string` and
    `large_list` in the file's Arrow schema, and `datasets` loads what the schema says.
    `arrow` is the frame already as `features.to_arrow` gives it."""
    import pyarrow.parquet as pq

    pq.write_table(arrow if arrow is not None else features.to_arrow(frame, fmt), path)


def _arrow(frame: pl.DataFrame, fmt: str):
    if fmt in features.HUB_SCHEMAS:
        return features.to_arrow(frame, fmt)
    return frame.to_arrow()


def _write_datasets(
    splits: dict[str, pl.DataFrame],
    path: Path,
    fmt: str,
    arrows: dict,
    fingerprints: dict[str, str],
) -> None:
    tables = {
        name: arrows[name] if name in arrows else _arrow(frame, fmt)
        for name, frame in splits.items()
    }
    # The export stage's fingerprint (`_fingerprint`); polars' row hashes of the table
    # only while that is not known yet (it is empty then).
    prints = {
        name: fingerprints[name] or _content_fingerprint(frame) for name, frame in splits.items()
    }
    with atomic_path(path) as tmp:
        save_dataset_dict(tables, tmp, prints)


def _fingerprint(stage: str, fmt: str, split: str) -> str:
    """A split's fingerprint from the export stage's own, which hashes the inputs'
    content, every stage's name, version and config, and the seed: the same run gives
    the same fingerprint and a changed input or setting another, as `datasets`
    fingerprints a transform by its input and arguments, at no cost. (The cache files
    `datasets` names after it live in the folder, which every run replaces whole.)
    polars' row hashes of the tables, used before, cost 0.1 s alone and 0.35 s beside
    the writers on the 1.3 M-annotation benchmark. Empty when the stage's fingerprint
    is not known yet."""
    if not stage:
        return ""
    return hashlib.blake2b(f"{stage}\0{fmt}\0{split}".encode(), digest_size=8).hexdigest()


def _content_fingerprint(frame: pl.DataFrame) -> str:
    return f"{frame.hash_rows().sum():016x}-{frame.height}"


_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:(?P<random>[a-z0-9_]{8})|old-\d+)")
"""What `atomic_path` names its temporary folders: `.NAME.old-PID` for a folder being
replaced, and (before `.hs-tmp-` names) `.NAME.XXXXXXXX` holding NAME while written."""
_TEMPORARY = re.compile(re.escape(TEMP_PREFIX) + r"[0-9a-f]{8}\..+")
"""`atomic_path`'s temporary file or folder: `.hs-tmp-XXXXXXXX.NAME`."""


def sweep_leftovers(folder: Path) -> int:
    """Remove the temporaries of writes that a killed run never finished.

    Only `atomic_path`'s own patterns go (`.hs-tmp-XXXXXXXX.NAME`, `.NAME.old-PID`, and
    a `.NAME.XXXXXXXX` folder of earlier versions only when it holds nothing but NAME),
    so hidden files of the user's stay. Run before writing into the output
    folder: no write is in flight then, and a resumed run ends with none left over.
    """
    removed = 0
    for root, dirs, files in os.walk(folder):
        for name in [d for d in dirs if _is_leftover(Path(root) / d)]:
            shutil.rmtree(Path(root) / name, ignore_errors=True)
            dirs.remove(name)
            removed += 1
        for name in files:
            if _TEMPORARY.fullmatch(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed += 1
    return removed


def _is_leftover(path: Path) -> bool:
    if path.is_symlink():
        return False
    if _TEMPORARY.fullmatch(path.name):
        return True
    match = _LEFTOVER.fullmatch(path.name)
    if match is None:
        return False
    if match["random"] is None:  # `.NAME.old-PID`: the old copy of a replaced folder
        return True
    return {p.name for p in path.iterdir()} <= {match["name"]}
