"""Reward-model training throughput and model FLOPs utilisation (MFU) on one GPU.

    python benchmarks/train_mfu.py                      # ~1B Llama (Llama-3.2-1B shape), bf16
    python benchmarks/train_mfu.py --tiny               # a CPU smoke run of the same path

Builds a random-weight Llama with Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads,
8 KV heads, MLP 8192; no download, a small BPE vocabulary since a reward model has no LM
head), writes synthetic preference pairs that all truncate to exactly --seq tokens (so no
padding), trains it with `hs train rm`'s Trainer (bf16 compute under FSDP2, BT loss) for
--steps optimizer steps, and prints real tokens/s and

    MFU = tokens/s x (6 N + 12 L H T) / peak bf16 FLOP/s

(N: non-embedding parameters, L layers, H hidden size, T sequence length; PaLM's
accounting, attention not halved for causality). The peak comes from the GPU name (H100
SXM / H200: 989 TFLOP/s, H100 PCIe: 756, A100: 312) or --peak-tflops. Tokens/s spans
every step, the first one included.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = REPO / "benchmarks" / "_work" / "train_mfu"

ONE_B = {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "mlp": 8192}
TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "mlp": 128}
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU (the longest matching name wins)."""
    for name in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if name in device_name:
            return PEAK_TFLOPS[name]
    return None


def non_embedding_params(shape: dict) -> int:
    h, kv = shape["hidden"], shape["hidden"] * shape["kv_heads"] // shape["heads"]
    attention = 2 * h * h + 2 * h * kv
    mlp = 3 * h * shape["mlp"]
    norms = 2 * h
    return shape["layers"] * (attention + mlp + norms) + h + h  # + final norm + score head


def flops_per_token(shape: dict, seq: int) -> float:
    return 6 * non_embedding_params(shape) + 12 * shape["layers"] * shape["hidden"] * seq


def build(shape: dict, out: Path) -> Path:
    import torch
    from transformers import AutoModel, LlamaConfig

    from trainers.tiny import build_tokenizer

    tok = build_tokenizer(vocab_size=512)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        intermediate_size=shape["mlp"],
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_pairs(path: Path, n: int, words: int, seed: int = 0) -> Path:
    """Pairs far longer than --seq, so truncation makes every sequence exactly --seq long."""
    rng = random.Random(seed)
    vocab = ["river", "stone", "light", "paper", "cloud", "seven", "green", "model", "quiet"]
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            prompt = " ".join(rng.choices(vocab, k=32))
            pair = {
                side: [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": " ".join(rng.choices(vocab, k=words))},
                ]
                for side in ("chosen", "rejected")
            }
            f.write(json.dumps(pair) + "\n")
    return path


def train(model: Path, data: Path, args, precision: str) -> dict:
    from helpsteer.progress import Reporter
    from trainers.config import validate_config
    from trainers.train_rm import Dist, Trainer

    raw = {
        "output_dir": str(WORK / "run"),
        "model": {"name_or_path": str(model)},
        "data": {"train": str(data), "max_length": args.seq, "truncation_side": "right"},
        "objective": {"loss": "bt_plain"},
        "optim": {
            "lr": 1e-5,
            "schedule": "constant",
            "batch_size": args.batch,
            "micro_batch_size": args.micro,
            "max_steps": args.steps,
        },
        "parallel": {"mixed_precision": precision},
        "checkpoint": {"resume": False},
        "logging": {"tensorboard": False, "every_steps": max(args.steps // 5, 1)},
    }
    return Trainer(validate_config(raw), Dist(), Reporter(quiet=False)).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shape on CPU, fp32")
    parser.add_argument("--seq", type=int, default=1024, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=16, help="pairs per optimizer step")
    parser.add_argument("--micro", type=int, default=8, help="pairs per micro-batch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()

    import torch

    shape = TINY if args.tiny else ONE_B
    if args.tiny:
        args.seq, args.batch, args.micro, args.steps = 64, 4, 2, 3
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        sys.exit("no GPU: this benchmark measures bf16 MFU on a GPU (use --tiny on CPU)")
    WORK.mkdir(parents=True, exist_ok=True)
    model = build(shape, WORK / ("tiny-model" if args.tiny else "llama-1b"))
    data = write_pairs(WORK / "pairs.jsonl", args.batch * args.steps, words=args.seq * 2)
    summary = train(model, data, args, "fp32" if args.tiny else "bf16")

    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or (peak_tflops(device) if cuda else None)
    achieved = summary["tokens_per_s"] * flops_per_token(shape, args.seq)
    params = non_embedding_params(shape)
    print(f"\ndevice: {device}; model: {params / 1e9:.3f} B non-embedding parameters, {shape}")
    print(
        f"seq {args.seq}, {args.batch} pairs/step ({args.micro} per micro-batch), "
        f"{summary['step']} steps in {summary['train_seconds']:.1f} s"
    )
    print(f"tokens/s: {summary['tokens_per_s']:,.0f} (padded fraction "
          f"{summary['padded_fraction']:.3f}); model TFLOP/s: {achieved / 1e12:.1f}")  # fmt: skip
    if peak:
        print(f"MFU: {achieved / (peak * 1e12):.1%} of {peak:.0f} TFLOP/s bf16 peak")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
