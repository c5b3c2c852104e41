"""Throughput of the `synth.filter` stage on 100k responses: the current filters (rensa
MinHash/LSH, py3langid) against the hand-written ones they replaced (numpy/hashlib MinHash,
stop-word vote), both driven by the same `synth.stages.filter_reasons`, in one process.

The earlier filters are read from git (`--before-rev`, the last commit that had them), so
the peer is the real old code, not a re-creation. Runs alternate between the two so that a
change in machine load hits both; the load average is printed with each run.

Responses: the AlpacaEval model outputs in ../shared/data (11 models x 805 prompts), grouped
by prompt as `synth.responses` groups samples; to reach `--rows`, extra samples of a prompt
are new mixes of that prompt's sentences, and every tenth is a light edit of an earlier one
(a near duplicate). Without ../shared/data, random word texts of the same length are used.

    python benchmarks/filter_throughput.py --rows 100000 --runs 3
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import re
import statistics
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import synth.filters as current_filters  # noqa: E402
from synth.stages import FilterConfig, filter_reasons  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_eval" / "models"
BEFORE_REV = "e511661"  # parent of the commit that moved the filters to rensa/py3langid


def load_outputs() -> dict[str, list[str]]:
    """{instruction: [outputs of every model]} from the shared AlpacaEval files."""
    by_prompt: dict[str, list[str]] = {}
    for path in sorted(DATA.glob("*/model_outputs.json.gz")):
        for row in json.loads(gzip.decompress(path.read_bytes())):
            by_prompt.setdefault(row["instruction"], []).append(row["output"])
    return by_prompt


def synthetic_outputs(rng: random.Random) -> dict[str, list[str]]:
    vocab = [f"w{i}" for i in range(5000)]
    return {
        f"p{i}": [" ".join(rng.choices(vocab, k=180)) + "." for _ in range(11)] for i in range(805)
    }


def light_edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 50)):
        words[rng.randrange(len(words))] = rng.choice(["a", "the", "very", "also"])
    return " ".join(words)


def build_corpus(rows: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    by_prompt = load_outputs() if DATA.is_dir() else synthetic_outputs(rng)
    prompts = sorted(by_prompt)
    texts, groups = [], []
    for i in range(rows):
        prompt = prompts[i % len(prompts)]
        outputs = by_prompt[prompt]
        sample = i // len(prompts)
        if sample < len(outputs):
            text = outputs[sample]
        elif i % 10 == 0 and texts:
            text = light_edit(texts[i - len(prompts)], rng)
        else:
            sentences = [s for o in outputs for s in re.split(r"(?<=[.!?])\s+", o) if s]
            text = " ".join(rng.sample(sentences, min(len(sentences), rng.randint(3, 12))))
        texts.append(text)
        groups.append(prompt)
    return texts, groups


def git_source(rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def module_from_source(name: str, source: str) -> types.ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def legacy_filters(rev: str) -> types.ModuleType:
    """The old synth/filters.py (and the stop-word vote from the old constraints)."""
    module_from_source("legacy_constraints", git_source(rev, "helpsteer/constraints.py"))
    source = git_source(rev, "synth/filters.py").replace(
        "from helpsteer.constraints import", "from legacy_constraints import"
    )
    module = module_from_source("legacy_filters", source)
    old_other_language = module.other_language

    def other_language(text, expected, *args):  # today's signature, yesterday's rule
        found = old_other_language(text, expected)
        return (found, 1.0) if found else None

    module.other_language = other_language
    return module


def timed_run(module: types.ModuleType, texts, groups) -> tuple[float, Counter]:
    sys.modules["synth.filters"] = module  # filter_reasons imports from here when called
    try:
        started = time.perf_counter()
        reasons = filter_reasons(texts, groups, FilterConfig(table="responses"), True)
        elapsed = time.perf_counter() - started
    finally:
        sys.modules["synth.filters"] = current_filters
    kinds = Counter(r.split(":")[0].split(" of row")[0].split(" (")[0] for r in reasons if r)
    return elapsed, kinds


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before-rev", default=BEFORE_REV)
    args = parser.parse_args()
    texts, groups = build_corpus(args.rows)
    chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} responses, {len(set(groups))} prompts, {chars:.0f} characters each")
    peers = {"before": legacy_filters(args.before_rev), "after": current_filters}
    times: dict[str, list[float]] = {name: [] for name in peers}
    for run in range(args.runs):
        for name, module in peers.items():
            elapsed, kinds = timed_run(module, texts, groups)
            times[name].append(elapsed)
            print(
                f"run {run + 1} {name:<6} {elapsed:8.1f} s  {len(texts) / elapsed:8.0f} rows/s  "
                f"load {load_average()}  dropped {dict(sorted(kinds.items()))}"
            )
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    for name, values in times.items():
        median = statistics.median(values)
        spread = f"min {min(values):.1f}, max {max(values):.1f}"
        print(f"{name:<6} median {median:.1f} s ({spread}) = {len(texts) / median:.0f} rows/s")
    print(f"ratio (before / after time, median of {args.runs}): {before / after:.1f}x")


if __name__ == "__main__":
    main()
