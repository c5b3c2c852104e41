"""`hs build-dataset --shard I/N` and `--merge-shards N`: N shards merged give the same
dataset as one unsharded run, and a merge refuses missing or stale shards."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest
import tomli_w
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.llm.shared import close_shared
from helpsteer.llm.testing import FaultServer
from helpsteer.pipeline import PipelineError
from helpsteer.shard import Shard, bucket
from tests.synth.conftest import write_jsonl

runner = CliRunner()


def fake_llm(body: dict) -> list[str]:
    """Answers for synth.responses; a [[rating]] from a hash of the answer for the judge."""
    last = body["messages"][-1]["content"]
    if (
        body["messages"][0]["role"] == "system"
        and "Rating: [[7]]" in body["messages"][0]["content"]
    ):
        return [f"Rating: [[{int(hashlib.sha256(last.encode()).hexdigest(), 16) % 10 + 1}]]"]
    return [f"answer {i} (seed {body.get('seed')}) to: {last[:30]}" for i in range(body["n"])]


@pytest.fixture(scope="module")
def server():
    with FaultServer(responder=fake_llm) as s:
        yield s
    close_shared()


def write_config(tmp_path, server, out, k=2):
    llm = {"backend": "openai", "base_urls": [server.url], "model": "fake", "max_retries": 0}
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [{"prompt": f"Question {i}?"} for i in range(12)])
    config = {
        "out": str(out),
        "stages": [
            {"uses": "synth.seed", "path": str(seeds)},
            {"uses": "synth.responses", "models": [{"name": "m", "k": k, "llm": llm}]},
            {"uses": "judge.llm_score", "table": "responses", "llm": llm},
            {"uses": "synth.preference_pairs", "strength_thresholds": [1, 3, 5]},
            {"uses": "split", "validation_fraction": 0.3},
            {"uses": "export", "formats": ["preference", "dpo"]},
        ],
    }
    path = tmp_path / f"config-{out.name}-k{k}.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


def build(*args):
    result = runner.invoke(app, ["build-dataset", *map(str, args), "--quiet"])
    return result


def table(path):
    frame = pl.read_parquet(path).drop("split", strict=False)
    return frame.sort(frame.columns).to_dicts()


def test_merged_shards_equal_one_unsharded_run(tmp_path, server):
    whole = write_config(tmp_path, server, tmp_path / "whole")
    assert build(whole).exit_code == 0
    sharded = write_config(tmp_path, server, tmp_path / "sharded")
    sizes = []
    for i in range(3):
        result = build(sharded, "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
        snapshot = tmp_path / "sharded" / "shards" / f"{i}-of-3" / "snapshot"
        sizes.append(pl.read_parquet(snapshot / "prompts.parquet").height)
    assert sum(sizes) == 12 and max(sizes) < 12  # every prompt in exactly one shard
    assert not (tmp_path / "sharded" / "preference").exists()  # exports wait for the merge
    result = build(sharded, "--merge-shards", 3)
    assert result.exit_code == 0, result.output
    for kind in ("preference", "dpo"):
        for split in ("train", "validation"):
            name = f"{kind}/{split}.parquet"
            assert table(tmp_path / "sharded" / name) == table(tmp_path / "whole" / name)


def test_merge_refuses_missing_and_stale_shards(tmp_path, server):
    config = write_config(tmp_path, server, tmp_path / "out")
    assert build(config, "--shard", "0/2").exit_code == 0
    result = build(config, "--merge-shards", 2)
    assert result.exit_code == 2 and "no finished snapshot for 1-of-2" in result.output
    changed = write_config(tmp_path, server, tmp_path / "out", k=3)
    assert build(changed, "--shard", "1/2").exit_code == 0
    result = build(config, "--merge-shards", 2)
    assert result.exit_code == 2 and "shards 1-of-2 were built from a different config" in (
        result.output.replace("\n", " ")
    )
    result = build(config, "--shard", "0/2", "--merge-shards", 2)
    assert result.exit_code == 2 and "give one" in result.output


@pytest.mark.parametrize("text", ["2/2", "1", "-1/3", "a/b", "0/0"])
def test_shard_spec_errors(text):
    with pytest.raises(PipelineError, match="expected I/N"):
        Shard.parse(text)


def test_buckets_are_stable_and_cover_every_key():
    keys = [f"prompt-{i}" for i in range(1000)]
    shards = [Shard(i, 4) for i in range(4)]
    frame = pl.DataFrame({"prompt_id": keys})
    parts = [s.rows(frame)["prompt_id"].to_list() for s in shards]
    assert sorted(sum(parts, [])) == sorted(keys)
    assert all(200 < len(p) < 300 for p in parts)
    assert (
        bucket("prompt-0", 4)
        == int.from_bytes(hashlib.blake2b(b"prompt-0", digest_size=8).digest(), "big") % 4
    )


def test_config_without_rowwise_stages_cannot_be_sharded(tmp_path):
    rows = tmp_path / "ratings.jsonl"
    result = build("--ratings", rows, "--out", tmp_path / "o", "--shard", "0/2")
    assert result.exit_code == 2 and "nothing to shard" in result.output
