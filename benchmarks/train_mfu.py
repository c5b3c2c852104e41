"""Reward-model training throughput and model FLOPs utilisation (MFU) on one GPU.

    python benchmarks/train_mfu.py                      # ~1B Llama (Llama-3.2-1B shape), bf16
    python benchmarks/train_mfu.py --lengths varied --packing off   # padded micro-batches
    python benchmarks/train_mfu.py --tiny               # a CPU smoke run of the same path

Builds a random-weight Llama with Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads,
8 KV heads, MLP 8192; no download, a small BPE vocabulary since a reward model has no LM
head), writes synthetic preference pairs that all truncate to exactly --seq tokens (so no
padding; `--lengths varied`: short prompts, lengths spread up to --seq, padding costs),
trains it with `hs train rm`'s Trainer (bf16 compute, BT loss; packed micro-batches unless
`--packing off`) for --steps optimizer steps, and prints real tokens/s and

    MFU = tokens/s x (6 N + 12 L H T) / peak bf16 FLOP/s

(N: non-embedding parameters, L layers, H hidden size, T the token-weighted mean sequence
length sum(len^2) / sum(len); PaLM's accounting, attention not halved for causality;
padding is never counted as useful work). MFU is observed tokens/s against what the peak
would allow at the model's FLOPs per token, so the work our trainer skips (a BT pair's
shared prompt computed once, the last layer at the reward tokens only) counts as achieved,
as PaLM's definition has it: `computed / real tokens` and the packing line are printed
beside it, and with `--packing off` neither applies. It trains in one process, unsharded with bf16
autocast: on one GPU an FSDP2 shard would be the whole model (`hs train rm --nproc N`
shards over N GPUs). The peak comes from the GPU name (H100 SXM / H200: 989 TFLOP/s,
H100 PCIe: 756, A100: 312) or --peak-tflops. Tokens/s spans
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


def build(shape: dict, out: Path, causal: bool = False) -> Path:
    """A random-weight Llama of `shape` (an LM head and bf16 weights when `causal`, for
    generation), reused when the folder already holds one."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, LlamaConfig

    from trainers.tiny import build_tokenizer

    if (out / "config.json").exists() and list(out.glob("*.safetensors")):
        return out

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
    if causal:
        AutoModelForCausalLM.from_config(config).to(torch.bfloat16).save_pretrained(out)
    else:
        AutoModel.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_pairs(path: Path, n: int, words: int, seed: int = 0, varied: bool = False) -> Path:
    """Pairs far longer than --seq, so truncation makes every sequence exactly --seq long;
    `varied`: shorter prompts and answers of 1/32 to 1/2 of `words` words, so lengths
    spread below --seq."""
    rng = random.Random(seed)
    vocab = ["river", "stone", "light", "paper", "cloud", "seven", "green", "model", "quiet"]
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            prompt = " ".join(rng.choices(vocab, k=max(2, words // 64) if varied else 32))
            pair = {
                side: [
                    {"role": "user", "content": prompt},
                    {
                        "role": "assistant",
                        "content": _answer(rng, vocab, words, varied),
                    },
                ]
                for side in ("chosen", "rejected")
            }
            f.write(json.dumps(pair) + "\n")
    return path


def _answer(rng: random.Random, vocab: list[str], words: int, varied: bool) -> str:
    n = rng.randint(words // 32, words // 2) if varied else words
    return " ".join(rng.choices(vocab, k=n))


def attention_length(seqs: list[list[int]]) -> float:
    """The token-weighted mean sequence length: each token attends over its own sequence."""
    return sum(len(s) ** 2 for s in seqs) / max(sum(len(s) for s in seqs), 1)


def train(model: Path, data: Path, args, precision: str):
    from helpsteer.progress import Reporter
    from trainers.config import validate_config
    from trainers.train_rm import Dist, Trainer

    raw = {
        "output_dir": str(WORK / "run"),
        "model": {"name_or_path": str(model)},
        "data": {
            "train": str(data),
            "max_length": args.seq,
            "truncation_side": "right",
            "packing": args.packing == "on",
        },
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
    trainer = Trainer(validate_config(raw), Dist(), Reporter(quiet=args.json is not None))
    return trainer, trainer.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shape on CPU, fp32")
    parser.add_argument("--seq", type=int, default=1024, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=16, help="pairs per optimizer step")
    parser.add_argument("--micro", type=int, default=8, help="pairs per micro-batch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--packing", choices=["on", "off"], default="on")
    parser.add_argument("--lengths", choices=["fixed", "varied"], default="fixed")
    parser.add_argument("--json", help="write the figures to this JSON file")
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
    varied = args.lengths == "varied"
    n_pairs = args.batch * args.steps
    data = write_pairs(WORK / "pairs.jsonl", n_pairs, words=args.seq * 2, varied=varied)
    trainer, summary = train(model, data, args, "fp32" if args.tiny else "bf16")

    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or (peak_tflops(device) if cuda else None)
    seq = attention_length(trainer.train.enc.ids)
    achieved = summary["tokens_per_s"] * flops_per_token(shape, seq)
    params = non_embedding_params(shape)
    print(f"\ndevice: {device}; model: {params / 1e9:.3f} B non-embedding parameters, {shape}")
    print(
        f"seq {args.seq}, {args.batch} pairs/step ({args.micro} per micro-batch), "
        f"{summary['step']} steps in {summary['train_seconds']:.1f} s"
    )
    print(
        f"tokens/s: {summary['tokens_per_s']:,.0f} (padded fraction "
        f"{summary['padded_fraction']:.3f}, computed / real tokens "
        f"{summary['computed_per_token']:.3f}); model TFLOP/s: {achieved / 1e12:.1f}"
    )
    print(f"packing {summary['packing']}")
    if peak:
        print(f"MFU: {achieved / (peak * 1e12):.1%} of {peak:.0f} TFLOP/s bf16 peak")
    memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if cuda:
        print(f"peak GPU memory: {memory:.1f} GiB")
    if args.json:
        record = {
            "device": device,
            "shape": shape,
            "seq": args.seq,
            "attention_length": seq,
            "lengths": args.lengths,
            "packing": summary["packing"],
            "steps": summary["step"],
            "tokens_per_s": summary["tokens_per_s"],
            "padded_fraction": summary["padded_fraction"],
            "computed_per_token": summary["computed_per_token"],
            "train_seconds": summary["train_seconds"],
            "model_tflops": achieved / 1e12,
            "mfu": achieved / (peak * 1e12) if peak else None,
            "peak_tflops": peak,
            "peak_gpu_gib": memory,
        }
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
