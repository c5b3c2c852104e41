"""The pure part of pairwise LLM-as-judge: which order is shown first, and how the verdicts
of both orders combine into one outcome.

A pair is always judged twice, (A, B) and (B, A), to cancel position bias. The order
asked first is drawn from a seeded hash of the item id, so it is reproducible and recorded.
Verdicts are given in the labels *as shown*; `combine` maps them back to the pair's own
A and B.

Policies for two verdicts that disagree:
- "discard" (Nemotron-4 340B report): the pair gets no label.
- "tie" (MT-Bench / FastChat): the pair counts as a tie.
- "probability" (judges that read verdict-token log-probabilities, as AlpacaEval's
  weighted annotators do): the mean over both orders of P(A is better) decides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from judge.parsing import PairVerdict, Strength, Winner

Order = Literal["AB", "BA"]
Outcome = Literal["A", "B", "tie", "inconsistent", "error"]
Policy = Literal["discard", "tie", "probability"]
POLICIES: tuple[str, ...] = ("discard", "tie", "probability")


def first_order(item_id: str, seed: int) -> Order:
    """The order shown first for this item: a seeded coin flip that does not depend on
    which other items are in the run."""
    digest = hashlib.sha256(f"{seed}\x00{item_id}".encode()).digest()
    return "AB" if digest[0] % 2 == 0 else "BA"


def orders(item_id: str, seed: int) -> tuple[Order, Order]:
    """Both orders, the one to ask first first."""
    first = first_order(item_id, seed)
    return (first, "BA" if first == "AB" else "AB")


def shown(order: Order, answer_a: str, answer_b: str) -> tuple[str, str]:
    """The (first, second) answers to put in the prompt for an order."""
    return (answer_a, answer_b) if order == "AB" else (answer_b, answer_a)


def unswap(winner: Winner | None, order: Order) -> Winner | None:
    """A verdict given in shown labels, in the pair's own labels."""
    if order == "AB" or winner in (None, "tie"):
        return winner
    return "B" if winner == "A" else "A"


@dataclass(frozen=True)
class PairOutcome:
    outcome: Outcome
    winner: Winner | None
    """After the policy; None when the pair is discarded or a verdict failed to parse."""
    first_order: Order
    verdict_ab: Winner | None
    verdict_ba: Winner | None
    """The (B, A) verdict already mapped back to the pair's own labels."""
    reason: str


def combine(
    verdict_ab: PairVerdict,
    verdict_ba: PairVerdict,
    policy: Policy = "discard",
    first: Order = "AB",
    prob_a: float | None = None,
) -> PairOutcome:
    """One outcome from the verdict on (A, B) and the verdict on (B, A), both as shown.

    Consistent means the same winner (or tie) in both orders once mapped back; a win in
    one order and a tie in the other is inconsistent, as in FastChat. `prob_a` (the mean
    P(A is better) over both orders) is used by the "probability" policy only; without it
    that policy discards the pair.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    ab = verdict_ab.winner
    ba = unswap(verdict_ba.winner, "BA")
    if ab is None or ba is None:
        failed = verdict_ab if ab is None else verdict_ba
        reason = f"unparsed verdict: {failed.rule}"
        return PairOutcome("error", None, first, ab, ba, reason)
    if ab == ba:
        return PairOutcome(ab, ab, first, ab, ba, "consistent")
    reason = f"(A,B) says {ab}, (B,A) says {ba}; policy {policy}"
    if policy == "probability" and prob_a is not None:
        reason = f"{reason}, mean P(A better) {prob_a:.3f}"
        return PairOutcome("inconsistent", winner_by_probability(prob_a), first, ab, ba, reason)
    winner: Winner | None = "tie" if policy == "tie" else None
    return PairOutcome("inconsistent", winner, first, ab, ba, reason)


def winner_by_probability(prob_a: float | None) -> Winner | None:
    if prob_a is None:
        return None
    return "A" if prob_a > 0.5 else "B" if prob_a < 0.5 else "tie"


@dataclass(frozen=True)
class StrengthOutcome:
    strength: float | None
    """Mean of both orders in the pair's own orientation (negative: A better)."""
    consistent: bool
    first_order: Order
    reason: str


def combine_strengths(
    strength_ab: Strength,
    strength_ba: Strength,
    policy: Policy = "discard",
    first: Order = "AB",
) -> StrengthOutcome:
    """7-point strengths from both orders; the (B, A) one is negated back. They are
    consistent when they do not favour opposite answers."""
    if not strength_ab.ok or not strength_ba.ok:
        failed = strength_ab if not strength_ab.ok else strength_ba
        return StrengthOutcome(None, False, first, f"unparsed strength: {failed.reason}")
    ab, ba = strength_ab.strength, -strength_ba.strength  # type: ignore[operator]
    if ab * ba < 0:
        value = 0.0 if policy == "tie" else None
        reason = f"(A,B) says {ab}, (B,A) says {ba}; policy {policy}"
        return StrengthOutcome(value, False, first, reason)
    return StrengthOutcome((ab + ba) / 2, True, first, "consistent")
