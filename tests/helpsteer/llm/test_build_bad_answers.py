"""`hs build-dataset` against the fault server: an odd answer or a rejected request for
one prompt sends that prompt to rejected.jsonl, the other rows come through, and the
resumed run neither crashes nor (for a recorded failure) asks again."""

from __future__ import annotations

import json

import polars as pl
import pytest
import tomli_w
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.llm.shared import close_shared
from helpsteer.llm.testing import FaultServer

N_PROMPTS = 30


def fake_llm(body: dict) -> list[str]:
    """Answers for synth.responses; a [[rating]] for the judge (by answer length)."""
    system = body["messages"][0]
    if system["role"] == "system" and "Rating: [[7]]" in system["content"]:
        return [f"Rating: [[{len(body['messages'][-1]['content']) % 10 + 1}]]"]
    last = body["messages"][-1]["content"]
    return [f"answer {i} (seed {body.get('seed')}) to: {last}" for i in range(body["n"])]


@pytest.fixture
def server():
    with FaultServer(responder=fake_llm) as srv:
        yield srv
    close_shared()


def write_config(tmp_path, server) -> str:
    llm = {
        "backend": "openai",
        "base_urls": [server.url],
        "model": "fake",
        "max_retries": 1,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.002,
        "cache_dir": str(tmp_path / "llm-cache"),
    }
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts()))
    config = {
        "out": str(tmp_path / "out"),
        "stages": [
            {"uses": "synth.seed", "path": str(seeds)},
            {"uses": "synth.responses", "models": [{"name": "m", "k": 2, "llm": llm}]},
            {"uses": "judge.llm_score", "table": "responses", "llm": llm},
            {"uses": "synth.preference_pairs", "strength_thresholds": [1, 3, 5]},
            {"uses": "split", "validation_fraction": 0.3},
            {"uses": "export", "formats": ["preference"]},
        ],
    }
    path = tmp_path / "config.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return str(path)


def prompts() -> list[str]:
    return [f"Question {i}?" for i in range(N_PROMPTS)]


def build(config: str, *flags: str):
    result = CliRunner().invoke(app, ["build-dataset", config, "--quiet", *flags])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def rejected_reasons(tmp_path) -> list[str]:
    path = tmp_path / "out" / "rejected.jsonl"
    text = path.read_text()
    return [] if not text.strip() else pl.read_ndjson(path)["reason"].to_list()


def sent(server: FaultServer, prompt: str) -> int:
    return sum(r.prompt == prompt for r in server.requests)


def test_a_malformed_answer_rejects_its_row_and_the_resume_asks_again(tmp_path, server):
    config = write_config(tmp_path, server)
    server.plan_for("Question 7?", "bad_usage", "bad_usage", "bad_choice")
    build(config)
    reasons = rejected_reasons(tmp_path)
    assert len(reasons) == 1 and "LLM error" in reasons[0]
    assert "usage: Input should be an object, got 'x'" in reasons[0]
    assert sent(server, "Question 7?") == 2
    # a killed run resumes with its stages redone from the LLM cache: the malformed
    # answer was transient, so that prompt is asked again (once more bad, then good)
    build(config, "--no-cache")
    assert sent(server, "Question 7?") == 4
    assert rejected_reasons(tmp_path) == []
    assert all(sent(server, p) == 1 for p in prompts() if p != "Question 7?")


def test_a_rejected_request_is_not_asked_again_unless_retry_failed(tmp_path, server):
    config = write_config(tmp_path, server)
    server.plan_for("Question 3?", "400")
    build(config)
    (reason,) = rejected_reasons(tmp_path)
    assert "HTTP 400: unknown parameter" in reason
    build(config, "--no-cache")
    (again,) = rejected_reasons(tmp_path)
    assert "HTTP 400: unknown parameter" in again and "recorded as failed" in again
    assert sent(server, "Question 3?") == 1
    build(config, "--retry-failed")
    assert sent(server, "Question 3?") == 2 and rejected_reasons(tmp_path) == []
    # the success replaced the record: a plain run after it keeps the row
    build(config, "--no-cache")
    assert sent(server, "Question 3?") == 2 and rejected_reasons(tmp_path) == []


def test_a_server_that_is_down_stops_the_run_with_a_clear_error(tmp_path):
    with FaultServer(responder=fake_llm) as down:
        config = write_config(tmp_path, down)
    close_shared()  # the server is gone: every request fails to connect
    result = CliRunner().invoke(app, ["build-dataset", config, "--quiet"])
    close_shared()
    assert result.exit_code == 2, result.output
    assert "synth.responses: all 30 LLM requests failed" in result.output
    assert "connection" in result.output and "Traceback" not in result.output
    # nothing was recorded as failed: with the server back, the same config runs through
    with FaultServer(responder=fake_llm, port=down.port):
        build(config)
    assert pl.read_parquet(tmp_path / "out" / "preference" / "train.parquet").height > 0
