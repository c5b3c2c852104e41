"""Reading tables from JSON Lines, Parquet, CSV, `datasets` folders and Hub datasets.

Every reader returns the rows with a `_line` column (1-based line of a JSON Lines file,
1-based element of a JSON array, 1-based data row of a CSV file without its header,
1-based row of anything else) so that a rejected row can always be traced back, plus
the lines that could not be read at all.

JSON Lines have two readers: polars' (fast, used on clean files) and a careful one
that parses line by line. They must give the same rows, so the fast one hands a line
over to `json` whenever polars may have changed it silently: a duplicate key (polars
keeps the first value, `json` the last), or a number, boolean, object or list turned
into text because the column also holds strings. Files polars cannot type row by row
(nested values, mixed numbers and booleans) go to the careful reader whole.

polars infers the schema from the first `SCHEMA_SAMPLE_ROWS` rows and parses the rest
with it: inferring from every row cost 2.0 of the 2.5 s `read_ndjson` took on 1 M
rating lines (0.56 s with the schema of the first rows; benchmarks/build_dataset.py).
A later row that does not fit that schema makes polars fail (a number where the first
rows had text is made text as with full inference, and the recheck below sees it), and
a key the first rows lack is found by the key count of the recheck: either way the file
is read again with the schema of every row, so the result never depends on the sample.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import mmap
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

LINE = "_line"
TYPE_ERRORS = "_type_errors"
"""Per-row list of `field:kind` (kind: number, boolean, object, array) for the fields
whose JSON value is not a string while the column, because of other rows, holds text.
Validation decides per field which kinds it accepts, so a row is judged by its own
values and never by what the other rows hold."""

JSON_KINDS = ("number", "boolean", "object", "array")
MAX_DEPTH = 64
"""Deeper JSON values are rejected: real annotation rows nest 3 levels at most, and
much deeper ones exhaust the parsers' recursion limits."""

_POLARS_ERRORS = (Exception, pl.exceptions.PanicException)
"""polars' panics derive from BaseException; a broken file must not get past us."""


class InputError(Exception):
    """An input that cannot be used (missing file, unknown format); stops the run."""


class UnreadableInput(InputError):
    """A file that exists but holds no readable table (empty, corrupt, not what its name
    says). The load stage reports it and goes on with the other inputs."""


@dataclass
class ReadResult:
    frame: pl.DataFrame
    unreadable: pl.DataFrame
    """Lines that could not be read as a row: columns `line`, `reason`, `record`."""
    source: str
    warnings: list[str] = field(default_factory=list)
    """Problems with the file as a whole that still left rows to read (a truncated .gz)."""


UNREADABLE_SCHEMA = {"line": pl.Int64, "reason": pl.String, "record": pl.String}


def _no_unreadable() -> pl.DataFrame:
    return pl.DataFrame(schema=UNREADABLE_SCHEMA)


def _unreadable(rows: list[tuple[int | None, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=UNREADABLE_SCHEMA, orient="row")


def read_table(
    source: str,
    *,
    config: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
) -> ReadResult:
    """Read a local file or folder, or a Hugging Face Hub dataset id."""
    path = Path(source)
    hub = {"name": config, "split": split, "data_dir": data_dir}
    if path.is_dir():
        return _read_folder(path, source, hub)
    if path.is_file():
        return _read_file(path, source)
    if _is_hub_id(source):
        return _read_hub(source, source, hub)
    hint = "" if _OWNER_NAME.fullmatch(source) else ", and not a Hub dataset id (owner/name)"
    raise InputError(f"{source}: no such file or folder{hint}")


_OWNER_NAME = re.compile(r"[\w.-]+/[\w.-]+")
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".gz", ".parquet", ".csv", ".tsv", ".arrow")


def _is_hub_id(source: str) -> bool:
    """owner/name, but not ./x, ../x or a data file's name: a mistyped local path would
    otherwise wait through the Hub client's retries (25 s offline) before its error."""
    if not _OWNER_NAME.fullmatch(source):
        return False
    owner, name = source.split("/")
    return owner not in (".", "..") and not name.lower().endswith(DATA_SUFFIXES)


JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz")


def _read_file(path: Path, source: str) -> ReadResult:
    name = path.name.lower()
    if name.endswith(JSON_SUFFIXES):
        return _read_json_file(path, source, name)
    if name.endswith(".parquet"):
        return _read_parquet(path, source)
    if name.endswith(".csv"):
        return _read_csv(path, source)
    raise InputError(f"{source}: unknown file type (expected .jsonl, .json, .parquet or .csv)")


def _empty_file(source: str) -> UnreadableInput:
    return UnreadableInput(f"{source}: empty file (no rows)")


# --- JSON Lines and JSON ------------------------------------------------------------------


def _read_json_file(path: Path, source: str, name: str) -> ReadResult:
    if name.endswith((".jsonl", ".ndjson")) and _is_clean_file(path):
        fast = _read_ndjson_fast(path, path)
        if fast is not None:
            return ReadResult(*fast, source)
    data = path.read_bytes()
    warnings = []
    if name.endswith(".gz"):
        data, problem = gunzip(data, source)
        if problem:
            warnings.append(f"{source}: {problem}; kept the rows before that point")
    if not data.strip():
        raise _empty_file(source)
    if name.endswith((".json", ".json.gz")) and data.lstrip()[:1] == b"[":
        frame, unreadable = _read_json_array(data, source)
    else:
        frame, unreadable = read_jsonl_bytes(data)
    return ReadResult(frame, unreadable, source, warnings)


GZIP_MAGIC = b"\x1f\x8b"


def gunzip(data: bytes, source: str, block: int = 1 << 20) -> tuple[bytes, str | None]:
    """Decompress every gzip member; (bytes, why the data stopped early, or None).

    Fed in blocks, so a truncated or damaged file still gives what came before the
    damage; a file with nothing readable raises UnreadableInput.
    """
    if not data:
        raise _empty_file(source)
    if data[:2] != GZIP_MAGIC:
        raise UnreadableInput(f"{source}: not a gzip file (it does not start with 1f 8b)")
    parts: list[bytes] = []
    problem = None
    rest = data
    while rest and problem is None:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        problem, rest = _inflate_member(inflater, rest, parts, block)
        rest = rest.lstrip(b"\x00")  # gzip writers may pad with zeros
        if rest and problem is None and rest[:2] != GZIP_MAGIC:
            problem = "bytes after the gzip data are not gzip"
    if problem and not any(parts):
        raise UnreadableInput(f"{source}: {problem}; nothing could be read")
    return b"".join(parts), problem


def _inflate_member(inflater, data: bytes, parts: list[bytes], block: int):
    """Inflate one gzip member into `parts`; (problem or None, the bytes after it)."""
    for start in range(0, len(data), block):
        try:
            parts.append(inflater.decompress(data[start : start + block]))
        except zlib.error as exc:
            return f"corrupt gzip data ({exc})", b""
        if inflater.eof:
            return None, inflater.unused_data + data[start + block :]
    return "truncated gzip file (the compressed data ends early)", b""


def _read_json_array(data: bytes, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A JSON array of objects, parsed element by element so that one bad element is
    one rejected row (its number is its `line`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    hook = _PairsHook()
    decoder = json.JSONDecoder(object_pairs_hook=hook)
    rows, bad = [], []
    position = _skip_space(text, text.index("[") + 1)
    number = 0
    while position < len(text) and text[position] != "]":
        number += 1
        start = position
        hook.reset()
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise UnreadableInput(f"{source}: not valid JSON ({exc})") from None
        except RecursionError:
            raise UnreadableInput(
                f"{source}: element {number} is nested too deep to parse"
            ) from None
        reason = _record_problem(value, hook)
        if reason:
            bad.append((number, reason, text[start:position][:500]))
        else:
            value[LINE] = number
            rows.append(value)
        position = _skip_space(text, position)
        if text[position : position + 1] == ",":
            position = _skip_space(text, position + 1)
        elif text[position : position + 1] != "]":
            raise UnreadableInput(
                f"{source}: not valid JSON (expected ',' or ']' after element {number})"
            )
    if text[position : position + 1] != "]":
        raise UnreadableInput(f"{source}: not valid JSON (the array is not closed)")
    return _frame_from_records(rows), _unreadable(bad)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _numbered(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))


def _is_clean_file(path: Path) -> bool:
    """Not empty and no carriage returns (the key count below knows only space and tab
    as whitespace between a key and its colon).

    Searched through a memory map, so a large file is never copied into memory. Blank
    lines are not searched for (a two-byte search took 0.27 s on 324 MB of ratings):
    polars skips them as rows but gives them as null lines, so a file with one fails
    the row count in `_suspects` and goes to the careful reader.
    """
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"\r") < 0


_LINES_SCHEMA = {"line": pl.String}
_KEY_END = r'"[ \t]*:'
"""The end of a JSON key. In a clean line the only whitespace is space and tab, and a
`"` inside a string value is escaped, so this matches every key and may also match
inside a string (`\\":`), never fewer times than there are keys."""
_ESCAPED_KEY = r'\\.(?:[^"\\]|\\.)*' + _KEY_END
"""A key written with an escape (`"\\u0061"` is the key `a`)."""
_SUSPECT_TEXT = r"(?s)^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|[\[{].*[\]}])$"
"""What a number, boolean, object or list looks like once polars made it text."""


SCHEMA_SAMPLE_ROWS = 10_000
"""The rows polars infers a JSON Lines schema from before it parses the rest with it."""


class _UnknownKey(Exception):
    """A line has a key that the schema read from the first rows lacks."""


def _read_ndjson_fast(source, lines_source) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """polars' reader on clean JSON Lines; None hands them whole to the careful reader
    (a parse error, or values polars cannot keep apart row by row).

    First with the schema of the first rows, then, when a later row does not fit it,
    with the schema of every row (see the module docstring)."""
    for infer in (SCHEMA_SAMPLE_ROWS, None):
        if hasattr(source, "seek"):
            source.seek(0)
        try:
            frame = pl.read_ndjson(source, infer_schema_length=infer)
        except _POLARS_ERRORS:  # any parser complaint sends us to the careful path
            if infer is None:
                return None
            continue
        if frame.height == 0 or any(t.is_nested() for t in frame.dtypes):
            return None
        lines = pl.scan_csv(
            lines_source,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            schema=_LINES_SCHEMA,
        )
        try:
            return _recheck_suspects(frame, lines)
        except _UnknownKey:  # a key the first rows lack: read again with every row's
            del frame
        except _POLARS_ERRORS:  # the lines did not split like polars' rows: be careful
            return None
    return None


def read_jsonl_bytes(data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse JSON Lines; malformed lines come back separately instead of failing the file."""
    clean = not data.startswith(b"\n") and b"\n\n" not in data and b"\r" not in data
    if clean and data.strip():
        fast = _read_ndjson_fast(io.BytesIO(data), data)
        if fast is not None:
            return fast
    return _read_jsonl_careful(data)


def _recheck_suspects(
    frame: pl.DataFrame, lines: pl.LazyFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Parse again with `json` the few lines polars may have read differently."""
    return _apply_rechecks(frame, _suspects(frame, lines))


def _suspects(frame: pl.DataFrame, lines: pl.LazyFrame) -> pl.DataFrame:
    """(`_i` row index, `line` text) of the lines polars may have read differently.

    A line can hide a duplicate key, or a key that is not a column, only if it has more
    key endings than non-null fields (one pass over the text); of those, only lines
    where one column's key shows up twice, fewer column keys show up than key endings,
    or a key has an escape, are parsed. A text field can hide a coerced value only if it
    looks like one. A parsed line with a key that is not a column raises _UnknownKey.
    """
    index = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i")
    keys = lines.select(pl.col("line").str.count_matches(_KEY_END)).collect(engine="streaming")
    if keys.height != frame.height:
        raise pl.exceptions.ComputeError("line count differs from row count")
    present = frame.select(pl.sum_horizontal(pl.all().is_not_null()).cast(pl.UInt32))
    maybe_duplicate = (keys.to_series() != present.to_series()).arg_true()
    text_cols = [c for c, t in frame.schema.items() if t == pl.String]
    coerced = frame.select(
        pl.any_horizontal(pl.col(c).str.contains(_SUSPECT_TEXT) for c in text_cols)
        if text_cols
        else pl.lit(False)
    ).to_series()
    candidates = pl.concat([maybe_duplicate, coerced.arg_true()]).unique()
    if candidates.len() == 0:
        return pl.DataFrame(schema={"_i": pl.UInt32, "line": pl.String})
    return (
        lines.with_columns(index)
        .filter(pl.col("_i").is_in(candidates.implode()))
        .filter(pl.col("_i").is_in(coerced.arg_true().implode()) | _odd_keys(frame.columns))
        .select("_i", "line")
        .collect()
    )


def _odd_keys(columns: list[str]) -> pl.Expr:
    """A line where a column's key shows up twice, a key is not a column (fewer column
    keys than key endings; text with an escaped quote before a colon looks the same),
    or a key has an escape."""
    line = pl.col("line")
    counts = [line.str.count_matches(f'"{re.escape(c)}"[ \t]*:') for c in columns]
    repeated = [count > 1 for count in counts]
    unknown = pl.sum_horizontal(counts) != line.str.count_matches(_KEY_END)
    return pl.any_horizontal(*repeated, unknown, line.str.contains(_ESCAPED_KEY))


def _apply_rechecks(frame: pl.DataFrame, suspects: pl.DataFrame):
    # Not a Python list of Nones: 0.07-0.5 s for 1 M rows, this under 1 ms.
    none = pl.Series(TYPE_ERRORS, dtype=pl.List(pl.String)).extend_constant(None, frame.height)
    if suspects.height == 0:
        return _numbered(frame).with_columns(none), _no_unreadable()
    text_cols = {c for c, t in frame.schema.items() if t == pl.String}
    columns = set(frame.columns)
    rows, errors, bad = [], [], []
    for i, text in suspects.iter_rows():
        record, reason = _parse_line(text.encode())
        if not _keys_of(record, text) <= columns:
            raise _UnknownKey(i)
        if reason:
            bad.append((i + 1, reason, text[:500]))
            continue
        rows.append(i)
        coerced = [c for c, v in record.items() if c in text_cols and _is_non_string(v)]
        errors.append([f"{c}:{_json_kind(record[c])}" for c in coerced])
    found = pl.DataFrame(
        {"_i": rows, TYPE_ERRORS: errors}, schema={"_i": pl.Int64, TYPE_ERRORS: none.dtype}
    )
    numbered = _numbered(frame)
    at = pl.DataFrame({"_i": pl.int_range(frame.height, dtype=pl.Int64, eager=True)})
    type_errors = at.join(found, on="_i", how="left", maintain_order="left")[TYPE_ERRORS]
    numbered = numbered.with_columns(type_errors)
    if bad:
        numbered = numbered.filter(~pl.col(LINE).is_in([b[0] for b in bad]))
    return numbered, _unreadable(bad)


def _keys_of(record: dict | None, text: str) -> set[str]:
    """The line's keys; for a line rejected (a duplicate key), those `json` reads."""
    if record is not None:
        return set(record)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return set()
    return set(value) if isinstance(value, dict) else set()


def _is_non_string(value: object) -> bool:
    return value is not None and not isinstance(value, str)


def _json_kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "array"


class _PairsHook:
    """`object_pairs_hook` that notes the first key given twice in any object."""

    def __init__(self) -> None:
        self.duplicate: str | None = None

    def reset(self) -> None:
        self.duplicate = None

    def __call__(self, pairs: list[tuple[str, object]]) -> dict:
        record = dict(pairs)
        if len(record) < len(pairs) and self.duplicate is None:
            seen: set[str] = set()
            self.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        return record


_HOOK = _PairsHook()
_DECODER = json.JSONDecoder(object_pairs_hook=_HOOK)


def _parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    """One JSON Lines line as (record, None) or (None, the reason it cannot be used)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start})"
    _HOOK.reset()
    try:
        record = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, f"nested deeper than {MAX_DEPTH} levels"
    return (None, reason) if (reason := _record_problem(record, _HOOK)) else (record, None)


def _record_problem(record: object, hook: _PairsHook) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if hook.duplicate is not None:
        return f"duplicate key '{hook.duplicate}' in one JSON object"
    if _depth(record) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    return None


def _depth(record: dict) -> int:
    """Nesting depth of a parsed record (1 for a flat object), without recursion."""
    deepest, stack = 1, [(v, 2) for v in record.values() if isinstance(v, dict | list)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _read_jsonl_careful(data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows: list[dict] = []
    bad: list[tuple[int, str, str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        record, reason = _parse_line(raw)
        if reason:
            bad.append((number, reason, _preview(raw)))
            continue
        record[LINE] = number
        rows.append(record)
    return _frame_from_records(rows), _unreadable(bad)


def _preview(raw: bytes) -> str:
    return raw[:500].decode("utf-8", errors="replace")


def _frame_from_records(rows: list[dict]) -> pl.DataFrame:
    """Build a frame from dicts whose fields may mix JSON types.

    A column whose values are all of one JSON kind gets that type (numbers mixing
    integers and floats become floats, as polars' reader does). A column that mixes
    kinds holds text: strings as they are, other values JSON-encoded and named in
    `_type_errors` with their kind.
    """
    columns: dict[str, list] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key not in columns:  # not setdefault: that builds the list for every cell
                columns[key] = [None] * len(rows)
            columns[key][i] = value
    type_errors: list[list[str]] = [[] for _ in rows]
    series = [_column(key, values, type_errors) for key, values in columns.items()]
    frame = pl.DataFrame(series) if series else pl.DataFrame({LINE: []}, schema={LINE: pl.Int64})
    frame = frame.with_columns(pl.col(LINE).cast(pl.Int64))
    return frame.with_columns(pl.Series(TYPE_ERRORS, type_errors, dtype=pl.List(pl.String)))


def _column(key: str, values: list, type_errors: list[list[str]]) -> pl.Series:
    kinds = {_json_kind(v) for v in values if v is not None}
    if len(kinds) == 1:
        try:
            return pl.Series(key, values, strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            pass  # e.g. objects with different fields: kept as text below
    text = []
    for i, value in enumerate(values):
        if _is_non_string(value):
            type_errors[i].append(f"{key}:{_json_kind(value)}")
            value = json.dumps(value, ensure_ascii=False)
        text.append(value)
    return pl.Series(key, text, dtype=pl.String)


# --- Parquet and CSV ----------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_parquet(path: Path, source: str) -> ReadResult:
    if path.stat().st_size == 0:
        raise _empty_file(source)
    try:
        frame = pl.read_parquet(path)
    except _POLARS_ERRORS as exc:
        raise UnreadableInput(
            f"{source}: not a readable Parquet file ({_first_line(exc)})"
        ) from None
    return ReadResult(_numbered(frame), _no_unreadable(), source)


def _read_csv(path: Path, source: str) -> ReadResult:
    """Every CSV field is text (CSV has no types; validation parses numbers), so a
    value never changes with what the other rows hold. Rows with more or fewer fields
    than the header are rejected with their row number."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = _csv_header(path, source)
    ragged: list[tuple[int, str, str]] = []

    def reject(row) -> str:
        number = row.number - 1  # pyarrow counts the header as row 1
        reason = f"{row.actual_columns} fields where the header has {row.expected_columns}"
        ragged.append((number, reason, row.text[:500]))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # single-threaded: only then does pyarrow say which row was ragged
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=reject),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
        )
    except (pa.ArrowException, ValueError) as exc:
        raise UnreadableInput(f"{source}: not a readable CSV file ({_first_line(exc)})") from None
    frame = pl.from_arrow(table).with_columns(
        pl.when(pl.col(c) != "").then(pl.col(c)) for c in header
    )
    return ReadResult(_numbered_around(frame, ragged), _unreadable(ragged), source)


def _csv_header(path: Path, source: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise UnreadableInput(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise UnreadableInput(f"{source}: not a readable CSV file ({exc})") from None
    if not header:
        raise _empty_file(source)
    if len(set(header)) < len(header):
        raise UnreadableInput(f"{source}: the header names a column twice: {header}")
    return header


def _numbered_around(frame: pl.DataFrame, skipped: list[tuple[int, str, str]]) -> pl.DataFrame:
    """Row numbers for the rows kept, counting the skipped rows in between."""
    if not skipped:
        return _numbered(frame)
    gone = pl.Series([s[0] for s in skipped], dtype=pl.Int64)
    every = pl.int_range(1, frame.height + len(skipped) + 1, dtype=pl.Int64, eager=True)
    return frame.with_columns(every.filter(~every.is_in(gone.implode())).alias(LINE)).select(
        LINE, *frame.columns
    )


# --- folders and the Hub ------------------------------------------------------------------


def _read_folder(path: Path, source: str, hub: dict) -> ReadResult:
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - a damaged folder; the user needs the text
            raise UnreadableInput(
                f"{source}: not a readable `datasets` folder ({_first_line(exc)})"
            ) from None
        return ReadResult(_from_datasets(loaded, hub["split"]), _no_unreadable(), source)
    return _read_hub(str(path), source, hub)


def _read_hub(name: str, source: str, hub: dict) -> ReadResult:
    """A Hub dataset id, or a local folder in Hub layout (data files plus a README card)."""
    import datasets

    options = {k: v for k, v in hub.items() if v is not None}
    try:
        loaded = datasets.load_dataset(name, **options)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; the user needs the text
        raise InputError(f"{source}: could not load as a Hugging Face dataset: {exc}") from None
    return ReadResult(_from_datasets(loaded, None), _no_unreadable(), source)


def _from_datasets(loaded, split: str | None) -> pl.DataFrame:
    """A Dataset or DatasetDict as one frame; a DatasetDict's split names go to `split`
    unless the rows carry their own `split` column."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        names = [split] if split else list(loaded)
        parts = []
        for name in names:
            frame = pl.from_arrow(loaded[name].data.table)
            if "split" not in frame.columns:
                frame = frame.with_columns(pl.lit(name).alias("split"))
            parts.append(frame)
        return _numbered(pl.concat(parts, how="diagonal_relaxed"))
    return _numbered(pl.from_arrow(loaded.data.table))


def file_fingerprint(source: str) -> str:
    """Content hash of a local input (file or folder); the id itself for a Hub dataset."""
    path = Path(source)
    if path.is_file():
        stat = path.stat()
        return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return _content_digest(source)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """Memoised on (path, size, mtime): the cache key and the manifest hash one file once."""
    return _content_digest(path)


def _content_digest(source: str) -> str:
    path = Path(source)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not path.exists():
        return f"hub:{source}"
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
