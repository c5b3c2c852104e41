"""What a checkpoint was trained with, so that a resume never mixes two trainings.

Every checkpoint stores a fingerprint of the run: the config fields that change the
trained weights (or the validation numbers the manifest reports) and a content hash of
each data file. A run that finds a checkpoint in its output_dir resumes only when its own
fingerprint is the same; otherwise it stops and names the fields that differ, since the
manifest would record a config the weights were not trained with.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from helpsteer.io import file_fingerprint
from trainers.config import TrainConfig

IGNORED = (
    "output_dir",  # the folder that holds the checkpoint, so the same by definition
    "logging",  # how often to write metrics or validate: the weights are the same
    "checkpoint",  # how often to save, resume drills: resumes are bit-identical
    # Memory-only: recomputing activations and when shards are gathered give the same
    # numbers, and turning them on is how a run that ran out of memory goes on.
    "parallel.activation_checkpointing",
    "parallel.reshard_after_forward",
)
DATA_FIELDS = ("data.train", "data.valid", "recipe.regression_train", "recipe.regression_valid")
"""Inputs compared by content, not by the path string: the same file reached through
another relative path (a run started from another folder) is the same training."""
LOCAL_FIELDS = ("model.name_or_path", "model.tokenizer")
"""Compared as resolved paths when they are local folders, else as given (Hub ids)."""


def fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """Dotted field name -> value, for every field that changes what is trained."""
    flat = _flatten(cfg.model_dump(mode="json"))
    out = {k: v for k, v in flat.items() if not _ignored(k) and k not in DATA_FIELDS}
    for key in LOCAL_FIELDS:
        if out.get(key) and Path(out[key]).exists():
            out[key] = str(Path(out[key]).resolve())
    for key in DATA_FIELDS:
        out[f"{key} (content)"] = content_hash(flat[key]) if flat[key] else None
    return out


def content_hash(source: str) -> str:
    """sha256 of a file's bytes (a copy under another name is the same data); a folder or
    a Hub id as `hs build-dataset` fingerprints its inputs."""
    path = Path(source)
    if not path.is_file():
        return file_fingerprint(source)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'field: checkpoint value -> this config's value', one per differing field."""
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {_show(k, old.get(k))} -> {_show(k, new.get(k))}"
        for k in keys
        if old.get(k) != new.get(k)
    ]


def _show(key: str, value: Any) -> str:
    if key.endswith("(content)") and isinstance(value, str) and not value.startswith("hub:"):
        return f"sha256 {value[:12]}"
    return repr(value)


def _ignored(key: str) -> bool:
    return any(key == i or key.startswith(f"{i}.") for i in IGNORED)


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
