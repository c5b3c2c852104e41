"""Reward-model training throughput: ours packed (with and without shared prompts), ours
padded and TRL's RewardTrainer.

    python benchmarks/train_throughput.py [--pairs 384] [--hidden 128] [--layers 4] [--rounds 3]

All three train the same tiny random Llama (built offline) on the same preference pairs
(Anthropic HH-RLHF harmless-base from ../shared/data when present, else synthetic pairs),
with the same batch size, micro-batch size, learning rate and max length, for one epoch
on CPU in fp32 without activation checkpointing: ours with padding-free packed
micro-batches and each pair's prompt computed once (the default), the same packed with
data.share_prompt = false, ours with padded length-grouped micro-batches
(data.packing = false), and TRL 1.16's RewardTrainer (imported from --trl-path, a
`pip install --no-deps --target` folder, so TRL never enters the project's environment).
Each run is its own subprocess, so its peak memory (max RSS) is its own; a round runs the
variants one after another and --rounds repeats it, because a shared machine's speed drifts.
Printed: real (non-pad) tokens per second, the share of padded tokens, peak memory, the
ratios per round (median and range) and the load average around each round.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HH = REPO / ".." / "shared" / "data" / "hh_rlhf" / "harmless-base-test.jsonl.gz"
WORK = REPO / "benchmarks" / "_work" / "train_throughput"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def hh_messages(text: str) -> list[dict[str, str]] | None:
    parts = _TURN.split(text)[1:]
    if len(parts) % 2:
        return None
    roles = {"Human": "user", "Assistant": "assistant"}
    messages = [
        {"role": roles[r], "content": c.strip()}
        for r, c in zip(parts[::2], parts[1::2], strict=True)
    ]
    ok = messages and messages[-1]["role"] == "assistant" and all(m["content"] for m in messages)
    return messages if ok else None


def load_pairs(n: int) -> tuple[list[dict], str]:
    if HH.exists():
        rows = []
        with gzip.open(HH, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                chosen, rejected = hh_messages(row["chosen"]), hh_messages(row["rejected"])
                if chosen and rejected:
                    rows.append({"chosen": chosen, "rejected": rejected})
                if len(rows) == n:
                    break
        return rows, f"HH-RLHF harmless-base test ({HH.name})"
    rng = random.Random(0)
    words = ["the", "a", "sea", "robot", "paint", "code", "learn", "river", "blue", "deep"]
    rows = []
    for _ in range(n):
        prompt = {"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(5, 60)))}
        replies = [" ".join(rng.choices(words, k=rng.randint(5, 200))) for _ in range(2)]
        rows.append(
            {
                k: [prompt, {"role": "assistant", "content": r}]
                for k, r in zip(("chosen", "rejected"), replies, strict=True)
            }
        )
    return rows, "synthetic pairs (../shared/data absent)"


def prepare(args) -> dict:
    from trainers.tiny import build_model

    WORK.mkdir(parents=True, exist_ok=True)
    rows, source = load_pairs(args.pairs)
    data = WORK / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = [m["content"] for r in rows[:200] for m in r["chosen"]]
    model = build_model(
        WORK / "model", hidden=args.hidden, layers=args.layers, texts=texts, vocab_size=2000
    )
    return {"data": str(data), "model": str(model), "source": source, "pairs": len(rows)}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(spec: dict, packed: bool, share_prompt: bool = True) -> dict:
    from helpsteer.progress import Reporter
    from trainers.config import validate_config
    from trainers.train_rm import Dist, Trainer

    raw = {
        "output_dir": str(WORK / "ours"),
        "model": {"name_or_path": spec["model"]},
        "data": {
            "train": spec["data"],
            "max_length": spec["max_length"],
            "packing": packed,
            "share_prompt": share_prompt,
        },
        "objective": {"loss": "bt_plain"},
        "optim": {
            "lr": 1e-4,
            "batch_size": spec["batch_size"],
            "micro_batch_size": spec["micro_batch_size"],
            "schedule": "constant",
        },
        "checkpoint": {"resume": False},
        "logging": {"tensorboard": False, "every_steps": 1000},
    }
    summary = Trainer(validate_config(raw), Dist(), Reporter(quiet=True)).run()
    return {
        "tokens_per_s": summary["tokens_per_s"],
        "padded_fraction": summary["padded_fraction"],
        "computed_per_token": summary["computed_per_token"],
        "train_seconds": summary["train_seconds"],
        "steps": summary["step"],
        "peak_mb": _peak_mb(),
        "packing": summary["packing"],
    }


def run_trl(spec: dict) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    rows = [json.loads(x) for x in Path(spec["data"]).read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(spec["model"])
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(spec["model"], num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    config = RewardConfig(
        output_dir=str(WORK / "trl"),
        per_device_train_batch_size=spec["micro_batch_size"],
        gradient_accumulation_steps=spec["batch_size"] // spec["micro_batch_size"],
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        num_train_epochs=1,
        max_length=None,  # TRL drops long pairs instead of truncating; we truncate both below
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to=[],
        logging_steps=1000,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
    )
    limit = spec["max_length"]

    def cut(batch):
        return {k: [ids[-limit:] for ids in batch[k]] for k in ("chosen_ids", "rejected_ids")}

    trainer.train_dataset = trainer.train_dataset.map(cut, batched=True)
    real = total = 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        real, total = real + int(mask.sum()), total + mask.numel()
    steps = len(rows) // spec["batch_size"]
    real_trained = real * steps * spec["batch_size"] / len(rows)

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.start = time.time()

        def on_train_end(self, *a, **k):
            self.seconds = time.time() - self.start

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return {
        "tokens_per_s": real_trained / clock.seconds,
        "padded_fraction": 1 - real / total,
        "train_seconds": clock.seconds,
        "steps": trainer.state.global_step,
        "peak_mb": _peak_mb(),
    }


VARIANTS = ("packed", "unshared", "padded", "trl")
LABELS = {
    "packed": "ours packed",
    "unshared": "packed, no share",
    "padded": "ours padded",
    "trl": "TRL Reward",
}


def child(which: str, spec_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    if which == "trl":
        result = run_trl(spec)
    else:
        result = run_ours(spec, packed=which != "padded", share_prompt=which == "packed")
    print("RESULT " + json.dumps(result))


def trl_missing(trl_path: str) -> str | None:
    """Why TRL cannot be imported from trl_path, or None."""
    env = {**os.environ, "PYTHONPATH": trl_path}
    code = "import trl; print(trl.__version__)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"{last} (pip install --no-deps --target {trl_path} trl==1.16.0)"
    return None


def _spawn(which: str, spec_path: Path, trl_path: str) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--spec", str(spec_path)]
    env = {**os.environ, "PYTHONPATH": trl_path} if which == "trl" else None
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x (range {min(values):.2f}-{max(values):.2f})"


def _figure(run: dict, key: str) -> float:
    """A run's figure; tokens computed per real token is 1 / (1 - padding) where a run
    does not report it (TRL)."""
    if key == "computed_per_token" and key not in run:
        return 1 / max(1 - run["padded_fraction"], 1e-9)
    return run[key]


def summarize(rounds: list[dict], variants: list[str]) -> dict:
    """Median of each figure over the rounds, and the ratios taken within each round."""
    out = {"variants": {}, "ratios": {}}
    for v in variants:
        out["variants"][v] = {
            k: statistics.median(_figure(r[v], k) for r in rounds)
            for k in ("tokens_per_s", "padded_fraction", "computed_per_token", "train_seconds",
                      "peak_mb")
        }  # fmt: skip
    pairs = [("packed", "trl"), ("unshared", "trl"), ("padded", "trl"), ("packed", "unshared")]
    for a, b in pairs:
        if a in variants and b in variants:
            out["ratios"][f"{a}/{b}"] = [
                r[a]["tokens_per_s"] / r[b]["tokens_per_s"] for r in rounds
            ]
    return out


def print_table(spec: dict, args, rounds: list[dict], summary: dict) -> None:
    variants = list(summary["variants"])
    print(
        f"data: {spec['source']}, {spec['pairs']} pairs; tiny Llama hidden {args.hidden}, "
        f"{args.layers} layers; batch {args.batch_size}, micro-batch {args.micro_batch_size}, "
        f"max length {args.max_length}; CPU fp32, {args.threads} threads; "
        f"{len(rounds)} rounds, medians"
    )
    print(f"{'':22}" + "".join(f"{LABELS[v]:>18}" for v in variants))
    for key, label, fmt in [
        ("tokens_per_s", "real tokens/s", "{:18,.0f}"),
        ("padded_fraction", "padded fraction", "{:18.3f}"),
        ("computed_per_token", "computed/real tokens", "{:18.3f}"),
        ("train_seconds", "train seconds", "{:18.1f}"),
        ("peak_mb", "peak RSS MiB", "{:18,.0f}"),
    ]:
        cells = "".join(fmt.format(summary["variants"][v][key]) for v in variants)
        print(f"{label:22}{cells}")
    for name, values in summary["ratios"].items():
        a, b = name.split("/")
        print(f"real tokens/s {LABELS[a]} / {LABELS[b]}: {_spread(values)}")
    print("load average (1/5/15 min) before each round: " + "; ".join(r["load"] for r in rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=384)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="repeat the three runs")
    parser.add_argument("--trl-path", default="/tmp/trlpkg", help="folder TRL is imported from")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=VARIANTS)
    parser.add_argument("--spec")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.spec)
        return
    spec = prepare(args)
    spec.update(
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        max_length=args.max_length,
        threads=args.threads,
    )
    spec_path = WORK / "spec.json"
    spec_path.write_text(json.dumps(spec))
    variants = list(VARIANTS)
    missing = trl_missing(args.trl_path)
    if missing:
        print(f"TRL skipped: {missing}")
        variants.remove("trl")
    rounds = []
    for i in range(args.rounds):
        this = {"load": loadavg()}
        for v in variants:
            this[v] = _spawn(v, spec_path, args.trl_path)
            print(f"round {i + 1} {LABELS[v]}: {this[v]['tokens_per_s']:,.0f} real tokens/s")
        rounds.append(this)
    summary = summarize(rounds, variants)
    print_table(spec, args, rounds, summary)
    if args.json:
        record = {"spec": spec, "rounds": rounds, **summary, "trl_skipped": missing}
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
