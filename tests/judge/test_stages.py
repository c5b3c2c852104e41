"""Judge pipeline stages on small tables, with the fake judge LLM and a tiny reward model."""

from __future__ import annotations

import json

import polars as pl
import pytest

import judge.stages  # noqa: F401  (registers the stages)
from helpsteer.llm import LLMConfig
from helpsteer.pipeline import PipelineError, StageContext, Tables, get_stage
from helpsteer.progress import Reporter
from tests.judge.fake_judge import FaultServer, strength_good

MSG = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def _responses(texts, metas=None, prompt_ids=None):
    n = len(texts)
    return pl.DataFrame(
        {
            "prompt_id": prompt_ids or ["p0"] * n,
            "messages": [[{"role": "user", "content": "What is 2 + 2?"}]] * n,
            "prompt": ["What is 2 + 2?"] * n,
            "source": ["test"] * n,
            "meta": [json.dumps(m) for m in (metas or [{}] * n)],
            "response_id": [f"r{i}" for i in range(n)],
            "response": texts,
            "model": ["m"] * n,
            "sample": list(range(n)),
        },
        schema_overrides={"messages": MSG},
    )


def _run(name, config, tables, tmp_path):
    spec = get_stage(name)
    ctx = StageContext(name=name, out_dir=tmp_path, seed=0, reporter=Reporter(quiet=True))
    t = Tables()
    for key, frame in tables.items():
        t.set(key, frame)
    out = spec.fn(ctx, t, spec.config.model_validate(config))
    rejected = pl.concat(ctx.rejected) if ctx.rejected else None
    return out, rejected, ctx.info


def _llm(server):
    return LLMConfig(backend="openai", base_urls=[server.url], model="fake", max_retries=0)


def test_llm_score_stage_scores_and_rejects_with_raw(tmp_path):
    def rate(body):
        return ["Rating: [[8]]" if "good" in body["messages"][-1]["content"] else "hmm"]

    with FaultServer(responder=rate) as server:
        out, rejected, info = _run(
            "judge.llm_score",
            {"llm": _llm(server).model_dump()},
            {"responses": _responses(["good 4", "bad 5"])},
            tmp_path,
        )
    frame = out["responses"]
    assert frame["reward"].to_list() == [8.0, None]
    assert frame["reward_judgment"].to_list() == ["Rating: [[8]]", "hmm"]
    assert rejected.height == 1 and '"raw": "hmm"' in rejected["record"][0]
    assert info["unparsed"] == 1 and info["llm"]["requests"] == 2


def test_attributes_stage_emits_ratings(tmp_path):
    def attrs(body):
        ok = "good" in body["messages"][-1]["content"]
        values = dict(helpfulness=3, correctness=4, coherence=4, complexity=1, verbosity=2)
        return [json.dumps(values) if ok else "not json"]

    with FaultServer(responder=attrs) as server:
        llm = _llm(server).model_copy(update={"json_repair_retries": 0}).model_dump()
        out, rejected, _ = _run(
            "judge.attributes", {"llm": llm}, {"responses": _responses(["good", "bad"])}, tmp_path
        )
    assert out["responses"]["helpfulness"].to_list() == [3, None]
    ratings = out["ratings"]
    # prompt_id keys the table by prompt (the Ray engine and --shard split on it).
    assert ratings.columns == [
        "prompt_id",
        "prompt",
        "response",
        "helpfulness",
        "correctness",
        "coherence",
        "complexity",
        "verbosity",
    ]
    assert ratings.rows() == [("p0", "What is 2 + 2?", "good", 3, 4, 4, 1, 2)]
    assert rejected.height == 1


@pytest.mark.parametrize(("policy", "kept"), [("discard", 1), ("tie", 2)])
def test_pairwise_stage_on_responses(tmp_path, policy, kept):
    def biased(body):
        # Consistent on prompt p0 (the "good" answer wins), position-biased on p1.
        text = body["messages"][-1]["content"]
        if "second prompt" in text:
            return [json.dumps({"justification": "A first.", "preference": -1})]
        return strength_good(body)

    frame = pl.concat(
        [
            _responses(["good one", "bad one"], prompt_ids=["p0", "p0"]),
            _responses(["x", "y"], prompt_ids=["p1", "p1"]).with_columns(
                pl.lit([{"role": "user", "content": "second prompt"}], dtype=MSG).alias("messages"),
                pl.lit("second prompt").alias("prompt"),
                pl.Series("response_id", ["s0", "s1"]),
            ),
        ]
    )
    with FaultServer(responder=biased) as server:
        out, rejected, info = _run(
            "judge.pairwise",
            {"llm": _llm(server).model_dump(), "policy": policy},
            {"responses": frame},
            tmp_path,
        )
    pref = out["preference"].sort("prompt")
    assert pref.height == kept
    first = pref.row(0, named=True)
    assert first["response_1"] == "good one" and first["preference_strength"] == -2
    assert first["preference_statement"] == "@Response 1 is better than @Response 2."
    assert first["judge_first_order"] in ("AB", "BA")
    assert [p["strength"] for p in first["all_preferences_unprocessed"]] == [-2, -2]
    assert info["inconsistent"] == 1
    if policy == "tie":
        assert pref.row(1, named=True)["preference_strength"] == 0
    else:
        assert rejected.height == 1 and "policy discard" in rejected["reason"][0]


def test_pairwise_stage_needs_a_strength_prompt(tmp_path):
    table = pl.DataFrame({"prompt": ["q"], "response_1": ["a"], "response_2": ["b"]})
    with FaultServer() as server, pytest.raises(PipelineError, match="strength"):
        _run(
            "judge.pairwise",
            {"llm": _llm(server).model_dump(), "prompt": "pairwise"},
            {"preference": table},
            tmp_path,
        )


def test_ground_truth_stage(tmp_path):
    metas = [
        {"reference": "4"},
        {"reference": "4"},
        {"tests": "assert add(2, 2) == 4"},
        {},
        {},
    ]
    texts = [
        "The answer is \\boxed{4}.",
        "It is 5.",
        "```python\ndef add(a, b):\n    return a + b\n```",
        "Hello there",
        "whatever",
    ]
    frame = _responses(texts, metas).with_columns(
        pl.Series(
            "constraints",
            [
                None,
                None,
                None,
                json.dumps([{"id": "length:max_words", "params": {"n": 1}}]),
                '[{"id": "no-such"}]',
            ],
        )
    )
    out, rejected, info = _run("judge.ground_truth", {}, {"responses": frame}, tmp_path)
    result = out["responses"]
    assert result["ground_truth"].to_list() == [1.0, 0.0, 1.0, 0.0, None]
    assert result["ground_truth_kind"].to_list() == [
        "math",
        "math",
        "tests",
        "constraints",
        "constraints",
    ]
    assert rejected.height == 1 and "unusable constraints" in rejected["reason"][0]
    assert info["checked"]["math"] == {"passed": 1, "failed": 1}


def test_reward_stage_with_tiny_model(tmp_path):
    from judge.testing import make_tiny_reward_model

    single = make_tiny_reward_model(tmp_path / "one")
    multi = make_tiny_reward_model(tmp_path / "two", labels=["helpfulness", "verbosity"])
    frame = _responses(["good answer", "bad answer"])
    out, _, _ = _run("judge.reward", {"model": str(single)}, {"responses": frame}, tmp_path)
    assert (
        out["responses"]["reward"].dtype == pl.Float64
        and out["responses"]["reward"].null_count() == 0
    )
    cfg = {"model": str(multi), "attribute_weights": {"helpfulness": 1.0, "verbosity": 0.0}}
    out, _, info = _run("judge.reward", cfg, {"responses": frame}, tmp_path)
    scored = out["responses"]
    assert scored["reward"].to_list() == scored["reward_helpfulness"].to_list()
    assert info["attributes"] == ["helpfulness", "verbosity"]
    with pytest.raises(PipelineError, match="attribute_weights"):
        _run("judge.reward", {"model": str(multi)}, {"responses": frame}, tmp_path)
