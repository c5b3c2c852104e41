"""Judges for RewardBench behind one interface, chosen by a spec string.

- `reward:PATH_OR_HUB_ID`: a Hugging Face sequence-classification reward model
  (`judge.reward.RewardJudge`), scores compared strictly (ties are wrong).
- `endpoint:MODEL@URL`: an OpenAI-compatible reward endpoint returning attribute scores
  as logprobs (`judge.reward.RewardEndpointJudge`), weighted like Nemotron-4-340B-Reward.
- `llm:MODEL_SPEC`: an LLM judge (`local`, `openai:MODEL@URL`, ... as in
  `eval.common.parse_model_spec`). v1 pairs are judged in both orders
  (`judge.llm_judge.PairwiseJudge`, policy "tie"): a consistent win counts 1 or 0, a tie,
  an inconsistent pair or an unparsable verdict 0.5. v2 answers get a 1-10 rating each
  (`SingleJudge`); an unparsable rating is 0, below every real one.
- `genrm:MODEL_SPEC` or `genrm@K:MODEL_SPEC`: a generative reward model in the Nemotron
  GenRM format (`judge.genrm.GenRMJudge`), voting over K samples (voting@K, default 1).
  v1 pairs are shown in a seeded order per pair; the majority ranking's side wins (a split
  vote counts 0.5), and the voted helpfulness scores are kept as the pair's scores. v2
  answers get a helpfulness score (1-5, mean over the samples) each; an unparsable one is
  0, below every real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import EvalError, parse_model_spec
from eval.rewardbench import classifier_results, llm_result
from helpsteer.llm.shared import share_of


def regroup(flat: list[float], answers: Sequence[Sequence[str]]) -> list[list[float]]:
    """Scores of the flattened answers back into one list per prompt."""
    out, start = [], 0
    for group in answers:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out


def _ids(ids: Sequence[int] | None, prompts: Sequence[str]) -> Sequence[int]:
    """Item numbers: the caller's (a Ray worker scores a bucket of a benchmark and keeps
    the benchmark's numbering, on which seeded pair orders depend), else 0..n-1."""
    return range(len(prompts)) if ids is None else ids


def conversation(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


@dataclass
class PairScores:
    results: list[float]
    chosen: list[float | None]
    rejected: list[float | None]
    raw: list[dict[str, Any]] | None = None


class RewardScorer:
    """Reward model or reward endpoint: one scalar per conversation."""

    kind = "classifier"

    def __init__(self, judge: Any, name: str):
        self.judge = judge
        self.name = name

    def _score(self, conversations: list[list[dict[str, str]]], reporter: Any) -> list[float]:
        if not conversations:
            return []
        try:
            scores = self.judge.score(conversations, reporter)
        except TypeError:  # the endpoint judge takes no reporter
            scores = self.judge.score(conversations)
        return [float(s) for s in scores]

    def pairs(
        self,
        prompts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        reporter: Any = None,
        ids: Sequence[int] | None = None,
    ) -> PairScores:
        # Chosen and rejected are scored in one pass so the judge can batch all by length.
        convs = [conversation(p, a) for p, a in zip(prompts, chosen, strict=True)]
        convs += [conversation(p, a) for p, a in zip(prompts, rejected, strict=True)]
        scores = self._score(convs, reporter)
        n = len(prompts)
        sc, sr = scores[:n], scores[n:]
        return PairScores(classifier_results(sc, sr), list(sc), list(sr))

    def completions(
        self,
        prompts: Sequence[str],
        answers: Sequence[Sequence[str]],
        reporter: Any = None,
        ids: Sequence[int] | None = None,
    ) -> list[list[float]]:
        convs = [
            conversation(p, a) for p, group in zip(prompts, answers, strict=True) for a in group
        ]
        flat = self._score(convs, reporter)
        return regroup(flat, answers)

    def close(self) -> None:
        return None


class LLMScorer:
    kind = "generative"

    def __init__(self, client: Any, name: str, max_tokens: int = 512, max_answer_chars=None):
        from judge.llm_judge import SamplingConfig

        self.client = client
        self.name = name
        self.sampling = SamplingConfig(max_tokens=max_tokens, max_answer_chars=max_answer_chars)

    def pairs(self, prompts, chosen, rejected, reporter: Any = None, ids=None) -> PairScores:
        from judge.llm_judge import PairItem, PairwiseJudge, load_prompt

        judge = PairwiseJudge(
            self.client, load_prompt("pairwise"), policy="tie", sampling=self.sampling
        )
        items = [
            PairItem(f"rb-{i}", [{"role": "user", "content": p}], c, r)
            for i, p, c, r in zip(_ids(ids, prompts), prompts, chosen, rejected, strict=True)
        ]
        judged = judge.judge(items, reporter)
        results = [llm_result(j.outcome.winner) for j in judged]
        raw = [j.row() for j in judged]
        return PairScores(results, [None] * len(results), [None] * len(results), raw)

    def completions(self, prompts, answers, reporter: Any = None, ids=None) -> list[list[float]]:
        from judge.llm_judge import SingleItem, SingleJudge, load_prompt

        judge = SingleJudge(self.client, load_prompt("single"), sampling=self.sampling)
        items = [
            SingleItem(f"rb2-{i}-{k}", [{"role": "user", "content": p}], a)
            for i, p, group in zip(_ids(ids, prompts), prompts, answers, strict=True)
            for k, a in enumerate(group)
        ]
        judged = judge.judge(items, reporter)
        flat = [j.score if j.score is not None else 0.0 for j in judged]
        return regroup(flat, answers)

    def close(self) -> None:
        self.client.close()


class GenRMScorer:
    kind = "generative"

    def __init__(self, client: Any, name: str, samples: int = 1, max_tokens: int | None = None):
        from judge.genrm import GenRMJudge, GenRMSampling

        self.client = client
        self.name = name if samples == 1 else f"{name} (voting@{samples})"
        # The GenRM writes an analysis before its scores, so it keeps its own longer
        # default budget unless the caller sets one.
        budget = {"max_tokens": max_tokens} if max_tokens else {}
        sampling = GenRMSampling(samples=samples, **budget)
        self.judge = GenRMJudge(client, sampling=sampling)

    def pairs(self, prompts, chosen, rejected, reporter: Any = None, ids=None) -> PairScores:
        from judge.llm_judge import PairItem

        items = [
            PairItem(f"rb-{i}", [{"role": "user", "content": p}], c, r)
            for i, p, c, r in zip(_ids(ids, prompts), prompts, chosen, rejected, strict=True)
        ]
        judged = self.judge.compare(items, reporter)
        results = [llm_result(j.vote.side) for j in judged]
        sc = [j.vote.scores[0] if j.vote.scores else None for j in judged]
        sr = [j.vote.scores[1] if j.vote.scores else None for j in judged]
        raw = [
            {"item_id": j.item_id, "orders": list(j.orders), "ranking": j.vote.ranking,
             "reason": j.vote.reason, "raw": j.vote.raws}
            for j in judged
        ]  # fmt: skip
        return PairScores(results, sc, sr, raw)

    def completions(self, prompts, answers, reporter: Any = None, ids=None) -> list[list[float]]:
        from judge.llm_judge import SingleItem

        items = [
            SingleItem(f"rb2-{i}-{k}", [{"role": "user", "content": p}], a)
            for i, p, group in zip(_ids(ids, prompts), prompts, answers, strict=True)
            for k, a in enumerate(group)
        ]
        judged = self.judge.score(items, reporter)
        flat = [j.score if j.score is not None else 0.0 for j in judged]
        return regroup(flat, answers)

    def close(self) -> None:
        self.client.close()


def _genrm_samples(spec: str, kind: str) -> int:
    """K of `genrm@K`; 1 for plain `genrm`."""
    _, at, count = kind.partition("@")
    if not at:
        return 1
    if not count.isdigit() or int(count) < 1:
        raise EvalError(f"judge {spec!r}: expected genrm@K:SPEC with K a positive integer")
    return int(count)


def make_scorer(
    spec: str,
    cache_dir: Path | None = None,
    batch_size: int = 8,
    max_length: int = 4096,
    device: str = "cpu",
    dtype: str = "float32",
    max_tokens: int | None = None,
    engine: str = "local",
    ray: dict[str, Any] | None = None,
    in_flight_share: int = 1,
) -> RewardScorer | LLMScorer | GenRMScorer:
    """The scorer for `spec`; with `engine="ray"` one that spreads the benchmark over a
    Ray cluster (`eval.distributed.RayScorer`, `ray` = RayConfig options)."""
    options = {
        "cache_dir": cache_dir,
        "batch_size": batch_size,
        "max_length": max_length,
        "device": device,
        "dtype": dtype,
        "max_tokens": max_tokens,
    }
    if engine == "ray":
        from eval.distributed import RayScorer

        return RayScorer(spec, options, ray or {})
    if engine != "local":
        raise EvalError(f"--engine {engine!r}: expected local or ray")
    return _local_scorer(spec, in_flight_share=in_flight_share, **options)


def _local_scorer(
    spec: str,
    cache_dir: Path | None,
    batch_size: int,
    max_length: int,
    device: str,
    dtype: str,
    max_tokens: int | None,
    in_flight_share: int,
) -> RewardScorer | LLMScorer | GenRMScorer:
    kind, _, rest = spec.partition(":")
    if not rest:
        raise EvalError(
            f"judge {spec!r}: expected reward:MODEL, endpoint:MODEL@URL, llm:SPEC or genrm[@K]:SPEC"
        )
    if kind == "reward":
        from judge.reward import RewardJudge

        judge = RewardJudge(
            rest, batch_size=batch_size, max_length=max_length, device=device, dtype=dtype
        )
        return RewardScorer(judge, Path(rest).name if Path(rest).exists() else rest)
    if kind == "endpoint":
        from judge.reward import RewardEndpointJudge

        model, at, url = rest.partition("@")
        if not at:
            raise EvalError(f"judge {spec!r}: expected endpoint:MODEL@http://host:port/v1")
        return RewardScorer(RewardEndpointJudge(model, url), model)
    if kind == "llm":
        from eval.common import model_label
        from helpsteer.llm import make_client

        config = share_of(parse_model_spec(rest, cache_dir), in_flight_share)
        return LLMScorer(make_client(config), model_label(config), max_tokens or 512)
    if kind == "genrm" or kind.startswith("genrm@"):
        from eval.common import model_label
        from helpsteer.llm import make_client

        samples = _genrm_samples(spec, kind)
        config = share_of(parse_model_spec(rest, cache_dir), in_flight_share)
        return GenRMScorer(make_client(config), model_label(config), samples, max_tokens)
    raise EvalError(f"judge {spec!r}: unknown kind {kind!r} (reward, endpoint, llm or genrm)")
