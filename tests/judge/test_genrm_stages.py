"""The GenRM judge wired in: the `judge.genrm` stage (single and pairs), its score column
as `synth.preference_pairs`' scorer, `hs judge compare`, and `hs eval rewardbench`."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

import judge.stages  # noqa: F401  (registers the stages)
import synth.stages  # noqa: F401
from helpsteer.cli import app as hs_app
from helpsteer.llm import LLMConfig
from helpsteer.llm.testing import FaultServer
from helpsteer.pipeline import PipelineError, StageContext, Tables, get_stage
from helpsteer.progress import Reporter
from judge.cli import app as judge_app
from tests.judge.fake_genrm import genrm_answer, genrm_shown, good_genrm

MSG = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
runner = CliRunner()


def _responses(texts, prompt_ids=None):
    n = len(texts)
    return pl.DataFrame(
        {
            "prompt_id": prompt_ids or ["p0"] * n,
            "messages": [[{"role": "user", "content": "Explain tides."}]] * n,
            "prompt": ["Explain tides."] * n,
            "response_id": [f"r{i}" for i in range(n)],
            "response": texts,
            "model": ["m"] * n,
        },
        schema_overrides={"messages": MSG},
    )


def _run(name, config, tables, tmp_path):
    spec = get_stage(name)
    ctx = StageContext(name=name, out_dir=tmp_path, seed=0, reporter=Reporter(quiet=True))
    t = Tables()
    for key, frame in tables.items():
        t.set(key, frame)
    out = spec.fn(ctx, t, spec.config.model_validate(config))
    rejected = pl.concat(ctx.rejected) if ctx.rejected else None
    return out, rejected, ctx.info


def _llm(server):
    return LLMConfig(backend="openai", base_urls=[server.url], model="fake", max_retries=0)


def _graded(body):
    """GenRM answers; a response saying 'mumble' gets an answer without scores."""
    shown = genrm_shown(body)
    if any("mumble" in s for s in shown):
        return ["I cannot decide."] * int(body.get("n") or 1)
    return good_genrm(body)


def test_stage_scores_responses_and_rejects_unparsed_with_raw(tmp_path):
    with FaultServer(responder=_graded) as server:
        out, rejected, info = _run(
            "judge.genrm",
            {"llm": _llm(server).model_dump(), "sampling": {"samples": 3}},
            {"responses": _responses(["a good one", "a bad one", "mumble"])},
            tmp_path,
        )
        assert all(r.body["n"] == 3 for r in server.requests)
    frame = out["responses"]
    assert frame["genrm"].to_list() == [5.0, 1.0, None]
    assert frame["genrm_samples_ok"].to_list() == [3, 3, 0]
    assert frame["genrm_judgments"].to_list()[2] == ["I cannot decide."] * 3
    assert "[The Begin of Individual Scores]" in frame["genrm_judgments"][0][0]
    assert rejected.height == 1
    assert "no [The Begin of Individual Scores]" in rejected["reason"][0]
    assert "I cannot decide." in rejected["record"][0]
    assert info["unparsed"] == 1 and info["samples_per_judgment"] == 3
    assert info["llm"]["requests"] == 3


def test_stage_column_is_a_scorer_for_preference_pairs(tmp_path):
    frame = _responses(
        ["a good answer", "a bad answer", "plain answer", "a good reply", "plain reply"],
        prompt_ids=["p0", "p0", "p0", "p1", "p1"],
    )
    with FaultServer(responder=good_genrm) as server:
        judged, _, _ = _run(
            "judge.genrm", {"llm": _llm(server).model_dump()}, {"responses": frame}, tmp_path
        )
    pairs, _, info = _run(
        "synth.preference_pairs", {"score_column": "genrm"}, judged, tmp_path / "pairs"
    )
    preference = pairs["preference"].sort("prompt_id")
    assert preference["chosen_score"].to_list() == [5.0, 5.0]
    assert preference["rejected_score"].to_list() == [1.0, 3.0]
    # margins 4 and 2 against the default thresholds 0.5, 1.5, 3.0
    assert preference["preference_strength"].abs().to_list() == [3, 2]
    assert info["pairs"] == 2


def test_pairs_mode_writes_a_preference_table(tmp_path):
    frame = _responses(
        ["a bad answer", "a good answer", "mumble", "x"], prompt_ids=["p0", "p0", "p1", "p1"]
    )
    with FaultServer(responder=_graded) as server:
        out, rejected, info = _run(
            "judge.genrm",
            {"llm": _llm(server).model_dump(), "mode": "pairs", "sampling": {"samples": 2}},
            {"responses": frame},
            tmp_path,
        )
    preference = out["preference"]
    assert preference.height == 1
    row = preference.row(0, named=True)
    assert (row["response_1"], row["response_2"]) == ("a bad answer", "a good answer")
    assert row["preference_strength"] == 2 and row["genrm_ranking"] == 5
    assert row["preference_statement"] == "@Response 2 is better than @Response 1."
    assert (row["genrm_score_1"], row["genrm_score_2"]) == (1.0, 5.0)
    assert row["preference_elaboration"].startswith("@Response 1: Response")
    assert len(row["all_preferences_unprocessed"]) == 2
    assert len(row["genrm_judgments"]) == 2 and row["split"] is None
    assert rejected.height == 1 and info["kept"] == 1 and info["unparsed"] == 1


def test_pairs_mode_on_a_preference_table_with_a_split_vote(tmp_path):
    def split(body):
        return [genrm_answer([3, 3], 3), genrm_answer([3, 3], 4)]

    table = pl.DataFrame(
        {"prompt": ["Hi"], "response_1": ["one"], "response_2": ["two"], "split": ["train"]}
    )
    with FaultServer(responder=split) as server:
        out, _, info = _run(
            "judge.genrm",
            {"llm": _llm(server).model_dump(), "mode": "pairs", "sampling": {"samples": 2}},
            {"preference": table},
            tmp_path,
        )
    row = out["preference"].row(0, named=True)
    assert row["preference_strength"] == 0 and row["genrm_ranking"] is None
    assert row["genrm_ranking_mean"] == 3.5 and info["split_votes"] == 1


def test_stage_config_errors_are_pipeline_errors(tmp_path):
    with pytest.raises(PipelineError, match="temperature > 0"):
        _run(
            "judge.genrm",
            {"sampling": {"samples": 2, "temperature": 0}},
            {"responses": _responses(["x"])},
            tmp_path,
        )
    with pytest.raises(PipelineError, match="no prompt named 'nope'"):
        _run("judge.genrm", {"prompt": "nope"}, {"responses": _responses(["x"])}, tmp_path)


def test_compare_runs_the_genrm_judge(tmp_path):
    rows = [
        {"id": f"r{i}", "prompt": f"question {i}", "chosen": "a good answer",
         "rejected": "a bad answer", "subset": "easy" if i < 2 else "hard"}
        for i in range(4)
    ]  # fmt: skip
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FaultServer(responder=good_genrm) as server:
        llm = f'{{ backend = "openai", base_urls = ["{server.url}"], model = "fake" }}'
        config = tmp_path / "compare.toml"
        config.write_text(
            f'out = "{tmp_path / "out"}"\n[data]\nformat = "reward_bench"\npath = "{data}"\n\n'
            f'[[judges]]\nname = "genrm"\nkind = "genrm"\nllm = {llm}\nboth_orders = true\n'
            "sampling = { samples = 2 }\n"
        )
        result = runner.invoke(judge_app, ["compare", str(config), "--quiet"])
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 4 * 2
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (genrm,) = report["judges"]
    assert genrm["kind"] == "genrm" and genrm["accuracy"] == 1.0
    assert genrm["position_consistency"] == 1.0 and genrm["coverage"] == 1.0
    predictions = pl.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert "ranking 2" in predictions["detail"][0] and "orders" in predictions["detail"][0]


def _rewardbench(tmp_path, server, judge_spec, version, rows):
    data = tmp_path / f"rb{version}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"run{version}"
    args = ["eval", "rewardbench", "--judge", judge_spec, "--data", str(data), "--out", str(out)]
    result = runner.invoke(hs_app, [*args, "--version", str(version), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_rewardbench_v1_and_v2_with_the_genrm_judge(tmp_path):
    v1 = [
        {"id": i, "prompt": f"q{i}", "chosen": "a good answer", "rejected": "a bad answer",
         "subset": subset}
        for i, subset in enumerate(["alpacaeval-easy", "mt-bench-hard", "refusals-dangerous"])
    ]  # fmt: skip
    v1.append({"id": 3, "prompt": "q3", "chosen": "plain", "rejected": "mumble",
               "subset": "hep-go"})  # fmt: skip
    v2 = [
        {"id": "a", "prompt": "q", "chosen": ["a good answer"], "num_correct": 1,
         "rejected": ["plain", "a bad answer", "mumble"], "subset": "Factuality"}
    ]  # fmt: skip
    with FaultServer(responder=_graded) as server:
        url = f"openai:genrm-model@{server.url}"
        out1 = _rewardbench(tmp_path, server, f"genrm@4:{url}", 1, v1)
        assert all(r.body["n"] == 4 for r in server.requests)
        out2 = _rewardbench(tmp_path, server, f"genrm:{url}", 2, v2)
    scores = pl.read_parquet(out1 / "scores.parquet").sort("id")
    # Three clear wins; the unparsable 'mumble' pair counts half, like other LLM judges.
    assert scores["result"].to_list() == [1.0, 1.0, 1.0, 0.5]
    assert scores["score_chosen"].to_list()[:3] == [5.0, 5.0, 5.0]
    doc = json.loads((out1 / "results.json").read_text())
    assert doc["model"] == "genrm-model (voting@4)"
    assert doc["leaderboard"]["model_type"] == "Generative"
    rows2 = pl.read_parquet(out2 / "scores.parquet")
    assert rows2["scores"].to_list() == [[5.0, 3.0, 1.0, 0.0]]  # unparsable: 0
    assert json.loads((out2 / "results.json").read_text())["subsets"]["Factuality"] == 1.0


def test_rewardbench_rejects_a_bad_voting_count(tmp_path):
    data = tmp_path / "rb.jsonl"
    data.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c", "subset": "x"}))
    args = ["--judge", "genrm@0:local", "--data", str(data), "--out", str(tmp_path / "o")]
    result = runner.invoke(hs_app, ["eval", "rewardbench", *args])
    assert result.exit_code == 2 and "positive integer" in result.output


def test_build_dataset_with_genrm_as_the_preference_scorer(tmp_path):
    """seed prompts -> responses -> judge.genrm -> synth.preference_pairs -> exports."""
    import tomli_w

    def generate_or_judge(body):
        judged = good_genrm(body)
        if judged is not None:
            return judged
        # Sample 0 of each prompt is good, the others bad: every pair has a clear winner.
        n = int(body.get("n") or 1)
        return [f"a {'good' if i == 0 else 'bad'} answer, sample {i}" for i in range(n)]

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(4)))
    with FaultServer(responder=generate_or_judge) as server:
        llm = {"backend": "openai", "base_urls": [server.url], "model": "fake", "max_retries": 0}
        stages = [
            {"uses": "synth.seed", "path": str(seeds)},
            {"uses": "synth.responses", "models": [{"name": "m", "k": 3, "llm": llm}]},
            {"uses": "judge.genrm", "name": "genrm", "llm": llm},
            {"uses": "synth.preference_pairs", "score_column": "genrm"},
            {"uses": "split", "validation_fraction": 0.25},
            {"uses": "export", "formats": ["preference", "dpo"]},
        ]
        out = tmp_path / "out"
        config = tmp_path / "pipeline.toml"
        config.write_bytes(tomli_w.dumps({"out": str(out), "stages": stages}).encode())
        args = ["build-dataset", str(config), "--quiet", "--set", "genrm.sampling.samples=2"]
        result = runner.invoke(hs_app, args)
        assert result.exit_code == 0, result.output
        judged = [r for r in server.requests if genrm_shown(r.body)]
        assert len(judged) == 4 * 3 and all(r.body["n"] == 2 for r in judged)
    preference = pl.concat(
        [pl.read_parquet(p) for p in sorted((out / "preference").glob("*.parquet"))]
    )
    assert preference.height == 4
    # 5 vs 1 from the GenRM: a margin of 4 reaches every default threshold.
    assert preference["preference_strength"].abs().to_list() == [3, 3, 3, 3]
    for row in preference.iter_rows(named=True):
        better = row["response_1"] if row["preference_strength"] < 0 else row["response_2"]
        assert (
            better.startswith("a good answer") and "(genrm 5 vs 1)" in row["preference_statement"]
        )
    assert list((out / "dpo").glob("*.parquet")) or list((out / "dpo").glob("*.jsonl"))
