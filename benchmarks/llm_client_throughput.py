"""Throughput of the LLM client against a server that answers after a fixed delay.

A local OpenAI-compatible server (helpsteer.llm.testing, in its own process) answers
every chat request after 100 ms. Each client sends the same 5,000 prompts with 128 in
flight; the ideal rate is in_flight / delay = 1,280 req/s. Printed per client and run:
req/s, fraction of ideal, client CPU time per request; then per client the median and
range over `--runs`, and the ratios ours / peer (medians). The clients run side by side,
one after the other in every round, so drift on a shared machine hits all of them.

- ours: `helpsteer.llm` with the default transport (aiohttp), and with the openai SDK;
- distilabel 1.5.3: `OpenAILLM.agenerate`, 128 calls gated by a semaphore;
- NVIDIA NeMo DataDesigner 0.9.7 (`data-designer`): its public pipeline, a seed table of
  the prompts and one LLM text column `{{ prompt }}`, `max_parallel_requests=128` (it
  documents no maximum). It sends OpenAI content-part lists. Its time is from `create()`
  to the last batch written; the column profiling it runs afterwards is left out (it tries
  to download tiktoken data, which fails offline with a warning).

Each peer runs from its own virtual environment under benchmarks/_work, created by
`--setup-peer` with a plain pip install (refused if pip would pull torch). This file
doubles as the peers' script (`--peer NAME --url URL`): that mode imports only the
standard library and the peer.

    python benchmarks/llm_client_throughput.py --setup-peer   # once
    python benchmarks/llm_client_throughput.py [--runs 3 --requests 5000 --in-flight 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work"
PEERS = {
    # name: (venv folder, pip requirements, label)
    # distilabel 1.5 imports `requests` without declaring it
    "distilabel": ("distilabel-venv", ["distilabel[openai]==1.5.3", "requests"], "distilabel"),
    "datadesigner": ("datadesigner-venv", ["data-designer==0.9.7"], "DataDesigner"),
}


def prompts(n: int) -> list[str]:
    return [f"Write one sentence about topic number {i}." for i in range(n)]


def peer_python(name: str) -> Path:
    return WORK / PEERS[name][0] / "bin" / "python"


# -- the peers (run inside their own venvs) ---------------------------------------------


def run_distilabel(url: str, n: int, in_flight: int) -> dict:
    """distilabel's OpenAILLM, bounded to `in_flight` concurrent agenerate calls."""
    try:
        from distilabel.models import OpenAILLM
    except ImportError:
        from distilabel.llms import OpenAILLM

    llm = OpenAILLM(model="bench", base_url=url, api_key="sk-none", max_retries=0, timeout=60)
    llm.load()
    gate = asyncio.Semaphore(in_flight)

    async def one(text: str):
        async with gate:
            return await llm.agenerate(input=[{"role": "user", "content": text}], max_new_tokens=16)

    async def main():
        return await asyncio.gather(*(one(p) for p in prompts(n)), return_exceptions=True)

    cpu, start = time.process_time(), time.perf_counter()
    results = asyncio.run(main())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    errors = sum(isinstance(r, BaseException) for r in results)
    return {"wall_s": wall, "cpu_s": cpu, "errors": errors}


def run_datadesigner(url: str, n: int, in_flight: int) -> dict:
    """DataDesigner's pipeline: seed prompts -> one LLM text column, `in_flight` parallel."""
    import data_designer.config as dd
    import pandas as pd
    from data_designer.interface import DataDesigner

    provider = dd.ModelProvider(name="bench", endpoint=url, provider_type="openai", api_key="x")
    params = dd.ChatCompletionInferenceParams(
        max_parallel_requests=in_flight, max_tokens=16, timeout=60
    )
    model = dd.ModelConfig(
        alias="bench", model="bench", provider="bench", inference_parameters=params
    )
    builder = dd.DataDesignerConfigBuilder(model_configs=[model])
    builder.with_seed_dataset(dd.DataFrameSeedSource(df=pd.DataFrame({"prompt": prompts(n)})))
    builder.add_column(
        dd.LLMTextColumnConfig(name="reply", prompt="{{ prompt }}", model_alias="bench")
    )
    with tempfile.TemporaryDirectory(dir=WORK) as artifacts:
        designer = DataDesigner(artifact_path=artifacts, model_providers=[provider])
        designer.set_run_config(dd.RunConfig(otel_metrics_port=None))
        marks: list[tuple[float, float]] = []

        def batch_written(path) -> None:
            marks.append((time.perf_counter(), time.process_time()))

        cpu, start = time.process_time(), time.perf_counter()
        results = designer.create(builder, num_records=n, on_batch_complete=batch_written)
        rows = results.load_dataset()
    errors = n - int(rows["reply"].notna().sum()) if "reply" in rows else n
    return {"wall_s": marks[-1][0] - start, "cpu_s": marks[-1][1] - cpu, "errors": errors}


PEER_RUNNERS = {"distilabel": run_distilabel, "datadesigner": run_datadesigner}


# -- ours and the harness ---------------------------------------------------------------


def run_ours(url: str, n: int, in_flight: int, transport: str) -> dict:
    from helpsteer.llm import ChatRequest, LLMConfig, make_client

    config = LLMConfig(
        backend="openai",
        model="bench",
        base_urls=[url],
        max_in_flight=in_flight,
        extra={"transport": transport},
    )
    requests = [
        ChatRequest(messages=[{"role": "user", "content": p}], max_tokens=16) for p in prompts(n)
    ]
    with make_client(config) as client:
        cpu, start = time.process_time(), time.perf_counter()
        done = client.complete_batch(requests)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "errors": sum(not d.ok for d in done)}


def run_peer_process(name: str, url: str, n: int, in_flight: int) -> dict | str:
    """The peer's result from its own venv, or why there is none."""
    python = peer_python(name)
    if not python.exists():
        return f"no {name} venv (run with --setup-peer first)"
    command = [str(python), __file__, "--peer", name, "--url", url,
               "--requests", str(n), "--in-flight", str(in_flight)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return f"{name} failed: {done.stderr.strip()[-500:]}"
    return json.loads(done.stdout.splitlines()[-1])


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "helpsteer.llm.testing", "--delay", str(delay), "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    return server, server.stdout.readline().strip()


def setup_peer(name: str) -> None:
    """A separate venv with the peer, unless pip would bring torch along."""
    folder, requirements, _ = PEERS[name]
    WORK.mkdir(exist_ok=True)
    python = peer_python(name)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(WORK / folder)], check=True)
    pip = [str(python), "-m", "pip", "install", *requirements]
    plan = subprocess.run([*pip, "--dry-run"], capture_output=True, text=True, check=True).stdout
    if "torch" in plan.lower().replace("torchvision", ""):
        print(f"not installing {name}: pip would install torch with it", file=sys.stderr)
        sys.exit(1)
    subprocess.run(pip, check=True)


def line(name: str, result: dict, n: int, ideal: float) -> str:
    rate = n / result["wall_s"]
    return (
        f"{name:<24} {rate:8.0f} req/s  {rate / ideal:5.2f} of ideal  "
        f"{result['cpu_s'] / n * 1e3:6.3f} ms CPU/request  errors {result['errors']}"
    )


def summary(name: str, results: list[dict], n: int, ideal: float) -> float:
    """Print median and range over the runs; returns the median req/s."""
    rates = [n / r["wall_s"] for r in results]
    cpu = [r["cpu_s"] / n * 1e3 for r in results]
    median = statistics.median(rates)
    print(
        f"{name:<24} median {median:6.0f} req/s ({min(rates):.0f}-{max(rates):.0f})  "
        f"{median / ideal:.2f} of ideal ({min(rates) / ideal:.2f}-{max(rates) / ideal:.2f})  "
        f"CPU {statistics.median(cpu):.3f} ms/request ({min(cpu):.3f}-{max(cpu):.3f})"
    )
    return median


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def bench(args: argparse.Namespace) -> None:
    n, in_flight = args.requests, args.in_flight
    ideal = in_flight / args.delay
    clients = {"ours": "helpsteer (aiohttp)", "sdk": "helpsteer (openai SDK)"}
    clients.update({name: PEERS[name][2] for name in args.peers})
    results: dict[str, list[dict]] = {key: [] for key in clients}
    print(f"{n} requests, {in_flight} in flight, server delay {args.delay} s, {args.runs} runs")
    print(f"ideal: {ideal:.0f} req/s; load average at start {loadavg()}")
    server, url = start_server(args.delay)
    try:
        for round_no in range(1, args.runs + 1):
            print(f"-- run {round_no}")
            for key in clients:
                if key in ("ours", "sdk"):
                    transport = "aiohttp" if key == "ours" else "sdk"
                    result = run_ours(url, n, in_flight, transport)
                else:
                    result = run_peer_process(key, url, n, in_flight)
                if isinstance(result, str):
                    print(f"{clients[key]:<24} skipped: {result}")
                    continue
                results[key].append(result)
                print(line(clients[key], result, n, ideal))
    finally:
        server.terminate()
        server.wait(10)
    print(f"-- over {args.runs} runs (load average at end {loadavg()})")
    medians = {k: summary(clients[k], rs, n, ideal) for k, rs in results.items() if rs}
    for key in args.peers:
        if key in medians and len(results[key]) == len(results["ours"]):
            # per run: the two clients ran back to back, under about the same load
            each = [
                t["wall_s"] / o["wall_s"]
                for o, t in zip(results["ours"], results[key], strict=True)
            ]
            print(
                f"ratio ours/{key} (req/s): median {medians['ours'] / medians[key]:.2f}, "
                f"per run {min(each):.2f}-{max(each):.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--peers", default="distilabel,datadesigner", help="comma-separated, '' for none"
    )
    parser.add_argument("--setup-peer", action="store_true", help="create the peers' venvs")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; known: {sorted(PEERS)}")
    if args.peer:
        print(json.dumps(PEER_RUNNERS[args.peer](args.url, args.requests, args.in_flight)))
    elif args.setup_peer:
        for name in args.peers:
            setup_peer(name)
    else:
        bench(args)


if __name__ == "__main__":
    main()
