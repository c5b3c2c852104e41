"""Argilla 2.x push/pull for the annotation tasks of `annotation_ui.tasks`.

Three mappings, kept as functions that need no server:

- tasks -> Argilla settings (`build_settings`): a ChatField with the conversation, a
  TextField per response, a 0-4 RatingQuestion per attribute (required for helpfulness,
  left empty when an attribute is not ratable), for preferences a 7-label LabelQuestion
  and a required TextQuestion for the justification (plus optional 0-4 ratings of both
  responses), `TaskDistribution(min_submitted=k)`, metadata and the guidelines;
- dataset rows -> Argilla records (`read_push_items`, `to_record`), with suggestions from
  judge columns (the five attributes, `preference_strength`) under a named agent;
- Argilla responses -> raw annotation rows (`raw_rows`), one per record x annotator, in
  exactly the columns of `annotation_ui.export`, ready for `hs build-dataset`.

Argilla rating questions cannot hold negative values, so the preference strength -3..3 is a
label whose value is the strength as text ("-3".."3") and whose display text is the one in
`tasks.PREFERENCE_CHOICES`.

HelpSteer3 tasks (`annotation_ui.importing` makes their items from HelpSteer3 files or
pipeline outputs; `pull` writes the layouts of `annotation_ui.export`):

- `hs3_preference`: ChatField `messages` (the whole `context`, system turns included),
  TextFields `response1`, `response2`, the 7-label LabelQuestion `score` (-3..3, negative:
  response 1 is better) and a required TextQuestion `reasoning`;
- `feedback`: the pair and required TextQuestions `feedback1`, `feedback2`;
- `edit`: TextFields `original_response` and `feedback` (numbered), a required
  TextQuestion `edited_response` with the original response as its suggestion (agent
  `original-response`), so annotators start from it, and `change_summary`.

Their records carry `domain` and `language` as TermsMetadataProperties that annotators
see and filter by; an edit record also keeps its feedback list, as JSON, in the extra
metadata key `feedback_list` (the TextField shows it numbered), for the pull.

The server-side helpers at the end (connect, push, pull) are thin wrappers over the SDK
and the REST API; the `argilla` package is imported only inside them and `build_settings`
/ `to_record`.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from annotation_ui import export, importing
from annotation_ui.export import PREFERENCE_COLUMNS, RATING_COLUMNS
from annotation_ui.tasks import (
    ATTRIBUTE_SPECS,
    EDIT,
    FEEDBACK,
    HS3_PREFERENCE,
    HS3_TASKS,
    MIN_FEEDBACK,
    MIN_JUSTIFICATION,
    PREFERENCE,
    PREFERENCE_CHOICES,
    RATING,
    SCALE,
    STRENGTHS,
)
from helpsteer.attributes import ATTRIBUTES
from helpsteer.conversation import ConversationError, flat_to_messages, messages_to_flat
from helpsteer.io import LINE, InputError, read_table

if TYPE_CHECKING:
    import argilla as rg

MESSAGES = "messages"
PREFERENCE_QUESTION = "preference"
JUSTIFICATION = "justification"
SIDES = ("r1", "r2")
RESPONSE_FIELDS = {
    RATING: ("response",),
    PREFERENCE: ("response_1", "response_2"),
    HS3_PREFERENCE: ("response1", "response2"),
    FEEDBACK: ("response1", "response2"),
    EDIT: ("original_response", "feedback"),
}
SCORE, REASONING = "score", "reasoning"
FEEDBACK_QUESTIONS = ("feedback1", "feedback2")
EDITED, CHANGE_SUMMARY = "edited_response", "change_summary"
HS3_METADATA = ("domain", "language")
FEEDBACK_LIST = "feedback_list"
"""Extra metadata of an edit record: its feedback as a JSON list of texts."""
ORIGINAL_AGENT = "original-response"
"""The agent of an edit's suggestion (the original response, to edit from)."""
KIND_NAMES = ", ".join(RESPONSE_FIELDS)
MODEL_COLUMNS = ("model", "model_1", "model_2", "chosen_model", "rejected_model")
"""Columns copied into record metadata (hidden from annotators, so names do not bias them)."""
BASE_METADATA = ("item_id", "source")
DEFAULT_AGENT = "model-judge"
MAX_GUIDELINES = 10_000
"""argilla-server's limit on a dataset's guidelines, in characters."""
MAX_UPSERT = 500
"""argilla-server's limit on records per bulk upsert."""
PAGE = 1000
"""argilla-server's limit on records per list request."""
USER_ROLES = ("annotator", "admin")


class ArgillaIOError(ValueError):
    """A user error (bad input, a dataset that is not an annotation task); one-line message."""


class ArgillaUsageError(ArgillaIOError):
    """A usage, config or setup error (`hs` exit status 2): a bad users file, option or
    key, a workspace or dataset that does not exist."""


# --- preference strength <-> label -----------------------------------------------------


def strength_label(strength: int) -> str:
    """The LabelQuestion value for a preference strength (-3..3)."""
    if isinstance(strength, bool) or strength not in STRENGTHS:
        raise ArgillaIOError(f"preference_strength: expected an integer -3..3, got {strength!r}")
    return str(strength)


def label_strength(label: str) -> int:
    """The preference strength of a LabelQuestion value; the inverse of `strength_label`."""
    if label not in preference_labels():
        raise ArgillaIOError(f"preference: unknown label {label!r}; expected one of -3..3")
    return int(label)


def preference_labels() -> dict[str, str]:
    """Label value -> the text annotators see, in scale order."""
    return {str(strength): text for strength, text in PREFERENCE_CHOICES}


# --- tasks -> settings ----------------------------------------------------------------


def side_question(side: str, attribute: str) -> str:
    return f"{side}_{attribute}"


def question_names(kind: str, attribute_ratings: bool = True) -> list[str]:
    """The questions of a task's dataset, in the order annotators see them."""
    if kind == RATING:
        return list(ATTRIBUTES)
    if kind in HS3_TASKS:
        return [q["name"] for q in _hs3_questions(kind)]
    if kind != PREFERENCE:
        raise ArgillaUsageError(f"unknown task kind {kind!r}; expected one of {KIND_NAMES}")
    names = [PREFERENCE_QUESTION, JUSTIFICATION]
    if attribute_ratings:
        names += [side_question(s, a) for s in SIDES for a in ATTRIBUTES]
    return names


def dataset_kind(questions: list[str]) -> str:
    """The task kind of an existing dataset, from its question names."""
    if PREFERENCE_QUESTION in questions:
        return PREFERENCE
    if set(ATTRIBUTES) <= set(questions):
        return RATING
    for kind in HS3_TASKS:
        if set(question_names(kind)) <= set(questions):
            return kind
    raise ArgillaUsageError(
        f"not an annotation-task dataset: it has questions {questions}, expected "
        f"{PREFERENCE_QUESTION!r}, the five attributes, or a HelpSteer3 task's "
        f"({SCORE!r} and {REASONING!r}, {' and '.join(FEEDBACK_QUESTIONS)}, or {EDITED!r})"
    )


def _attribute_description(spec, prefix: str = "") -> str:
    levels = "; ".join(f"{v}: {text}" for v, text in zip(SCALE, spec.levels, strict=True))
    optional = "" if spec.name == "helpfulness" and not prefix else " Leave empty if not ratable."
    return f"{prefix}{spec.description}{optional} Levels - {levels}"


def _rating_questions(side: str | None) -> list[dict]:
    questions = []
    for spec in ATTRIBUTE_SPECS:
        if side is None:
            name, title, prefix = spec.name, spec.title, ""
            required = spec.name == "helpfulness"
        else:
            number = side[1]
            name = side_question(side, spec.name)
            title = f"Response {number}: {spec.title} (optional)"
            prefix = f"Optional rating of response {number}. "
            required = False
        questions.append(
            {
                "type": "rating",
                "name": name,
                "title": title,
                "description": _attribute_description(spec, prefix),
                "values": list(SCALE),
                "required": required,
            }
        )
    return questions


def _preference_questions(attribute_ratings: bool) -> list[dict]:
    questions = [
        {
            "type": "label",
            "name": PREFERENCE_QUESTION,
            "title": "Which response is better, and by how much?",
            "description": "Negative: response 1 is better; positive: response 2 is better.",
            "labels": preference_labels(),
            "required": True,
        },
        {
            "type": "text",
            "name": JUSTIFICATION,
            "title": "Justification",
            "description": f"One or two sentences (at least {MIN_JUSTIFICATION} characters) "
            "naming what made the difference.",
            "required": True,
        },
    ]
    if attribute_ratings:
        for side in SIDES:
            questions += _rating_questions(side)
    return questions


def _text_question(name: str, title: str, description: str) -> dict:
    return {"type": "text", "name": name, "title": title, "description": description,
            "required": True}  # fmt: skip


def _hs3_questions(kind: str) -> list[dict]:
    if kind == HS3_PREFERENCE:
        return [
            {
                "type": "label",
                "name": SCORE,
                "title": "Overall, which response is better, and by how much?",
                "description": "HelpSteer3's overall preference: negative, response 1 is "
                "better; positive, response 2 is better; 0, about the same.",
                "labels": preference_labels(),
                "required": True,
            },
            _text_question(
                REASONING,
                "Reasoning",
                f"One or two sentences (at least {MIN_JUSTIFICATION} characters) on why.",
            ),
        ]
    if kind == FEEDBACK:
        return [
            _text_question(
                name,
                f"Feedback on response {name[-1]}",
                f"At least {MIN_FEEDBACK} characters: what the response does well, and "
                "where it is wrong, incomplete or unhelpful.",
            )
            for name in FEEDBACK_QUESTIONS
        ]
    return [
        _text_question(
            EDITED,
            "Edited response",
            "The original response (suggested) changed so that it follows the feedback, "
            "and nothing else.",
        ),
        _text_question(
            CHANGE_SUMMARY,
            "Summary of the changes",
            f"At least {MIN_FEEDBACK} characters on what you changed.",
        ),
    ]


def settings_spec(
    kind: str,
    guidelines: str,
    min_submitted: int,
    metadata: tuple[str, ...] = BASE_METADATA,
    attribute_ratings: bool = True,
) -> dict:
    """A task's dataset settings as plain data (see the module docstring); `build_settings`
    turns it into SDK objects."""
    if kind not in RESPONSE_FIELDS:
        raise ArgillaUsageError(f"unknown task kind {kind!r}; expected one of {KIND_NAMES}")
    if min_submitted < 1:
        raise ArgillaUsageError(f"k: expected at least 1 annotator per record, got {min_submitted}")
    if len(guidelines) > MAX_GUIDELINES:
        raise ArgillaUsageError(
            f"guidelines: {len(guidelines)} characters; Argilla accepts at most {MAX_GUIDELINES}"
        )
    fields = [{"type": "chat", "name": MESSAGES, "title": "Conversation"}]
    fields += [
        {"type": "text", "name": name, "title": name.replace("_", " ").capitalize()}
        for name in RESPONSE_FIELDS[kind]
    ]
    if kind == RATING:
        questions = _rating_questions(None)
    elif kind in HS3_TASKS:
        questions = _hs3_questions(kind)
        metadata = tuple(dict.fromkeys((*metadata, *HS3_METADATA)))
    else:
        questions = _preference_questions(attribute_ratings)
    return {
        "guidelines": guidelines,
        "fields": fields,
        "questions": questions,
        "metadata": [
            {"name": name, "visible_for_annotators": name not in MODEL_COLUMNS} for name in metadata
        ],
        "min_submitted": min_submitted,
    }


def build_settings(spec: dict, client: rg.Argilla) -> rg.Settings:
    """SDK settings from `settings_spec`."""
    import argilla as rg

    fields = []
    for f in spec["fields"]:
        common = {"name": f["name"], "title": f["title"], "use_markdown": True}
        if f["type"] == "chat":
            fields.append(rg.ChatField(_client=client, **common))
        else:
            fields.append(rg.TextField(client=client, **common))
    questions = [_question(rg, q, client) for q in spec["questions"]]
    metadata = [
        rg.TermsMetadataProperty(
            name=m["name"], visible_for_annotators=m["visible_for_annotators"], client=client
        )
        for m in spec["metadata"]
    ]
    return rg.Settings(
        guidelines=spec["guidelines"],
        fields=fields,
        questions=questions,
        metadata=metadata,
        distribution=rg.TaskDistribution(min_submitted=spec["min_submitted"]),
        # a re-push may bring a model column the dataset was created without
        allow_extra_metadata=True,
    )


def _question(rg, q: dict, client):
    common = {
        "name": q["name"],
        "title": q["title"],
        "description": q["description"],
        "required": q["required"],
        "client": client,
    }
    if q["type"] == "rating":
        return rg.RatingQuestion(values=q["values"], **common)
    if q["type"] == "label":
        return rg.LabelQuestion(labels=q["labels"], **common)
    return rg.TextQuestion(use_markdown=False, **common)


# --- dataset rows -> items -> records -------------------------------------------------


@dataclass
class PushItem:
    key: str
    kind: str
    prompt: str
    """HelpSteer2 flat form."""
    responses: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    suggestions: dict[str, int | str] = field(default_factory=dict)
    context: list[dict] | None = None
    """HelpSteer3 tasks: the conversation as messages (system turns kept)."""
    feedback: list[str] | None = None
    """Edit task: the feedback the edit follows."""


@dataclass
class PushInput:
    kind: str
    items: list[PushItem] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    metadata: tuple[str, ...] = BASE_METADATA
    suggested: int = 0
    """Items with at least one suggestion."""


def _judge_score(value: Any, low: int, high: int, name: str) -> int | None:
    """A judge column value as an integer on the question's scale (rounded half away)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a judge score {low}..{high}, got {value!r}") from None
    if isinstance(value, bool) or math.isnan(number):
        raise ValueError(f"{name}: expected a judge score {low}..{high}, got {value!r}")
    rounded = int(math.copysign(math.floor(abs(number) + 0.5), number))
    if not low <= rounded <= high:
        raise ValueError(f"{name}: judge score {value!r} is outside {low}..{high}")
    return rounded


def _nth(row: dict, name: str, index: int, count: int) -> Any:
    """The row's value for one of `count` items made from it (a list holds one per item)."""
    value = row.get(name)
    if isinstance(value, list | tuple):
        if len(value) != count:
            raise ValueError(f"{name}: {len(value)} values for {count} responses")
        return value[index]
    return value if count == 1 else None


def _suggestions(row: dict, kind: str, index: int, count: int) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    if kind == RATING:
        for attribute in ATTRIBUTES:
            score = _judge_score(_nth(row, attribute, index, count), 0, 4, attribute)
            if score is not None:
                out[attribute] = score
        return out
    strength = _judge_score(_nth(row, "preference_strength", index, count), -3, 3, "strength")
    if strength is not None:
        out[PREFERENCE_QUESTION] = strength_label(strength)
    return out


def _metadata(row: dict, key: str, source: str, present: tuple[str, ...], index: int, count: int):
    values = {"item_id": key, "source": str(row.get("source") or source)}
    for name in present:
        value = _nth(row, name, index, count)
        if value is not None and str(value).strip():
            values[name] = str(value)
    return values


def read_push_items(source: str, kind: str = importing.AUTO, suggestions: bool = True) -> PushInput:
    """Items to push from a dataset file (the formats of `annotation_ui.importing`), with
    metadata and judge suggestions. Raises InputError when the file has no usable columns;
    unusable rows go to `rejected` with their line and reason."""
    if kind in HS3_TASKS or (kind == importing.AUTO and _hs3_layout(source)):
        return _read_hs3_push_items(source, kind)
    read = read_table(source)
    frame = read.frame
    kind = importing.detect_kind(frame.columns, kind)
    if kind not in (RATING, PREFERENCE):
        choices = ", ".join(importing.KIND_CHOICES)
        raise InputError(f"--kind: expected one of {choices}, got {kind!r}")
    importing._check_columns(source, frame.columns, kind)
    present = tuple(c for c in MODEL_COLUMNS if c in frame.columns)
    result = PushInput(kind=kind, metadata=BASE_METADATA + present)
    name = Path(source).name
    for row in read.unreadable.iter_rows(named=True):
        result.rejected.append({"source": source, "line": row["line"], "reason": row["reason"]})
    for row in frame.iter_rows(named=True):
        try:
            items = _row_items(row, kind, name, present, suggestions)
        except ValueError as exc:
            result.rejected.append({"source": source, "line": row.get(LINE), "reason": str(exc)})
            continue
        result.items.extend(items)
        result.suggested += sum(1 for item in items if item.suggestions)
    return result


def _hs3_layout(source: str) -> bool:
    """Whether the file is in one of nvidia/HelpSteer3's layouts (by its columns)."""
    return bool(importing.HS3_MARKERS & set(read_table(source).frame.columns))


def _read_hs3_push_items(source: str, kind: str) -> PushInput:
    """HelpSteer3 task items, made by the web app's reader (same ids, same checks)."""
    result = importing.read_items(source, kind)
    kinds = sorted(result.kind_counts)
    if len(kinds) > 1:
        raise InputError(f"{source}: makes items of several tasks ({', '.join(kinds)})")
    task = kinds[0] if kinds else (HS3_PREFERENCE if kind == importing.AUTO else kind)
    data = PushInput(kind=task, rejected=result.rejected, metadata=BASE_METADATA + HS3_METADATA)
    name = Path(source).name
    for item in result.items:
        if task == EDIT:
            texts = (item["response"], _numbered(item["feedback"]))
        else:
            texts = (item["response_1"], item["response_2"])
        metadata = {"item_id": item["item_key"], "source": name}
        metadata |= {m: item[m] for m in HS3_METADATA if item.get(m)}
        suggestions: dict[str, int | str] = {}
        if task == EDIT:
            metadata[FEEDBACK_LIST] = json.dumps(item["feedback"], ensure_ascii=False)
            suggestions[EDITED] = item["response"]
        data.suggested += bool(suggestions)
        data.items.append(
            PushItem(
                item["item_key"],
                task,
                item["prompt"],
                texts,
                metadata,
                suggestions,
                context=item["context"],
                feedback=item.get("feedback"),
            )  # fmt: skip
        )
    return data


def _numbered(feedback: list[str]) -> str:
    return "\n".join(f"{i}. {text}" for i, text in enumerate(feedback, start=1))


def _row_items(row, kind, source, present, with_suggestions) -> list[PushItem]:
    # The web app's reader decides what items a row makes; reusing it keeps ids identical.
    made = importing._items_of_row(row, kind)
    items = []
    for index, item in enumerate(made):
        texts = tuple(item[f] for f in RESPONSE_FIELDS[kind])
        suggestions = _suggestions(row, kind, index, len(made)) if with_suggestions else {}
        items.append(
            PushItem(
                key=item["item_key"],
                kind=kind,
                prompt=item["prompt"],
                responses=texts,
                metadata=_metadata(row, item["item_key"], source, present, index, len(made)),
                suggestions=suggestions,
            )
        )
    return items


def record_fields(item: PushItem) -> dict[str, Any]:
    messages = item.context if item.context is not None else flat_to_messages(item.prompt)
    fields: dict[str, Any] = {MESSAGES: messages}
    for name, text in zip(RESPONSE_FIELDS[item.kind], item.responses, strict=True):
        fields[name] = text
    return fields


def record_spec(item: PushItem, agent: str = DEFAULT_AGENT) -> dict:
    """An item's Argilla record as plain data; its id is the item key, so a re-push
    updates the record instead of adding a copy."""
    return {
        "id": item.key,
        "fields": record_fields(item),
        "metadata": dict(item.metadata),
        "suggestions": [
            {
                "question_name": name,
                "value": value,
                "agent": ORIGINAL_AGENT if name == EDITED else agent,
            }
            for name, value in item.suggestions.items()
        ],  # fmt: skip
    }


def to_record(spec: dict) -> rg.Record:
    """An SDK record from `record_spec`."""
    import argilla as rg

    suggestions = [rg.Suggestion(**s) for s in spec["suggestions"]]
    return rg.Record(
        id=spec["id"], fields=spec["fields"], metadata=spec["metadata"], suggestions=suggestions
    )


# --- Argilla responses -> raw annotation rows -----------------------------------------


@dataclass
class PullResult:
    ratings: list[dict] = field(default_factory=list)
    preferences: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    kind: str = RATING
    hs3_preferences: list[dict] = field(default_factory=list)
    feedback: list[dict] = field(default_factory=list)
    """One row per record x annotator (`export.FEEDBACK_ANSWER_SCHEMA`)."""
    edits: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"records": 0, "submitted": 0, "draft": 0, "discarded": 0}
    )


def _timestamp(value: str | None) -> str | None:
    """The server's timestamp as ISO 8601 UTC with milliseconds (as the web app writes it)."""
    if not value:
        return None
    stamp = datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat(timespec="milliseconds")


def _value(values: dict, name: str) -> Any:
    entry = values.get(name)
    return entry.get("value") if isinstance(entry, dict) else None


def _likert(values: dict, name: str) -> int | None:
    value = _value(values, name)
    if value is None:
        return None
    if isinstance(value, bool) or value not in SCALE:
        raise ArgillaIOError(f"{name}: expected a rating 0-4, got {value!r}")
    return int(value)


def _prompt(record: dict) -> str:
    messages = (record.get("fields") or {}).get(MESSAGES)
    if not isinstance(messages, list):
        raise ArgillaIOError(f"field {MESSAGES!r}: expected a list of messages")
    try:
        return messages_to_flat([{"role": m["role"], "content": m["content"]} for m in messages])
    except (ConversationError, KeyError, TypeError) as exc:
        raise ArgillaIOError(f"field {MESSAGES!r}: {exc}") from None


def raw_rows(kind: str, records: list[dict], usernames: dict[str, str]) -> PullResult:
    """Submitted responses as raw annotation rows, one per record x annotator.

    `records` have the shape of argilla-server's `GET /api/v1/datasets/{id}/records
    ?include=responses` items; `usernames` maps user ids to the annotator ids written
    (an unknown user keeps its id). Drafts and discarded responses are counted, not
    exported; a submitted response that cannot be used goes to `rejected` with the reason.
    """
    result = PullResult(kind=kind)
    for record in records:
        result.counts["records"] += 1
        for response in record.get("responses") or []:
            status = response.get("status")
            if status != "submitted":
                key = status if status in ("draft", "discarded") else "draft"
                result.counts[key] += 1
                continue
            result.counts["submitted"] += 1
            try:
                _add_rows(result, kind, record, response, usernames)
            except ArgillaIOError as exc:
                result.rejected.append(
                    {
                        "source": "argilla",
                        "record": _item_id(record),
                        "annotator_id": _annotator(response, usernames),
                        "reason": str(exc),
                    }
                )
    return result


def _item_id(record: dict) -> str:
    given = record.get("external_id") or (record.get("metadata") or {}).get("item_id")
    return str(given or record.get("id"))


def _annotator(response: dict, usernames: dict[str, str]) -> str:
    user = str(response.get("user_id"))
    return usernames.get(user, user)


def _add_rows(result: PullResult, kind, record, response, usernames) -> None:
    values = response.get("values") or {}
    fields = record.get("fields") or {}
    prompt = None if kind in HS3_TASKS else _prompt(record)
    common = {
        "annotator_id": _annotator(response, usernames),
        "created_at": _timestamp(response.get("updated_at") or response.get("inserted_at")),
    }
    if kind in HS3_TASKS:
        _add_hs3_row(result, kind, record, values, common)
        return
    if kind == RATING:
        row = {"item_id": _item_id(record), "prompt": prompt, "response": fields.get("response")}
        result.ratings.append(row | common | {a: _likert(values, a) for a in ATTRIBUTES})
        return
    label = _value(values, PREFERENCE_QUESTION)
    if label is None:
        raise ArgillaIOError(f"{PREFERENCE_QUESTION}: no label chosen in a submitted response")
    strength = label_strength(str(label))
    ratings = [_side_row(values, side, prompt, fields, common) for side in SIDES]
    result.preferences.append(
        {
            "pair_id": _item_id(record),
            "prompt": prompt,
            "response_1": fields.get("response_1"),
            "response_2": fields.get("response_2"),
            "preference_strength": strength,
            "justification": (_value(values, JUSTIFICATION) or "").strip(),
        }
        | common
    )
    result.ratings.extend(row for row in ratings if row is not None)


def _context(record: dict) -> list[dict]:
    messages = (record.get("fields") or {}).get(MESSAGES)
    if not isinstance(messages, list) or not messages:
        raise ArgillaIOError(f"field {MESSAGES!r}: expected a list of messages")
    try:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    except (KeyError, TypeError):
        raise ArgillaIOError(f"field {MESSAGES!r}: a message has no role or content") from None


def _written(values: dict, name: str) -> str:
    text = _value(values, name)
    if not isinstance(text, str) or not text.strip():
        raise ArgillaIOError(f"{name}: no text in a submitted response")
    return text.strip()


def _add_hs3_row(result: PullResult, kind: str, record: dict, values: dict, common: dict):
    fields = record.get("fields") or {}
    metadata = record.get("metadata") or {}
    base = {m: metadata.get(m) for m in HS3_METADATA} | {"context": _context(record)}
    if kind == EDIT:
        try:
            feedback = json.loads(metadata.get(FEEDBACK_LIST) or "null")
        except json.JSONDecodeError:
            feedback = None
        if not isinstance(feedback, list) or not all(isinstance(f, str) for f in feedback):
            raise ArgillaIOError(f"metadata {FEEDBACK_LIST!r}: expected a JSON list of texts")
        result.edits.append(
            {"item_id": _item_id(record)} | base
            | {"original_response": fields.get("original_response"), "feedback": feedback,
               EDITED: _written(values, EDITED), CHANGE_SUMMARY: _written(values, CHANGE_SUMMARY)}
            | common
        )  # fmt: skip
        return
    pair = {"pair_id": _item_id(record)} | base
    pair |= {"response1": fields.get("response1"), "response2": fields.get("response2")}
    if kind == FEEDBACK:
        texts = {name: _written(values, name) for name in FEEDBACK_QUESTIONS}
        result.feedback.append(pair | {"annotator_id": common["annotator_id"]} | texts)
        return
    label = _value(values, SCORE)
    if label is None:
        raise ArgillaIOError(f"{SCORE}: no label chosen in a submitted response")
    score = label_strength(str(label))
    result.hs3_preferences.append(
        pair | common | {SCORE: score, REASONING: _written(values, REASONING)}
    )


def _side_row(values: dict, side: str, prompt: str, fields: dict, common: dict) -> dict | None:
    """A rating row for one response of a pair when the annotator rated it (keyed like the
    web app's, so it aggregates with ratings of the same response)."""
    scores = {a: _likert(values, side_question(side, a)) for a in ATTRIBUTES}
    if all(v is None for v in scores.values()):
        return None
    response = fields.get(f"response_{side[1]}")
    item = {"item_id": importing.rating_key(prompt, response or ""), "prompt": prompt}
    return item | {"response": response} | common | scores


_INTEGER = {*ATTRIBUTES, "preference_strength"}
RATING_SCHEMA = {c: pl.Int64 if c in _INTEGER else pl.String for c in RATING_COLUMNS}
PREFERENCE_SCHEMA = {c: pl.Int64 if c in _INTEGER else pl.String for c in PREFERENCE_COLUMNS}


def frames(results: list[PullResult]) -> dict[str, pl.DataFrame]:
    """{'ratings': ..., 'preferences': ...} in exactly the raw-annotation columns."""
    ratings = [row for r in results for row in r.ratings]
    preferences = [row for r in results for row in r.preferences]
    out = {
        "ratings": pl.DataFrame(ratings, schema=RATING_SCHEMA, orient="row")
        .select(RATING_COLUMNS)
        .sort("item_id", "annotator_id"),
        "preferences": pl.DataFrame(preferences, schema=PREFERENCE_SCHEMA, orient="row")
        .select(PREFERENCE_COLUMNS)
        .sort("pair_id", "annotator_id"),
    }
    kinds = {r.kind for r in results}
    if HS3_PREFERENCE in kinds:
        rows = [row for r in results for row in r.hs3_preferences]
        out["hs3_preferences"] = _frame(rows, export.HS3_PREFERENCE_SCHEMA, "pair_id")
    if FEEDBACK in kinds:
        rows = [row for r in results for row in r.feedback]
        answers = _frame(rows, export.FEEDBACK_ANSWER_SCHEMA, "pair_id")
        out["hs3_feedback"] = export.group_feedback(answers)
    if EDIT in kinds:
        out["hs3_edit"] = _frame([row for r in results for row in r.edits],
                                 export.HS3_EDIT_SCHEMA, "item_id")  # fmt: skip
    return out


def _frame(rows: list[dict], schema: dict, key: str) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return frame.sort(key, "annotator_id", maintain_order=True)


# --- users file -----------------------------------------------------------------------


def read_users_csv(path: Path) -> list[dict[str, str]]:
    """`username,password[,role][,first_name]` rows; role is annotator (default) or admin."""
    if not path.is_file():
        raise ArgillaUsageError(f"{path}: no such users file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"username", "password"} - set(reader.fieldnames or [])
        if missing:
            raise ArgillaUsageError(
                f"{path}: needs columns username,password (optional role, first_name); "
                f"missing {', '.join(sorted(missing))}"
            )
        return [_user_row(path, line, row) for line, row in enumerate(reader, start=2)]


def _user_row(path: Path, line: int, row: dict) -> dict[str, str]:
    username = (row.get("username") or "").strip()
    password = row.get("password") or ""
    role = (row.get("role") or "annotator").strip() or "annotator"
    where = f"{path} line {line}"
    if not username:
        raise ArgillaUsageError(f"{where}: username is empty")
    if len(password) < 8:
        raise ArgillaUsageError(f"{where}: password of {username!r} needs at least 8 characters")
    if role not in USER_ROLES:
        raise ArgillaUsageError(f"{where}: role {role!r}; expected annotator or admin")
    first = (row.get("first_name") or "").strip() or username
    return {"username": username, "password": password, "role": role, "first_name": first}


# --- server side ----------------------------------------------------------------------


def connect(api_url: str, api_key: str) -> rg.Argilla:
    """An SDK client; raises ArgillaIOError when the server cannot be reached or the key is
    refused."""
    import argilla as rg

    if not api_url or not api_key:
        raise ArgillaUsageError(
            "give --api-url and --api-key (or ARGILLA_API_URL / ARGILLA_API_KEY)"
        )
    try:
        client = rg.Argilla(api_url=api_url, api_key=api_key, retries=1)
        client.me  # noqa: B018 - the first request checks the URL and the key
    except Exception as exc:  # the SDK raises httpx, credential and API errors alike
        refused = "401" in str(exc) or "Unauthorized" in type(exc).__name__
        error = ArgillaUsageError if refused else ArgillaIOError
        raise error(f"cannot use Argilla at {api_url}: {_short(exc)}") from None
    return client


PULL_ROLES = ("owner", "admin")


def check_pull_key(client) -> str:
    """The key's role, if it may pull. argilla-server 2.8 answers an annotator's request
    for a dataset's records with responses with 403 (tried: docs/argilla.md), so an
    annotator's key is refused here, in one line, before anything is read."""
    me = client.me
    role = str(getattr(me.role, "value", me.role))
    if role not in PULL_ROLES:
        raise ArgillaUsageError(
            f"pull needs an owner or admin API key; this key is {role} {me.username!r}, "
            "and Argilla shows an annotator only their own work"
        )
    return role


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def ensure_workspace(client: rg.Argilla, name: str, create: bool) -> rg.Workspace:
    import argilla as rg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the SDK warns when a name is not found
        workspace = client.workspaces(name)
    if workspace is not None:
        return workspace
    if not create:
        raise ArgillaUsageError(f"workspace {name!r} does not exist on the server")
    return rg.Workspace(name=name, client=client).create()


def create_users(client: rg.Argilla, workspace: rg.Workspace, rows: list[dict]) -> dict:
    """Create the users that do not exist yet and add every one to the workspace.
    Existing users keep their password."""
    import argilla as rg

    members = {u.username for u in workspace.users}
    counts = {"created": 0, "existing": 0, "added_to_workspace": 0}
    for row in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            user = client.users(row["username"])
        if user is None:
            user = rg.User(
                username=row["username"],
                password=row["password"],
                role=row["role"],
                first_name=row["first_name"],
                client=client,
            ).create()
            counts["created"] += 1
        else:
            counts["existing"] += 1
        if row["username"] not in members:
            user.add_to_workspace(workspace)
            counts["added_to_workspace"] += 1
    return counts


def _find_dataset(client, name: str, workspace):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return client.datasets(name=name, workspace=workspace)


def ensure_dataset(client, name: str, workspace, settings: rg.Settings, kind: str):
    """The named dataset, created with `settings` when missing. An existing one must be a
    dataset of the same task (its records are then updated by id)."""
    import argilla as rg

    dataset = _find_dataset(client, name, workspace)
    if dataset is None:
        return rg.Dataset(name=name, workspace=workspace, settings=settings, client=client).create()
    questions = [q.name for q in dataset.settings.questions]
    found = dataset_kind(questions)
    if found != kind:
        raise ArgillaIOError(
            f"dataset {name!r} in workspace {workspace.name!r} is a {found} task; "
            f"this input is {kind}. Choose another --name"
        )
    return dataset


def upsert(client, dataset, records: list, progress=None) -> int:
    """Bulk-log records in batches of MAX_UPSERT (the SDK's `records.log` without its own
    progress bar); returns how many were sent."""
    sent = 0
    for start in range(0, len(records), MAX_UPSERT):
        batch = records[start : start + MAX_UPSERT]
        models = []
        for record in batch:
            record.dataset = dataset
            models.append(record.api_model())
        client.api.records.bulk_upsert(dataset_id=dataset.id, records=models)
        sent += len(batch)
        if progress is not None:
            progress(len(batch))
    return sent


def usernames(client, workspace_name: str | None = None) -> dict[str, str]:
    """User id -> username for every user the key may list: the owner sees all users; an
    admin may not list them (403), but may list the members of the workspace."""
    try:
        return {str(user.id): user.username for user in client.users}
    except Exception:  # an admin key may not list users; a workspace's members it may
        names = {str(client.me.id): client.me.username}
    if workspace_name is None:
        return names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        workspace = client.workspaces(workspace_name)
    if workspace is None:
        return names
    reply = client.api.http_client.get(f"/api/v1/workspaces/{workspace.id}/users")
    if reply.status_code == 200:
        names |= {str(u["id"]): u["username"] for u in reply.json().get("items") or []}
    return names


def iter_records(client, dataset) -> Iterator[dict]:
    """Every record of a dataset with its responses, from the database (not the search
    index), page by page."""
    http = client.api.http_client
    offset = 0
    while True:
        reply = http.get(
            f"/api/v1/datasets/{dataset.id}/records",
            params={"include": "responses", "offset": offset, "limit": PAGE},
        )
        if reply.status_code == 403:
            raise ArgillaUsageError(
                f"listing records of {dataset.name!r}: HTTP 403; pull needs an owner or "
                "admin API key of the dataset's workspace"
            )
        if reply.status_code != 200:
            raise ArgillaIOError(
                f"listing records of {dataset.name!r}: HTTP {reply.status_code} {reply.text[:200]}"
            )
        body = reply.json()
        items = body.get("items") or []
        yield from items
        offset += len(items)
        if not items or offset >= body.get("total", 0):
            return


@dataclass
class PushPlan:
    name: str
    workspace: str
    k: int
    guidelines: str
    agent: str = DEFAULT_AGENT
    attribute_ratings: bool = True
    users: list[dict] = field(default_factory=list)


def push(client, data: PushInput, plan: PushPlan, progress=None) -> dict:
    """Create (or reuse) the dataset and bulk-log the items; returns a summary."""
    spec = settings_spec(data.kind, plan.guidelines, plan.k, data.metadata, plan.attribute_ratings)
    records = [to_record(record_spec(item, plan.agent)) for item in data.items]
    workspace = ensure_workspace(client, plan.workspace, create=True)
    users = create_users(client, workspace, plan.users) if plan.users else {}
    dataset = ensure_dataset(client, plan.name, workspace, build_settings(spec, client), data.kind)
    sent = upsert(client, dataset, records, progress) if records else 0
    return {
        "dataset": plan.name,
        "workspace": plan.workspace,
        "dataset_id": str(dataset.id),
        "kind": data.kind,
        "records": sent,
        "with_suggestions": data.suggested,
        "min_submitted": dataset.settings.distribution.min_submitted,
        "users": users,
    }


def pull(client, name: str, workspace_name: str, names: dict[str, str]) -> PullResult:
    """Submitted responses of one dataset as raw annotation rows."""
    workspace = ensure_workspace(client, workspace_name, create=False)
    dataset = _find_dataset(client, name, workspace)
    if dataset is None:
        raise ArgillaUsageError(f"no dataset {name!r} in workspace {workspace_name!r}")
    kind = dataset_kind([q.name for q in dataset.settings.questions])
    return raw_rows(kind, list(iter_records(client, dataset)), names)


def server_error(exc: Exception) -> str | None:
    """A one-line message for an error raised by the SDK or its HTTP client, else None."""
    module = type(exc).__module__ or ""
    if module.startswith(("argilla", "httpx", "httpcore")):
        return _short(exc)
    return None


AGENT_PATTERN = r"^[a-zA-Z0-9-_:\.\/\s]*[a-zA-Z0-9][a-zA-Z0-9-_:\.\/\s]*$"
"""argilla-server's rule for a suggestion's agent name (at most 200 characters)."""


def check_agent(agent: str) -> str:
    import re

    if len(agent) > 200 or not re.match(AGENT_PATTERN, agent):
        raise ArgillaUsageError(
            f"--agent: {agent!r} is not a valid Argilla agent name (letters, digits, "
            "spaces and -_:./, at most 200 characters)"
        )
    return agent
