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


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def _varied(body: dict) -> list[str]:
    """Model and judge whose answers depend on what they are sent, so a request answered
    for the wrong item, or results put back in the wrong order, change the outputs."""
    messages = body["messages"]
    everything = " ".join(m["content"] for m in messages)
    if "[[rating]]" in everything:
        return [f"Judged. Rating: [[{_digest(everything) % 10 + 1}]]"]
    if "content safety classifier" in everything:
        return ["unsafe\nO3" if _digest(everything) % 2 else "safe"]
    return [f"Answer {_digest(everything) % 997}: {messages[-1]['content'][:30]}"]


def _rows(path, drop=("tstamp",)):
    return [
        {k: v for k, v in json.loads(line).items() if k not in drop}
        for line in path.read_text().splitlines()
    ]


def _mt_bench(out, mt_bench_dir, server, *extra):
    args = ["eval", "mt-bench", "--bench", str(mt_bench_dir), "--out", str(out),
            "--model", f"openai:model@{server.url}", "--judge", f"openai:judge@{server.url}",
            "--limit", "8", "--quiet", *extra]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def test_mt_bench_on_ray_equals_local(tmp_path, ray_cluster, mt_bench_dir):
    with FaultServer(responder=_varied) as server:
        local = _mt_bench(tmp_path / "local", mt_bench_dir, server)
        sent_local = len(server.requests)
        spread = _mt_bench(tmp_path / "ray", mt_bench_dir, server, "--engine", "ray")
        sent_ray = len(server.requests) - sent_local
        # The workers' cache segments were folded into the run's cache: a re-run on the
        # local engine sends nothing.
        _mt_bench(tmp_path / "ray", mt_bench_dir, server)
        again = len(server.requests) - sent_local - sent_ray
    assert sent_local == sent_ray == 8 * 2 + 8 * 2  # two answer turns, two judged turns
    assert again == 0
    for name in ("model_answer/model.jsonl", "model_judgment/judge_single.jsonl"):
        assert _rows(tmp_path / "ray" / name) == _rows(tmp_path / "local" / name), name
    assert spread["single"] == local["single"]
    scores = {r["score"] for r in _rows(tmp_path / "ray" / "model_judgment/judge_single.jsonl")}
    assert len(scores) > 2  # the judge's ratings vary with the item
    usage = spread["usage"]
    assert usage["requests"] == 16 and usage["calls"] == 16  # the model's, summed over workers


def test_aegis_on_ray_equals_local(tmp_path, ray_cluster):
    from eval.testing import write_aegis

    data = write_aegis(tmp_path / "aegis.jsonl")
    with FaultServer(responder=_varied) as server:
        docs = {}
        for name, extra in (("local", []), ("ray", ["--engine", "ray", "--workers", "2"])):
            args = ["eval", "aegis", "--data", str(data), "--out", str(tmp_path / name),
                    "--model", f"openai:m@{server.url}", "--quiet", *extra]  # fmt: skip
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
            docs[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert len(server.requests) == 2 * 10  # 5 responses + 5 verdicts per run
    assert _rows(tmp_path / "ray" / "judgments.jsonl") == _rows(
        tmp_path / "local" / "judgments.jsonl"
    )
    for key in ("overall", "by_reference_category", "by_judged_category", "total"):
        assert docs["ray"][key] == docs["local"][key]
    labels = {r["label"] for r in _rows(tmp_path / "ray" / "judgments.jsonl")}
    assert labels == {"safe", "unsafe"}


def test_unknown_engine_is_a_usage_error(tmp_path):
    from eval.testing import write_aegis

    data = write_aegis(tmp_path / "aegis.jsonl")
    args = ["eval", "aegis", "--data", str(data), "--out", str(tmp_path / "o"), "--quiet",
            "--model", "openai:m@http://127.0.0.1:9/v1", "--engine", "spark"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--engine 'spark': expected local or ray" in result.output
