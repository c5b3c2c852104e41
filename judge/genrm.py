r"""Generative reward models (GenRM) as a judge, in NVIDIA's Nemotron GenRM output format.

A GenRM first writes an analysis of each response, then an integer helpfulness score per
response (1-5) and, for two responses, a ranking score (1-6). The Nemotron GenRM models
(nvidia/Llama-3_3-Nemotron-Super-49B-GenRM and its -Multilingual sibling, trained on
HelpSteer3-Preference, arXiv:2505.11475) answer in this layout:

    [The Begin of Analysis on Response 1]
    ...
    [The End of Analysis on Response 1]

    [The Begin of Analysis on Response 2]
    ...
    [The End of Analysis on Response 2]

    [The Begin of Individual Scores]
    \boxed{x, y}
    [The End of Individual Scores]

    [The Begin of Ranking Score]
    \boxed{z}
    [The End of Ranking Score]

With one response the scores box holds one value (`\boxed{x}`) and there is no ranking.
Ranking: 1 = Response 1 is much better, 2 = better, 3 = slightly better, 4 = Response 2
is slightly better, 5 = better, 6 = much better. Sources: the GenRM prompt and reward of
NVIDIA NeMo-RL (`nemo_rl/environments/genrm_environment.py`, which reads the two boxed
sections with the regexes `\[The Begin of Individual Scores\]\s*\n\s*\\boxed\{([^}]+)\}...`
and checks scores 1-5 and ranking 1-6), its HelpSteer3 GenRM prompt template (responses
wrapped in `[The Begin of Response i]` ... `[The End of Response i]`), and the model cards
of nvidia/Llama-3_3-Nemotron-Super-49B-GenRM(-Multilingual), whose RM-Bench and
JudgeBench tables report "voting@32". The newer Qwen3-Nemotron-235B-A22B-GenRM and NeMo
Gym's `genrm_compare` server answer with JSON `{"score_1", "score_2", "ranking"}` on the
same scales; the parser reads that too when the tagged sections are absent.

Parsing keeps the raw text and says why a sample failed; nothing is guessed. A reasoning
model's thoughts (text before the last `</think>`, as NeMo-RL splits them) are not
parsed. When a section appears more than once, the last one counts (NeMo-RL does the
same), so a model that quotes the format while thinking is still read right.

Voting over k samples ("voting@k"): the scores of the samples that parsed are averaged
per response; the ranking is the majority value, a tie between the most common values
going to the one nearest the mean ranking, then to the less extreme one; when even that
ties (votes split evenly around 3.5) the pair is a tie (preference strength 0).

Requests go through the helpsteer.llm client, so every backend (`openai`, `vllm`,
`local`) works, with its cache: the k samples are one request with `n = k`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helpsteer.conversation import Message
from helpsteer.llm import ChatRequest, Completion
from judge.llm_judge import (
    TRUNCATED,
    JudgeError,
    PairItem,
    SingleItem,
    answered,
    check_conversation,
)
from judge.pairwise import Order, first_order
from judge.parsing import extract_json_object
from judge.prompts import JudgePrompt, PromptError, load_fastchat, load_toml

OUTPUT_FORMAT = "genrm"
SCORE_MIN, SCORE_MAX = 1, 5
RANK_MIN, RANK_MAX = 1, 6
RANK_MIDDLE = (RANK_MIN + RANK_MAX) / 2
"""3.5: rankings below favour Response 1, above favour Response 2."""
VOTING_TEMPERATURE = 0.6
VOTING_TOP_P = 0.95
"""NVIDIA's GenRM sampling (NeMo Gym's genrm_compare config) when k samples are voted."""
TEMPLATE_FIELDS = frozenset({"context", "responses", "response_1", "response_2"})

Side = Literal["A", "B", "tie"]


# ------------------------------------------------------------------ prompts


def load_genrm_prompts(path: str | Path | None = None) -> dict[str, JudgePrompt]:
    """GenRM prompts by name: the built-in `genrm.toml`, or a user file (.toml shaped like
    it, or a FastChat-style .jsonl)."""
    if path is None:
        path = Path(str(files("judge.prompts").joinpath("genrm.toml")))
    if str(path).endswith(".jsonl"):
        return load_fastchat(path)
    return load_toml(path)


def load_genrm_prompt(name: str = "genrm", path: str | Path | None = None) -> JudgePrompt:
    try:
        prompts = load_genrm_prompts(path)
    except PromptError as exc:
        raise JudgeError(str(exc)) from None
    if name not in prompts:
        where = str(path) if path else "the built-in GenRM prompts"
        raise JudgeError(f"no prompt named {name!r} in {where}; known: {', '.join(prompts)}")
    prompt = prompts[name]
    check_genrm_prompt(prompt)
    return prompt


def check_genrm_prompt(prompt: JudgePrompt) -> None:
    if prompt.output_format != OUTPUT_FORMAT:
        raise JudgeError(
            f"prompt {prompt.name!r} has output format {prompt.output_format!r}; a GenRM judge "
            f"needs {OUTPUT_FORMAT!r} (e.g. the built-in 'genrm')"
        )
    unknown = set(prompt.fields) - TEMPLATE_FIELDS
    if unknown:
        raise JudgeError(
            f"prompt {prompt.name!r} uses unknown fields {sorted(unknown)}; a GenRM template "
            f"may use {', '.join(sorted(TEMPLATE_FIELDS))}"
        )


def context_text(conversation: Sequence[Message]) -> str:
    """The conversation as "User: ..." / "Assistant: ..." turns (NeMo-RL's GenRM context)."""
    check_conversation(conversation)
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in conversation)


def responses_text(answers: Sequence[str]) -> str:
    return "\n".join(
        f"[The Begin of Response {i}]\n{answer}\n[The End of Response {i}]"
        for i, answer in enumerate(answers, start=1)
    )


def template_values(conversation: Sequence[Message], answers: Sequence[str]) -> dict[str, str]:
    values = {"context": context_text(conversation), "responses": responses_text(answers)}
    for i, answer in enumerate(answers, start=1):
        values[f"response_{i}"] = answer
    return values


# ------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class GenRMSample:
    """One completion, parsed. `scores` has one value per response; `ranking` is set only
    for two responses. Both are None when the sample failed (see `reason`)."""

    scores: tuple[int, ...] | None
    ranking: int | None
    analyses: tuple[str, ...]
    raw: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.scores is not None

    def flipped(self) -> GenRMSample:
        """The same judgment with Response 1 and 2 swapped (for a pair shown as B, A)."""
        if not self.ok:
            return self
        ranking = None if self.ranking is None else RANK_MIN + RANK_MAX - self.ranking
        return GenRMSample(
            self.scores[::-1],  # type: ignore[index]
            ranking,
            self.analyses[::-1],
            self.raw,
            self.reason,
        )


def _failed(raw: str, reason: str, analyses: tuple[str, ...] = ()) -> GenRMSample:
    return GenRMSample(None, None, analyses, raw, reason)


def _tag(kind: str, name: str) -> str:
    return f"[The {kind} of {name}]"


def section(text: str, name: str) -> tuple[str | None, str]:
    """The text of the last `[The Begin of NAME]` ... `[The End of NAME]` section."""
    begin, end = _tag("Begin", name), _tag("End", name)
    start = text.rfind(begin)
    if start < 0:
        return None, f"no {begin} section"
    stop = text.find(end, start)
    if stop < 0:
        return None, f"{begin} without {end}"
    return text[start + len(begin) : stop], "ok"


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_INTEGER = re.compile(r"\s*([+-]?\d+)(?:\.0*)?\s*")


def boxed(content: str, name: str) -> tuple[str | None, str]:
    """The one value boxed in a section (repeating the same box is fine)."""
    values = {v.strip() for v in _BOXED.findall(content)}
    if not values:
        return None, f"no \\boxed{{}} in {name}"
    if len(values) > 1:
        return None, f"several different \\boxed{{}} values in {name}: {sorted(values)}"
    return values.pop(), "ok"


def integers(text: str, low: int, high: int, what: str) -> tuple[list[int] | None, str]:
    """Comma-separated integers, each within low..high ("4.0" counts as 4)."""
    values = []
    for part in text.split(","):
        match = _INTEGER.fullmatch(part)
        if match is None:
            return None, f"{what}: {part.strip()!r} is not an integer"
        value = int(match.group(1))
        if not low <= value <= high:
            return None, f"{what}: {value} outside {low}..{high}"
        values.append(value)
    return values, "ok"


def _boxed_integers(text: str, name: str, low: int, high: int, what: str):
    content, reason = section(text, name)
    if content is None:
        return None, reason
    value, reason = boxed(content, name)
    if value is None:
        return None, reason
    return integers(value, low, high, what)


def strip_reasoning(text: str, reasoning_end: str | None = "</think>") -> str:
    if reasoning_end and reasoning_end in text:
        return text.rsplit(reasoning_end, 1)[1]
    return text


def parse_genrm(
    completion: str, num_responses: int, reasoning_end: str | None = "</think>"
) -> GenRMSample:
    """A GenRM completion judging `num_responses` (1 or 2) responses."""
    if num_responses not in (1, 2):
        raise ValueError(f"a GenRM judges one or two responses, not {num_responses}")
    text = strip_reasoning(completion, reasoning_end)
    analyses = tuple(
        (section(text, f"Analysis on Response {i}")[0] or "").strip()
        for i in range(1, num_responses + 1)
    )
    if _tag("Begin", "Individual Scores") not in text:
        from_json = _parse_json(text, completion, num_responses)
        if from_json is not None:
            return from_json
    scores, reason = _boxed_integers(
        text, "Individual Scores", SCORE_MIN, SCORE_MAX, "individual score"
    )
    if scores is None:
        return _failed(completion, reason, analyses)
    if len(scores) != num_responses:
        reason = f"expected {num_responses} individual score(s), got {len(scores)}"
        return _failed(completion, reason, analyses)
    if num_responses == 1:
        return GenRMSample(tuple(scores), None, analyses, completion, "ok")
    ranking, reason = _boxed_integers(text, "Ranking Score", RANK_MIN, RANK_MAX, "ranking score")
    if ranking is None:
        return _failed(completion, reason, analyses)
    if len(ranking) != 1:
        return _failed(completion, f"expected one ranking score, got {len(ranking)}", analyses)
    return GenRMSample(tuple(scores), ranking[0], analyses, completion, "ok")


def _parse_json(text: str, raw: str, num_responses: int) -> GenRMSample | None:
    """The JSON variant `{"score_1": .., "score_2": .., "ranking": ..}`; None when the text
    holds no such object (then the tagged format's reason is reported)."""
    obj = extract_json_object(text)
    keys = [f"score_{i}" for i in range(1, num_responses + 1)]
    if num_responses == 2:
        keys.append("ranking")
    if obj is None or not all(k in obj for k in keys):
        return None
    values = []
    for key in keys:
        low, high = (RANK_MIN, RANK_MAX) if key == "ranking" else (SCORE_MIN, SCORE_MAX)
        value = obj[key]
        if isinstance(value, bool | list | dict):
            return _failed(raw, f"json: {key} is not an integer: {value!r}")
        parsed, reason = integers(str(value), low, high, key)
        if parsed is None:
            return _failed(raw, f"json: {reason}")
        values.append(parsed[0])
    scores = tuple(values[:num_responses])
    ranking = values[2] if num_responses == 2 else None
    return GenRMSample(scores, ranking, ("",) * num_responses, raw, "json")


# ------------------------------------------------------------------ voting


@dataclass(frozen=True)
class GenRMVote:
    """The k samples of one judgment, combined."""

    samples: tuple[GenRMSample, ...]
    scores: tuple[float, ...] | None
    """Mean individual score per response over the samples that parsed."""
    ranking: int | None
    """Majority ranking (two responses only); None for one response, when no sample
    parsed, or when the vote split evenly (then `side` is "tie")."""
    ranking_mean: float | None
    votes: dict[int, int] = field(default_factory=dict)
    reason: str = "ok"

    @property
    def valid(self) -> int:
        return sum(s.ok for s in self.samples)

    @property
    def ok(self) -> bool:
        return self.scores is not None

    @property
    def side(self) -> Side | None:
        """ "A" (Response 1 better), "B", "tie" (split vote), or None (nothing parsed)."""
        if self.ranking_mean is None:
            return None
        if self.ranking is None:
            return "tie"
        return "A" if self.ranking < RANK_MIDDLE else "B"

    @property
    def strength(self) -> int | None:
        """HelpSteer's -3..3 preference strength (negative: Response 1 better)."""
        if self.ranking_mean is None:
            return None
        if self.ranking is None:
            return 0
        return ranking_strength(self.ranking)

    @property
    def raws(self) -> list[str]:
        return [s.raw for s in self.samples]


def ranking_strength(ranking: int) -> int:
    """1..6 -> -3, -2, -1, 1, 2, 3 (the GenRM scale has no tie)."""
    return ranking - 4 if ranking <= 3 else ranking - 3


def majority(values: Sequence[int]) -> int | None:
    """The most common value; ties go to the value nearest the mean, then to the one
    nearest 3.5 (the less extreme); None when that still ties."""
    counts = Counter(values)
    top = max(counts.values())
    modes = [v for v, c in counts.items() if c == top]
    if len(modes) == 1:
        return modes[0]
    mean = sum(values) / len(values)
    modes.sort(key=lambda v: (abs(v - mean), abs(v - RANK_MIDDLE)))
    first, second = modes[0], modes[1]
    if (abs(first - mean), abs(first - RANK_MIDDLE)) == (
        abs(second - mean),
        abs(second - RANK_MIDDLE),
    ):
        return None
    return first


def vote(samples: Sequence[GenRMSample], num_responses: int) -> GenRMVote:
    good = [s for s in samples if s.ok]
    if not good:
        reason = samples[0].reason if samples else "no samples"
        return GenRMVote(tuple(samples), None, None, None, reason=f"no sample parsed: {reason}")
    scores = tuple(
        sum(s.scores[i] for s in good) / len(good)  # type: ignore[index]
        for i in range(num_responses)
    )
    reason = "ok" if len(good) == len(samples) else f"{len(good)} of {len(samples)} parsed"
    if num_responses == 1:
        return GenRMVote(tuple(samples), scores, None, None, reason=reason)
    rankings = [s.ranking for s in good if s.ranking is not None]
    counts = dict(sorted(Counter(rankings).items()))
    winner = majority(rankings)
    if winner is None:
        reason = f"split vote {counts}"
    mean = sum(rankings) / len(rankings)
    return GenRMVote(tuple(samples), scores, winner, mean, counts, reason)


# ------------------------------------------------------------------ the judge


class GenRMSampling(BaseModel):
    """How the GenRM is sampled. One greedy sample by default; `samples` > 1 votes over k
    samples, which needs sampling (default temperature 0.6, top_p 0.95, as NVIDIA runs
    its GenRMs)."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(1, ge=1, le=128, description="k samples per judgment (voting@k).")
    temperature: float | None = Field(
        None, ge=0, description="Default: 0 for one sample, 0.6 when voting."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Default: 0.95 when voting.")
    max_tokens: int = Field(2048, ge=1, description="Per sample (analysis + scores).")
    seed: int = Field(0, description="Sent with each request; also seeds the shown order.")
    max_answer_chars: int | None = Field(
        None, ge=1, description="Cut each judged response to this many characters."
    )
    reasoning_end: str | None = Field(
        "</think>", description="Text before the last occurrence is reasoning, not parsed."
    )

    def effective_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return VOTING_TEMPERATURE if self.samples > 1 else 0.0

    def effective_top_p(self) -> float | None:
        if self.top_p is not None:
            return self.top_p
        return VOTING_TOP_P if self.samples > 1 else None

    def check(self) -> None:
        if self.samples > 1 and self.effective_temperature() == 0:
            raise JudgeError(
                f"voting over {self.samples} samples needs temperature > 0 (greedy samples "
                "are all the same); leave temperature unset for 0.6"
            )

    def request(self, messages: list[Message]) -> ChatRequest:
        return ChatRequest(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            n=self.samples,
            temperature=self.effective_temperature(),
            top_p=self.effective_top_p(),
            max_tokens=self.max_tokens,
            seed=self.seed,
        )

    def cut(self, text: str) -> str:
        limit = self.max_answer_chars
        if limit is None or len(text) <= limit:
            return text
        return text[:limit] + TRUNCATED


@dataclass(frozen=True)
class GenRMJudgment:
    """One item judged: the vote over its samples, in the item's own orientation (for a
    pair, Response 1 = answer A)."""

    item_id: str
    vote: GenRMVote
    orders: tuple[Order, ...] = ()
    """For a pair: the order(s) it was shown in ("AB": A as Response 1)."""
    errors: tuple[str, ...] = ()
    per_order: dict[str, GenRMVote] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The (mean) helpfulness of a single response."""
        return self.vote.scores[0] if self.vote.scores else None

    @property
    def consistent(self) -> bool | None:
        """With both orders: whether each order alone favours the same side."""
        if len(self.per_order) < 2:
            return None
        sides = {v.side for v in self.per_order.values()}
        if None in sides:
            return None
        return len(sides) == 1


class GenRMJudge:
    """Scores single responses (helpfulness 1-5) and pairs (scores plus a 1-6 ranking).

    A pair is shown in one order, a seeded coin flip per item like the pairwise judge's
    first order (so position bias does not always favour answer A), or in both orders
    with `both_orders` (2k samples voted together)."""

    def __init__(
        self,
        client: Any,
        prompt: JudgePrompt | None = None,
        *,
        sampling: GenRMSampling | None = None,
        both_orders: bool = False,
    ):
        self.prompt = prompt or load_genrm_prompt()
        check_genrm_prompt(self.prompt)
        self.sampling = sampling or GenRMSampling()
        self.sampling.check()
        self.client = client
        self.both_orders = both_orders

    def request(self, conversation: Sequence[Message], answers: Sequence[str]) -> ChatRequest:
        values = template_values(conversation, [self.sampling.cut(a) for a in answers])
        try:
            messages = self.prompt.render(**values)
        except PromptError as exc:
            raise JudgeError(str(exc)) from None
        return self.sampling.request(messages)

    def orders_for(self, item_id: str) -> tuple[Order, ...]:
        first = first_order(item_id, self.sampling.seed)
        if not self.both_orders:
            return (first,)
        return (first, "BA" if first == "AB" else "AB")

    def score(self, items: Sequence[SingleItem], reporter: Any = None) -> list[GenRMJudgment]:
        requests = [self.request(item.conversation, [item.answer]) for item in items]
        done = answered(self.client, requests, reporter)
        out = []
        for item, completion in zip(items, done, strict=True):
            samples = self._samples(completion, 1)
            errors = () if completion.error is None else (completion.error,)
            out.append(GenRMJudgment(item.item_id, vote(samples, 1), errors=errors))
        return out

    def compare(self, items: Sequence[PairItem], reporter: Any = None) -> list[GenRMJudgment]:
        planned = []
        for item in items:
            for order in self.orders_for(item.item_id):
                answers = [item.answer_a, item.answer_b]
                shown = answers if order == "AB" else answers[::-1]
                planned.append((item, order, self.request(item.conversation, shown)))
        requests = [request for _, _, request in planned]
        done = answered(self.client, requests, reporter)
        by_item: dict[str, list[tuple[Order, Completion]]] = {}
        for (item, order, _), completion in zip(planned, done, strict=True):
            by_item.setdefault(item.item_id, []).append((order, completion))
        return [self._combine(item.item_id, by_item[item.item_id]) for item in items]

    def _combine(self, item_id: str, answered: list[tuple[Order, Completion]]) -> GenRMJudgment:
        per_order: dict[str, GenRMVote] = {}
        samples: list[GenRMSample] = []
        errors = []
        for order, completion in answered:
            parsed = self._samples(completion, 2)
            oriented = parsed if order == "AB" else [s.flipped() for s in parsed]
            per_order[order] = vote(oriented, 2)
            samples += oriented
            if completion.error is not None:
                errors.append(f"{order}: {completion.error}")
        orders = tuple(order for order, _ in answered)
        return GenRMJudgment(item_id, vote(samples, 2), orders, tuple(errors), per_order)

    def _samples(self, completion: Completion, num_responses: int) -> list[GenRMSample]:
        if completion.error is not None:
            return [_failed(completion.text, f"LLM error: {completion.error}")]
        end = self.sampling.reasoning_end
        return [parse_genrm(text, num_responses, end) for text in completion.texts]


def relabel_analyses(analyses: Sequence[str]) -> str:
    """The analyses as one HelpSteer-style elaboration ("@Response 1: ...")."""
    parts = [f"@Response {i}: {text}" for i, text in enumerate(analyses, start=1) if text]
    return "\n\n".join(parts)
