"""Sharded training checkpoints with torch.distributed.checkpoint (DCP).

A checkpoint folder `checkpoints/step_000040/` holds the DCP shards of the model and the
optimizer, `trainer_state.pt` (step, data position, scheduler) and one `rng_<rank>.pt` per
process. It is written under a `.partial` name and renamed when every process is done,
so a run killed at any moment leaves only complete checkpoints behind.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

_STEP_DIR = re.compile(r"^step_(\d+)$")


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, if any."""
    if not root.is_dir():
        return None
    done = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / "trainer_state.pt").exists()
    ]
    return max(done)[1] if done else None


def save(
    root: Path, step: int, model, optimizer, trainer_state: dict, rank: int, keep_last: int
) -> Path:
    final = root / f"step_{step:06d}"
    partial = root / f"step_{step:06d}.partial"
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(partial))
    torch.save(rng_state(), partial / f"rng_{rank}.pt")
    _barrier()
    if rank == 0:
        # trainer_state.pt marks the folder complete, so it is written last.
        torch.save(trainer_state, partial / "trainer_state.pt")
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        _prune(root, keep_last)
    _barrier()
    return final


def _prune(root: Path, keep_last: int) -> None:
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)))
    for _, path in steps[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def read_state(path: Path) -> dict:
    """The trainer state of a checkpoint (step, scheduler, fingerprint), without the weights."""
    return torch.load(path / "trainer_state.pt", weights_only=False)


def discard(root: Path) -> int:
    """Remove every checkpoint under `root` (a fresh start); how many there were."""
    if not root.is_dir():
        return 0
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name.removesuffix(".partial"))]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return len(found)


def load(path: Path, model, optimizer, rank: int) -> dict:
    """Restore model, optimizer and this rank's RNG; return the trainer state."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    rng_file = path / f"rng_{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return read_state(path)


def full_model_state(model) -> dict:
    """The unsharded model state on CPU (a collective: every rank calls it)."""
    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
