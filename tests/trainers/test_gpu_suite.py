"""benchmarks/gpu_suite.py in its --tiny mode on the CPU: every part records figures or says
why it was skipped."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_suite_records_training_and_skips_with_reasons(tmp_path):
    out = tmp_path / "suite.json"
    cmd = [sys.executable, "benchmarks/gpu_suite.py", "--tiny", "--out", str(out)]
    cmd += ["--rewardbench-path", str(tmp_path / "no-rewardbench")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["tiny"] and record["command"].endswith("--tiny")
    packed, padded = record["train"]["packed"], record["train"]["padded"]
    assert packed["packing"].startswith("on") and padded["packing"].startswith("off")
    assert packed["padded_fraction"] == 0.0 < padded["padded_fraction"]
    assert packed["tokens_per_s"] > 0 and padded["tokens_per_s"] > 0
    assert record["train"]["packed_over_padded"] > 0
    assert packed["attention_length"] < packed["seq"]  # lengths really vary
    assert "rewardbench not found" in record["reward_judge"]["skipped"]
    import torch

    if not torch.cuda.is_available():
        assert "CUDA" in record["vllm"]["skipped"]


def test_judge_output_is_parsed():
    text = (
        "device=cuda pairs=512 batch_size=16 (best of 3)\n"
        "  RewardJudge (length-sorted)         812.5 pairs/s\n"
        "  rewardbench RewardBenchPipeline     201.0 pairs/s\n"
        "  ratio ours/rewardbench               4.04x\n"
        "  max |score difference|           3.10e-06\n"
    )
    found = _suite().parse_judge(text)
    assert found == {
        "ours_pairs_per_s": 812.5,
        "rewardbench_pairs_per_s": 201.0,
        "ratio": 4.04,
        "max_score_difference": 3.1e-06,
        "device": "cuda",
        "pairs": 512,
        "batch_size": 16,
    }


def test_a_part_out_of_time_is_recorded_not_raised():
    suite = _suite()
    problem, _ = suite.run_part([sys.executable, "-c", "import time; time.sleep(30)"], 5)
    assert problem.startswith("error: timed out")
    assert suite._outcome(problem) == {"error": "timed out after 5 s"}
    assert suite.run_part(["true"], 1)[0] == "skipped: no time left in --budget-s"
