"""Parsing of judge completions: pairwise verdicts, 1-10 ratings, 7-point preference
strength, and HelpSteer2 attribute ratings.

Every parser keeps the raw completion and says why it failed; nothing guesses when the
text is ambiguous or contradicts itself. The `fastchat_*` functions reproduce FastChat's
`llm_judge` rules exactly, so MT-Bench numbers stay comparable with published ones.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Literal

from helpsteer.attributes import ATTRIBUTES, LIKERT_MAX, LIKERT_MIN, STRENGTH_MAX, STRENGTH_MIN

Winner = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class PairVerdict:
    winner: Winner | None
    """None when the completion could not be parsed."""
    raw: str
    rule: str
    """The rule that matched, or why parsing failed."""

    @property
    def ok(self) -> bool:
        return self.winner is not None


# ------------------------------------------------------------------ FastChat-exact rules

_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def fastchat_pair_winner(judgment: str) -> str:
    """FastChat's `[[A]]` output-format rule: "A", "B", "tie" or "error".

    FastChat checks `[[A]]`, then `[[B]]`, then `[[C]]` by substring, so a text that
    contains both `[[A]]` and `[[B]]` counts as A.
    """
    if "[[A]]" in judgment:
        return "A"
    if "[[B]]" in judgment:
        return "B"
    if "[[C]]" in judgment:
        return "tie"
    return "error"


def fastchat_rating(judgment: str) -> float:
    """FastChat's single-answer rule: first `[[x]]`, else first `[x]`, else -1."""
    match = _ONE_SCORE.search(judgment) or _ONE_SCORE_BACKUP.search(judgment)
    if not match:
        return -1
    return ast.literal_eval(match.group(1))


# ------------------------------------------------------------------ pairwise verdicts

_LABEL = {"A": "A", "B": "B", "C": "tie", "TIE": "tie"}
_STRICT = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_SIDE = r"(?:assistant|response|answer|model|output)?\s*"
_LENIENT: list[tuple[str, re.Pattern[str], str | None]] = [
    (
        "verdict-line",
        re.compile(
            rf"(?:final\s+)?(?:verdict|decision|winner|choice)\s*(?:is)?\s*[:=\-]?\s*\**\s*"
            rf"\[?\s*{_SIDE}\[?((?-i:A|B|C)|tie)\b",
            re.IGNORECASE,
        ),
        None,
    ),
    ("single-brackets", re.compile(r"(?<!\[)\[\s*(A|B|C)\s*\](?!\])"), None),
    (
        "is-better",
        re.compile(
            rf"\b{_SIDE}((?-i:A|B))\b(?:'s\s+(?:answer|response))?\s+(?:is|was)\s+"
            r"(?:clearly\s+|slightly\s+|much\s+|significantly\s+|overall\s+)?"
            r"(?:better|superior|the\s+better|preferred|more\s+helpful|stronger)",
            re.IGNORECASE,
        ),
        None,
    ),
    (
        "tie-phrase",
        re.compile(
            r"\b(?:it'?s\s+a\s+tie|is\s+a\s+tie|(?:are|is)\s+(?:equally|about\s+equally)\s+"
            r"(?:good|bad|helpful)|neither\s+(?:is|response\s+is)\s+better)",
            re.IGNORECASE,
        ),
        "tie",
    ),
]


def parse_pair_verdict(completion: str, lenient: bool = True) -> PairVerdict:
    """The winner of a pairwise judgment.

    `[[A]]`, `[[B]]`, `[[C]]` (tie) decide when present; two different ones conflict and
    fail. Without them (and with `lenient`), phrases like "Verdict: A", "Assistant B is
    better", "[A]" or "it's a tie" are tried; they must all agree.
    """
    strict = {_LABEL[m.upper()] for m in _STRICT.findall(completion)}
    if len(strict) == 1:
        return PairVerdict(strict.pop(), completion, "double-brackets")
    if len(strict) > 1:
        return PairVerdict(None, completion, f"conflicting verdicts {sorted(strict)}")
    if not lenient:
        return PairVerdict(None, completion, "no [[A]], [[B]] or [[C]] verdict")
    found: dict[str, str] = {}
    for name, pattern, fixed in _LENIENT:
        for match in pattern.finditer(completion):
            label = fixed or _LABEL[match.group(1).upper()]
            found.setdefault(label, name)
    if len(found) == 1:
        label, rule = found.popitem()
        return PairVerdict(label, completion, rule)  # type: ignore[arg-type]
    if found:
        return PairVerdict(None, completion, f"ambiguous: mentions {sorted(found)}")
    return PairVerdict(None, completion, "no verdict found")


# ------------------------------------------------------------------ single ratings


@dataclass(frozen=True)
class Rating:
    score: float | None
    raw: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.score is not None


def parse_rating(completion: str, low: float = 1, high: float = 10) -> Rating:
    """A `[[x]]` (else `[x]`) rating, like FastChat, but failing on out-of-range values and
    on several different double-bracket ratings."""
    doubles = {float(m) for m in _ONE_SCORE.findall(completion)}
    if len(doubles) > 1:
        return Rating(None, completion, f"conflicting ratings {sorted(doubles)}")
    score = fastchat_rating(completion)
    if score == -1:
        return Rating(None, completion, "no [[rating]] found")
    if not low <= score <= high:
        return Rating(None, completion, f"rating {score} outside {low}..{high}")
    return Rating(float(score), completion, "ok")


# ------------------------------------------------------------------ 7-point strength

_STRENGTH_BRACKETS = re.compile(r"\[\[\s*([+\-−]?\d+)\s*\]\]")
_STRENGTH_LINE = re.compile(r"(?:preference|strength|score)\s*[:=]\s*\**\s*([+\-−]?\d+)\b", re.I)
_JUSTIFICATION = re.compile(r"justification\s*[:=]\s*(.+?)(?=\n\s*\w+\s*:|\[\[|\Z)", re.I | re.S)
_STRENGTH_WORDS = [
    (re.compile(r"\bA\s+is\s+much\s+better\b", re.I), -3),
    (re.compile(r"\bA\s+is\s+slightly\s+better\b", re.I), -1),
    (re.compile(r"\bA\s+is\s+better\b", re.I), -2),
    (re.compile(r"\bB\s+is\s+much\s+better\b", re.I), 3),
    (re.compile(r"\bB\s+is\s+slightly\s+better\b", re.I), 1),
    (re.compile(r"\bB\s+is\s+better\b", re.I), 2),
    (re.compile(r"\b(?:about\s+the\s+same|equally\s+good)\b", re.I), 0),
]


@dataclass(frozen=True)
class Strength:
    strength: int | None
    """-3 (A much better) .. 3 (B much better), HelpSteer2-Preference's scale."""
    justification: str
    raw: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.strength is not None


def _strength_from_json(completion: str) -> tuple[int | None, str] | None:
    obj = extract_json_object(completion)
    if obj is None:
        return None
    value = obj.get("preference", obj.get("strength"))
    if value is None:
        return None
    justification = str(obj.get("justification", "")).strip()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return (None, justification)
    return (int(value), justification)


def parse_strength(completion: str) -> Strength:
    """A 7-point preference: JSON `{"preference": n, "justification": ...}`, `[[n]]`,
    `Preference: n`, or the phrases "A is much better" ... "B is much better"."""
    from_json = _strength_from_json(completion)
    if from_json is not None:
        value, justification = from_json
        rule = "json"
    else:
        justification_match = _JUSTIFICATION.search(completion)
        justification = justification_match.group(1).strip() if justification_match else ""
        value, rule = _strength_from_text(completion)
        if value is None and rule.startswith("ambiguous"):
            return Strength(None, justification, completion, rule)
        if not justification:
            justification = _text_outside_verdict(completion)
    if value is None:
        return Strength(None, justification, completion, "no preference strength found")
    if not STRENGTH_MIN <= value <= STRENGTH_MAX:
        reason = f"strength {value} outside {STRENGTH_MIN}..{STRENGTH_MAX}"
        return Strength(None, justification, completion, reason)
    return Strength(value, justification, completion, rule)


def _strength_from_text(completion: str) -> tuple[int | None, str]:
    for rule, pattern in (("double-brackets", _STRENGTH_BRACKETS), ("line", _STRENGTH_LINE)):
        values = {int(v.replace("−", "-")) for v in pattern.findall(completion)}
        if len(values) > 1:
            return None, f"ambiguous: strengths {sorted(values)}"
        if values:
            return values.pop(), rule
    worded = {value for pattern, value in _STRENGTH_WORDS if pattern.search(completion)}
    if len(worded) > 1:
        return None, f"ambiguous: strengths {sorted(worded)}"
    if worded:
        return worded.pop(), "phrase"
    return None, "none"


def _text_outside_verdict(completion: str) -> str:
    text = _STRENGTH_BRACKETS.sub("", completion)
    return _STRENGTH_LINE.sub("", text).strip()


# ------------------------------------------------------------------ HelpSteer2 attributes


@dataclass(frozen=True)
class AttributeRatings:
    values: dict[str, int] | None
    raw: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.values is not None


_FENCED = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.S | re.I)


def extract_json_object(text: str) -> dict | None:
    """The first JSON object in `text`: inside a code fence, the whole text, or the first
    balanced `{...}` that parses."""
    candidates = [m.group(1) for m in _FENCED.finditer(text)] + [text]
    for candidate in candidates:
        try:
            obj = json.loads(candidate.strip())
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return obj
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_attribute_ratings(completion: str) -> AttributeRatings:
    """The five HelpSteer2 attributes as integers 0-4 from a JSON object in the completion.

    Integral floats (3.0) and digit strings ("3") are accepted; anything else fails with the
    attribute named.
    """
    obj = extract_json_object(completion)
    if obj is None:
        return AttributeRatings(None, completion, "no JSON object found")
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    values: dict[str, int] = {}
    for name in ATTRIBUTES:
        if name not in lowered:
            return AttributeRatings(None, completion, f"missing attribute {name!r}")
        value = _as_int(lowered[name])
        if value is None or not LIKERT_MIN <= value <= LIKERT_MAX:
            reason = f"{name}: expected an integer {LIKERT_MIN}-{LIKERT_MAX}, got {lowered[name]!r}"
            return AttributeRatings(None, completion, reason)
        values[name] = value
    return AttributeRatings(values, completion, "ok")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


# ------------------------------------------------------------------ verdict-token probabilities

_TOKEN_DECORATION = " \t\n\"'*[]()<>:.,"


@dataclass(frozen=True)
class ChoiceProbabilities:
    probs: dict[str, float] | None
    """Per choice, renormalised over the choices; None when no choice was among the
    candidate tokens of any generated position."""
    position: int | None
    """The generated position the probabilities were read at."""
    reason: str

    @property
    def ok(self) -> bool:
        return self.probs is not None


def _choice_of(token: str, choices: tuple[str, ...]) -> str | None:
    text = token.strip(_TOKEN_DECORATION)
    for choice in choices:
        if text.upper() == choice.upper():
            return choice
    return None


def choice_probabilities(
    positions: list[list[tuple[str, float]]], choices: tuple[str, ...]
) -> ChoiceProbabilities:
    """P(choice) at the first generated position whose top candidates include a choice.

    `positions` holds, per generated token, its (token, logprob) candidates. Tokens match a
    choice after stripping spaces, quotes, brackets and markdown (" A", "[[A", "**B**"),
    case-insensitively; the mass of several spellings of one choice adds up.
    """
    for index, candidates in enumerate(positions):
        mass = dict.fromkeys(choices, 0.0)
        for token, logprob in candidates:
            choice = _choice_of(token, choices)
            if choice is not None:
                mass[choice] += math.exp(logprob)
        total = sum(mass.values())
        if total > 0:
            probs = {c: m / total for c, m in mass.items()}
            return ChoiceProbabilities(probs, index, f"choice mass {total:.3f} at token {index}")
    return ChoiceProbabilities(None, None, f"none of {', '.join(choices)} among the top tokens")


def expected_rating(probs: dict[str, float]) -> float:
    """The probability-weighted mean of numeric choices ("0".."4" -> a score in 0..4)."""
    return sum(float(choice) * p for choice, p in probs.items())
