r"""A scripted GenRM for tests: the fake OpenAI server answers GenRM prompts in the Nemotron
GenRM format, scoring each shown response by what it contains."""

from __future__ import annotations

import re

_SHOWN = re.compile(r"\[The Begin of Response (\d)\]\n(.*?)\n\[The End of Response \1\]", re.S)


def genrm_shown(body: dict) -> list[str]:
    """The responses of a GenRM prompt, in the order shown; [] for any other prompt."""
    return [text for _, text in _SHOWN.findall(body["messages"][-1]["content"])]


def genrm_answer(scores: list[int], ranking: int | None = None, analyses=None) -> str:
    analyses = analyses or [f"Response {i} analysed." for i in range(1, len(scores) + 1)]
    parts = [
        f"[The Begin of Analysis on Response {i}]\n{text}\n[The End of Analysis on Response {i}]"
        for i, text in enumerate(analyses, start=1)
    ]
    parts.append(
        "[The Begin of Individual Scores]\n\\boxed{"
        + ", ".join(str(s) for s in scores)
        + "}\n[The End of Individual Scores]"
    )
    if ranking is not None:
        box = f"\\boxed{{{ranking}}}"
        parts.append(f"[The Begin of Ranking Score]\n{box}\n[The End of Ranking Score]")
    return "\n\n".join(parts)


def quality(text: str) -> int:
    """5 for a response containing 'good', 1 for 'bad', else 3."""
    return 5 if "good" in text else 1 if "bad" in text else 3


def ranking_for(scores: list[int]) -> int:
    """2 (Response 1 better) or 5 (Response 2 better); 3 for equal scores (a slight lean
    to the first shown, like a position-biased judge)."""
    if scores[0] > scores[1]:
        return 2
    if scores[1] > scores[0]:
        return 5
    return 3


def good_genrm(body: dict) -> list[str] | None:
    """Every one of the `n` samples scores by `quality`; None for non-GenRM prompts."""
    shown = genrm_shown(body)
    if not shown:
        return None
    scores = [quality(text) for text in shown]
    ranking = ranking_for(scores) if len(scores) == 2 else None
    return [genrm_answer(scores, ranking)] * int(body.get("n") or 1)
