"""`hs build-dataset`'s overlapped work: the card's head start beside the export, the
export's concurrent writes, and text compaction after aggregation."""

import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer import writers
from helpsteer.cli import app
from helpsteer.pipeline import (
    Pipeline,
    PlannedStage,
    StageConfig,
    get_stage,
    stage,
)
from helpsteer.progress import Reporter
from helpsteer.stages import compact_text
from helpsteer.testing import raw_preferences, raw_ratings

runner = CliRunner()


def _inputs(tmp_path, items=40, pairs=20):
    r, p = tmp_path / "ratings.jsonl", tmp_path / "prefs.jsonl"
    raw_ratings(items, 4, seed=1).write_ndjson(r)
    raw_preferences(pairs, 3, seed=2).write_ndjson(p)
    return r, p


def _build(r, p, out):
    return runner.invoke(
        app, ["build-dataset", "-q", "--ratings", str(r), "--preferences", str(p), "--out", out]
    )


# --- the head start of a stage's `prepare` -------------------------------------------------

RAN_BESIDE: dict[str, bool] = {}
PREPARED: dict[str, object] = {}
GATE = threading.Event()


class NoOptions(StageConfig):
    pass


@stage("test_overlap.makes", NoOptions)
def _makes(ctx, tables, cfg):
    return {"numbers": pl.DataFrame({"x": [1, 2, 3]})}


@stage("test_overlap.sink", NoOptions, cacheable=False, keeps_tables=True)
def _sink(ctx, tables, cfg):
    # waits for the next stage's prepare, which only runs now if it got a head start
    RAN_BESIDE["sink"] = GATE.wait(timeout=10)
    return {}


def _prepare(tables, cfg):
    GATE.set()
    return int(tables["numbers"]["x"].sum())


@stage("test_overlap.after", NoOptions, cacheable=False, prepare=_prepare)
def _after(ctx, tables, cfg):
    PREPARED["value"] = ctx.prepared(lambda: ("computed in the stage", _prepare(tables, cfg)))
    return {}


def _failing_prepare(tables, cfg):
    GATE.set()
    raise ValueError("plot failed")


@stage("test_overlap.fails", NoOptions, cacheable=False, prepare=_failing_prepare)
def _fails(ctx, tables, cfg):
    ctx.prepared(lambda: _failing_prepare(tables, cfg))
    return {}


def _run(tmp_path, names):
    planned = [PlannedStage(name=n, spec=get_stage(n), config=NoOptions()) for n in names]
    pipeline = Pipeline(planned, tmp_path, tmp_path / ".cache", use_cache=False)
    return pipeline.run(Reporter(quiet=True))


@pytest.fixture(autouse=True)
def _fresh():
    GATE.clear()
    RAN_BESIDE.clear()
    PREPARED.clear()


def test_prepare_runs_beside_the_table_keeping_stage_before_it(tmp_path):
    _run(tmp_path, ["test_overlap.makes", "test_overlap.sink", "test_overlap.after"])
    assert RAN_BESIDE["sink"] is True
    assert PREPARED["value"] == 6  # the head start's result, not computed in the stage


def test_prepare_runs_in_the_stage_after_a_stage_that_changes_tables(tmp_path):
    _run(tmp_path, ["test_overlap.makes", "test_overlap.after"])
    assert PREPARED["value"] == ("computed in the stage", 6)


def test_a_failed_head_start_fails_its_stage(tmp_path):
    with pytest.raises(ValueError, match="plot failed"):
        _run(tmp_path, ["test_overlap.makes", "test_overlap.sink", "test_overlap.fails"])


def test_card_is_the_same_with_and_without_its_head_start(tmp_path, monkeypatch):
    r, p = _inputs(tmp_path)
    assert _build(r, p, tmp_path / "ahead").exit_code == 0
    monkeypatch.setattr(Pipeline, "_start_ahead", lambda *args: None)
    assert _build(r, p, tmp_path / "inline").exit_code == 0
    for name in ("README.md", "plots/attributes.png", "plots/preference_strength.png"):
        ahead, inline = tmp_path / "ahead" / name, tmp_path / "inline" / name
        assert ahead.read_bytes() == inline.read_bytes(), name


# --- the export's concurrent writes -------------------------------------------------------


def test_a_failed_write_fails_the_export_and_leaves_no_temporaries(tmp_path, monkeypatch):
    r, p = _inputs(tmp_path)
    real = writers._write

    def failing(frame, path, file_type, fmt="", arrow=None):
        if fmt == "regression" and file_type == "jsonl":
            raise OSError("disk full")
        return real(frame, path, file_type, fmt, arrow)

    monkeypatch.setattr(writers, "_write", failing)
    out = tmp_path / "out"
    result = _build(r, p, out)
    assert isinstance(result.exception, OSError)
    assert not (out / "manifest.json").exists()
    assert not [f for f in out.rglob("*") if f.name.startswith(".hs-tmp-")]
    # the writes before the failure finished whole
    assert pl.read_parquet(out / "ratings" / "train.parquet").height > 0


def test_export_files_match_one_write_at_a_time(tmp_path, monkeypatch):
    r, p = _inputs(tmp_path)
    assert _build(r, p, tmp_path / "threads").exit_code == 0
    monkeypatch.setattr(writers, "WRITERS", 1)
    assert _build(r, p, tmp_path / "one").exit_code == 0
    names = sorted(
        str(f.relative_to(tmp_path / "one"))
        for f in (tmp_path / "one").rglob("*")
        if f.is_file() and f.suffix in (".jsonl", ".parquet", ".arrow")
        if f.name != "manifest.json"
    )
    assert any(n.startswith("datasets/") for n in names)
    for name in names:
        a, b = tmp_path / "threads" / name, tmp_path / "one" / name
        assert a.read_bytes() == b.read_bytes(), name


# --- compacted text after aggregation ------------------------------------------------------


def test_compact_text_keeps_the_values():
    frame = pl.DataFrame(
        {"t": ["a", None, "", "ü" * 300], "n": [1, 2, 3, 4], "l": [["x"], [], None, ["y"]]}
    )
    compacted = compact_text(frame)
    assert compacted.equals(frame)
    assert compacted.schema == frame.schema


RETAINED = """
import gc, time
import helpsteer.allocator
import polars as pl
from helpsteer.stages import compact_text

def rss():
    with open("/proc/self/status") as handle:
        line = next(l for l in handle if l.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

base = rss()
text = pl.concat_str(pl.lit("x" * 1000), pl.int_range(200_000).cast(pl.String))
big = pl.select(text.alias("t"))  # about 200 MB of text
kept = big.filter(pl.int_range(pl.len()) % 100 == 0)
kept = COMPACT(kept)
del big
gc.collect()
time.sleep(1.0)
print(rss() - base)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_compacted_rows_do_not_keep_the_source_text_alive():
    def retained(compact: str) -> float:
        script = RETAINED.replace("COMPACT", compact)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return float(done.stdout.split()[-1])

    # 2,000 rows of about 1 kB are kept; without compaction their views hold all 200 MB
    assert retained("compact_text") < 60


def test_aggregate_compacts_every_table_it_keeps(tmp_path, monkeypatch):
    from helpsteer import stages

    seen = []

    def spy(frame):
        seen.append(frame.columns)
        return compact_text(frame)

    monkeypatch.setattr(stages, "compact_text", spy)
    r, p = _inputs(tmp_path)
    assert _build(r, p, tmp_path / "out").exit_code == 0
    assert any("response" in c and "helpfulness" in c for c in seen)  # ratings
    assert any("response_1" in c for c in seen)  # preference


# --- fingerprints computed beside the stages -----------------------------------------------


def test_no_cache_run_has_the_same_fingerprint_as_a_cached_run(tmp_path):
    import json

    r, p = _inputs(tmp_path)

    def fingerprint(name, *extra):
        out = tmp_path / name
        args = ["build-dataset", "-q", "--ratings", str(r), "--preferences", str(p)]
        assert runner.invoke(app, [*args, "--out", str(out), *extra]).exit_code == 0
        return json.loads((out / "manifest.json").read_text())["fingerprint"]

    cached = fingerprint("cached")
    assert fingerprint("no_cache", "--no-cache") == cached
    # the inputs' content is still in it
    raw_ratings(40, 4, seed=7).write_ndjson(r)
    assert fingerprint("changed", "--no-cache") != cached


def test_datasets_folders_get_the_export_stage_fingerprint_per_split(tmp_path):
    import json

    import datasets

    r, p = _inputs(tmp_path)

    def prints(name, *extra):
        out = tmp_path / name
        args = ["build-dataset", "-q", "--ratings", str(r), "--preferences", str(p)]
        assert runner.invoke(app, [*args, "--out", str(out), "--no-cache", *extra]).exit_code == 0
        folders = sorted((out / "datasets").iterdir())
        found = {
            (folder.name, split.name): json.loads((split / "state.json").read_text())[
                "_fingerprint"
            ]
            for folder in folders
            for split in folder.iterdir()
            if split.is_dir()
        }
        assert datasets.load_from_disk(str(out / "datasets" / "bt"))["train"].num_rows
        return found

    first = prints("first")
    assert len(set(first.values())) == len(first)  # one per format and split
    assert prints("again") == first
    # another config or other input content: other tables, other fingerprints
    other = prints("other", "--set", "aggregate.drop_ties=true")
    assert not set(other.values()) & set(first.values())
    raw_ratings(40, 4, seed=7).write_ndjson(r)
    changed = prints("changed")
    assert not set(changed.values()) & set(first.values())


# --- modules a stage needs, imported from the pipeline's start -------------------------------


@stage(
    "test_overlap.imports",
    NoOptions,
    cacheable=False,
    imports=("hs_test_no_such_module", "hs_test_slow_module"),
)
def _imports(ctx, tables, cfg):
    RAN_BESIDE["imported"] = GATE.wait(timeout=10)
    return {}


def test_a_stage_s_modules_are_imported_in_a_thread_and_a_missing_one_is_left(
    tmp_path, monkeypatch
):
    (tmp_path / "hs_test_slow_module.py").write_text(
        "import threading\n"
        "from tests.helpsteer import test_build_overlap as t\n"
        "t.PREPARED['thread'] = threading.current_thread().name\n"
        "t.GATE.set()\n"
    )
    # not monkeypatch.syspath_prepend: it trips on a pkg_resources stub other tests leave
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "hs_test_slow_module", raising=False)
    _run(tmp_path, ["test_overlap.makes", "test_overlap.imports"])
    assert RAN_BESIDE["imported"] is True
    assert PREPARED["thread"] == "stage-imports"
    assert "hs_test_no_such_module" not in sys.modules
