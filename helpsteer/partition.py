"""Partitioning by prompt: the one piece of code behind `--shard I/N` and the Ray engine.

A table is keyed by prompt when it has a `prompt_id` column. A row-wise stage (one whose
output for a prompt depends only on that prompt's rows) can run on any subset of the
prompts, so both scale-out paths split every keyed table by a stable hash of
`prompt_id` and leave the other tables whole:

- `--shard I/N` keeps bucket I of N (`helpsteer.shard`);
- `--engine ray` runs the stage on every bucket at once on a Ray actor pool
  (`helpsteer.ray_engine`) and concatenates what comes back.

So that both engines give the same tables row for row, the runner puts the keyed outputs
of a row-wise stage in one canonical order under either engine: prompts in the order
they first appear in the stage's input tables (`prompts` first), and a prompt's rows in
the order the stage wrote them (`canonical_order`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

SHARD_KEY = "prompt_id"
_RANK = "_hs_prompt_rank"


def bucket(key: str, count: int) -> int:
    """A stable bucket for a key, the same on every machine and library version."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def keyed(frame: pl.DataFrame | None) -> bool:
    return frame is not None and SHARD_KEY in frame.columns


def buckets(frame: pl.DataFrame, count: int) -> pl.Series:
    """The bucket of every row of a keyed table (null keys go to the bucket of "")."""
    keys = frame[SHARD_KEY].cast(pl.String).fill_null("")
    # One hash per distinct key: tables keyed by prompt repeat each key k times.
    distinct = keys.unique()
    mapping = dict(zip(distinct.to_list(), (bucket(k, count) for k in distinct), strict=True))
    return keys.replace_strict(mapping, return_dtype=pl.Int64)


def rows_of_bucket(frame: pl.DataFrame, index: int, count: int) -> pl.DataFrame:
    """Bucket `index` of `count` of a keyed table; other tables stay whole."""
    if not keyed(frame) or frame.height == 0:
        return frame
    return frame.filter(buckets(frame, count) == index)


def split_by_bucket(frame: pl.DataFrame, count: int) -> list[pl.DataFrame]:
    """All `count` buckets of a keyed table, each keeping the table's row order."""
    if frame.height == 0:
        return [frame] * count
    tagged = frame.with_columns(buckets(frame, count).alias("_hs_bucket"))
    grouped = tagged.partition_by("_hs_bucket", as_dict=True, maintain_order=True)
    parts = {key[0]: part.drop("_hs_bucket") for key, part in grouped.items()}
    return [parts.get(i, frame.clear()) for i in range(count)]


def keyed_names(tables: Any) -> list[str]:
    """The names of the keyed tables of a `helpsteer.pipeline.Tables`, read from their
    schemas (a table restored from the cache is not loaded for this)."""
    return [name for name in tables if SHARD_KEY in tables.columns(name)]


def prompt_ranks(tables: Mapping[str, pl.DataFrame], names: Iterable[str]) -> pl.DataFrame:
    """Each prompt_id's rank: where it first appears scanning `prompts`, then the other
    keyed tables (of `names`) by name."""
    ordered = sorted(names, key=lambda n: (n != "prompts", n))
    keys = [tables[n][SHARD_KEY].cast(pl.String) for n in ordered if keyed(tables[n])]
    if not keys:
        return pl.DataFrame(schema={SHARD_KEY: pl.String, _RANK: pl.Int64})
    seen = pl.concat(keys).unique(maintain_order=True)
    return pl.DataFrame({SHARD_KEY: seen, _RANK: pl.int_range(seen.len(), eager=True)})


def canonical_order(frame: pl.DataFrame, ranks: pl.DataFrame) -> pl.DataFrame:
    """A keyed table with its prompts in rank order; rows of one prompt keep their order,
    prompts the ranks do not know go last in the order they come."""
    if not keyed(frame) or frame.height == 0:
        return frame
    key = frame[SHARD_KEY].cast(pl.String)
    rank = (
        pl.DataFrame({SHARD_KEY: key})
        .join(ranks, on=SHARD_KEY, how="left", maintain_order="left")[_RANK]
        .fill_null(ranks.height)
    )
    return frame.with_columns(rank.alias(_RANK)).sort(_RANK, maintain_order=True).drop(_RANK)


def merge_info(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One stage `info` from the infos its partitions reported: numbers add up, dicts
    merge key by key, lists of dicts merge item by item, anything else keeps the first
    partition's value (equal in all of them for facts of the config)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        merged[key] = _merge_values([p[key] for p in parts if key in p])
    return merged


def _merge_values(values: list[Any]) -> Any:
    first = values[0]
    if all(isinstance(v, bool) for v in values):
        return first
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        total = sum(values)
        return round(total, 6) if isinstance(total, float) else total
    if all(isinstance(v, dict) for v in values):
        return merge_info(values)
    same_lists = all(isinstance(v, list) and len(v) == len(first) for v in values)
    if same_lists and all(isinstance(item, dict) for v in values for item in v):
        return [merge_info([v[i] for v in values]) for i in range(len(first))]
    return first
