"""`hs eval ... --engine ray`: the benchmark spread over Ray workers gives the local run's
results (item by item), for a reward model and for an LLM judge."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from eval.testing import rewardbench_v1_rows, write_rewardbench_v1
from helpsteer.cli import app
from helpsteer.llm.testing import FaultServer

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(300)
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from judge.testing import make_tiny_reward_model

    return make_tiny_reward_model(tmp_path_factory.mktemp("rm") / "tiny-rm")


def _rewardbench(out, judge: str, data, *extra: str) -> dict:
    args = ["eval", "rewardbench", "--judge", judge, "--data", str(data), "--out", str(out)]
    result = runner.invoke(app, [*args, "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def test_reward_model_scores_equal_local(tmp_path, ray_cluster, tiny_rm):
    data = write_rewardbench_v1(tmp_path / "rb.jsonl", per_subset=2)
    local = _rewardbench(tmp_path / "local", f"reward:{tiny_rm}", data)
    spread = _rewardbench(
        tmp_path / "ray", f"reward:{tiny_rm}", data, "--engine", "ray", "--workers", "2"
    )
    assert spread["subsets"] == local["subsets"]
    assert spread["sections"] == local["sections"]
    ours = pl.read_parquet(tmp_path / "ray" / "scores.parquet")
    theirs = pl.read_parquet(tmp_path / "local" / "scores.parquet")
    # Buckets batch rows differently (other padding): equal to float32 rounding.
    assert_frame_equal(ours, theirs, rel_tol=1e-5)


def _coin_judge(body: dict) -> list[str]:
    """A verdict that depends on what is shown, so both orders and item numbering matter."""
    text = body["messages"][-1]["content"]
    return [f"Verdict. [[{'AB'[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2]}]]"]


def test_llm_judge_verdicts_equal_local(tmp_path, ray_cluster):
    rows = rewardbench_v1_rows(per_subset=1)[:10]
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FaultServer(responder=_coin_judge) as server:
        judge = f"llm:openai:judge@{server.url}"
        _rewardbench(tmp_path / "local", judge, data)
        sent_local = len(server.requests)
        _rewardbench(tmp_path / "ray", judge, data, "--engine", "ray")
        sent_ray = len(server.requests) - sent_local
    assert sent_local == sent_ray == 20  # both orders, nothing from the other run's cache
    ours = pl.read_parquet(tmp_path / "ray" / "scores.parquet")
    theirs = pl.read_parquet(tmp_path / "local" / "scores.parquet")
    assert ours.equals(theirs)
    assert ours["result"].n_unique() > 1  # the judge did not give one answer throughout
