"""`hs synth STAGE` and synth stages inside a cached pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from helpsteer.pipeline import Pipeline, PlannedStage, get_stage
from helpsteer.progress import Reporter
from synth.cli import STAGES, app
from tests.synth.conftest import write_jsonl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def llm_flags(llm: dict) -> list[str]:
    flags = []
    for key, value in llm.items():
        flags += ["--set", f"llm.{key}={json.dumps(value)}"]
    return flags


def test_every_cli_command_names_a_registered_stage():
    for short in STAGES:
        assert get_stage(f"synth.{short}").name == f"synth.{short}"


def test_cli_runs_a_stage_and_writes_outputs(llm, tmp_path):
    out = tmp_path / "qa"
    result = CliRunner().invoke(
        app,
        ["open-qa", "--out", str(out), "-q", "--set", 'topics=["Rivers"]', "--set",
         "n_subtopics=1", "--set", "n_questions=2", *llm_flags(llm)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    prompts = pl.read_ndjson(out / "prompts.jsonl")
    assert prompts.height == 4 and pl.read_parquet(out / "prompts.parquet").height == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"prompts": 4, "rejected": 0}
    assert manifest["info"]["llm"][0]["requests"] == 1 + 1 + 2
    # stdout: only the files written, one per line (the summary table is on stderr).
    written = [str(out / n) for n in ("prompts.jsonl", "prompts.parquet", "rejected.jsonl")]
    assert result.stdout.splitlines() == [*written, str(out / "manifest.json")]
    assert "prompts rows" in result.stderr


def test_cli_json_summary_on_stdout(llm, tmp_path):
    out = tmp_path / "qa"
    result = CliRunner().invoke(
        app,
        ["open-qa", "--out", str(out), "-q", "--json", "--set", 'topics=["Rivers"]', "--set",
         "n_subtopics=1", "--set", "n_questions=1", *llm_flags(llm)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tool"] == "hs synth open-qa"
    assert summary["counts"] == {"prompts": 2, "rejected": 0}
    assert all(Path(f).is_file() for f in summary["files"]) and len(summary["files"]) == 4


def test_cli_reads_inputs_and_config_file(llm, tmp_path):
    seed = write_jsonl(tmp_path / "seed.jsonl", [{"prompt": "Why is the sky blue?"}, "{bad"])
    config = tmp_path / "responses.toml"
    config.write_text(
        "[[models]]\nname = 'm'\nk = 2\n[models.llm]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in llm.items())
    )
    out = tmp_path / "resp"
    result = CliRunner().invoke(
        app, ["responses", "-c", str(config), "-i", f"prompts={seed}", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_ndjson(out / "responses.jsonl").height == 2
    rejected = pl.read_ndjson(out / "rejected.jsonl")
    assert rejected["line"].to_list() == [2] and rejected["source"][0] == str(seed)


def test_cli_user_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["filter", "--set", "nonsense", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
    result = runner.invoke(app, ["filter", "-c", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "config file not found" in result.output
    result = runner.invoke(app, ["open-qa", "--set", "n_topics=0", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "n_topics" in result.output
    assert "Traceback" not in result.output


def test_pipeline_caches_stages_and_llm_calls(llm, tmp_path, server):
    seed = write_jsonl(tmp_path / "seed.jsonl", [{"prompt": f"Q{i}?"} for i in range(3)])

    def planned():
        entries = [
            ("synth.seed", {"path": str(seed)}),
            ("synth.responses", {"models": [{"name": "m", "llm": llm, "k": 2}]}),
            ("synth.filter", {"table": "responses", "stopword_language": None}),
            ("synth.save", {"tables": ["responses"]}),
        ]
        return [
            PlannedStage(n, get_stage(n), get_stage(n).config.model_validate(o)) for n, o in entries
        ]

    out = tmp_path / "run"
    result = Pipeline(planned(), out, out / ".cache").run(Reporter(quiet=True))
    assert result.tables["responses"].height == 6
    assert pl.read_ndjson(out / "synth" / "responses.jsonl").height == 6
    calls = len(server.requests)
    assert calls == 3
    again = Pipeline(planned(), out, out / ".cache").run(Reporter(quiet=True))
    assert [r.cached for r in again.runs] == [True, True, True, False]
    assert len(server.requests) == calls
    # a changed stage config re-runs from there; its LLM calls come from the SQLite cache
    rerun = planned()
    rerun[1].config.models[0].name = "renamed"
    third = Pipeline(rerun, out, out / ".cache").run(Reporter(quiet=True))
    assert set(third.tables["responses"]["model"]) == {"renamed"}
    assert len(server.requests) == calls


def test_example_config_plans():
    import tomllib

    from helpsteer.build import BuildConfig, plan

    raw = tomllib.loads((EXAMPLES / "synth_offline.toml").read_text())
    stages = plan(BuildConfig.model_validate(raw))
    assert [s.spec.name for s in stages] == [
        "synth.seed", "synth.responses", "synth.filter", "judge.llm_score",
        "synth.preference_pairs", "synth.save", "split", "export", "card",
    ]  # fmt: skip
    seeds = (EXAMPLES / "data" / "seed_prompts.jsonl").read_text().splitlines()
    assert len(seeds) == 20


def test_a_stage_with_no_usable_rows_exits_1_and_says_where_to_look(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty.jsonl").write_text("")
    args = ["seed", "--set", f"path={json.dumps(str(tmp_path / 'empty.jsonl'))}", "-q"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert f"no usable rows came out; see {tmp_path / 'o' / 'rejected.jsonl'}" in result.output
    write_jsonl(tmp_path / "one.jsonl", [{"prompt": "Hi?"}])
    args = ["seed", "--set", f"path={json.dumps(str(tmp_path / 'one.jsonl'))}", "-q"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "o1")]).exit_code == 0
