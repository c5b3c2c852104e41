"""How long the `hs` process keeps memory it freed: imported by the CLI before polars.

polars allocates through jemalloc, which by default keeps freed pages for 10 s, so the
transient memory of one step (polars maps a whole JSON Lines file to read it: 309 MiB
for the 324 MB benchmark file of 1 M ratings) stays resident under the next steps.
Handing pages back after 200 ms took the peak RSS of `hs build-dataset` on 1.3 M
annotations from 1,058-1,200 MB to 985-1,010 MB (three runs each, same speed within
the machine's noise; benchmarks/build_dataset.py). jemalloc reads its settings once,
when polars is first imported; a `_RJEM_MALLOC_CONF` the user set wins.
"""

from __future__ import annotations

import os

JEMALLOC_SETTINGS = "dirty_decay_ms:200,muzzy_decay_ms:0"

os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_SETTINGS)
