"""Labelled preference sets for judge comparison, normalised to one table.

Every loader returns `LabelledPairs`: a polars table with one row per usable pair,

    pair_id    str
    messages   list of {role, content}, the prompt (ending with a user turn)
    response_a str
    response_b str
    label      "A" or "B", the better response
    category   str (RewardBench subset, AlpacaEval model, ...)

plus how many rows were excluded by rule (ties) and the rows that could not be read
(file, line, reason). Which labelled response is shown as A is a seeded coin flip per
pair, so a judge that always prefers one position scores 50%, not 100% or 0%.

Formats:
- `helpsteer2_preference`: `prompt` (HelpSteer2 flat form), `response_1`, `response_2`,
  `preference_strength` (negative: response 1 better); strength 0 is a tie, excluded.
- `reward_bench`: `prompt`, `chosen`, `rejected`, `subset` (category); optional `id`.
- `alpaca_eval`: AlpacaEval annotations (`instruction`, `output_1`, `output_2`,
  `preference` 1.0..2.0, `generator_2`); label from the preference (1.5 is a tie,
  excluded); category is the model (`generator_2`). A folder is read as
  `<folder>/<model>/annotations.json(.gz)` for every model in it.
- `hh_rlhf`: `chosen`, `rejected` full transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...");
  the shared turns become the prompt and the last assistant turns the two responses.
- `bt`, `dpo`: our own exports (`hs build-dataset` formats `bt`/`bt_margin` and `dpo`):
  `bt` has `chosen`/`rejected` conversations that share the prompt turns; `dpo` has
  `prompt`, `chosen`, `rejected` as messages (or as plain strings, TRL's standard form).
  PATH is a file, an export folder (`OUT/bt`, every split in it), or the build's `OUT`;
  the category is the split.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from helpsteer.conversation import ConversationError, Message, flat_to_messages
from judge.pairwise import first_order

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})
PAIRS_SCHEMA = {
    "pair_id": pl.String,
    "messages": pl.List(MESSAGE),
    "response_a": pl.String,
    "response_b": pl.String,
    "label": pl.String,
    "category": pl.String,
}
FORMATS = ("helpsteer2_preference", "reward_bench", "alpaca_eval", "hh_rlhf", "pairs", "bt", "dpo")


class DatasetError(ValueError):
    """A file that cannot be read as the format asked for."""


@dataclass
class LabelledPairs:
    pairs: pl.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)
    """Rows left out by rule (e.g. ties), by reason."""
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """Rows that could not be used: source, line, reason."""


@dataclass
class _Builder:
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, pair_id: str, messages: list[Message], chosen: str, rejected: str, category: str
    ) -> None:
        """Chosen goes to A or B by a seeded coin flip on the pair id."""
        a_is_chosen = first_order(pair_id, self.seed) == "AB"
        self.rows.append(
            {
                "pair_id": pair_id,
                "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "response_a": chosen if a_is_chosen else rejected,
                "response_b": rejected if a_is_chosen else chosen,
                "label": "A" if a_is_chosen else "B",
                "category": category,
            }
        )

    def exclude(self, reason: str) -> None:
        self.excluded[reason] = self.excluded.get(reason, 0) + 1

    def reject(self, source: str, line: int, reason: str) -> None:
        self.rejected.append({"source": source, "line": line, "reason": reason})

    def result(self) -> LabelledPairs:
        frame = pl.DataFrame(self.rows, schema=PAIRS_SCHEMA)
        duplicated = frame.filter(pl.col("pair_id").is_duplicated())["pair_id"].unique()
        if duplicated.len():
            raise DatasetError(
                f"duplicate pair ids, e.g. {duplicated.head(3).to_list()}; give each row an id"
            )
        return LabelledPairs(frame, self.excluded, self.rejected)


# ------------------------------------------------------------------ reading records


def _open_text(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None


def read_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, record) from JSON Lines, a JSON array, or Parquet; `.gz` ok."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars raises several kinds on a bad file
            raise DatasetError(f"{path}: not a readable Parquet file: {exc}") from None
        yield from enumerate(frame.iter_rows(named=True), start=1)
        return
    text = _open_text(path)
    if name.endswith(".json") or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a JSON array of records")
        yield from enumerate(data, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, DatasetError(f"not valid JSON: {exc.msg}")


def _fields(record: Any, names: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    if isinstance(record, Exception):
        return None, str(record)
    if not isinstance(record, dict):
        return None, "expected a JSON object"
    missing = [n for n in names if n not in record]
    if missing:
        return None, f"missing field(s) {', '.join(missing)} (expected {', '.join(names)})"
    for name in names:
        if name in ("preference", "preference_strength"):
            continue
        if not isinstance(record[name], str):
            return None, f"field {name!r}: expected a string, got {type(record[name]).__name__}"
    return record, ""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ formats


def load_helpsteer2_preference(path: str | Path, seed: int = 0) -> LabelledPairs:
    builder = _Builder(seed)
    names = ("prompt", "response_1", "response_2", "preference_strength")
    for line, record in read_records(path):
        row, problem = _fields(record, names)
        if row is None:
            builder.reject(str(path), line, problem)
            continue
        strength = row["preference_strength"]
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            builder.reject(
                str(path), line, f"preference_strength: expected -3..3, got {strength!r}"
            )
            continue
        if not -3 <= strength <= 3:
            builder.reject(str(path), line, f"preference_strength {strength} outside -3..3")
            continue
        if strength == 0:
            builder.exclude("tie (preference_strength 0)")
            continue
        chosen, rejected = row["response_1"], row["response_2"]
        if strength > 0:
            chosen, rejected = rejected, chosen
        pair_id = str(row.get("pair_id") or f"hs2p-{line}")
        category = str(row.get("category") or row.get("split") or "all")
        builder.add(pair_id, flat_to_messages(row["prompt"]), chosen, rejected, category)
    return builder.result()


def load_reward_bench(path: str | Path, seed: int = 0) -> LabelledPairs:
    builder = _Builder(seed)
    for line, record in read_records(path):
        row, problem = _fields(record, ("prompt", "chosen", "rejected", "subset"))
        if row is None:
            builder.reject(str(path), line, problem)
            continue
        pair_id = str(row.get("id") if row.get("id") is not None else f"rb-{line}")
        messages: list[Message] = [{"role": "user", "content": row["prompt"]}]
        builder.add(pair_id, messages, row["chosen"], row["rejected"], row["subset"])
    return builder.result()


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    files = sorted(
        p
        for p in path.glob("*/annotations.json*")
        if p.name in ("annotations.json", "annotations.json.gz")
    )
    if not files:
        raise DatasetError(f"{path}: no <model>/annotations.json(.gz) files inside")
    return files


def load_alpaca_eval(path: str | Path, seed: int = 0) -> LabelledPairs:
    builder = _Builder(seed)
    names = ("instruction", "output_1", "output_2", "preference")
    for file in _annotation_files(Path(path)):
        for line, record in read_records(file):
            row, problem = _fields(record, names)
            if row is None:
                builder.reject(str(file), line, problem)
                continue
            preference = row["preference"]
            if preference is None:
                builder.exclude("no preference")
                continue
            if isinstance(preference, bool) or not isinstance(preference, int | float):
                builder.reject(
                    str(file), line, f"preference: expected 1.0..2.0, got {preference!r}"
                )
                continue
            if not 1.0 <= preference <= 2.0:
                builder.reject(str(file), line, f"preference {preference} outside 1.0..2.0")
                continue
            if preference == 1.5:
                builder.exclude("tie (preference 1.5)")
                continue
            model = str(row.get("generator_2") or file.parent.name)
            chosen, rejected = row["output_1"], row["output_2"]
            if preference > 1.5:
                chosen, rejected = rejected, chosen
            pair_id = f"{model}-{_digest(row['instruction'])}"
            messages: list[Message] = [{"role": "user", "content": row["instruction"]}]
            builder.add(pair_id, messages, chosen, rejected, model)
    return builder.result()


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def hh_transcript(text: str) -> list[Message]:
    """Messages of an HH-RLHF transcript "\\n\\nHuman: ...\\n\\nAssistant: ..."."""
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise ConversationError("text before the first 'Human:' turn")
    messages: list[Message] = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        messages.append({"role": role, "content": content.strip()})
    if not messages:
        raise ConversationError("no 'Human:' or 'Assistant:' turns")
    return messages


def load_hh_rlhf(path: str | Path, seed: int = 0, category: str | None = None) -> LabelledPairs:
    builder = _Builder(seed)
    category = category or Path(path).name.split(".")[0]
    for line, record in read_records(path):
        row, problem = _fields(record, ("chosen", "rejected"))
        if row is None:
            builder.reject(str(path), line, problem)
            continue
        try:
            chosen, rejected = hh_transcript(row["chosen"]), hh_transcript(row["rejected"])
        except ConversationError as exc:
            builder.reject(str(path), line, f"transcript: {exc}")
            continue
        if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            builder.reject(str(path), line, "a transcript does not end with an Assistant turn")
            continue
        if chosen[:-1] != rejected[:-1]:
            builder.reject(str(path), line, "chosen and rejected differ before their last turn")
            continue
        prompt = chosen[:-1]
        pair_id = f"hh-{line}"
        builder.add(pair_id, prompt, chosen[-1]["content"], rejected[-1]["content"], category)
    return builder.result()


def load_pairs(path: str | Path, seed: int = 0) -> LabelledPairs:
    """Already normalised pairs (the columns of PAIRS_SCHEMA); `messages` may be a flat
    HelpSteer2 `prompt` string instead."""
    builder = _Builder(seed)
    names = ("pair_id", "response_a", "response_b", "label")
    for line, record in read_records(path):
        row, problem = _fields(record, names)
        if row is None:
            builder.reject(str(path), line, problem)
            continue
        if row["label"] not in ("A", "B"):
            builder.reject(str(path), line, f"label: expected 'A' or 'B', got {row['label']!r}")
            continue
        messages = row.get("messages") or flat_to_messages(str(row.get("prompt") or ""))
        chosen, rejected = row["response_a"], row["response_b"]
        if row["label"] == "B":
            chosen, rejected = rejected, chosen
        builder.add(row["pair_id"], messages, chosen, rejected, str(row.get("category") or "all"))
    return builder.result()


def export_files(path: str | Path, name: str) -> list[Path]:
    """The split files of one of our exports: PATH itself, the Parquet files in the folder
    PATH, or those in PATH/NAME (the build's output folder)."""
    path = Path(path)
    if path.is_file():
        return [path]
    for folder in (path / name, path):
        if files := sorted(folder.glob("*.parquet")):
            return files
    raise DatasetError(f"{path}: no {name} export here (expected {name}/*.parquet or a file)")


def _as_messages(value: Any, role: str) -> list[Message] | None:
    """Messages from a list of {role, content}, or one `role` turn from a plain string."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        return None
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def _export_pairs(path: str | Path, name: str, seed: int, read_pair) -> LabelledPairs:
    builder = _Builder(seed)
    for file in export_files(path, name):
        split = file.name.split(".")[0]
        for line, record in read_records(file):
            if isinstance(record, Exception) or not isinstance(record, dict):
                builder.reject(str(file), line, str(record) or "expected a JSON object")
                continue
            pair = read_pair(record)
            if isinstance(pair, str):
                builder.reject(str(file), line, pair)
                continue
            prompt, chosen, rejected = pair
            pair_id = str(record.get("pair_id") or f"{name}-{split}-{line}")
            builder.add(pair_id, prompt, chosen, rejected, split)
    return builder.result()


def _bt_pair(record: dict) -> tuple[list[Message], str, str] | str:
    chosen = _as_messages(record.get("chosen"), "assistant")
    rejected = _as_messages(record.get("rejected"), "assistant")
    if chosen is None or rejected is None:
        return "chosen/rejected: expected conversations (lists of {role, content})"
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        return "chosen/rejected: a conversation does not end with an assistant turn"
    if chosen[:-1] != rejected[:-1]:
        return "chosen and rejected differ before their last turn"
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def _dpo_pair(record: dict) -> tuple[list[Message], str, str] | str:
    prompt = _as_messages(record.get("prompt"), "user")
    chosen = _as_messages(record.get("chosen"), "assistant")
    rejected = _as_messages(record.get("rejected"), "assistant")
    if prompt is None or chosen is None or rejected is None:
        return "prompt/chosen/rejected: expected messages or strings"
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def load_bt(path: str | Path, seed: int = 0) -> LabelledPairs:
    return _export_pairs(path, "bt", seed, _bt_pair)


def load_dpo(path: str | Path, seed: int = 0) -> LabelledPairs:
    return _export_pairs(path, "dpo", seed, _dpo_pair)


LOADERS: dict[str, Callable[..., LabelledPairs]] = {
    "helpsteer2_preference": load_helpsteer2_preference,
    "reward_bench": load_reward_bench,
    "alpaca_eval": load_alpaca_eval,
    "hh_rlhf": load_hh_rlhf,
    "pairs": load_pairs,
    "bt": load_bt,
    "dpo": load_dpo,
}


def load(format: str, path: str | Path, seed: int = 0) -> LabelledPairs:
    if format not in LOADERS:
        raise DatasetError(f"unknown format {format!r}; expected one of {', '.join(LOADERS)}")
    return LOADERS[format](path, seed=seed)


def sample(pairs: pl.DataFrame, n: int | None, seed: int) -> pl.DataFrame:
    """At most `n` pairs, chosen by a seeded hash of the pair id (stable under reordering),
    in hash order, so the first k of a sample of n are the sample of k."""
    if n is None or pairs.height <= n:
        return pairs
    keys = [_digest(str(seed), p) for p in pairs["pair_id"]]
    return pairs.with_columns(pl.Series("_key", keys)).sort("_key").head(n).drop("_key")
