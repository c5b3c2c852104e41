"""Atomic file writes: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".hs-tmp-"
"""Temporaries are `.hs-tmp-XXXXXXXX.NAME` beside NAME (8 hex digits): the name keeps
its suffix for writers that pick a format by it, and a killed run's leftovers are
recognisable (helpsteer.writers.sweep_leftovers).

A temporary is a sibling, not a file inside a temporary folder: removing that folder
after the rename is a directory update that ext4 makes wait for the journal to commit
the data just written; on the 900 MB of a 1.3 M-annotation `hs build-dataset` the 48
`rmdir` calls took 2.5-3.7 s of the run (cProfile, benchmarks/build_dataset.py)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    Works for files and for folders (whatever is created at the yielded path).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}.{target.name}")
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    """Remove what a failed write left at `path` (nothing after a successful one)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
