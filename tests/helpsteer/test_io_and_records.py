import gzip
import json

import polars as pl
import pytest

import helpsteer.io as hio
from helpsteer.io import InputError, read_table
from helpsteer.records import ColumnError, Kind, detect_kind, validate
from tests.helpsteer.builders import preference, rating, write_jsonl


def _validate(path, role="ratings"):
    read = read_table(str(path))
    kind = detect_kind(read.frame.columns, role)
    return read, validate(read.frame, kind)


def test_clean_jsonl_reads_with_line_numbers(tmp_path):
    rows = [rating("a", f"u{i}", [3, 3, 4, 2, 1]) for i in range(3)]
    read = read_table(str(write_jsonl(tmp_path / "r.jsonl", rows)))
    assert read.frame["_line"].to_list() == [1, 2, 3]
    assert read.unreadable.height == 0


@pytest.mark.parametrize(
    "layout",
    ["\n{0}\n{1}\n{2}\n", "{0}\n\n\n{1}\n{2}\n", "{0}\n   \n{1}\n{2}\n", "{0}\n{1}\n{2}\n\n"],
)
def test_blank_lines_keep_every_row_on_its_own_line_number(tmp_path, layout):
    rows = [json.dumps(rating("a", f"u{i}", [3, 3, 4, 2, i])) for i in range(3)]
    text = layout.format(*rows)
    path = tmp_path / "r.jsonl"
    path.write_text(text)
    read = read_table(str(path))
    expected = [n for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    assert read.frame["_line"].to_list() == expected
    assert read.frame["verbosity"].to_list() == [0, 1, 2]
    assert read.unreadable.height == 0


def test_malformed_lines_non_utf8_and_non_objects_are_reported_with_line(tmp_path):
    good = json.dumps(rating("a", "u1", [3, 3, 4, 2, 1]))
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [good, "{not json", b'{"prompt": "caf\xe9"}', "", "[1, 2]", good.replace("u1", "u2")],
    )
    read = read_table(str(path))
    assert read.frame["_line"].to_list() == [1, 6]
    reasons = dict(zip(read.unreadable["line"], read.unreadable["reason"], strict=True))
    assert reasons[2].startswith("malformed JSON")
    assert "UTF-8" in reasons[3]
    assert "expected a JSON object" in reasons[5]


def test_gzip_parquet_and_json_array(tmp_path):
    rows = [rating("a", f"u{i}", [1, 2, 3, 4, 0]) for i in range(3)]
    gz = tmp_path / "r.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    pq = tmp_path / "r.parquet"
    pl.DataFrame(rows).write_parquet(pq)
    arr = tmp_path / "r.json"
    arr.write_text(json.dumps(rows))
    for path in (gz, pq, arr):
        assert read_table(str(path)).frame.height == 3


def test_missing_source_and_unknown_type(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown file type"):
        read_table(str(tmp_path / "x.txt"))


def test_datasets_folder_and_hub_layout_folder(tmp_path):
    import datasets

    rows = [rating("a", f"u{i}", [1, 2, 3, 4, 0]) for i in range(4)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert read_table(str(tmp_path / "saved")).frame.height == 4
    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    pl.DataFrame(rows[:3]).write_parquet(hub / "data" / "train-00000-of-00001.parquet")
    pl.DataFrame(rows[3:]).write_parquet(hub / "data" / "validation-00000-of-00001.parquet")
    frame = read_table(str(hub)).frame
    assert sorted(frame["split"].to_list()) == ["train"] * 3 + ["validation"]


def test_misnamed_column_error_names_the_close_match(tmp_path):
    row = rating("a", "u1", [1, 2, 3, 4, 0])
    row["helpfullness"] = row.pop("helpfulness")
    read = read_table(str(write_jsonl(tmp_path / "r.jsonl", [row])))
    with pytest.raises(ColumnError, match="'helpfulness' \\(found 'helpfullness': misnamed"):
        detect_kind(read.frame.columns, "ratings")


def test_kind_detection():
    assert (
        detect_kind(["prompt", "response", "annotator_id", *ATTRS], "ratings") == Kind.RAW_RATINGS
    )
    assert detect_kind(["prompt", "response", *ATTRS], "ratings") == Kind.RATINGS
    pref = ["prompt", "response_1", "response_2", "preference_strength"]
    assert detect_kind(pref, "preferences") == Kind.PREFERENCE
    assert detect_kind([*pref, "annotator_id"], "preferences") == Kind.RAW_PREFERENCES


ATTRS = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def test_rating_cell_rules(tmp_path):
    rows = [
        rating("ok", "u1", [4, 3, "not ratable", None, 0]),
        rating("range", "u1", [7, 3, 3, 3, 3]),
        rating("frac", "u1", [2.5, 3, 3, 3, 3]),
        rating("word", "u1", ["great", 3, 3, 3, 3]),
        rating("sentinel", "u1", [-100, 3, 3, 3, 3]),
        rating("numstr", "u1", ["3", 3, 3, 3, 3]),
        rating("empty", "u1", [1, 1, 1, 1, 1], response="   "),
    ]
    read, checked = _validate(write_jsonl(tmp_path / "r.jsonl", rows))
    good = checked.good
    assert sorted(good["item_id"].to_list()) == ["numstr", "ok", "sentinel"]
    ok = good.filter(pl.col("item_id") == "ok").row(0, named=True)
    assert (ok["helpfulness"], ok["coherence"], ok["complexity"]) == (4, None, None)
    assert good.filter(pl.col("item_id") == "sentinel")["helpfulness"].item() is None
    assert good.filter(pl.col("item_id") == "numstr")["helpfulness"].item() == 3
    reasons = dict(zip(checked.rejected["line"], checked.rejected["reason"], strict=True))
    assert "outside 0-4" in reasons[2]
    assert "not an integer" in reasons[3]
    assert "expected a number, got 'great'" in reasons[4]
    assert "response: empty text" in reasons[7]
    assert json.loads(checked.rejected.filter(pl.col("line") == 2)["record"].item())[
        "helpfulness"
    ] in (7, "7")


def test_mixed_types_in_text_column_are_rejected(tmp_path):
    rows = [rating("a", "u1", [1, 1, 1, 1, 1]), rating("b", "u1", [1, 1, 1, 1, 1])]
    rows[1]["response"] = 12345
    _, checked = _validate(write_jsonl(tmp_path / "r.jsonl", rows))
    assert checked.good["item_id"].to_list() == ["a"]
    assert "response: expected a string" in checked.rejected["reason"].item()


def test_mixed_types_on_the_careful_path_too(tmp_path):
    rows = [rating("a", "u1", [1, 1, 1, 1, 1]), rating("b", "u1", [1, 1, 1, 1, 1])]
    rows[1]["response"] = 12345
    path = write_jsonl(tmp_path / "r.jsonl", [*rows, "{broken"])
    _, checked = _validate(path)
    assert checked.good["item_id"].to_list() == ["a"]
    assert "response: expected a string" in checked.rejected["reason"].item()


def test_duplicates_and_conflicting_item_text(tmp_path):
    rows = [
        rating("a", "u1", [1, 1, 1, 1, 1]),
        rating("a", "u1", [2, 2, 2, 2, 2]),
        rating("a", "u2", [2, 2, 2, 2, 2], prompt="a different prompt"),
    ]
    _, checked = _validate(write_jsonl(tmp_path / "r.jsonl", rows))
    assert checked.good["_line"].to_list() == [1]
    reasons = dict(zip(checked.rejected["line"], checked.rejected["reason"], strict=True))
    assert "duplicate (item_id, annotator_id) = (a, u1); first at line 1" in reasons[2]
    assert "text differs from line 1" in reasons[3]


def test_key_hash_collisions_reject_nothing_more(tmp_path, monkeypatch):
    """The first pass groups by hashed keys; if every key and annotator hashed alike,
    only the rows the text keys flag may still be rejected."""
    import helpsteer.records as records

    rows = [rating(item, f"u{n}", [n % 5] * 5) for item in "abcd" for n in range(3)]
    rows += [rating("b", "u1", [4] * 5), rating("c", "u9", [1] * 5, prompt="changed")]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    _, honest = _validate(path)
    monkeypatch.setattr(records, "_key_hash", lambda column, seed=11: pl.lit(0, pl.UInt64))
    _, colliding = _validate(path)
    assert colliding.good["_line"].to_list() == honest.good["_line"].to_list()
    assert colliding.rejected.to_dicts() == honest.rejected.to_dicts()
    assert sorted(honest.rejected["line"]) == [13, 14]


def test_item_id_is_derived_when_absent(tmp_path):
    rows = [rating("x", f"u{i}", [1, 1, 1, 1, 1]) for i in range(2)]
    for r in rows:
        del r["item_id"]
    _, checked = _validate(write_jsonl(tmp_path / "r.jsonl", rows))
    ids = checked.good["item_id"].unique().to_list()
    assert len(ids) == 1 and ids[0].startswith("item-")


def test_preference_strength_rules(tmp_path):
    rows = [
        preference("p", "u1", -2),
        preference("p", "u2", 4),
        preference("p", "u3", -100),
        preference("p", "u4", "2"),
        preference("p", "u5", None),
    ]
    _, checked = _validate(write_jsonl(tmp_path / "p.jsonl", rows), "preferences")
    assert checked.good["annotator_id"].to_list() == ["u1", "u4"]
    reasons = dict(zip(checked.rejected["line"], checked.rejected["reason"], strict=True))
    assert "outside -3..3" in reasons[2]
    assert "-100" in reasons[3]
    assert "missing" in reasons[5]


def test_hub_layout_data_dir_like_helpsteer2_preference(tmp_path):
    hub = tmp_path / "HelpSteer2"
    (hub / "preference").mkdir(parents=True)
    (hub / "data").mkdir()
    rows = [rating("a", "u1", [1, 2, 3, 4, 0])]
    pl.DataFrame(rows).write_parquet(hub / "data" / "train.parquet")
    pref = [
        {
            "split": "train",
            "prompt": "p",
            "response_1": "a",
            "response_2": "b",
            "preference_strength": 1,
        }
    ]
    (hub / "preference" / "preference.jsonl").write_text(json.dumps(pref[0]) + "\n")
    frame = read_table(str(hub), data_dir="preference").frame
    assert frame["preference_strength"].to_list() == [1]


# --- the fast JSON Lines reader: schema from the first rows, checked against every row --


def _careful_forbidden(monkeypatch):
    import helpsteer.io as hio

    def refuse(data):
        raise AssertionError("the careful reader ran on a file the fast reader can read")

    monkeypatch.setattr(hio, "_read_jsonl_careful", refuse)


def _full_inference(path):
    """What polars reads with the schema of every row (the reader's reference)."""
    return pl.read_ndjson(path, infer_schema_length=None)


def test_a_key_only_after_the_schema_sample_is_kept(tmp_path, monkeypatch):
    import helpsteer.io as hio

    monkeypatch.setattr(hio, "SCHEMA_SAMPLE_ROWS", 3)
    _careful_forbidden(monkeypatch)
    rows = [rating(f"i{i}", "u1", [1, 2, 3, 4, 0]) for i in range(6)]
    rows[5]["created_at"] = "2024-05-01"  # a column the first 3 rows do not have
    rows[4]["split"] = None  # a key the first rows lack, given as null
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    frame = read_table(str(path)).frame
    assert frame["created_at"].to_list() == [None] * 5 + ["2024-05-01"]
    assert "split" in frame.columns
    assert frame.drop("_line", "_type_errors").equals(_full_inference(path))


def test_a_type_change_after_the_schema_sample_reads_as_with_every_row(tmp_path, monkeypatch):
    import helpsteer.io as hio

    monkeypatch.setattr(hio, "SCHEMA_SAMPLE_ROWS", 2)
    rows = [rating(f"i{i}", "u1", [1, 2, 3, 4, 0]) for i in range(5)]
    rows[3]["helpfulness"] = "not ratable"  # integers first, then text
    rows[4]["correctness"] = 2.5  # integers first, then a float
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    read = read_table(str(path))
    assert read.frame.drop("_line", "_type_errors").equals(_full_inference(path))
    _, checked = _validate(path)
    reasons = dict(zip(checked.rejected["line"], checked.rejected["reason"], strict=True))
    assert "correctness: 2.5 is not an integer" in reasons[5]
    assert checked.good.filter(pl.col("_line") == 4)["helpfulness"].item() is None


def test_a_number_in_a_text_column_is_found_without_the_careful_reader(tmp_path, monkeypatch):
    _careful_forbidden(monkeypatch)
    rows = [rating("a", "u1", [1, 1, 1, 1, 1]), rating("b", "u1", [1, 1, 1, 1, 1])]
    rows[1]["response"] = 12345
    rows[0]["prompt"] = 'text with a "quoted": colon'
    _, checked = _validate(write_jsonl(tmp_path / "r.jsonl", rows))
    assert checked.good["item_id"].to_list() == ["a"]
    assert "response: expected a string, got a number" in checked.rejected["reason"].item()


def test_a_duplicate_key_after_the_sample_is_rejected_and_new_keys_still_kept(
    tmp_path, monkeypatch
):
    import helpsteer.io as hio

    monkeypatch.setattr(hio, "SCHEMA_SAMPLE_ROWS", 2)
    rows = [json.dumps(rating(f"i{i}", "u1", [1, 2, 3, 4, 0])) for i in range(3)]
    rows.append(rows[0][:-1] + ', "prompt": "again", "note": "only here"}')
    read = read_table(str(write_jsonl(tmp_path / "r.jsonl", rows)))
    assert read.frame["_line"].to_list() == [1, 2, 3]
    assert "note" in read.frame.columns  # as polars reads it with every row's keys
    assert "duplicate key 'prompt'" in read.unreadable["reason"].item()


@pytest.mark.parametrize("source", ["data/nothere.jsonl", "./nothere", "../x", "out/a.parquet"])
def test_a_missing_local_path_is_not_looked_up_on_the_hub(source, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hio, "_read_hub", lambda *a: pytest.fail(f"{source} went to the Hub"))
    with pytest.raises(InputError, match="no such file or folder"):
        hio.read_table(source)


def test_an_owner_slash_name_still_goes_to_the_hub(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr(hio, "_read_hub", lambda name, *a: asked.append(name))
    hio.read_table("nvidia/HelpSteer2")
    assert asked == ["nvidia/HelpSteer2"]
