"""Fixtures shared by several packages' tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray cluster for the tests of `--engine ray`, shut down after the module."""
    ray = pytest.importorskip("ray")
    from helpsteer.llm.shared import close_shared

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            object_store_memory=300 * 1024**2,
        )
    yield ray
    close_shared()
    if started:
        ray.shutdown()
