"""`hs build-dataset` on the local engine vs the Ray engine with 1 and 2 workers.

The job: `synth.seed` -> `synth.responses` (one response per prompt) over N prompts
(5,000 by default) against the delay server (helpsteer.llm.testing, answers after
`--delay` seconds), run in `--servers` processes so the server is not the bottleneck,
with the same global bound of requests in flight (`--in-flight`). Each run starts from
an empty output folder and completion cache.

Printed per engine: the `synth.responses` stage's seconds and requests/s (for Ray from
the first bucket sent to the last result), and for Ray the start-up on its own (`ray.init`
of a fresh local cluster plus starting the workers) and the seconds from the first bucket
sent to the first result; then the ratios Ray-1 / local and Ray-2 / Ray-1. The load
average is printed with the figures: on a shared 2-core machine they drift 1.2-1.7x
between runs.

Two regimes:
- `--delay 0.1 --in-flight 128` (default): the servers' latency bounds the rate
  (ideal in_flight / delay = 1,280 req/s); tests that Ray adds no overhead per request.
- `--delay 0.005 --in-flight 512`: the client's CPU bounds the rate; tests that two
  workers spread it. On a 2-core machine the servers share the same two cores, so the
  2-worker gain is capped by the machine, not by the engine.

    python benchmarks/ray_engine_throughput.py [--prompts 5000 --servers 2 --runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_servers(count: int, delay: float) -> tuple[list[subprocess.Popen], list[str]]:
    procs, urls = [], []
    for _ in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "helpsteer.llm.testing", "--delay", str(delay), "--no-record"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        procs.append(proc)
        urls.append(proc.stdout.readline().strip())
    return procs, urls


def write_config(work: Path, urls: list[str], prompts: int, in_flight: int, engine: str, workers):
    import tomli_w

    seeds = work / "seeds.jsonl"
    if not seeds.exists():
        with seeds.open("w") as f:
            for i in range(prompts):
                f.write(json.dumps({"prompt": f"Write one sentence about topic {i}."}) + "\n")
    llm = {
        "backend": "openai",
        "model": "bench",
        "base_urls": urls,
        "max_in_flight": in_flight,
        "max_retries": 2,
    }
    out = work / f"out-{engine}-{workers or 0}"
    config = {
        "out": str(out),
        "engine": engine,
        "ray": {"workers": workers, "local_cpus": 2} if engine == "ray" else {},
        "stages": [
            {"uses": "synth.seed", "path": str(seeds)},
            {
                "uses": "synth.responses",
                "models": [{"name": "bench", "k": 1, "max_tokens": 16, "llm": llm}],
            },
        ],
    }
    if config["ray"].get("workers") is None:
        config["ray"].pop("workers", None)
    path = work / f"{out.name}.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return path, out


def cpu_seconds(procs: list[subprocess.Popen]) -> float:
    """User + system CPU seconds the server processes have used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in procs:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_once(work: Path, urls, prompts, in_flight, engine, workers, procs=()) -> dict:
    config, out = write_config(work, urls, prompts, in_flight, engine, workers)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    server_cpu = cpu_seconds(list(procs))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "helpsteer.cli", "build-dataset", str(config), "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(list(procs)) - server_cpu
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    stage = next(s for s in manifest["stages"] if s["uses"] == "synth.responses")
    llm = stage["info"]["llm"][0]
    result = {"stage_s": stage["seconds"], "wall_s": wall, "errors": llm["errors"]}
    if engine == "ray":
        ray_info = manifest["engine"]
        ray_stage = ray_info["stages"]["synth.responses"]
        # The stage time less the workers' start: Ray's start-up is reported on its own.
        result["stage_s"] = ray_stage["run_s"]
        result["start_s"] = ray_info["start_s"] + ray_stage["workers_start_s"]
        result["first_result_s"] = ray_stage["first_result_s"]
    result["req_per_s"] = llm["requests"] / result["stage_s"]
    # The servers' CPU per request, and the cores they held at this run's rate: on a
    # machine where they share the clients' cores, what is left bounds the clients.
    result["server_ms"] = 1000 * server_cpu / max(llm["requests"], 1)
    result["server_cores"] = result["server_ms"] / 1000 * result["req_per_s"]
    return result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    procs, urls = start_servers(args.servers, args.delay)
    runs: dict[str, list[dict]] = {"local": [], "ray-1": [], "ray-2": []}
    try:
        with tempfile.TemporaryDirectory(prefix="hs-ray-bench-") as tmp:
            work = Path(tmp)
            for _ in range(args.runs):
                runs["local"].append(
                    run_once(work, urls, args.prompts, args.in_flight, "local", None, procs)
                )
                for n in (1, 2):
                    result = run_once(work, urls, args.prompts, args.in_flight, "ray", n, procs)
                    runs[f"ray-{n}"].append(result)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    report(args, runs)


def report(args, runs: dict[str, list[dict]]) -> None:
    ideal = args.in_flight / args.delay
    print(
        f"{args.prompts} requests, {args.in_flight} in flight, delay {args.delay} s, "
        f"{args.servers} server processes, {args.runs} runs; ideal {ideal:.0f} req/s"
    )
    for name, results in runs.items():
        rates = [r["req_per_s"] for r in results]
        line = f"  {name:6s} stage {spread([r['stage_s'] for r in results])} s, "
        line += f"{spread(rates)} req/s, errors {sum(r['errors'] for r in results)}"
        line += f", servers {spread([r['server_ms'] for r in results])} ms CPU/request"
        line += f" = {spread([r['server_cores'] for r in results])} cores"
        if name != "local":
            line += f", start-up {spread([r['start_s'] for r in results])} s"
            line += f", first result {spread([r['first_result_s'] for r in results])} s"
        print(line)
    pairs = list(zip(runs["local"], runs["ray-1"], runs["ray-2"], strict=True))
    one = [r1["req_per_s"] / lo["req_per_s"] for lo, r1, _ in pairs]
    two = [r2["req_per_s"] / r1["req_per_s"] for _, r1, r2 in pairs]
    print(f"  ray-1 / local: {spread(one)}   (target >= 0.90)")
    print(f"  ray-2 / ray-1: {spread(two)}   (target >= 1.7 when the client CPU bounds)")
    print(f"  cores on this machine: {os.cpu_count()}")
    print("  load average (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
