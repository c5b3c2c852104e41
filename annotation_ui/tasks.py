"""The annotation tasks, defined once for every front end (the web app and Argilla).

A task says what an annotator sees (the conversation and one or two responses), which
questions are asked, what each answer means, and how a submitted form becomes an answer.

HelpSteer2 tasks: `rating` (0-4 on the five attributes) and `preference` (-3..3 with a
justification). HelpSteer3 tasks (nvidia/HelpSteer3, `helpsteer/helpsteer3.py`):

- `hs3_preference`: the 7-point `overall_preference` scale (negative: response 1 is
  better) with the annotator's written `reasoning`, one `individual_preference` item;
- `feedback`: written feedback on each response of a pair (the `feedback` config);
- `edit`: the original response edited to follow given feedback, with a summary of the
  changes (the `edit` config).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from helpsteer.attributes import (
    ATTRIBUTES,
    DESCRIPTIONS,
    LIKERT_MAX,
    LIKERT_MIN,
    STRENGTH_MAX,
    STRENGTH_MIN,
)

RATING = "rating"
PREFERENCE = "preference"
HS3_PREFERENCE = "hs3_preference"
FEEDBACK = "feedback"
EDIT = "edit"
KINDS = (RATING, PREFERENCE, HS3_PREFERENCE, FEEDBACK, EDIT)
HS3_TASKS = (HS3_PREFERENCE, FEEDBACK, EDIT)
"""Tasks whose items carry a HelpSteer3 `context` (messages) and `domain` / `language`."""
PAIR_TASKS = (PREFERENCE, HS3_PREFERENCE, FEEDBACK)
"""Tasks that show two responses."""

LEVELS: dict[str, tuple[str, str, str, str, str]] = {
    "helpfulness": (
        "Does not help at all: off topic, refuses without reason, or unusable.",
        "Barely helps: touches the request but misses most of what was asked.",
        "Partly helps: covers the core of the request with clear gaps.",
        "Mostly helps: does what was asked with only minor shortcomings.",
        "Fully helps: does exactly what was asked, nothing important missing.",
    ),
    "correctness": (
        "Wrong throughout, or invents most of its facts.",
        "Several errors or omissions that change the answer.",
        "A mix of correct and incorrect or missing facts.",
        "Correct apart from a small slip or a missing detail.",
        "Every claim is right and every needed fact is present.",
    ),
    "coherence": (
        "Unreadable: contradicts itself or makes no sense.",
        "Hard to follow: jumps around, confusing wording.",
        "Understandable with effort; some unclear passages.",
        "Clear, with small awkward spots.",
        "Perfectly clear and logically ordered.",
    ),
    "complexity": (
        "Anyone who speaks the language could write it.",
        "Needs a basic school education.",
        "Needs some study or experience in the topic.",
        "Needs deep knowledge of the field.",
        "Needs expert, specialist knowledge.",
    ),
    "verbosity": (
        "Far too short: a word or two where more was needed.",
        "Terse: leaves out detail the prompt calls for.",
        "About the right amount of detail for the prompt.",
        "Wordy: more detail than the prompt asks for.",
        "Far too long: padded, repetitive or rambling.",
    ),
}
"""A short description of every level (0-4) of every attribute, in the workbench's words."""

PREFERENCE_CHOICES: tuple[tuple[int, str], ...] = (
    (-3, "Response 1 is much better"),
    (-2, "Response 1 is better"),
    (-1, "Response 1 is slightly better"),
    (0, "About the same"),
    (1, "Response 2 is slightly better"),
    (2, "Response 2 is better"),
    (3, "Response 2 is much better"),
)
"""The 7-point preference scale; negative means response 1 is better (HelpSteer2)."""

MIN_JUSTIFICATION = 10
"""Characters a preference justification needs at least, so it is a sentence, not a shrug."""

MIN_FEEDBACK = 10
"""Characters a written feedback (or a change summary) needs at least."""

MAX_TEXT = {
    "justification": 5_000,
    "reasoning": 5_000,
    "feedback1": 10_000,
    "feedback2": 10_000,
    "change_summary": 5_000,
    "edited_response": 100_000,
}
"""Characters a written answer may have at most; the request body limit
(`limits.BodyLimit`) bounds the form as a whole before this is checked."""

NOT_RATABLE = "na"
"""The form value for an attribute the annotator cannot rate (stored as null)."""


@dataclass(frozen=True)
class Attribute:
    name: str
    description: str
    levels: tuple[str, ...]

    @property
    def title(self) -> str:
        return self.name.capitalize()


ATTRIBUTE_SPECS: tuple[Attribute, ...] = tuple(
    Attribute(a, DESCRIPTIONS[a], LEVELS[a]) for a in ATTRIBUTES
)
SCALE = tuple(range(LIKERT_MIN, LIKERT_MAX + 1))
STRENGTHS = tuple(range(STRENGTH_MIN, STRENGTH_MAX + 1))


class AnswerError(ValueError):
    """A submitted form that is not a complete, valid answer; the message names the field."""


def default_guidelines() -> str:
    """The Markdown guidelines shipped with the package."""
    return resources.files("annotation_ui").joinpath("guidelines.md").read_text(encoding="utf-8")


def _likert(form: dict[str, str], field: str, required: bool) -> int | None:
    raw = (form.get(field) or "").strip()
    if raw == NOT_RATABLE:
        return None
    if raw == "":
        if required:
            raise AnswerError(f"{field}: choose a level 0-4 (or 'not ratable')")
        return None
    if raw not in {str(v) for v in SCALE}:
        raise AnswerError(f"{field}: expected an integer 0-4 or 'not ratable', got {raw!r}")
    return int(raw)


def parse_rating(form: dict[str, str], *, partial: bool = False) -> dict:
    """A rating answer from form fields named after the attributes.

    `partial=True` (drafts) accepts missing fields; a submission needs all five.
    """
    answer = {a: _likert(form, a, required=not partial) for a in ATTRIBUTES}
    if partial:
        answer["_set"] = [a for a in ATTRIBUTES if (form.get(a) or "").strip()]
    return answer


def _strength(form: dict[str, str], required: bool) -> int | None:
    raw = (form.get("preference_strength") or "").strip()
    if raw == "":
        if required:
            raise AnswerError("preference_strength: choose one of the 7 options (-3..3)")
        return None
    if raw not in {str(v) for v in STRENGTHS}:
        raise AnswerError(f"preference_strength: expected an integer -3..3, got {raw!r}")
    return int(raw)


def parse_preference(form: dict[str, str], *, partial: bool = False) -> dict:
    """A preference answer: strength, justification, and optional ratings of both responses
    (fields `r1_<attribute>` and `r2_<attribute>`)."""
    justification = _written(form, "justification", MIN_JUSTIFICATION, "saying why", partial)
    answer = {
        "preference_strength": _strength(form, required=not partial),
        "justification": justification,
    }
    for side in ("r1", "r2"):
        answer[side] = {a: _likert(form, f"{side}_{a}", required=False) for a in ATTRIBUTES}
        answer[f"{side}_set"] = [a for a in ATTRIBUTES if (form.get(f"{side}_{a}") or "").strip()]
    return answer


def _written(form: dict[str, str], field: str, minimum: int, what: str, partial: bool) -> str:
    """A written answer, stripped; at least `minimum` characters unless `partial`."""
    text = (form.get(field) or "").strip()
    if len(text) > MAX_TEXT[field]:
        raise AnswerError(f"{field}: {len(text)} characters; at most {MAX_TEXT[field]}")
    if not partial and len(text) < minimum:
        raise AnswerError(f"{field}: write at least {minimum} characters {what}")
    return text


def parse_hs3_preference(form: dict[str, str], *, partial: bool = False) -> dict:
    """A HelpSteer3 preference: `score` -3..3 (negative: response 1 is better) and the
    annotator's `reasoning` (HelpSteer3's 1-2 sentences of justification)."""
    raw = (form.get("score") or "").strip()
    if raw == "" and not partial:
        raise AnswerError("score: choose one of the 7 options (-3..3)")
    if raw and raw not in {str(v) for v in STRENGTHS}:
        raise AnswerError(f"score: expected an integer -3..3, got {raw!r}")
    reasoning = _written(form, "reasoning", MIN_JUSTIFICATION, "saying why", partial)
    return {"score": int(raw) if raw else None, "reasoning": reasoning}


def parse_feedback(form: dict[str, str], *, partial: bool = False) -> dict:
    """Written feedback on both responses of a pair (`feedback1`, `feedback2`)."""
    what = "on what the response does well and where it falls short"
    return {
        side: _written(form, side, MIN_FEEDBACK, what, partial)
        for side in ("feedback1", "feedback2")
    }


def parse_edit(form: dict[str, str], *, partial: bool = False, original: str | None = None) -> dict:
    """An edit: the `edited_response` and a `change_summary`. A submitted edit must
    change the original response (compared without surrounding white space)."""
    edited = form.get("edited_response") or ""
    if len(edited) > MAX_TEXT["edited_response"]:
        limit = MAX_TEXT["edited_response"]
        raise AnswerError(f"edited_response: {len(edited)} characters; at most {limit}")
    if not partial:
        if not edited.strip():
            raise AnswerError("edited_response: write the edited response")
        if original is not None and edited.strip() == original.strip():
            raise AnswerError(
                "edited_response: identical to the original; edit it to follow the feedback"
            )
    summary = _written(form, "change_summary", MIN_FEEDBACK, "on what you changed", partial)
    return {"edited_response": edited.replace("\r\n", "\n"), "change_summary": summary}


def parse_answer(
    kind: str, form: dict[str, str], *, partial: bool = False, original: str | None = None
) -> dict:
    """The answer of a submitted (or, with `partial`, a draft) form; `original` is the
    response an edit task starts from."""
    if kind == RATING:
        return parse_rating(form, partial=partial)
    if kind == PREFERENCE:
        return parse_preference(form, partial=partial)
    if kind == HS3_PREFERENCE:
        return parse_hs3_preference(form, partial=partial)
    if kind == FEEDBACK:
        return parse_feedback(form, partial=partial)
    if kind == EDIT:
        return parse_edit(form, partial=partial, original=original)
    raise AnswerError(f"unknown task kind {kind!r}")


def form_values(kind: str, answer: dict | None) -> dict[str, str]:
    """The inverse of `parse_answer`: field -> form value, to pre-fill a saved answer."""
    if not answer:
        return {}
    if kind == RATING:
        return _likert_fields(answer, "", answer.get("_set", ATTRIBUTES))
    if kind in (FEEDBACK, EDIT):
        return {k: str(v) for k, v in answer.items() if isinstance(v, str)}
    if kind == HS3_PREFERENCE:
        values = {"reasoning": answer.get("reasoning") or ""}
        if answer.get("score") is not None:
            values["score"] = str(answer["score"])
        return values
    values = {"justification": answer.get("justification") or ""}
    if answer.get("preference_strength") is not None:
        values["preference_strength"] = str(answer["preference_strength"])
    for side in ("r1", "r2"):
        values |= _likert_fields(answer.get(side) or {}, f"{side}_", answer.get(f"{side}_set", []))
    return values


def _likert_fields(values: dict, prefix: str, chosen) -> dict[str, str]:
    out = {}
    for a in ATTRIBUTES:
        if a in chosen:
            out[prefix + a] = NOT_RATABLE if values.get(a) is None else str(values[a])
    return out
