"""LLM-as-judge through the client layer: pairwise (both orders), single 1-10 ratings and
HelpSteer2 five-attribute ratings.

Every judge turns its items into `ChatRequest`s, sends them all in one
`complete_many` batch (so the client's cache makes a re-run free and its admission
control decides the concurrency), and parses each completion with `judge.parsing`,
keeping the raw text. Templates come from `judge/prompts/builtin.toml` or, by name,
from a FastChat `judge_prompts.jsonl` file.

A conversation is a list of `{role, content}` messages ending with the user turn that
the judged answers reply to. Template fields are filled for every prompt style at once:
`question` (the last user turn, preceded by a transcript of earlier turns when there are
any), FastChat's two-turn fields `question_1`, `answer_a_1`, `question_2`, `answer_a_2`,
..., and the reference fields `ref_answer`, `ref_answer_1`, `ref_answer_2`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helpsteer.conversation import Message
from helpsteer.llm import ChatRequest, Completion
from helpsteer.llm.client import answered as llm_answered
from judge.pairwise import (
    Order,
    PairOutcome,
    Policy,
    StrengthOutcome,
    combine,
    combine_strengths,
    orders,
    shown,
)
from judge.parsing import (
    ChoiceProbabilities,
    PairVerdict,
    Strength,
    choice_probabilities,
    expected_rating,
    parse_attribute_ratings,
    parse_pair_verdict,
    parse_rating,
    parse_strength,
)
from judge.prompts import JudgePrompt, PromptError, helpsteer2_schema, load_builtin, load_fastchat

VerdictFormat = Literal["[[A]]", "strength"]
TRUNCATED = "\n[... truncated]"
LOGPROB_FORMAT = "logprob:"
TOP_LOGPROBS = 20
LOGPROB_MAX_TOKENS = 3
"""Positions searched for the verdict token (a small model may open with a space or `[[`)."""


class JudgeError(ValueError):
    """A judge configuration or an item that cannot be judged (shown without traceback)."""


def answered(client: Any, requests: Sequence[ChatRequest], reporter: Any) -> list[Completion]:
    """The batch's answers; JudgeError when the server answered none of them."""
    return llm_answered(client, requests, reporter, JudgeError)


def load_prompt(name: str, path: str | Path | None = None) -> JudgePrompt:
    """A prompt by name: from FastChat's `judge_prompts.jsonl` at `path`, else built in."""
    prompts = load_fastchat(path) if path else load_builtin()
    if name not in prompts:
        where = str(path) if path else "the built-in prompts"
        raise JudgeError(f"no prompt named {name!r} in {where}; known: {', '.join(prompts)}")
    return prompts[name]


class SamplingConfig(BaseModel):
    """How the judge model is sampled; greedy by default so verdicts are reproducible."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=1, description="Per judgment (FastChat uses 2048).")
    seed: int = Field(0, description="Sent with each request and used for the first order.")
    max_answer_chars: int | None = Field(
        None, ge=1, description="Cut each judged answer to this many characters (small contexts)."
    )

    def request(self, messages: list[Message], json_schema: dict | None = None) -> ChatRequest:
        return ChatRequest(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            json_schema=json_schema,
        )

    def cut(self, text: str) -> str:
        limit = self.max_answer_chars
        if limit is None or len(text) <= limit:
            return text
        return text[:limit] + TRUNCATED


def logprob_choices(prompt: JudgePrompt) -> tuple[str, ...] | None:
    """The choices of a `logprob:A,B` prompt; None for a prompt whose reply is parsed."""
    fmt = prompt.output_format
    if not fmt.startswith(LOGPROB_FORMAT):
        return None
    choices = tuple(c.strip() for c in fmt[len(LOGPROB_FORMAT) :].split(",") if c.strip())
    if len(choices) < 2:
        raise JudgeError(f"prompt {prompt.name!r}: {fmt!r} needs two or more choices")
    return choices


def logprob_request(request: ChatRequest) -> ChatRequest:
    """A request for a few greedy tokens with their top candidates' log-probabilities."""
    update = {
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "max_tokens": LOGPROB_MAX_TOKENS,
        "temperature": 0.0,
    }
    return request.model_copy(update=update)


def read_choices(done: Completion, choices: tuple[str, ...]) -> ChoiceProbabilities:
    """Choice probabilities of a completion; the reply's own words when the backend sent no
    log-probabilities (then the first word naming a choice gets probability 1)."""
    if done.error is not None:
        return ChoiceProbabilities(None, None, f"LLM error: {done.error}")
    if done.logprobs and done.logprobs[0]:
        positions = [
            [(c.token, c.logprob) for c in token.top_logprobs] or [(token.token, token.logprob)]
            for token in done.logprobs[0]
        ]
    else:
        positions = [[(word, 0.0)] for word in done.text.split()]
    return choice_probabilities(positions, choices)


# ------------------------------------------------------------------ template fields


def _turns(conversation: Sequence[Message]) -> tuple[list[str], list[str]]:
    """User turns and the assistant replies between them (one fewer than user turns)."""
    users = [m["content"] for m in conversation if m["role"] == "user"]
    assistants = [m["content"] for m in conversation if m["role"] == "assistant"]
    return users, assistants


def check_conversation(conversation: Sequence[Message]) -> None:
    if not conversation or conversation[-1]["role"] != "user":
        raise JudgeError("a judged conversation must end with a user turn")


def transcript_question(conversation: Sequence[Message]) -> str:
    """The last user turn; earlier turns are prepended as a labelled transcript."""
    *earlier, last = conversation
    if not earlier:
        return last["content"]
    lines = [f"[{m['role'].capitalize()}]\n{m['content']}" for m in earlier]
    history = "\n\n".join(lines)
    return (
        f"(Earlier conversation, for context)\n{history}\n\n(The user's latest message, "
        f"which the answers reply to)\n{last['content']}"
    )


def _references(reference: str | Sequence[str] | None) -> dict[str, str]:
    if reference is None:
        return {}
    refs = [reference] if isinstance(reference, str) else list(reference)
    return {"ref_answer": refs[-1], "ref_answer_1": refs[0], "ref_answer_2": refs[-1]}


def fields_for_answers(
    conversation: Sequence[Message],
    answers: dict[str, str],
    reference: str | Sequence[str] | None = None,
) -> dict[str, str]:
    """Template values; `answers` maps a suffix ("" for single, "_a", "_b") to the answer.

    The two-turn fields take the last two user turns: `question_1` with the assistant's
    reply to it as `answer<suffix>_1`, then `question_2` with the judged answer."""
    check_conversation(conversation)
    users, assistants = _turns(conversation)
    values = {"question": transcript_question(conversation), **_references(reference)}
    for suffix, answer in answers.items():
        values[f"answer{suffix}"] = answer
        values[f"answer{suffix}_2"] = answer
        if len(users) >= 2 and assistants:
            values[f"answer{suffix}_1"] = assistants[-1]
    if len(users) >= 2:
        values["question_1"], values["question_2"] = users[-2], users[-1]
    else:
        values["question_1"] = users[-1]
    return values


def render(prompt: JudgePrompt, values: dict[str, str]) -> list[Message]:
    try:
        return prompt.render(**values)
    except PromptError as exc:
        raise JudgeError(
            f"{exc}; a two-turn prompt needs a conversation with two user turns"
        ) from None


# ------------------------------------------------------------------ pairwise


@dataclass(frozen=True)
class PairItem:
    item_id: str
    conversation: list[Message]
    answer_a: str
    answer_b: str
    reference: str | list[str] | None = None


@dataclass(frozen=True)
class PairJudgment:
    item_id: str
    outcome: PairOutcome
    strength: StrengthOutcome | None
    """Only with a 7-point ("strength") prompt."""
    raw_ab: str
    raw_ba: str
    justification_ab: str = ""
    justification_ba: str = ""
    errors: tuple[str, ...] = ()
    """LLM call errors (after retries), if any."""
    prob_a: float | None = None
    """Only with a `logprob:A,B` prompt: mean over both orders of P(A is better)."""

    @property
    def first_order(self) -> Order:
        return self.outcome.first_order

    @property
    def consistent(self) -> bool | None:
        """None when a verdict is missing."""
        if self.outcome.outcome == "error":
            return None
        return self.outcome.outcome != "inconsistent"

    def row(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "item_id": self.item_id,
            "first_order": o.first_order,
            "verdict_ab": o.verdict_ab,
            "verdict_ba": o.verdict_ba,
            "outcome": o.outcome,
            "winner": o.winner,
            "reason": o.reason,
            "strength": None if self.strength is None else self.strength.strength,
            "prob_a": self.prob_a,
            "raw_ab": self.raw_ab,
            "raw_ba": self.raw_ba,
        }


_SHOWN_LABEL = re.compile(r"\b(Response|Answer|Assistant)\s+([AB])\b")


def relabel(text: str, order: Order) -> str:
    """Justification text in HelpSteer2-Preference's labels: what was shown as A/B becomes
    @Response 1/@Response 2 of the pair, whichever order it was shown in."""

    def swap(match: re.Match[str]) -> str:
        letter = match.group(2)
        if order == "BA":
            letter = "B" if letter == "A" else "A"
        return "@Response 1" if letter == "A" else "@Response 2"

    return _SHOWN_LABEL.sub(swap, text)


def _strength_verdict(strength: Strength) -> PairVerdict:
    if not strength.ok:
        return PairVerdict(None, strength.raw, strength.reason)
    value = strength.strength
    winner = "A" if value < 0 else "B" if value > 0 else "tie"  # type: ignore[operator]
    return PairVerdict(winner, strength.raw, f"strength {value}")


class PairwiseJudge:
    """Judges each pair in both orders; the order asked first is a seeded coin flip per
    item (recorded), and `policy` decides what an inconsistent pair becomes."""

    def __init__(
        self,
        client: Any,
        prompt: JudgePrompt,
        *,
        policy: Policy = "discard",
        sampling: SamplingConfig | None = None,
        multi_turn_prompt: JudgePrompt | None = None,
        reference_prompt: JudgePrompt | None = None,
    ):
        for p in (prompt, multi_turn_prompt, reference_prompt):
            if p is not None:
                _check_pairwise_prompt(p, policy)
        self.client = client
        self.prompt = prompt
        self.policy = policy
        self.sampling = sampling or SamplingConfig()
        self.multi_turn_prompt = multi_turn_prompt
        self.reference_prompt = reference_prompt

    @property
    def strength_scale(self) -> bool:
        return self.prompt.output_format == "strength"

    def prompt_for(self, item: PairItem) -> JudgePrompt:
        users, _ = _turns(item.conversation)
        if item.reference is not None and self.reference_prompt is not None:
            return self.reference_prompt
        if len(users) >= 2 and self.multi_turn_prompt is not None:
            return self.multi_turn_prompt
        return self.prompt

    def requests(self, item: PairItem) -> list[tuple[Order, ChatRequest]]:
        """The two requests of an item, the one to ask first first."""
        prompt = self.prompt_for(item)
        cut = self.sampling.cut
        out = []
        for order in orders(item.item_id, self.sampling.seed):
            first, second = shown(order, cut(item.answer_a), cut(item.answer_b))
            values = fields_for_answers(
                item.conversation, {"_a": first, "_b": second}, item.reference
            )
            request = self.sampling.request(render(prompt, values))
            if logprob_choices(prompt):
                request = logprob_request(request)
            out.append((order, request))
        return out

    def judge(self, items: Sequence[PairItem], reporter: Any = None) -> list[PairJudgment]:
        planned = [self.requests(item) for item in items]
        flat = [request for pair in planned for _, request in pair]
        done = answered(self.client, flat, reporter)
        results = []
        for i, item in enumerate(items):
            by_order = {planned[i][k][0]: done[2 * i + k] for k in range(2)}
            results.append(self._combine(item, planned[i][0][0], by_order))
        return results

    def _combine(self, item: PairItem, first: Order, done: dict[str, Completion]) -> PairJudgment:
        ab, ba = done["AB"], done["BA"]
        errors = tuple(f"{o}: {c.error}" for o, c in done.items() if c.error is not None)
        if logprob_choices(self.prompt_for(item)):
            return self._combine_probabilities(item, first, ab, ba, errors)
        if not self.strength_scale:
            outcome = combine(
                _verdict(ab, parse_pair_verdict),
                _verdict(ba, parse_pair_verdict),
                self.policy,
                first,
            )
            return PairJudgment(item.item_id, outcome, None, ab.text, ba.text, errors=errors)
        s_ab, s_ba = _strength(ab), _strength(ba)
        outcome = combine(_strength_verdict(s_ab), _strength_verdict(s_ba), self.policy, first)
        strength = combine_strengths(s_ab, s_ba, self.policy, first)
        return PairJudgment(
            item.item_id,
            outcome,
            strength,
            ab.text,
            ba.text,
            relabel(s_ab.justification, "AB"),
            relabel(s_ba.justification, "BA"),
            errors,
        )

    def _combine_probabilities(self, item, first, ab, ba, errors) -> PairJudgment:
        shown_ab, shown_ba = read_choices(ab, ("A", "B")), read_choices(ba, ("A", "B"))
        prob_a = None
        if shown_ab.ok and shown_ba.ok:
            # In the (B, A) order the pair's A was shown second.
            prob_a = (shown_ab.probs["A"] + shown_ba.probs["B"]) / 2  # type: ignore[index]
        outcome = combine(
            _probability_verdict(shown_ab, ab),
            _probability_verdict(shown_ba, ba),
            self.policy,
            first,
            prob_a,
        )
        return PairJudgment(
            item.item_id, outcome, None, ab.text, ba.text, errors=errors, prob_a=prob_a
        )


def _check_pairwise_prompt(prompt: JudgePrompt, policy: str) -> None:
    choices = logprob_choices(prompt)
    if choices is None and prompt.output_format not in ("[[A]]", "strength"):
        raise JudgeError(
            f"prompt {prompt.name!r} has output format {prompt.output_format!r}; a "
            "pairwise judge needs '[[A]]', 'strength' or 'logprob:A,B'"
        )
    if choices is not None and tuple(c.upper() for c in choices) != ("A", "B"):
        raise JudgeError(f"prompt {prompt.name!r}: a pairwise logprob prompt needs 'logprob:A,B'")
    if policy == "probability" and choices is None:
        raise JudgeError(
            f"policy 'probability' needs a 'logprob:A,B' prompt (e.g. the built-in "
            f"'pairwise-logprob'); {prompt.name!r} gives {prompt.output_format!r} verdicts"
        )


def _probability_verdict(shown: ChoiceProbabilities, done: Completion) -> PairVerdict:
    if not shown.ok:
        return PairVerdict(None, done.text, shown.reason)
    a, b = shown.probs["A"], shown.probs["B"]  # type: ignore[index]
    winner = "A" if a > b else "B" if b > a else "tie"
    return PairVerdict(winner, done.text, f"P(A) {a:.3f} at token {shown.position}")


def _verdict(done: Completion, parse) -> PairVerdict:
    if done.error is not None:
        return PairVerdict(None, done.text, f"LLM error: {done.error}")
    return parse(done.text)


def _strength(done: Completion) -> Strength:
    if done.error is not None:
        return Strength(None, "", done.text, f"LLM error: {done.error}")
    return parse_strength(done.text)


# ------------------------------------------------------------------ single ratings


@dataclass(frozen=True)
class SingleItem:
    item_id: str
    conversation: list[Message]
    answer: str
    reference: str | list[str] | None = None


@dataclass(frozen=True)
class SingleJudgment:
    item_id: str
    score: float | None
    raw: str
    reason: str


class SingleJudge:
    """MT-Bench single-answer grading: a 1-10 `[[rating]]` per answer. A conversation with
    two or more user turns uses `multi_turn_prompt` (rating the answer to the last turn),
    an item with a reference uses `reference_prompt`, when given."""

    def __init__(
        self,
        client: Any,
        prompt: JudgePrompt,
        *,
        sampling: SamplingConfig | None = None,
        multi_turn_prompt: JudgePrompt | None = None,
        reference_prompt: JudgePrompt | None = None,
        low: float = 1,
        high: float = 10,
    ):
        for p in (prompt, multi_turn_prompt, reference_prompt):
            if p is not None:
                _check_single_prompt(p)
        self.client = client
        self.prompt = prompt
        self.sampling = sampling or SamplingConfig()
        self.multi_turn_prompt = multi_turn_prompt
        self.reference_prompt = reference_prompt
        self.low, self.high = low, high

    def prompt_for(self, item: SingleItem) -> JudgePrompt:
        users, _ = _turns(item.conversation)
        if item.reference is not None and self.reference_prompt is not None:
            return self.reference_prompt
        if len(users) >= 2 and self.multi_turn_prompt is not None:
            return self.multi_turn_prompt
        return self.prompt

    def request(self, item: SingleItem) -> ChatRequest:
        values = fields_for_answers(
            item.conversation, {"": self.sampling.cut(item.answer)}, item.reference
        )
        prompt = self.prompt_for(item)
        request = self.sampling.request(render(prompt, values))
        return logprob_request(request) if logprob_choices(prompt) else request

    def judge(self, items: Sequence[SingleItem], reporter: Any = None) -> list[SingleJudgment]:
        requests = [self.request(item) for item in items]
        done = answered(self.client, requests, reporter)
        return [self._score(item, completion) for item, completion in zip(items, done, strict=True)]

    def _score(self, item: SingleItem, done: Completion) -> SingleJudgment:
        if done.error is not None:
            return SingleJudgment(item.item_id, None, done.text, f"LLM error: {done.error}")
        choices = logprob_choices(self.prompt_for(item))
        if choices is not None:
            probs = read_choices(done, choices)
            if not probs.ok:
                return SingleJudgment(item.item_id, None, done.text, probs.reason)
            score = expected_rating(probs.probs)  # type: ignore[arg-type]
            return SingleJudgment(item.item_id, score, done.text, probs.reason)
        rating = parse_rating(done.text, self.low, self.high)
        return SingleJudgment(item.item_id, rating.score, done.text, rating.reason)


def _check_single_prompt(prompt: JudgePrompt) -> None:
    choices = logprob_choices(prompt)
    if choices is None:
        if prompt.output_format != "[[rating]]":
            raise JudgeError(
                f"prompt {prompt.name!r} has output format {prompt.output_format!r}; a "
                "single-answer judge needs '[[rating]]' or 'logprob:<digits>'"
            )
        return
    if not all(c.isdigit() for c in choices):
        raise JudgeError(
            f"prompt {prompt.name!r}: a single-answer logprob prompt needs numeric choices "
            f"(e.g. 'logprob:0,1,2,3,4'), not {prompt.output_format!r}"
        )


# ------------------------------------------------------------------ HelpSteer2 attributes


@dataclass(frozen=True)
class AttributeJudgment:
    item_id: str
    values: dict[str, int] | None
    raw: str
    reason: str


class AttributeJudge:
    """HelpSteer2's five attributes (0-4) per response, asked for as JSON with the schema
    sent along (the client validates it and asks for a repair when it does not match)."""

    def __init__(self, client: Any, prompt: JudgePrompt, *, sampling: SamplingConfig | None = None):
        if prompt.output_format != "json-attributes":
            raise JudgeError(
                f"prompt {prompt.name!r} has output format {prompt.output_format!r}; an "
                "attribute judge needs 'json-attributes'"
            )
        self.client = client
        self.prompt = prompt
        self.sampling = sampling or SamplingConfig()
        self.schema = helpsteer2_schema()

    def request(self, item: SingleItem) -> ChatRequest:
        values = fields_for_answers(item.conversation, {"": self.sampling.cut(item.answer)})
        values["schema"] = json.dumps(self.schema, indent=2)
        return self.sampling.request(render(self.prompt, values), json_schema=self.schema)

    def judge(self, items: Sequence[SingleItem], reporter: Any = None) -> list[AttributeJudgment]:
        requests = [self.request(item) for item in items]
        done = answered(self.client, requests, reporter)
        out = []
        for item, completion in zip(items, done, strict=True):
            if completion.error is not None:
                reason = f"LLM error: {completion.error}"
                out.append(AttributeJudgment(item.item_id, None, completion.text, reason))
                continue
            text = completion.text
            if completion.parsed:
                text = json.dumps(completion.parsed[0])
            parsed = parse_attribute_ratings(text)
            out.append(
                AttributeJudgment(item.item_id, parsed.values, completion.text, parsed.reason)
            )
        return out


# ------------------------------------------------------------------ helpers for callers

STATEMENT_WORDS = {1: "slightly better than", 2: "better than", 3: "much better than"}


def round_strength(value: float) -> int:
    """Half away from zero, so the mean of -1 and -2 stays on A's side at -2."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def preference_statement(strength: int) -> str:
    """HelpSteer2-Preference's statement for a -3..3 strength (negative: response 1 better)."""
    if strength == 0:
        return "@Response 1 and @Response 2 are about equally good."
    better, worse = (
        ("@Response 1", "@Response 2") if strength < 0 else ("@Response 2", "@Response 1")
    )
    return f"{better} is {STATEMENT_WORDS[abs(strength)]} {worse}."


@dataclass
class UsageSnapshot:
    """Tokens, cost and time spent by a client between `start` and `stop`."""

    client: Any
    before: dict[str, Any] = field(default_factory=dict)
    spent: dict[str, Any] = field(default_factory=dict)

    def start(self) -> UsageSnapshot:
        self.before = self.client.stats.as_dict()
        return self

    def stop(self) -> dict[str, Any]:
        after = self.client.stats.as_dict()
        self.spent = {k: after[k] - self.before.get(k, 0) for k in after}
        return self.spent
