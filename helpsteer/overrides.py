"""`--set KEY=VALUE` overrides of a TOML config, shared by every `hs` command.

KEY is dotted (`optim.lr`, `aggregate.min_annotators`); VALUE is a TOML literal when it
parses as one (`3`, `true`, `["a", "b"]`), else a plain string.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


class OverrideError(ValueError):
    """An override that cannot be applied; the message names it."""


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def split_item(item: str) -> tuple[list[str], Any]:
    """`a.b=1` -> (["a", "b"], 1)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise OverrideError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-5")
    return key.strip().split("."), parse_value(value)


def set_path(target: dict, path: list[str], value: Any, item: str) -> None:
    """Set `value` at the dotted `path` inside `target`, creating tables on the way."""
    for part in path[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise OverrideError(f"--set {item!r}: {part!r} is not a table")
    target[path[-1]] = value


def apply_overrides(raw: dict, items: list[str]) -> dict:
    for item in items:
        path, value = split_item(item)
        set_path(raw, path, value, item)
    return raw


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The field names of the (nested) model that `loc` points into; [] when unknown."""
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = _model_of(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # `Model | None`
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def validation_lines(exc: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per pydantic error; an unknown key names the closest known one."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = f"  {'.'.join(str(p) for p in loc)}: {err['msg']}"
        if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            line += did_you_mean(loc[-1], _fields_at(model, loc[:-1]))
        lines.append(line)
    return lines
