"""Reading training rows, checking them, tokenizing and planning length-grouped batches.

Rows come from `hs build-dataset` exports (regression or Bradley-Terry) or any local/Hub
dataset with the same columns. Each row becomes a `Sample`: one sequence with attribute
labels (regression), or a chosen and a rejected sequence with a margin (BT). A row that
cannot be used is rejected with its source, line and reason; ties are counted, not used.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpsteer.attributes import ATTRIBUTES, LIKERT_MAX, LIKERT_MIN, MISSING_LABEL
from helpsteer.attributes import NEMO_ALIGNER_SLOTS as SLOTS
from helpsteer.chat_format import render, token_ids, truncate
from helpsteer.conversation import flat_to_messages

Conversation = list[dict[str, str]] | str
"""A list of {role, content} messages, or raw text scored as is (TRL's implicit form)."""


class DataError(ValueError):
    """Data that cannot be used at all (missing file, no usable rows, wrong columns)."""


@dataclass
class Reject:
    source: str
    line: int
    reason: str


@dataclass
class Rows:
    source: str
    rows: list[dict[str, Any]]
    lines: list[int]
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class Sample:
    """One training item: `seqs` has one conversation (regression) or two (chosen, rejected)."""

    seqs: list[Conversation]
    labels: list[float] | None = None
    margin: float = 0.0
    source: str = ""
    line: int = 0


@dataclass
class Samples:
    samples: list[Sample]
    rejects: list[Reject]
    ties: int = 0


# --- reading ---------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Rows:
    with path.open(encoding="utf-8") as f:
        return _parse_lines(f, str(path))


def _read_jsonl_gz(path: Path) -> Rows:
    """Gzipped JSON Lines, decompressed by the reader `hs build-dataset` uses."""
    from helpsteer.io import UnreadableInput, gunzip

    try:
        data, problem = gunzip(path.read_bytes(), str(path))
    except UnreadableInput as exc:
        raise DataError(str(exc)) from None
    if problem:
        # Training on the rows before the damage would quietly drop the rest.
        raise DataError(f"{path}: {problem}; replace the file (e.g. download it again)")
    # Split as a text file is, so that line numbers match the uncompressed file's.
    return _parse_lines(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), str(path))


def _parse_lines(lines, source: str) -> Rows:
    out = Rows(source, [], [])
    try:
        for n, line in enumerate(lines, start=1):
            _parse_line(line, n, out)
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text ({exc.reason})") from None
    return out


def _parse_line(line: str, n: int, out: Rows) -> None:
    if not line.strip():
        return
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        out.rejects.append(Reject(out.source, n, f"not valid JSON: {exc.msg}"))
        return
    if not isinstance(row, dict):
        out.rejects.append(Reject(out.source, n, "a JSON Lines row must be an object"))
        return
    out.rows.append(row)
    out.lines.append(n)


def _from_table(source: str, rows: list[dict]) -> Rows:
    return Rows(source, rows, list(range(1, len(rows) + 1)))


def read_rows(spec: str, split: str = "train") -> Rows:
    """Rows from a Parquet/JSONL/JSONL.gz/JSON file, a `save_to_disk` folder, a folder of
    such files or a Hub dataset id (through `datasets.load_dataset`)."""
    path = Path(spec)
    if path.is_file():
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        if suffix in (".jsonl", ".json"):
            return _read_jsonl(path)
        if suffix == ".jsonl.gz":
            return _read_jsonl_gz(path)
        if suffix == ".parquet":
            import polars as pl

            try:
                return _from_table(str(path), pl.read_parquet(path).to_dicts())
            except Exception as exc:  # polars raises several unrelated types for bad files
                raise DataError(f"{path}: cannot read Parquet: {exc}") from None
        raise DataError(
            f"{path}: unknown file type {suffix!r} (use .parquet, .jsonl, .json or .jsonl.gz)"
        )
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"{path}: no split {split!r} (has {sorted(ds)})")
                ds = ds[split]
            return _from_table(str(path), ds.to_list())
        files = [*sorted(path.glob("*.parquet")), *sorted(path.glob("*.jsonl"))]
        files += sorted(path.glob("*.jsonl.gz"))
        if not files:
            raise DataError(f"{path}: folder holds no .parquet, .jsonl or .jsonl.gz files")
        merged = Rows(str(path), [], [])
        for f in files:
            part = read_rows(str(f))
            merged.rows += part.rows
            merged.lines += part.lines
            merged.rejects += part.rejects
        return merged
    if path.suffix or spec.startswith((".", "/")):
        raise DataError(f"{spec}: no such file or folder")
    import datasets

    try:
        ds = datasets.load_dataset(spec, split=split)
    except Exception as exc:  # network, auth, missing split: all user-facing
        raise DataError(f"{spec}: cannot load dataset: {exc}") from None
    return _from_table(spec, ds.to_list())


# --- normalizing -----------------------------------------------------------------------


def _conversation(value: Any, what: str) -> Conversation:
    """A checked conversation ending with the assistant's response."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what} is empty")
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list of {{role, content}} messages")
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ValueError(f"{what}[{i}] must be an object with a string 'content'")
        if m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"{what}[{i}].role must be system, user or assistant")
        messages.append({"role": m["role"], "content": m["content"]})
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{what} must end with the assistant's response")
    return messages


def _prompt_messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [dict(m) for m in flat_to_messages(prompt)]
    if isinstance(prompt, list):
        return [{"role": m["role"], "content": m["content"]} for m in prompt]
    raise ValueError("'prompt' must be a string or a list of messages")


def _with_prompt(row: dict, key: str) -> Conversation:
    value = row[key]
    if "prompt" in row and row["prompt"] is not None:
        if not isinstance(value, str):
            if isinstance(value, list) and value and value[0].get("role") == "assistant":
                return _conversation(_prompt_messages(row["prompt"]) + value, key)
            return _conversation(value, key)
        messages = _prompt_messages(row["prompt"])
        return _conversation([*messages, {"role": "assistant", "content": value}], key)
    return _conversation(value, key)


def _label(value: Any, what: str) -> float:
    if value is None:
        return float(MISSING_LABEL)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number or null, got {value!r}")
    if value == MISSING_LABEL:
        return float(MISSING_LABEL)
    if not LIKERT_MIN <= value <= LIKERT_MAX:
        raise ValueError(f"{what} = {value} is outside {LIKERT_MIN}..{LIKERT_MAX} (or -100)")
    return float(value)


def _regression_labels(row: dict, attributes: list[str]) -> list[float]:
    if "label" in row and isinstance(row["label"], list):
        label = row["label"]
        if len(label) != len(SLOTS):
            raise ValueError(f"'label' must have {len(SLOTS)} values ({', '.join(SLOTS)})")
        by_name = {
            s: _label(v, f"label[{i}] ({s})")
            for i, (s, v) in enumerate(zip(SLOTS, label, strict=True))
        }
    else:
        present = [a for a in ATTRIBUTES if a in row]
        if not present:
            raise ValueError(f"no 'label' list and none of the columns {', '.join(ATTRIBUTES)}")
        by_name = {a: _label(row.get(a), a) for a in SLOTS}
    labels = [by_name.get(a, float(MISSING_LABEL)) for a in attributes]
    if all(v == MISSING_LABEL for v in labels):
        raise ValueError(f"no label for any of {', '.join(attributes)}")
    return labels


def _regression_sample(row: dict, attributes: list[str]) -> Sample:
    if "messages" in row and row["messages"] is not None:
        seq = _conversation(row["messages"], "messages")
    elif "prompt" in row and "response" in row:
        if not isinstance(row["response"], str):
            raise ValueError("'response' must be a string")
        seq = _conversation(
            [*_prompt_messages(row["prompt"]), {"role": "assistant", "content": row["response"]}],
            "prompt+response",
        )
    else:
        raise ValueError("needs 'messages' or 'prompt' and 'response'")
    return Sample([seq], labels=_regression_labels(row, attributes))


def _pair_margin(row: dict) -> float | None:
    """|preference_strength| (or the `margin` column); None for rows without either."""
    strength = row.get("preference_strength")
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise ValueError(f"preference_strength must be an integer, got {strength!r}")
        if not -3 <= strength <= 3:
            raise ValueError(f"preference_strength = {strength} is outside -3..3")
        return float(abs(strength))
    margin = row.get("margin")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, int | float):
            raise ValueError(f"margin must be a number, got {margin!r}")
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be a finite number >= 0, got {margin}")
        return float(margin)
    return None


def _bt_sample(row: dict) -> Sample:
    for key in ("chosen", "rejected"):
        if row.get(key) is None:
            raise ValueError(f"missing '{key}'")
    chosen, rejected = _with_prompt(row, "chosen"), _with_prompt(row, "rejected")
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise ValueError("'chosen' and 'rejected' must both be text or both be messages")
    margin = _pair_margin(row)
    # Rows without a strength or margin column (TRL style) are plain wins of weight 1.
    return Sample([chosen, rejected], margin=1.0 if margin is None else margin)


def detect_kind(rows: list[dict]) -> str:
    """'bt' or 'regression', from the columns of the first rows."""
    keys = set().union(*(r.keys() for r in rows[:20])) if rows else set()
    if {"chosen", "rejected"} <= keys:
        return "bt"
    if "label" in keys or keys & set(ATTRIBUTES):
        return "regression"
    raise DataError(
        "cannot tell the data format from its columns "
        f"{sorted(keys)}: expected chosen+rejected (Bradley-Terry) or label / "
        f"{', '.join(ATTRIBUTES)} (regression)"
    )


def to_samples(rows: Rows, bt: bool, attributes: list[str]) -> Samples:
    """Check every row; a tie (strength 0) is counted and left out of BT training."""
    out = Samples([], list(rows.rejects))
    for row, line in zip(rows.rows, rows.lines, strict=True):
        try:
            sample = _bt_sample(row) if bt else _regression_sample(row, attributes)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            out.rejects.append(Reject(rows.source, line, str(exc)))
            continue
        if bt and sample.margin == 0:
            out.ties += 1
            continue
        sample.source, sample.line = rows.source, line
        out.samples.append(sample)
    return out


# --- tokenizing ------------------------------------------------------------------------


@dataclass
class Encoded:
    ids: list[list[int]]
    """Token ids per sample and sequence, flattened: sample i uses ids[i*k : (i+1)*k]."""
    per_sample: int
    truncated: int
    """Sequences longer than max_length before truncation."""

    def lengths(self) -> list[int]:
        k = self.per_sample
        return [max(len(s) for s in self.ids[i * k : (i + 1) * k]) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.ids) // self.per_sample


def encode(tokenizer, samples: list[Sample], max_length: int, side: str) -> Encoded:
    """Render with the chat template, tokenize in one batch, truncate on `side`."""
    texts = [render(tokenizer, s) for sample in samples for s in sample.seqs]
    per_sample = len(samples[0].seqs) if samples else 1
    if not texts:
        return Encoded([], per_sample, 0)
    ids = token_ids(tokenizer, texts)
    truncated = sum(len(seq) > max_length for seq in ids)
    return Encoded([truncate(seq, max_length, side) for seq in ids], per_sample, truncated)


# --- batch planning --------------------------------------------------------------------


def plan_epoch(
    lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """Global batches (lists of sample indices) for one epoch; the incomplete last batch is
    left out (a different one each epoch, since the order is reshuffled).

    With grouping, shuffled indices are cut into mega-chunks of 64 batches, each chunk is
    sorted by length and cut into batches, then the batches are shuffled: similar lengths
    share a batch while the epoch order stays random. Each batch is sorted by length, so
    cutting it into micro-batches also groups by length.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    n_batches = len(order) // batch_size
    order = order[: n_batches * batch_size]
    if group_by_length:
        chunk = batch_size * 64
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: -lengths[j])
        ]
    batches = [order[b * batch_size : (b + 1) * batch_size] for b in range(n_batches)]
    if group_by_length:
        rng.shuffle(batches)
        batches = [sorted(b, key=lambda j: -lengths[j]) for b in batches]
    return batches


def split_batch(batch: list[int], micro: int, world: int, rank: int) -> list[list[int]]:
    """This rank's micro-batches of a global batch: contiguous chunks of `micro`, dealt out
    round-robin, so the set of micro-batches does not depend on the number of processes."""
    chunks = [batch[i : i + micro] for i in range(0, len(batch), micro)]
    return chunks[rank::world]


def pad_batch(seqs: list[list[int]], pad_id: int, side: str) -> tuple[list[list[int]], list]:
    width = max(len(s) for s in seqs)
    ids, mask = [], []
    for s in seqs:
        pad = [pad_id] * (width - len(s))
        ids.append(s + pad if side == "right" else pad + s)
        ones = [1] * len(s)
        mask.append(ones + [0] * len(pad) if side == "right" else [0] * len(pad) + ones)
    return ids, mask
