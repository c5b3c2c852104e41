"""Turn a dataset file into annotation items.

Accepted inputs (JSON Lines, JSON, Parquet or CSV, via `helpsteer.io.read_table`):
- HelpSteer2 ratings form: `prompt`, `response` (other columns are ignored) -> rating items;
- HelpSteer2 preference form: `prompt`, `response_1`, `response_2` -> preference items;
- synth outputs: `prompt` (flat string or a list of {role, content} messages) or
  `messages` (ending with the assistant's turn), with `response` or `responses` (a list).
  With `responses`, kind `rating` makes one item per response and kind `preference` one
  item per pair of responses.

HelpSteer3 tasks (`hs3_preference`, `feedback`, `edit`) are made from:
- the nvidia/HelpSteer3 layouts `helpsteer.helpsteer3` reads, checked by its validator
  (so a bad row is rejected with its line and the same reason `hs build-dataset` gives):
  `preference` (aggregated, or raw one row per annotator, as `hs annotate export` writes
  it) and `feedback` make pair items (`--kind auto`: hs3_preference for preference files,
  edit for feedback files, one edit item per response that has feedback); `edit` and
  `edit_quality` make edit items (the original response and its feedback);
- the inputs above (HelpSteer2 pairs, synth outputs): the prompt becomes `context`
  messages; `domain` and `language` columns are kept; an edit item needs `response` and
  `feedback` (a text or a list of texts).

An item's id is the file's `item_id` / `pair_id` / `id` column when there is one, otherwise
a hash of its text, so importing the same file twice adds nothing. Feedback and edit items
made from a given id get `feedback:` / `edit:` in front, so the same pair can be both a
preference and a feedback item.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import combinations

from annotation_ui.tasks import EDIT, FEEDBACK, HS3_PREFERENCE, HS3_TASKS, PREFERENCE, RATING
from helpsteer.conversation import ConversationError, flat_to_messages, messages_to_flat
from helpsteer.io import LINE, InputError, read_table
from helpsteer.records import ColumnError, Kind
from helpsteer.records import detect_kind as detect_layout

AUTO = "auto"
KIND_CHOICES = (AUTO, RATING, PREFERENCE, HS3_PREFERENCE, FEEDBACK, EDIT)
HS3_MARKERS = frozenset(
    {"response1", "response2", "feedback1", "feedback2", "original_response",
     "edited_response", "good_edited_response", "overall_preference", "principle"}
)  # fmt: skip
"""Columns only the nvidia/HelpSteer3 layouts have (`context` alone is not one: synth
outputs may have a `context` document)."""
HS3_TASKS_OF_LAYOUT = {
    Kind.HS3_PREFERENCE: (HS3_PREFERENCE, FEEDBACK),
    Kind.HS3_RAW_PREFERENCES: (HS3_PREFERENCE, FEEDBACK),
    Kind.HS3_FEEDBACK: (EDIT, FEEDBACK, HS3_PREFERENCE),
    Kind.HS3_EDIT: (EDIT,),
    Kind.HS3_EDIT_QUALITY: (EDIT,),
}
"""HelpSteer3 layout -> the tasks its rows can become; the first is `--kind auto`'s."""


@dataclass
class ImportResult:
    items: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    """Rows that could not be used: {source, line, reason}."""
    kind_counts: dict[str, int] = field(default_factory=dict)


def rating_key(prompt: str, response: str) -> str:
    return "r-" + _digest(prompt, response)


def pair_key(prompt: str, response_1: str, response_2: str) -> str:
    return "p-" + _digest(prompt, response_1, response_2)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]


def detect_kind(columns: list[str], requested: str) -> str:
    if requested != AUTO:
        return requested
    if "response_1" in columns and "response_2" in columns:
        return PREFERENCE
    return RATING


def read_items(source: str, kind: str = AUTO) -> ImportResult:
    """Items from a dataset file; raises InputError when the file has no usable columns."""
    if kind not in KIND_CHOICES:
        raise InputError(f"--kind: expected one of {', '.join(KIND_CHOICES)}, got {kind!r}")
    read = read_table(source)
    frame = read.frame
    columns = frame.columns
    if HS3_MARKERS & set(columns):
        return _read_hs3(source, read, kind)
    kind = detect_kind(columns, kind)
    _check_columns(source, columns, kind)
    result = ImportResult()
    for row in read.unreadable.iter_rows(named=True):
        result.rejected.append({"source": source, "line": row["line"], "reason": row["reason"]})
    for row in frame.iter_rows(named=True):
        line = row.get(LINE)
        try:
            result.items.extend(_items_of_row(row, kind))
        except ValueError as exc:
            result.rejected.append({"source": source, "line": line, "reason": str(exc)})
    for item in result.items:
        result.kind_counts[item["kind"]] = result.kind_counts.get(item["kind"], 0) + 1
    return result


def _check_columns(source: str, columns: list[str], kind: str) -> None:
    if "prompt" not in columns and "messages" not in columns:
        raise InputError(f"{source}: needs a `prompt` (or `messages`) column; has {columns}")
    if kind == EDIT:
        ok = "feedback" in columns and ("response" in columns or "messages" in columns)
        wanted = "`response` (or `messages` ending with it) and `feedback`"
    elif kind in (PREFERENCE, HS3_PREFERENCE, FEEDBACK):
        ok = {"response_1", "response_2"} <= set(columns) or "responses" in columns
        wanted = "`response_1` and `response_2` (or a `responses` list)"
    else:
        ok = bool({"response", "responses"} & set(columns)) or "messages" in columns
        wanted = "`response` (or a `responses` list)"
    if not ok:
        raise InputError(f"{source}: {kind} items need {wanted}; the file has {columns}")


def _prompt_of(row: dict) -> tuple[str, str | None]:
    """(flat prompt, response taken from the end of `messages` if that is where it is)."""
    prompt = row.get("prompt")
    if prompt is None and row.get("messages") is not None:
        messages = list(row["messages"])
        if messages and messages[-1].get("role") == "assistant":
            return _flat(messages[:-1]), messages[-1].get("content")
        return _flat(messages), None
    if isinstance(prompt, list):
        return _flat(prompt), None
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: expected non-empty text or a list of messages")
    return prompt, None


def _flat(messages: list) -> str:
    try:
        return messages_to_flat(
            [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
        )
    except (ConversationError, AttributeError) as exc:
        raise ValueError(f"prompt: {exc}") from None


def _text(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected non-empty text, got {value!r:.60}")
    return value


def _responses(row: dict, from_messages: str | None) -> list[str]:
    if row.get("response") is not None:
        return [_text(row["response"], "response")]
    if row.get("responses") is not None:
        return [_text(r, f"responses[{i}]") for i, r in enumerate(row["responses"])]
    if from_messages is not None:
        return [_text(from_messages, "messages[-1].content")]
    raise ValueError("response: missing")


def _given_id(row: dict, kind: str) -> str | None:
    for name in ("pair_id" if kind == PREFERENCE else "item_id", "id"):
        if row.get(name) is not None and str(row[name]).strip():
            return str(row[name])
    return None


def _pairs_of(row: dict, last: str | None, task: str) -> list[tuple[str, str]]:
    """The row's response pairs: `response_1`/`response_2`, or every pair of its responses."""
    if row.get("response_1") is not None or row.get("response_2") is not None:
        return [(_text(row.get("response_1"), "response_1"),
                 _text(row.get("response_2"), "response_2"))]  # fmt: skip
    pairs = list(combinations(_responses(row, last), 2))
    if not pairs:
        raise ValueError(f"responses: {task} needs at least two responses")
    return pairs


def _items_of_row(row: dict, kind: str) -> list[dict]:
    if kind in HS3_TASKS:
        return _hs3_items_of_row(row, kind)
    prompt, last = _prompt_of(row)
    given = _given_id(row, kind)
    if kind == PREFERENCE:
        pairs = _pairs_of(row, last, "a preference")
        return [
            {
                "item_key": _suffixed(given, i, len(pairs)) or pair_key(prompt, a, b),
                "kind": PREFERENCE,
                "prompt": prompt,
                "response_1": a,
                "response_2": b,
            }
            for i, (a, b) in enumerate(pairs)
        ]
    responses = _responses(row, last)
    return [
        {
            "item_key": _suffixed(given, i, len(responses)) or rating_key(prompt, r),
            "kind": RATING,
            "prompt": prompt,
            "response": r,
        }
        for i, r in enumerate(responses)
    ]


def _suffixed(given: str | None, index: int, total: int) -> str | None:
    if given is None:
        return None
    return given if total == 1 else f"{given}:{index}"


# --- HelpSteer3 tasks ---------------------------------------------------------------------


def task_key(kind: str, given: str | None, context: list[dict], *texts: str) -> str:
    """An HS3 item's key: the given id (prefixed for feedback and edit items, so that
    one pair can be a preference and a feedback item), else a hash of its text."""
    if given is not None:
        return given if kind == HS3_PREFERENCE else f"{kind}:{given}"
    prefix = {HS3_PREFERENCE: "h3p-", FEEDBACK: "fb-", EDIT: "ed-"}[kind]
    return prefix + _digest(json.dumps(context, ensure_ascii=False), *texts)


def hs3_item(kind: str, key: str | None, context: list[dict], meta: dict, **texts) -> dict:
    """An HS3 item dict for `store.add_items` (`texts`: response1/response2, or
    original_response and feedback for an edit)."""
    context = [{"role": m["role"], "content": m["content"]} for m in context]
    item = {"kind": kind, "prompt": _display_prompt(context), "context": context}
    item |= {"domain": meta.get("domain"), "language": meta.get("language")}
    if kind == EDIT:
        feedback = list(texts["feedback"])
        item |= {"response": texts["original_response"], "feedback": feedback}
        parts = (texts["original_response"], *feedback)
    else:
        item |= {"response_1": texts["response1"], "response_2": texts["response2"]}
        parts = (texts["response1"], texts["response2"])
    item["item_key"] = key or task_key(kind, None, context, *parts)
    return item


def _display_prompt(context: list[dict]) -> str:
    """`items.prompt` of an HS3 item: HelpSteer2's flat form when the conversation has
    one, else the messages as JSON (the `context` column is what is used)."""
    try:
        return messages_to_flat(context)
    except ConversationError:
        return json.dumps(context, ensure_ascii=False)


def _meta(row: dict) -> dict:
    out = {}
    for name in ("domain", "language"):
        value = row.get(name)
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        out[name] = str(value).strip() if value is not None and str(value).strip() else None
    return out


def _context_of(row: dict) -> tuple[list[dict], str | None]:
    """(`context` messages, the response at the end of `messages` if that is where it is)
    of a non-HelpSteer3 row."""
    prompt = row.get("prompt")
    if prompt is None and row.get("messages") is not None:
        messages = _messages(row["messages"], "messages")
        if messages and messages[-1]["role"] == "assistant":
            return messages[:-1], messages[-1]["content"]
        return messages, None
    if isinstance(prompt, list):
        return _messages(prompt, "prompt"), None
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: expected non-empty text or a list of messages")
    return flat_to_messages(prompt), None


def _messages(value: list, name: str) -> list[dict]:
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"{name}[{i}]: expected a {{role, content}} message")
        out.append({"role": m["role"], "content": _text(m.get("content"), f"{name}[{i}]")})
    if not out:
        raise ValueError(f"{name}: no messages")
    return out


def _feedback_list(value, name: str = "feedback") -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{name}: expected a text or a non-empty list of texts")
    return [_text(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _hs3_items_of_row(row: dict, kind: str) -> list[dict]:
    """HS3 task items from a row of the non-HelpSteer3 inputs (HelpSteer2 pairs, synth)."""
    context, last = _context_of(row)
    meta = _meta(row)
    given = _given_id(row, PREFERENCE if kind != EDIT else RATING)
    if kind == EDIT:
        response = _responses(row, last)
        if len(response) != 1:
            raise ValueError("responses: an edit item edits one `response`")
        feedback = _feedback_list(row.get("feedback"))
        key = task_key(EDIT, given, context, response[0], *feedback) if given else None
        return [hs3_item(EDIT, key, context, meta, original_response=response[0],
                         feedback=feedback)]  # fmt: skip
    pairs = _pairs_of(row, last, "a pair task")
    items = []
    for i, (a, b) in enumerate(pairs):
        given_i = _suffixed(given, i, len(pairs))
        key = task_key(kind, given_i, context, a, b) if given_i else None
        items.append(hs3_item(kind, key, context, meta, response1=a, response2=b))
    return items


def _read_hs3(source: str, read, kind: str) -> ImportResult:
    """Items from a file in one of nvidia/HelpSteer3's layouts, checked by
    `helpsteer.helpsteer3.validate`."""
    from helpsteer import helpsteer3

    try:
        layout = detect_layout(read.frame.columns, "preferences")
    except ColumnError as exc:
        raise InputError(f"{source}: {exc}") from None
    allowed = HS3_TASKS_OF_LAYOUT.get(layout)
    if allowed is None:
        raise InputError(
            f"{source}: a HelpSteer3 {layout.value.removeprefix('hs3_')} file has no "
            "annotation task; tasks are made from preference, feedback, edit or "
            "edit_quality files"
        )
    task = allowed[0] if kind == AUTO else kind
    if task not in allowed:
        raise InputError(
            f"--kind {task}: a HelpSteer3 {layout.value.removeprefix('hs3_')} file makes "
            f"{', '.join(allowed[:-1]) + ' or ' if len(allowed) > 1 else ''}{allowed[-1]} items"
        )
    checked = helpsteer3.validate(read.frame, layout)
    result = ImportResult()
    for row in read.unreadable.iter_rows(named=True):
        result.rejected.append({"source": source, "line": row["line"], "reason": row["reason"]})
    for row in checked.rejected.iter_rows(named=True):
        result.rejected.append({"source": source, "line": row["line"], "reason": row["reason"]})
    seen: set[str] = set()
    for row in checked.good.iter_rows(named=True):
        for item in _hs3_layout_items(row, layout, task):
            if item["item_key"] not in seen:  # raw preferences: one row per annotator
                seen.add(item["item_key"])
                result.items.append(item)
    for item in result.items:
        result.kind_counts[item["kind"]] = result.kind_counts.get(item["kind"], 0) + 1
    return result


def _hs3_layout_items(row: dict, layout: Kind, task: str) -> list[dict]:
    context, meta = row["context"], {"domain": row.get("domain"), "language": row.get("language")}
    given = row.get("pair_id") if layout == Kind.HS3_RAW_PREFERENCES else None
    if task == EDIT and layout == Kind.HS3_FEEDBACK:
        return [
            hs3_item(EDIT, None, context, meta, original_response=row[f"response{side}"],
                     feedback=row[f"feedback{side}"])
            for side in ("1", "2")
            if row[f"feedback{side}"]
        ]  # fmt: skip
    if task == EDIT:
        return [hs3_item(EDIT, None, context, meta, original_response=row["original_response"],
                         feedback=row["feedback"])]  # fmt: skip
    key = task_key(task, given, context) if given else None
    return [hs3_item(task, key, context, meta, response1=row["response1"],
                     response2=row["response2"])]  # fmt: skip
