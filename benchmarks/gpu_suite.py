"""The GPU figures of issue 16 in one run (under 8 minutes on one GPU), into one JSON file.

    python benchmarks/gpu_suite.py [--out benchmarks/_work/gpu_suite.json]
    python benchmarks/gpu_suite.py --tiny    # CPU smoke run of the same code (tests use it)

(a) training: `benchmarks/train_mfu.py` on the ~1B Llama shape in bf16, sequences of
    varied length up to 1024 tokens, packed vs padded micro-batches: real tokens/s, MFU
    (target: >= 40% packed) and their ratio.
(b) reward-judge scoring: `benchmarks/reward_judge_throughput.py`, our RewardJudge against
    rewardbench's RewardBenchPipeline on the same model and pairs (rewardbench imported
    from --rewardbench-path, a `pip install --no-deps --target` folder).
(c) generation: our `vllm` backend (`helpsteer.llm`, backend "vllm") against vLLM's own
    offline `LLM.generate` on the same chat prompts, greedy, same max tokens, each in its
    own process (one engine per GPU at a time): generated tokens/s and the ratio (target:
    >= 0.9). The model is a random-weight Llama-3.2-1B-shaped LM built offline.

Each part runs in its own subprocess under a time limit taken from --budget-s; a part that
cannot run (no CUDA, vLLM or rewardbench missing, out of time) records
{"skipped": "reason"} or {"error": "..."} instead of figures. --tiny uses small shapes on
the CPU; part (c) then runs only where vLLM and CUDA are present.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work" / "gpu_suite"
TOPICS = ["rivers", "owls", "bread", "maps", "glass", "chess", "salt", "kites", "clocks", "ink"]


def run_part(cmd: list[str], limit: float, env: dict | None = None) -> tuple[str | None, str]:
    """(error or None, stdout) of a subprocess run under a time limit."""
    if limit < 5:
        return "skipped: no time left in --budget-s", ""
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return f"error: timed out after {limit:.0f} s", ""
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"error: exit {done.returncode}: {' | '.join(tail)}", done.stdout
    return None, done.stdout


def _outcome(problem: str) -> dict:
    kind, _, reason = problem.partition(": ")
    return {kind: reason}


# --- (a) training ----------------------------------------------------------------------


def train_part(args, deadline: float) -> dict:
    out = {}
    for packing in ("on", "off"):
        record = WORK / f"train_packing_{packing}.json"
        record.unlink(missing_ok=True)
        cmd = [sys.executable, "benchmarks/train_mfu.py", "--lengths", "varied"]
        cmd += ["--packing", packing, "--json", str(record)]
        if args.tiny:
            cmd.append("--tiny")
        share = (deadline - time.time()) / (2 if packing == "on" else 1)
        problem, _ = run_part(cmd, min(share, args.part_limit_s))
        name = "packed" if packing == "on" else "padded"
        out[name] = _outcome(problem) if problem else json.loads(record.read_text())
    packed, padded = out["packed"], out["padded"]
    if "tokens_per_s" in packed and "tokens_per_s" in padded:
        out["packed_over_padded"] = packed["tokens_per_s"] / padded["tokens_per_s"]
    return out


# --- (b) reward judge ------------------------------------------------------------------

_JUDGE_LINES = {
    "ours_pairs_per_s": r"RewardJudge.*?([\d.]+) pairs/s",
    "rewardbench_pairs_per_s": r"RewardBenchPipeline\s+([\d.]+) pairs/s",
    "ratio": r"ratio ours/rewardbench\s+([\d.]+)x",
    "max_score_difference": r"max \|score difference\|\s+([\d.e+-]+)",
}


def parse_judge(text: str) -> dict:
    found = {}
    for key, pattern in _JUDGE_LINES.items():
        match = re.search(pattern, text)
        if match:
            found[key] = float(match.group(1))
    device = re.search(r"device=(\w+) pairs=(\d+) batch_size=(\d+)", text)
    if device:
        found.update(device=device.group(1), pairs=int(device.group(2)))
        found["batch_size"] = int(device.group(3))
    return found


def judge_part(args, deadline: float) -> dict:
    if not (Path(args.rewardbench_path) / "rewardbench").is_dir():
        hint = f"pip install --no-deps --target {args.rewardbench_path} rewardbench"
        return {"skipped": f"rewardbench not found in {args.rewardbench_path} ({hint})"}
    pairs, repeats = ("8", "1") if args.tiny else ("512", "3")
    cmd = [sys.executable, "benchmarks/reward_judge_throughput.py", "--pairs", pairs]
    cmd += ["--repeats", repeats, "--rewardbench-path", args.rewardbench_path]
    problem, text = run_part(cmd, min(deadline - time.time(), args.part_limit_s))
    if problem:
        return _outcome(problem)
    found = parse_judge(text)
    return found if "ratio" in found else {"error": f"unreadable output: {text[-300:]!r}"}


# --- (c) generation --------------------------------------------------------------------


def vllm_missing() -> str | None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "needs CUDA (vLLM's GPU engine); this machine has none"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install vllm)"
    return None


def prompts(n: int) -> list[list[dict]]:
    return [
        [{"role": "user", "content": f"Write a short note about {TOPICS[i % len(TOPICS)]} #{i}."}]
        for i in range(n)
    ]


ENGINE = {"gpu_memory_utilization": 0.5, "max_model_len": 2048, "seed": 0}


def generate_ours(model: str, n: int, max_tokens: int) -> dict:
    from helpsteer.llm import ChatRequest, LLMConfig, make_client

    config = LLMConfig(backend="vllm", model=model, extra=dict(ENGINE))
    requests = [ChatRequest(messages=m, max_tokens=max_tokens, temperature=0) for m in prompts(n)]
    with make_client(config) as llm:
        llm.complete(requests[0])  # starts the engine outside the timed part
        started = time.perf_counter()
        results = llm.complete_batch(requests)
        seconds = time.perf_counter() - started
    errors = [r.error for r in results if r.error]
    tokens = sum(r.usage.completion_tokens for r in results)
    return {"seconds": seconds, "tokens": tokens, "errors": len(errors)}


def generate_peer(model: str, n: int, max_tokens: int) -> dict:
    import vllm
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    texts = [
        tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts(n)
    ]
    llm = vllm.LLM(model=model, **ENGINE)
    params = vllm.SamplingParams(max_tokens=max_tokens, temperature=0)
    llm.generate(texts[:1], params, use_tqdm=False)
    started = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"seconds": seconds, "tokens": tokens, "errors": 0}


def vllm_part(args, deadline: float) -> dict:
    missing = vllm_missing()
    if missing:
        return {"skipped": missing}
    sys.path.insert(0, str(REPO / "benchmarks"))
    from train_mfu import ONE_B, TINY, build

    model = build(TINY if args.tiny else ONE_B, WORK / "llama-causal", causal=True)
    n, max_tokens = (16, 16) if args.tiny else (512, 128)
    out = {"prompts": n, "max_tokens": max_tokens, "engine": ENGINE}
    for which in ("ours", "peer"):
        record = WORK / f"vllm_{which}.json"
        record.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--child", which, "--model", str(model)]
        cmd += ["--n", str(n), "--max-tokens", str(max_tokens), "--out", str(record)]
        share = (deadline - time.time()) / (2 if which == "ours" else 1)
        problem, _ = run_part(cmd, min(share, args.part_limit_s))
        if problem:
            out[which] = _outcome(problem)
            continue
        result = json.loads(record.read_text())
        result["tokens_per_s"] = result["tokens"] / result["seconds"]
        out[which] = result
    if "tokens_per_s" in out["ours"] and "tokens_per_s" in out["peer"]:
        out["ours_over_vllm"] = out["ours"]["tokens_per_s"] / out["peer"]["tokens_per_s"]
    return out


# --- the suite -------------------------------------------------------------------------


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpus"] = torch.cuda.device_count()
    else:
        info["gpu"] = None
    loadavg = Path("/proc/loadavg")
    if loadavg.exists():
        info["load_average"] = loadavg.read_text().split()[:3]
    return info


def run_suite(args) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline = started + args.budget_s
    record = {"tiny": args.tiny, "machine": machine(), "budget_s": args.budget_s}
    record["command"] = "python benchmarks/gpu_suite.py" + (" --tiny" if args.tiny else "")
    parts = [("train", train_part), ("reward_judge", judge_part), ("vllm", vllm_part)]
    for name, part in parts:
        part_started = time.time()
        record[name] = part(args, deadline)
        record[name]["wall_s"] = time.time() - part_started
        _save(args.out, {**record, "wall_s": time.time() - started})
        print(f"{name}: {json.dumps(record[name])}", flush=True)
    record["wall_s"] = time.time() - started
    _save(args.out, record)
    return record


def _save(path: str, record: dict) -> None:
    """Written after every part, so a run cut short still leaves what it measured."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as f:
        json.dump(record, f, indent=2)
    Path(f.name).replace(target)


def child(args) -> None:
    generate = generate_ours if args.child == "ours" else generate_peer
    result = generate(args.model, args.n, args.max_tokens)
    Path(args.out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WORK / "gpu_suite.json"))
    parser.add_argument("--tiny", action="store_true", help="small shapes on the CPU")
    parser.add_argument("--budget-s", type=float, default=470.0, help="whole suite")
    parser.add_argument("--part-limit-s", type=float, default=200.0, help="one subprocess")
    parser.add_argument("--rewardbench-path", default="/tmp/rbpkg")
    parser.add_argument("--child", choices=["ours", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        child(args)
        return
    run_suite(args)


if __name__ == "__main__":
    main()
