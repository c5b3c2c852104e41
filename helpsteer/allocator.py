"""How long the `hs` process keeps memory it freed: imported by the CLI before polars.

polars allocates through jemalloc, which by default keeps freed pages for 10 s, so the
transient memory of one step (polars maps a whole JSON Lines file to read it: 309 MiB
for the 324 MB benchmark file of 1 M ratings) stays resident under the next steps.
Handing pages back after 200 ms took the peak RSS of `hs build-dataset` on 1.3 M
annotations from 1,058-1,200 MB to 985-1,010 MB (three runs each, same speed within
the machine's noise; benchmarks/build_dataset.py). jemalloc reads its settings once,
when polars is first imported; a `_RJEM_MALLOC_CONF` the user set wins.

polars itself writes `_RJEM_MALLOC_CONF` into `os.environ` when it is imported (its
defaults, then whatever was set before, which jemalloc lets win). So a parent Python
process that imported polars, such as benchmarks/build_dataset.py or a test run, hands
`hs` polars' defaults, which read as a user's setting: the benchmark's `hs` ran with
500 ms / 1 s decay and peaked at 1,123-1,137 MiB instead of 874-926 MiB (same code,
runs taking turns from a process that imported polars, at the same speed: 9.5 s).
Those inherited defaults are not the user's and are dropped here; what a user
appended after them is kept.
"""

from __future__ import annotations

import os

JEMALLOC_SETTINGS = "dirty_decay_ms:200,muzzy_decay_ms:0"
POLARS_DEFAULTS = (
    "dirty_decay_ms:500,muzzy_decay_ms:1000,thp:always,metadata_thp:always",
    "dirty_decay_ms:500,muzzy_decay_ms:1000",
)
"""What `import polars` (1.x; with POLARS_THP=1, the first) writes before a user's value."""


def user_settings(value: str) -> str:
    """`value` without the polars defaults a parent process left in front of it."""
    while True:
        default = next((d for d in POLARS_DEFAULTS if f"{value},".startswith(f"{d},")), None)
        if default is None:
            return value
        value = value[len(default) + 1 :]


os.environ["_RJEM_MALLOC_CONF"] = (
    user_settings(os.environ.get("_RJEM_MALLOC_CONF", "")) or JEMALLOC_SETTINGS
)
