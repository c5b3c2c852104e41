"""Judge prompts as data: our built-in prompts (`builtin.toml`) and FastChat's
`judge_prompts.jsonl` format, rendered the way FastChat renders them.

FastChat uses the system prompt as written and fills the user prompt with
`prompt_template.format(**fields)`; `JudgePrompt.render` does exactly that and names the
missing fields instead of raising a bare KeyError.
"""

from __future__ import annotations

import json
import string
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from helpsteer.attributes import ATTRIBUTES, DESCRIPTIONS, LIKERT_MAX, LIKERT_MIN
from helpsteer.conversation import Message

FASTCHAT_FIELDS = (
    "name",
    "type",
    "system_prompt",
    "prompt_template",
    "description",
    "category",
    "output_format",
)


class PromptError(ValueError):
    """A prompt file or a rendering request that cannot be used."""


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str
    system_prompt: str
    prompt_template: str
    description: str = ""
    category: str = "general"
    output_format: str = "[[A]]"

    @property
    def fields(self) -> list[str]:
        """The template's replacement fields, in order of first use."""
        names: list[str] = []
        for _, field, _, _ in string.Formatter().parse(self.prompt_template):
            if field is not None and field not in names:
                names.append(field)
        return names

    def render_user(self, **values: object) -> str:
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise PromptError(
                f"prompt {self.name!r} needs {', '.join(missing)} "
                f"(template fields: {', '.join(self.fields)})"
            )
        return self.prompt_template.format(**values)

    def render(self, **values: object) -> list[Message]:
        """System and user messages; the system message is left out when empty."""
        user = self.render_user(**values)
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": user})
        return messages


def helpsteer2_schema() -> dict:
    """JSON schema of a HelpSteer2 attribute rating reply."""
    properties = {
        name: {
            "type": "integer",
            "minimum": LIKERT_MIN,
            "maximum": LIKERT_MAX,
            "description": DESCRIPTIONS[name],
        }
        for name in ATTRIBUTES
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(ATTRIBUTES),
        "additionalProperties": False,
    }


def load_builtin() -> dict[str, JudgePrompt]:
    """Our own prompts, by name."""
    text = files(__name__).joinpath("builtin.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {
        name: _prompt({"name": name, **table}, f"builtin.toml [{name}]")
        for name, table in data.items()
    }


def load_toml(path: str | Path) -> dict[str, JudgePrompt]:
    """Prompts from a TOML file shaped like `builtin.toml` (one table per prompt), by name."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path}: not valid TOML: {exc}") from None
    return {
        name: _prompt({"name": name, **table}, f"{path} [{name}]")
        if isinstance(table, dict)
        else _prompt(table, f"{path} [{name}]")
        for name, table in data.items()
    }


def load_fastchat(path: str | Path) -> dict[str, JudgePrompt]:
    """Prompts from a FastChat `judge_prompts.jsonl` file, by name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror}") from None
    prompts: dict[str, JudgePrompt] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptError(f"{where}: not valid JSON: {exc.msg}") from None
        prompt = _prompt(record, where)
        if prompt.name in prompts:
            raise PromptError(f"{where}: duplicate prompt name {prompt.name!r}")
        prompts[prompt.name] = prompt
    return prompts


def _prompt(record: object, where: str) -> JudgePrompt:
    if not isinstance(record, dict):
        raise PromptError(f"{where}: expected an object with fields {', '.join(FASTCHAT_FIELDS)}")
    for field in ("name", "type", "system_prompt", "prompt_template"):
        if not isinstance(record.get(field), str):
            raise PromptError(f"{where}: field {field!r} must be a string")
    unknown = set(record) - set(FASTCHAT_FIELDS)
    if unknown:
        raise PromptError(f"{where}: unknown fields {sorted(unknown)}")
    prompt = JudgePrompt(**record)
    try:
        prompt.fields  # noqa: B018  (parsing the template validates it)
    except ValueError as exc:
        raise PromptError(f"{where}: bad prompt_template: {exc}") from None
    return prompt
