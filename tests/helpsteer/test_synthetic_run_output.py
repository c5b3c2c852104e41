"""A synthetic `hs build-dataset` run read as a user would: its exit status, stdout, one
rejection per unusable response, and a dataset card that says what the run did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.llm.shared import close_shared
from helpsteer.llm.testing import FaultServer

_ANSWER = re.compile(r"## Answer\n(.*?)\n## End of answer", re.S)


def answers_and_judges(body: dict) -> list[str]:
    """Responses 'Answer i to: ...'; the judge rates sample 0 and 2, cannot rate sample 1."""
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    shown = _ANSWER.search(user)
    if shown is None:
        return [f"Answer {i} to: {user[:40]}" for i in range(int(body.get("n") or 1))]
    if shown.group(1).startswith("Answer 1"):
        return ["I would rather not give a number."]
    return ["Fine. Rating: [[8]]" if shown.group(1).startswith("Answer 0") else "Rating: [[3]]"]


@pytest.fixture
def server():
    with FaultServer(responder=answers_and_judges) as srv:
        yield srv
        close_shared()


def pipeline(tmp_path: Path, server, *, export: bool = True) -> Path:
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("Why?", "How?")))
    llm = (
        f'{{ backend = "openai", model = "judge-m", base_urls = ["{server.url}"], '
        f'cache_dir = "{tmp_path / "cache"}", max_retries = 0 }}'
    )
    gen = llm.replace("judge-m", "writer-m")
    text = f"""
out = "{tmp_path / "out"}"
[[stages]]
uses = "synth.seed"
path = "{seed}"
[[stages]]
uses = "synth.responses"
models = [{{ name = "writer", k = 3, llm = {gen} }}]
[[stages]]
uses = "judge.llm_score"
table = "responses"
llm = {llm}
[[stages]]
uses = "synth.preference_pairs"
rule = "best_worst"
strength_thresholds = [1.0, 2.0, 4.0]
[[stages]]
uses = "synth.save"
tables = ["responses"]
"""
    if export:
        text += """
[[stages]]
uses = "split"
validation_fraction = 0.0
[[stages]]
uses = "export"
formats = ["preference", "dpo"]
[[stages]]
uses = "card"
title = "Synthetic pairs"
"""
    config = tmp_path / "run.toml"
    config.write_text(text)
    return config


def test_a_response_the_judge_rejected_is_rejected_once(tmp_path, server):
    result = CliRunner().invoke(app, ["build-dataset", str(pipeline(tmp_path, server)), "-q"])
    assert result.exit_code == 0, result.output
    rejected = pl.read_ndjson(tmp_path / "out" / "rejected.jsonl")
    # two prompts x sample 1: the judge's reason, not a second "no reward score"
    assert rejected.height == 2
    assert set(rejected["stage"]) == {"judge.llm_score"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["rejected"] == 2


def test_the_card_of_a_synthetic_run_says_what_it_did(tmp_path, server):
    result = CliRunner().invoke(app, ["build-dataset", str(pipeline(tmp_path, server)), "-q"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "out" / "README.md").read_text()
    assert "annotators" not in card
    assert "## Inputs" not in card and "## Attribute histograms" not in card
    assert "writer-m" in card and "judge-m" in card
    assert "judge.llm_score" in card and "best_worst" in card and "[1.0, 2.0, 4.0]" in card
    assert "## Preference strength" in card


def test_stdout_lists_output_paths_one_per_line(tmp_path, server):
    result = CliRunner().invoke(app, ["build-dataset", str(pipeline(tmp_path, server)), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert str(tmp_path / "out" / "manifest.json") in lines
    assert str(tmp_path / "out" / "README.md") in lines
    assert all(Path(line).exists() for line in lines)


def test_json_summary_on_stdout(tmp_path, server):
    config = pipeline(tmp_path, server)
    result = CliRunner().invoke(app, ["build-dataset", str(config), "-q", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 0 and summary["out"] == str(tmp_path / "out")
    assert summary["counts"]["rejected"] == 2
    assert str(tmp_path / "out" / "manifest.json") in summary["files"]


def test_generate_and_save_only_exits_0(tmp_path, server):
    config = pipeline(tmp_path, server, export=False)
    result = CliRunner().invoke(app, ["build-dataset", str(config), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "responses.jsonl").exists() or any(
        (tmp_path / "out").rglob("responses*.jsonl")
    )
