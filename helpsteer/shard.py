"""Deterministic sharding of generation and scoring jobs, and the merge of their results.

`hs build-dataset CONFIG --shard I/N` runs the config's stages up to its last row-wise
stage (responses, judges, preference pairs: stages whose output for a prompt depends only
on that prompt's rows) on the prompts whose `prompt_id` hashes to shard I, and leaves a
snapshot of the tables in `OUT/shards/I-of-N/snapshot`. A cluster scheduler runs the N
shards anywhere (an array job with I = the task index). `hs build-dataset CONFIG
--merge-shards N` then checks that all N snapshots exist and came from the same config,
concatenates them and runs the remaining stages (save, split, export, card) once.

Stages before the cut that are not row-wise (prompt generation, near-duplicate removal)
run in every shard on what reaches them; for large jobs generate prompts in an earlier
run and load them with `synth.seed`, so every shard starts from the same prompts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from helpsteer.atomic import atomic_path, write_json
from helpsteer.partition import SHARD_KEY, bucket, rows_of_bucket
from helpsteer.pipeline import (
    REJECTED_SCHEMA,
    PipelineError,
    PipelineResult,
    PlannedStage,
    Tables,
    normalise_rejected,
)

__all__ = ["SHARD_KEY", "Shard", "bucket", "cut_index", "load_snapshots", "plan_digest"]


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        first, sep, second = text.partition("/")
        try:
            index, count = int(first), int(second)
        except ValueError:
            index, count = -1, 0
        if not sep or count < 1 or not 0 <= index < count:
            raise PipelineError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    def rows(self, frame: pl.DataFrame) -> pl.DataFrame:
        """This shard's rows of a table keyed by prompt; other tables stay whole."""
        return rows_of_bucket(frame, self.index, self.count)


def cut_index(stages: list[PlannedStage]) -> int:
    """The index of the last row-wise stage: shards run up to it, the merge after it."""
    rowwise = [i for i, s in enumerate(stages) if s.spec.rowwise(s.config)]
    if not rowwise:
        names = ", ".join(s.name for s in stages)
        raise PipelineError(
            f"nothing to shard: none of the stages ({names}) works prompt by prompt; "
            "sharding splits generation and scoring stages such as synth.responses or judge.*"
        )
    return rowwise[-1]


def plan_digest(stages: list[PlannedStage], seed: int) -> str:
    """What must be equal for shards to be merged: the stages up to the cut and the seed."""
    plan = [(s.name, s.spec.name, s.spec.version, s.config.model_dump(mode="json")) for s in stages]
    text = json.dumps({"seed": seed, "plan": plan}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def shard_folder(out: Path, label: str) -> Path:
    return out / "shards" / label


def write_snapshot(folder: Path, result: PipelineResult, digest: str, shard: Shard) -> None:
    """The shard's tables, rejected rows and stage summaries, written all at once."""
    with atomic_path(folder / "snapshot") as tmp:
        tmp.mkdir(parents=True)
        for name in result.tables:
            result.tables[name].write_parquet(tmp / f"{name}.parquet")
        result.rejected.write_parquet(tmp / "_rejected.parquet")
        write_json(
            tmp / "done.json",
            {
                "shard": shard.label,
                "plan": digest,
                "fingerprint": result.fingerprint,
                "stages": [
                    {"name": r.name, "seconds": r.seconds, "cached": r.cached, "info": r.info}
                    for r in result.runs
                ],
            },
        )


@dataclass
class Merged:
    tables: Tables
    rejected: pl.DataFrame
    fingerprint: str
    shards: list[dict[str, Any]]


def load_snapshots(out: Path, count: int, digest: str) -> Merged:
    """All N snapshots concatenated, table by table; an error names any shard that is
    missing or was built from a different config."""
    labels = [Shard(i, count).label for i in range(count)]
    missing = [lb for lb in labels if not (_snapshot(out, lb) / "done.json").is_file()]
    if missing:
        raise PipelineError(
            f"cannot merge {count} shards: no finished snapshot for {', '.join(missing)} under "
            f"{out / 'shards'} (run `hs build-dataset CONFIG --shard I/{count}` for each)"
        )
    done = [json.loads((_snapshot(out, lb) / "done.json").read_text()) for lb in labels]
    stale = [d["shard"] for d in done if d["plan"] != digest]
    if stale:
        raise PipelineError(
            f"shards {', '.join(stale)} were built from a different config or seed; "
            "re-run them with this config"
        )
    return Merged(
        tables=_concat_tables(out, labels),
        rejected=_concat_rejected(out, labels),
        fingerprint=hashlib.sha256("".join(d["fingerprint"] for d in done).encode()).hexdigest(),
        shards=done,
    )


def _snapshot(out: Path, label: str) -> Path:
    return shard_folder(out, label) / "snapshot"


def _concat_tables(out: Path, labels: list[str]) -> Tables:
    names = sorted(
        {p.stem for lb in labels for p in _snapshot(out, lb).glob("*.parquet")} - {"_rejected"}
    )
    tables = Tables()
    for name in names:
        parts = [
            pl.read_parquet(path)
            for lb in labels
            if (path := _snapshot(out, lb) / f"{name}.parquet").is_file()
        ]
        keyed = SHARD_KEY in parts[0].columns
        if keyed:
            tables.set(name, pl.concat(parts, how="diagonal_relaxed"))
        else:  # the same whole table in every shard (e.g. loaded documents)
            tables.set(name, parts[0])
    return tables


def _concat_rejected(out: Path, labels: list[str]) -> pl.DataFrame:
    parts = [
        normalise_rejected(pl.read_parquet(_snapshot(out, lb) / "_rejected.parquet"))
        for lb in labels
    ]
    if not parts:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    # A stage before the cut that is not row-wise rejects the same rows in every shard.
    return pl.concat(parts).unique(maintain_order=True)
