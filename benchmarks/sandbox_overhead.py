"""Per-judgment overhead of the code judge's OS sandbox: median milliseconds to judge a
trivial candidate (`print(1)`) under bubblewrap against the old plain-subprocess runner
(`unsafe_no_sandbox=True`), side by side, with the ratio.

Both runners use the same harness and interpreter flags, so the difference is the isolation:
namespaces, the read-only mounts, the per-run cgroups and the PID-namespace kill.
Runs alternate between the two runners so that a change in machine load hits both.

    python benchmarks/sandbox_overhead.py --runs 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge.code import Limits, run_python, sandbox_available  # noqa: E402


def judge_once(unsafe: bool) -> float:
    started = time.perf_counter()
    result = run_python("print(1)\n", limits=Limits(wall_seconds=30), unsafe_no_sandbox=unsafe)
    elapsed = (time.perf_counter() - started) * 1000
    if not result.passed or result.stdout != "1\n":
        raise SystemExit(f"trivial candidate did not pass: {result.status}: {result.reason}")
    return elapsed


def summary(name: str, times: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(times, n=4)
    return (
        f"{name:<22} median {statistics.median(times):7.1f} ms   "
        f"IQR {q1:6.1f}-{q3:6.1f} ms   min {min(times):6.1f}   max {max(times):6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="Judgments per runner.")
    args = parser.parse_args()
    missing = sandbox_available()
    if missing:
        raise SystemExit(f"no sandbox here: {missing}")
    isolated: list[float] = []
    plain: list[float] = []
    judge_once(False), judge_once(True)  # warm caches (probe, interpreter folders)
    load_before = os.getloadavg()
    for _ in range(args.runs):
        isolated.append(judge_once(False))
        plain.append(judge_once(True))
    load_after = os.getloadavg()
    layers = run_python("print(1)\n").isolation
    print(f"python {sys.version.split()[0]}, uid {os.geteuid()}, {os.cpu_count()} CPUs")
    print(f"sandbox layers: {', '.join(layers)}")
    print(summary("bwrap sandbox", isolated))
    print(summary("plain subprocess", plain))
    ratio = statistics.median(isolated) / statistics.median(plain)
    extra = statistics.median(isolated) - statistics.median(plain)
    print(f"ratio {ratio:.2f}x, +{extra:.1f} ms per judgment, {args.runs} runs each")
    print(
        "load average (1, 5, 15 min): before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )


if __name__ == "__main__":
    main()
