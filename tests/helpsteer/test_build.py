"""`hs build-dataset` end to end: outputs, bad input, config errors, cache and resume."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.testing import raw_preferences, raw_ratings
from tests.helpsteer.builders import preference, rating, write_jsonl

runner = CliRunner()


def _inputs(tmp_path, items=40, pairs=20):
    r = tmp_path / "ratings.jsonl"
    p = tmp_path / "prefs.jsonl"
    raw_ratings(items, 4, seed=1).write_ndjson(r)
    raw_preferences(pairs, 3, seed=2).write_ndjson(p)
    return r, p


def _build(*args):
    return runner.invoke(app, ["build-dataset", "-q", *map(str, args)])


def test_common_case_writes_every_output(tmp_path):
    r, p = _inputs(tmp_path)
    out = tmp_path / "out"
    result = _build("--ratings", r, "--preferences", p, "--out", out)
    assert result.exit_code == 0, result.output
    for fmt in (
        "ratings",
        "preference",
        "regression",
        "regression_columns",
        "bt",
        "dpo",
        "steerlm",
    ):
        assert (out / fmt / "train.parquet").exists(), fmt
        assert (out / fmt / "train.jsonl").exists(), fmt
    ratings = pl.read_parquet(out / "ratings" / "train.parquet")
    assert ratings.columns == [
        "prompt",
        "response",
        "helpfulness",
        "correctness",
        "coherence",
        "complexity",
        "verbosity",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    tables = manifest["counts"]["tables"]
    assert tables["ratings"] == 40
    # pairs whose 3 most similar strengths spread more than 2 are filtered, not lost
    assert tables["preference"] + manifest["counts"]["filtered"] == 20
    assert [s["name"] for s in manifest["stages"]] == [
        "load",
        "aggregate",
        "split",
        "export",
        "card",
    ]
    assert len(manifest["inputs"][0]["sha256"]) == 64
    agreement = manifest["stages"][1]["info"]["ratings"]["agreement_before"]["helpfulness"]
    assert agreement["krippendorff_alpha"] > 0.3  # synthetic annotators share a truth
    card = (out / "README.md").read_text()
    assert "Krippendorff" in card and "plots/attributes.png" in card
    assert (out / "plots" / "attributes.png").stat().st_size > 1000


def test_outputs_open_with_datasets(tmp_path):
    import datasets

    r, p = _inputs(tmp_path)
    out = tmp_path / "out"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    saved = datasets.load_from_disk(str(out / "datasets" / "preference"))
    assert set(saved) == {"train", "validation"} or set(saved) == {"train"}
    assert "three_most_similar_preferences" in saved["train"].column_names
    hub = datasets.load_dataset(str(out), name="bt", split="train")
    assert {"chosen", "rejected", "preference_strength"} <= set(hub.column_names)
    assert "margin" not in hub.column_names  # TRL would switch to a margin loss


def test_no_prompt_in_both_splits_across_tables(tmp_path):
    r, p = _inputs(tmp_path, items=300, pairs=100)
    out = tmp_path / "out"
    assert (
        _build(
            "--ratings",
            r,
            "--preferences",
            p,
            "--out",
            out,
            "--set",
            "split.validation_fraction=0.3",
        ).exit_code
        == 0
    )

    def prompts(fmt, split):
        return set(pl.read_parquet(out / fmt / f"{split}.parquet")["prompt"])

    for fmt in ("ratings", "preference"):
        assert not prompts(fmt, "train") & prompts(fmt, "validation")
        assert prompts(fmt, "validation")


def test_bad_rows_are_rejected_with_file_line_and_reason(tmp_path):
    rows = [rating("a", f"u{i}", [3, 3, 3, 3, 3]) for i in range(3)]
    rows += ["{oops", json.dumps(rating("b", "u1", [9, 3, 3, 3, 3]))]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "out"
    result = _build("--ratings", path, "--out", out)
    assert result.exit_code == 0, result.output
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(x["source"], x["line"]) for x in rejected] == [(str(path), 4), (str(path), 5)]
    assert "malformed JSON" in rejected[0]["reason"]
    assert "helpfulness: 9" in rejected[1]["reason"]
    assert rejected[1]["stage"] == "load"


def test_nothing_usable_exits_non_zero_without_traceback(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", ["{bad", "[1]"])
    result = _build("--ratings", path, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_misnamed_columns_reject_the_file_and_say_why(tmp_path):
    rows = [rating("a", f"u{i}", [3, 3, 3, 3, 3]) for i in range(3)]
    for r in rows:
        r["annotator"] = r.pop("annotator_id")
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "out"
    result = _build("--ratings", path, "--out", out)
    assert result.exit_code == 1
    first = json.loads((out / "rejected.jsonl").read_text().splitlines()[0])
    # without annotator_id the file reads as aggregated ratings... which it is not either
    assert "missing column" in first["reason"] or "annotator" in first["reason"]


def test_filters_go_to_filtered_jsonl(tmp_path):
    rows = [rating("a", f"u{i}", [3, 3, 3, 3, 3]) for i in range(3)]
    rows += [rating("b", f"u{i}", [0, 1, 1, 1, 1]) for i in range(2)]
    rows += [preference("p", f"u{i}", s) for i, s in enumerate([-3, 0, 3])]
    r = write_jsonl(tmp_path / "r.jsonl", rows[:5])
    p = write_jsonl(tmp_path / "p.jsonl", rows[5:])
    out = tmp_path / "out"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    filtered = [json.loads(x) for x in (out / "filtered.jsonl").read_text().splitlines()]
    reasons = {(f["kind"], f["id"]): f["reason"] for f in filtered}
    assert reasons[("ratings", "b")] == "fewer than 3 annotators"
    assert "spread more than 2" in reasons[("preference", "p")]


def test_already_aggregated_helpsteer2_files(tmp_path):
    ratings = pl.DataFrame(
        {
            "prompt": ["q1", "q2"],
            "response": ["a1", "a2"],
            **{
                a: [3, 4]
                for a in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
            },
        }
    )
    ratings.write_parquet(tmp_path / "hs2.parquet")
    prefs = pl.DataFrame(
        {
            "split": ["train", "validation"],
            "prompt": ["q1", "q3"],
            "response_1": ["x", "y"],
            "response_2": ["z", "w"],
            "preference_strength": [2, -1],
            "preference_statement": ["s", "t"],
            "preference_elaboration": ["", ""],
        }
    )
    prefs.write_ndjson(tmp_path / "pref.jsonl")
    out = tmp_path / "out"
    result = _build(
        "--ratings",
        tmp_path / "hs2.parquet",
        "--preferences",
        tmp_path / "pref.jsonl",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    pref_val = pl.read_parquet(out / "preference" / "validation.parquet")
    assert pref_val["prompt"].to_list() == ["q3"]  # the given split is kept


def test_config_file_overrides_and_errors(tmp_path):
    r, p = _inputs(tmp_path)
    config = tmp_path / "pipe.toml"
    config.write_text(
        f'out = "{tmp_path / "o"}"\n[[stages]]\nuses = "load"\nratings = ["ratings.jsonl"]\n'
        '[[stages]]\nuses = "aggregate"\nmin_annotators = 5\n[[stages]]\nuses = "split"\n'
        '[[stages]]\nuses = "export"\nformats = ["ratings"]\n'
    )
    result = _build(config)
    assert result.exit_code == 1  # 4 annotators per item < 5: nothing usable
    result = _build(config, "--set", "aggregate.min_annotators=3")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "o" / "bt").exists()
    bad = _build(config, "--set", "aggregate.min_annotatorz=3")
    assert bad.exit_code == 2 and "min_annotatorz" in bad.output
    unknown = _build(config, "--set", "nosuch.x=1")
    assert unknown.exit_code == 2 and "no stage named 'nosuch'" in unknown.output
    config.write_text("[[stages]]\nuses = 'frobnicate'\n")
    result = _build(config)
    assert result.exit_code == 2 and "unknown stage 'frobnicate'" in result.output


def test_an_input_given_as_one_path_string_is_one_input_in_the_manifest(tmp_path):
    r, p = _inputs(tmp_path)
    (tmp_path / "data").mkdir()
    r.rename(tmp_path / "data" / "ratings.jsonl")
    config = tmp_path / "pipe.toml"
    config.write_text(
        f'out = "{tmp_path / "o"}"\n[[stages]]\nuses = "load"\nratings = "data/ratings.jsonl"\n'
        '[[stages]]\nuses = "aggregate"\n[[stages]]\nuses = "split"\n'
        '[[stages]]\nuses = "export"\nformats = ["ratings"]\n'
    )
    result = _build(config)
    assert result.exit_code == 0, result.output
    inputs = json.loads((tmp_path / "o" / "manifest.json").read_text())["inputs"]
    assert [i["role"] for i in inputs] == ["ratings"]
    assert Path(inputs[0]["path"]) == tmp_path / "data" / "ratings.jsonl"


def test_rerun_reuses_cache_and_gives_identical_output(tmp_path):
    r, p = _inputs(tmp_path)
    out = tmp_path / "out"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    first = (out / "preference" / "train.jsonl").read_bytes()
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["cached"] for s in manifest["stages"]][:3] == [True, True, True]
    assert (out / "preference" / "train.jsonl").read_bytes() == first
    # changing an input file invalidates the cache
    raw_ratings(41, 4, seed=1).write_ndjson(r)
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"][0]["cached"] is False
    assert manifest["counts"]["tables"]["ratings"] == 41


def test_no_cache_neither_reuses_nor_writes_stage_results(tmp_path):
    r, p = _inputs(tmp_path)
    out = tmp_path / "out"
    args = ("--ratings", r, "--preferences", p, "--out", out)
    assert _build(*args, "--no-cache").exit_code == 0
    cache = out / ".cache"
    assert not cache.exists() or not any(cache.iterdir())
    first = (out / "ratings" / "train.jsonl").read_bytes()
    assert _build(*args).exit_code == 0  # a plain run after it writes its cache
    assert any(cache.iterdir())
    assert _build(*args, "--no-cache").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert not any(s["cached"] for s in manifest["stages"])
    assert (out / "ratings" / "train.jsonl").read_bytes() == first
    assert not cache.exists() or not any(cache.iterdir())


KILL_SCRIPT = """
import os, signal, sys
import helpsteer.writers as writers
real = writers._write_datasets
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
writers._write_datasets = die
from helpsteer.cli import app
app(sys.argv[1:])
"""


def test_killed_run_resumes_to_the_same_output(tmp_path):
    r, p = _inputs(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _build("--ratings", r, "--preferences", p, "--out", whole).exit_code == 0
    args = [
        "build-dataset",
        "-q",
        "--ratings",
        str(r),
        "--preferences",
        str(p),
        "--out",
        str(killed),
    ]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *args], capture_output=True)
    assert proc.returncode == -9
    assert not (killed / "manifest.json").exists()
    assert _build("--ratings", r, "--preferences", p, "--out", killed).exit_code == 0
    manifest = json.loads((killed / "manifest.json").read_text())
    assert [s["cached"] for s in manifest["stages"]][:3] == [True, True, True]
    for fmt in ("ratings", "preference", "bt", "steerlm"):
        for split in ("train", "validation"):
            a, b = whole / fmt / f"{split}.jsonl", killed / fmt / f"{split}.jsonl"
            assert a.exists() == b.exists()
            if a.exists():
                assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_cli_help_without_traceback(args):
    result = runner.invoke(app, ["build-dataset", *args])
    assert "Traceback" not in result.output


ALLOCATOR_PROBE = """
import os, sys
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "polars":
            print("at polars import:", os.environ.get("_RJEM_MALLOC_CONF"))
        return None
sys.meta_path.insert(0, Probe())
import helpsteer.cli
"""


POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("dirty_decay_ms:5000", "dirty_decay_ms:5000"),
        # what a parent Python that imported polars hands down (the benchmark's own
        # process): polars' defaults are not the user's setting
        (POLARS_DEFAULT, None),
        (f"{POLARS_DEFAULT},{POLARS_DEFAULT}", None),
        (f"{POLARS_DEFAULT},thp:always,metadata_thp:always", None),
        (f"{POLARS_DEFAULT},dirty_decay_ms:5000", "dirty_decay_ms:5000"),
    ],
)
def test_hs_sets_the_allocator_before_polars_loads_unless_the_user_did(given, expected):
    import os

    from helpsteer.allocator import JEMALLOC_SETTINGS

    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given:
        env["_RJEM_MALLOC_CONF"] = given
    probe = subprocess.run(
        [sys.executable, "-c", ALLOCATOR_PROBE], capture_output=True, text=True, env=env
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[0] == f"at polars import: {expected or JEMALLOC_SETTINGS}"


def test_a_readme_that_is_not_our_card_is_never_replaced(tmp_path):
    r, _ = _inputs(tmp_path)
    out = tmp_path / "project"
    out.mkdir()
    (out / "README.md").write_text("# my project\n")
    result = _build("--ratings", r, "--out", out)
    assert (
        result.exit_code == 2 and "not a dataset card written by hs build-dataset" in result.output
    )
    assert (out / "README.md").read_text() == "# my project\n"
    assert not (out / "ratings").exists()  # refused before any work
    (out / "README.md").unlink()
    assert _build("--ratings", r, "--out", out).exit_code == 0
    assert _build("--ratings", r, "--out", out).exit_code == 0  # our own card: replaced


def test_exports_an_earlier_run_left_are_neither_in_the_card_nor_listed(tmp_path):
    r, p = _inputs(tmp_path)
    out = tmp_path / "o"
    assert _build("--ratings", r, "--preferences", p, "--out", out).exit_code == 0
    again = runner.invoke(
        app,
        ["build-dataset", "--preferences", str(p), "--out", str(out), "--set",
         'export.formats=["bt"]'],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    card = (out / "README.md").read_text().split("\n---\n")[0]
    assert "config_name: bt" in card and "config_name: ratings" not in card
    assert f"warning: {out / 'ratings'}: left by an earlier run" in again.stderr
    listed = again.stdout.splitlines()
    assert str(out / "bt" / "train.parquet") in listed and str(out / "datasets" / "bt") in listed
    assert not [x for x in listed if "ratings" in x or "dpo" in x]
