"""`hs build-dataset` on broken or tricky inputs: each gives rejected rows with file, line
and reason, or one clear line naming the file, and the other inputs still come through."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.io import read_table
from helpsteer.records import detect_kind, validate
from helpsteer.testing import raw_preferences, raw_ratings
from tests.helpsteer.builders import rating, write_jsonl

runner = CliRunner()


def _build(*args, env=None):
    return runner.invoke(app, ["build-dataset", "-q", *map(str, args)], env=env)


def _rejected(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]


def _counts(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["counts"]["tables"]


def _one_line(output: str) -> str:
    """The console wraps long lines at its width; the message is one line before that."""
    return " ".join(output.split())


@pytest.fixture
def prefs(tmp_path):
    """A good preferences input beside the bad one: its rows must still come through."""
    path = tmp_path / "prefs.jsonl"
    raw_preferences(20, 3, seed=2).write_ndjson(path)
    return path


def _good_rows(items=2):
    return [rating(f"i{i}", f"u{a}", [3, 3, 3, 3, 3]) for i in range(items) for a in range(3)]


def _assert_file_named_and_prefs_kept(result, out, bad: Path, words: str):
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"{bad}: {words}" in _one_line(result.output)
    assert _counts(out)["preference"] > 0
    file_level = [r for r in _rejected(out) if r["source"] == str(bad) and r["line"] is None]
    assert file_level and words in file_level[0]["reason"]


@pytest.mark.parametrize("blank_line", [False, True], ids=["fast-reader", "careful-reader"])
def test_deeply_nested_line_is_rejected(tmp_path, prefs, blank_line):
    lines = [json.dumps(r) for r in _good_rows(1)]
    lines.insert(1, '{"prompt": ' + "[" * 1500 + "]" * 1500 + "}")
    if blank_line:
        lines.insert(0, "")
    path = write_jsonl(tmp_path / "r.jsonl", lines)
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    assert result.exit_code == 0, result.output
    [bad] = [r for r in _rejected(out) if r["source"] == str(path)]
    assert bad["line"] == (3 if blank_line else 2)
    assert "nested deeper" in bad["reason"]
    assert _counts(out)["ratings"] == 1
    assert _counts(out)["preference"] > 0


@pytest.mark.parametrize(
    "name,content",
    [
        ("r.jsonl", b""),
        ("r.jsonl", b"\n\n\n"),
        ("r.jsonl.gz", gzip.compress(b"\n")),
        ("r.csv", b""),
    ],
)
def test_empty_file_is_one_line_and_the_rest_proceeds(tmp_path, prefs, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    _assert_file_named_and_prefs_kept(result, out, path, "empty file")


def _parquet_bytes(tmp_path) -> bytes:
    raw_ratings(30, 3, seed=1).write_parquet(tmp_path / "whole.parquet")
    return (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_parquet_is_one_line_and_the_rest_proceeds(tmp_path, prefs, damage):
    whole = _parquet_bytes(tmp_path)
    content = {"garbage": b"PAR1 not really", "truncated": whole[: len(whole) // 2], "empty": b""}
    path = tmp_path / "r.parquet"
    path.write_bytes(content[damage])
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    words = "empty file" if damage == "empty" else "not a readable Parquet file"
    _assert_file_named_and_prefs_kept(result, out, path, words)


def test_gz_that_is_not_gzip(tmp_path, prefs):
    path = write_jsonl(tmp_path / "r.jsonl.gz", [json.dumps(r) for r in _good_rows()])
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    _assert_file_named_and_prefs_kept(result, out, path, "not a gzip file")


def test_truncated_gz_keeps_the_rows_before_the_cut(tmp_path, prefs):
    frame = raw_ratings(300, 3, seed=1)
    whole = gzip.compress(frame.write_ndjson().encode())
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    _assert_file_named_and_prefs_kept(result, out, path, "truncated gzip file")
    assert 0 < _counts(out)["ratings"] < 300


def test_ragged_csv_rows_are_rejected_with_their_row(tmp_path, prefs):
    frame = pl.DataFrame(_good_rows(2))
    lines = frame.write_csv().splitlines()
    lines[2] += ",surplus"  # data row 2: one field too many
    lines[5] = lines[5].rsplit(",", 2)[0]  # data row 5: two fields short
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    assert result.exit_code == 0, result.output
    rejected = [r for r in _rejected(out) if r["source"] == str(path)]
    assert [(r["line"], r["reason"]) for r in rejected] == [
        (2, "10 fields where the header has 9"),
        (5, "7 fields where the header has 9"),
    ]
    assert _counts(out)["preference"] > 0
    # the rows after a rejected one keep their own row numbers
    read = read_table(str(path))
    assert read.frame["_line"].to_list() == [1, 3, 4, 6]
    assert read.frame["annotator_id"].to_list() == ["u0", "u2", "u0", "u2"]


def _ratings_with_duplicate_key(key_text: str) -> list[str]:
    rows = [json.dumps(r) for r in _good_rows(1)]
    first = json.loads(rows[0])
    first["helpfulness"] = 4
    # the same key twice: json keeps the last value (3), polars the first (4)
    rows[0] = json.dumps(first)[:-1] + f", {key_text}: 3}}"
    return rows


@pytest.mark.parametrize("key_text", ['"helpfulness"', '"\\u0068elpfulness"', '"helpfulness" '])
@pytest.mark.parametrize("layout", ["clean", "blank-line", "gzip", "array"])
def test_duplicate_key_is_rejected_by_every_reader(tmp_path, key_text, layout):
    lines = _ratings_with_duplicate_key(key_text)
    if layout == "array":
        path = tmp_path / "r.json"
        path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    elif layout == "gzip":
        path = tmp_path / "r.jsonl.gz"
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    else:
        path = write_jsonl(tmp_path / "r.jsonl", lines + ([""] if layout == "blank-line" else []))
    read = read_table(str(path))
    assert read.unreadable["line"].to_list() == [1]
    assert read.unreadable["reason"].to_list() == ["duplicate key 'helpfulness' in one JSON object"]
    assert read.frame["_line"].to_list() == [2, 3]


def test_duplicate_key_gives_the_same_dataset_with_or_without_a_blank_line(tmp_path, prefs):
    rows = _ratings_with_duplicate_key('"helpfulness"')
    rows += [json.dumps(r) for r in _good_rows(2)[3:]]
    outputs = []
    for name, lines in (("clean", rows), ("blank", [*rows[:4], "", *rows[4:]])):
        path = write_jsonl(tmp_path / f"{name}.jsonl", lines)
        out = tmp_path / name
        result = _build("--ratings", path, "--preferences", prefs, "--out", out)
        assert result.exit_code == 0, result.output
        reasons = [r["reason"] for r in _rejected(out) if r["source"] == str(path)]
        assert reasons == ["duplicate key 'helpfulness' in one JSON object"]
        outputs.append(pl.read_parquet(out / "ratings" / "train.parquet").sort("prompt"))
    assert outputs[0].equals(outputs[1])


def _row(annotator, helpfulness=3, prompt="p"):
    row = rating("i", annotator, [helpfulness, 3, 3, 3, 3], prompt=prompt)
    return row


OTHER_ROWS = {
    "string ids": [_row("u1"), _row("u2")],
    "integer ids": [_row(1), _row(2)],
    "float ratings": [_row("u1", 3.0), _row("u2", 2.0)],
    "text ratings": [_row("u1", "3"), _row("u2", "not ratable")],
}
BAD_ROWS = {
    "annotator object": (_row({"name": "x"}), "annotator_id: expected a string or a number"),
    "annotator list": (_row(["x"]), "annotator_id: expected a string or a number"),
    "annotator boolean": (_row(True), "annotator_id: expected a string or a number"),
    "boolean rating": (_row("u9", True), "helpfulness: expected a number, got a boolean"),
    "false rating": (_row("u9", False), "helpfulness: expected a number, got a boolean"),
    "number as prompt": (_row("u9", prompt=7), "prompt: expected a string, got a number"),
}


def _verdicts(path: Path) -> tuple[list[int], list[str], int]:
    read = read_table(str(path))
    checked = validate(read.frame, detect_kind(read.frame.columns, "ratings"))
    return (
        checked.rejected["line"].to_list(),
        checked.rejected["reason"].to_list(),
        checked.good.height,
    )


@pytest.mark.parametrize("blank_line", [False, True], ids=["fast-reader", "careful-reader"])
@pytest.mark.parametrize("others", list(OTHER_ROWS))
@pytest.mark.parametrize("bad", list(BAD_ROWS))
def test_wrong_kinds_are_rejected_whatever_the_other_rows_hold(tmp_path, bad, others, blank_line):
    row, reason = BAD_ROWS[bad]
    end = [""] if blank_line else []
    alone = write_jsonl(tmp_path / "alone.jsonl", [json.dumps(row), *end])
    rows = [OTHER_ROWS[others][0], row, OTHER_ROWS[others][1]]
    among = write_jsonl(tmp_path / "among.jsonl", [*map(json.dumps, rows), *end])
    lines, reasons, kept = _verdicts(among)
    assert (lines, kept) == ([2], 2), reasons  # the bad row only, whatever the others are
    assert _verdicts(alone) == ([1], reasons, 0)  # and for the same reason as on its own
    assert reason in reasons[0]


def test_object_annotator_and_boolean_rating_through_the_cli(tmp_path, prefs):
    rows = [_row("u1"), _row({"name": "x"}), _row("u2", True), _row("u3"), _row("u4")]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "out"
    result = _build("--ratings", path, "--preferences", prefs, "--out", out)
    assert result.exit_code == 0, result.output
    rejected = {r["line"]: r["reason"] for r in _rejected(out) if r["source"] == str(path)}
    assert set(rejected) == {2, 3}
    assert "annotator_id" in rejected[2] and "boolean" in rejected[3]
    assert _counts(out)["ratings"] == 1


def _rows_in_two_normal_forms() -> list[dict]:
    prompt = "Explique le café crème"
    nfc, nfd = unicodedata.normalize("NFC", prompt), unicodedata.normalize("NFD", prompt)
    assert nfc != nfd
    rows = []
    for annotator, text in (("u1", nfc), ("u2", nfd), ("u3", nfd)):
        row = rating("x", annotator, [3, 3, 3, 3, 3], prompt=text, response="Un café.")
        del row["item_id"]  # the item is known by its text only
        rows.append(row)
    return rows


def test_prompts_differing_only_in_normalization_are_one_item(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", _rows_in_two_normal_forms())
    out = tmp_path / "out"
    result = _build("--ratings", path, "--out", out)
    assert result.exit_code == 0, result.output
    ratings = _ratings_table(out)
    assert ratings["prompt"].to_list() == [unicodedata.normalize("NFC", "Explique le café crème")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"][0]["info"]["inputs"][0]["accepted"] == 3


def _ratings_table(out: Path) -> pl.DataFrame:
    return pl.concat(pl.read_parquet(p) for p in (out / "ratings").glob("*.parquet"))


def test_normalization_is_a_load_option(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", _rows_in_two_normal_forms())
    every_item = ["--set", "aggregate.min_annotators=1"]
    for form, items in (("none", 2), ("NFKC", 1), ("NFC", 1)):
        out = tmp_path / form
        option = f"load.unicode_normalization={form}"
        result = _build("--ratings", path, "--out", out, "--set", option, *every_item)
        assert result.exit_code == 0, result.output
        assert _ratings_table(out).height == items, form
    wrong = _build("--ratings", path, "--out", out, "--set", "load.unicode_normalization=NFX")
    assert wrong.exit_code == 2 and "unicode_normalization" in wrong.output


# --- a killed run leaves no temporaries behind -------------------------------------------------


def _leftovers(out: Path) -> list[str]:
    """Hidden entries (the temporaries of atomic writes) anywhere under the output folder,
    besides the stage cache folder itself."""
    found = []
    for root, dirs, files in os.walk(out):
        for name in dirs + files:
            path = Path(root) / name
            if name.startswith(".") and path != out / ".cache":
                found.append(str(path.relative_to(out)))
    return sorted(found)


KILL_INSIDE_A_WRITE = """
import contextlib, os, signal, sys
from pathlib import Path
import helpsteer.atomic, helpsteer.build, helpsteer.pipeline, helpsteer.writers

out, where = Path(sys.argv[1]), sys.argv[2]
real = helpsteer.atomic.atomic_path

@contextlib.contextmanager
def dying(path):
    with real(path) as tmp:
        yield tmp
        # written in full, not yet renamed into place: the worst moment to die
        if str(Path(path).relative_to(out)).startswith(where):
            os.kill(os.getpid(), signal.SIGKILL)

for module in (helpsteer.build, helpsteer.pipeline, helpsteer.writers):
    module.atomic_path = dying
from helpsteer.cli import app
app(sys.argv[3:])
"""


def _inputs(tmp_path, items=40, pairs=20):
    r, p = tmp_path / "ratings.jsonl", tmp_path / "prefs.jsonl"
    raw_ratings(items, 3, seed=1).write_ndjson(r)
    raw_preferences(pairs, 3, seed=2).write_ndjson(p)
    return r, p


@pytest.mark.parametrize("where", [".cache/load", ".cache/split", "ratings/train", "datasets/bt"])
def test_killed_mid_write_then_resumed_leaves_no_temporaries(tmp_path, where):
    r, p = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ["build-dataset", "-q", "--ratings", str(r), "--preferences", str(p), "--out", str(out)]
    script = [sys.executable, "-c", KILL_INSIDE_A_WRITE, str(out), where, *args]
    killed = subprocess.run(script, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert _leftovers(out), "the kill should have left a temporary behind"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    assert _leftovers(out) == []
    assert _counts(out)["ratings"] == 40


def test_sigkill_at_a_random_moment_then_resumed_leaves_no_temporaries(tmp_path):
    """A real `kill -9` of a running `hs build-dataset`, sent while a write is under way."""
    r, p = _inputs(tmp_path, items=3000, pairs=1000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "helpsteer.cli", "build-dataset", "-q"]
    command += ["--ratings", str(r), "--preferences", str(p), "--out", str(out)]
    seen = []
    for _attempt in range(10):  # each try starts where the last was killed
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not seen:
            seen = _leftovers(out)
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if seen and proc.returncode == -signal.SIGKILL:
            break
        seen = []
    assert seen, "no run was caught in the middle of a write"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    assert _leftovers(out) == []


def test_atomic_temporaries_keep_the_suffix_and_only_they_are_swept(tmp_path):
    from helpsteer.atomic import atomic_path
    from helpsteer.writers import sweep_leftovers

    target = tmp_path / "ratings" / "train.parquet"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".train.parquet")
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data" and sorted(target.parent.iterdir()) == [target]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"data" and sorted(target.parent.iterdir()) == [target]
    # what a killed run leaves: a temporary file and a temporary folder
    (target.parent / ".hs-tmp-0123abcd.validation.jsonl").write_text("{}")
    (tmp_path / "datasets" / ".hs-tmp-89abcdef.bt" / "train").mkdir(parents=True)
    mine = [tmp_path / ".hs-tmp-notes.txt", target.parent / ".my-settings"]
    for path in mine:
        path.write_text("the user's")
    assert sweep_leftovers(tmp_path) == 2
    assert _leftovers(tmp_path) == sorted(str(p.relative_to(tmp_path)) for p in mine)
