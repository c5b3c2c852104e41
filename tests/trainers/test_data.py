import pytest

from tests.trainers.conftest import bt_rows, regression_rows, write_jsonl
from trainers.data import (
    DataError,
    Rows,
    Sample,
    detect_kind,
    encode,
    pad_batch,
    plan_epoch,
    read_rows,
    split_batch,
    to_samples,
)

ATTRS = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def _rows(*rows):
    return Rows("t.jsonl", list(rows), list(range(1, len(rows) + 1)))


def test_bt_export_rows_count_ties_and_keep_margins():
    out = to_samples(_rows(*bt_rows(14)), bt=True, attributes=ATTRS)
    assert out.ties == 2  # strength 0 occurs every 7 rows
    assert len(out.samples) == 12
    assert sorted({s.margin for s in out.samples}) == [1.0, 2.0, 3.0]
    assert all(len(s.seqs) == 2 for s in out.samples)


def test_trl_string_and_prompt_forms():
    rows = _rows(
        {"chosen": "Human: hi Assistant: hello", "rejected": "Human: hi Assistant: go away"},
        {
            "prompt": "hi\n<extra_id_1>Assistant\nyo\n<extra_id_1>User\nmore",
            "chosen": "a",
            "rejected": "b",
        },
    )
    out = to_samples(rows, bt=True, attributes=ATTRS)
    assert not out.rejects
    assert out.samples[0].seqs[0] == "Human: hi Assistant: hello"
    assert out.samples[0].margin == 1.0  # no strength column: a plain win
    chosen = out.samples[1].seqs[0]
    assert [m["role"] for m in chosen] == ["user", "assistant", "user", "assistant"]
    assert chosen[-1]["content"] == "a" and chosen[2]["content"] == "more"


def test_bad_rows_are_rejected_with_reasons():
    good = bt_rows(1)[0]
    rows = _rows(
        {"chosen": good["chosen"]},
        {**good, "preference_strength": 7},
        {**good, "chosen": [{"role": "user", "content": "no answer"}]},
        {**good, "chosen": "text", "rejected": good["rejected"]},
    )
    out = to_samples(rows, bt=True, attributes=ATTRS)
    reasons = {r.line: r.reason for r in out.rejects}
    assert "missing 'rejected'" in reasons[1]
    assert "outside -3..3" in reasons[2]
    assert "end with the assistant" in reasons[3]
    assert "both be text" in reasons[4]
    assert not out.samples


def test_regression_rows_nine_slots_and_plain_columns():
    nine = regression_rows(1)[0]
    plain = {
        "prompt": "q",
        "response": "a",
        "helpfulness": 3,
        "correctness": None,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 2,
    }
    out = to_samples(_rows(nine, plain), bt=False, attributes=ATTRS)
    assert out.samples[0].labels == [float(v) for v in nine["label"][4:]]
    assert out.samples[1].labels == [3.0, -100.0, 4.0, 1.0, 2.0]
    helpful = to_samples(_rows(plain), bt=False, attributes=["helpfulness"])
    assert helpful.samples[0].labels == [3.0]


def test_regression_rejects_bad_labels():
    base = regression_rows(1)[0]
    rows = _rows(
        {**base, "label": [1, 2]},
        {**base, "label": [-100] * 4 + [9, 1, 1, 1, 1]},
        {**base, "label": [-100] * 9},
        {**base, "label": [-100] * 4 + ["x", 1, 1, 1, 1]},
    )
    out = to_samples(rows, bt=False, attributes=ATTRS)
    reasons = [r.reason for r in out.rejects]
    assert "must have 9 values" in reasons[0]
    assert "outside 0..4" in reasons[1]
    assert "no label for any" in reasons[2]
    assert "must be a number" in reasons[3]


def test_read_rows_jsonl_rejects_bad_lines_and_parquet(tmp_path):
    import polars as pl

    path = write_jsonl(tmp_path / "d.jsonl", bt_rows(2))
    with path.open("a") as f:
        f.write("{nope\n[1, 2]\n")
    rows = read_rows(str(path))
    assert len(rows.rows) == 2
    assert [(r.line, r.reason[:14]) for r in rows.rejects] == [
        (3, "not valid JSON"),
        (4, "a JSON Lines r"),
    ]
    pq = tmp_path / "d.parquet"
    pl.DataFrame(regression_rows(3)).write_parquet(pq)
    assert detect_kind(read_rows(str(pq)).rows) == "regression"
    with pytest.raises(DataError, match="no such file"):
        read_rows(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="cannot tell the data format"):
        detect_kind([{"foo": 1}])


def test_read_rows_from_save_to_disk(tmp_path):
    import datasets

    datasets.Dataset.from_list(bt_rows(3)).save_to_disk(str(tmp_path / "ds"))
    rows = read_rows(str(tmp_path / "ds"))
    assert len(rows.rows) == 3 and rows.rows[0]["pair_id"] == "p0"


def test_encode_truncates_on_the_chosen_side(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    long = [{"role": "user", "content": "the sea " * 30}, {"role": "assistant", "content": "paris"}]
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "paris"}]
    samples = [Sample([long], labels=[1.0]), Sample([short], labels=[1.0])]
    full = encode(tok, samples, 10_000, "left").ids[0]
    left = encode(tok, samples, 16, "left")
    right = encode(tok, samples, 16, "right")
    assert left.truncated == right.truncated == 1
    assert left.ids[0] == full[-16:] and right.ids[0] == full[:16]
    assert left.ids[1] == right.ids[1]
    assert full[0] == tok.bos_token_id and full.count(tok.bos_token_id) == 1


def test_plan_epoch_groups_lengths_and_is_deterministic():
    lengths = [(i * 37) % 101 for i in range(100)]
    a = plan_epoch(lengths, 8, seed=1, epoch=0, group_by_length=True)
    assert a == plan_epoch(lengths, 8, seed=1, epoch=0, group_by_length=True)
    assert a != plan_epoch(lengths, 8, seed=1, epoch=1, group_by_length=True)
    assert len(a) == 12 and len({i for b in a for i in b}) == 96
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a)
    plain = plan_epoch(lengths, 8, seed=1, epoch=0, group_by_length=False)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)
    assert spread < plain_spread / 3


def test_split_batch_is_the_same_partition_for_any_world_size():
    batch = list(range(8))
    one = split_batch(batch, 2, world=1, rank=0)
    two = split_batch(batch, 2, world=2, rank=0) + split_batch(batch, 2, world=2, rank=1)
    assert sorted(map(tuple, one)) == sorted(map(tuple, two))
    assert len(split_batch(batch, 2, world=2, rank=1)) == 2


def test_pad_batch_sides():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids == [[5, 6, 7], [0, 0, 8]] and mask == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, side="right")
    assert ids == [[5, 6, 7], [8, 0, 0]] and mask == [[1, 1, 1], [1, 0, 0]]


def test_read_rows_gzipped_jsonl_gives_the_rows_and_lines_of_the_plain_file(tmp_path):
    import gzip

    plain = write_jsonl(tmp_path / "d.jsonl", bt_rows(3))
    with plain.open("a", encoding="utf-8") as f:
        f.write('\n{"text": "line\u2028separator inside a string"}\n{nope\n')
    packed = tmp_path / "d.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    want, got = read_rows(str(plain)), read_rows(str(packed))
    assert got.rows == want.rows and got.lines == want.lines == [1, 2, 3, 5]
    assert [(r.line, r.reason[:14]) for r in got.rejects] == [(6, "not valid JSON")]
    assert got.source == str(packed)
    (tmp_path / "folder").mkdir()
    packed.rename(tmp_path / "folder" / "d.jsonl.gz")
    assert read_rows(str(tmp_path / "folder")).rows == want.rows


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "not a gzip file"),
        ("truncated", "truncated gzip file.*replace the file"),
        ("latin-1", "not UTF-8 text"),
    ],
)
def test_read_rows_damaged_gzip_is_a_clear_error(tmp_path, data, message):
    import gzip

    whole = gzip.compress(b'{"chosen": "a", "rejected": "b"}\n' * 400)
    if data == "truncated":  # rows before the damage are readable: still refused
        data = whole[: len(whole) // 2]
    elif data == "latin-1":
        data = gzip.compress('{"chosen": "caf\u00e9", "rejected": "b"}\n'.encode("latin-1"))
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(DataError, match=f"{path}: {message}"):
        read_rows(str(path))
