"""Adapters to lm-evaluation-harness and AlpacaEval that point them at our backends and
store their results beside ours (results.json in the leaderboard's shape).

- `run_lm_eval`: `lm_eval.simple_evaluate` with model `hf`, `vllm`, `local-completions` or
  `local-chat-completions`; the `local` spec starts the embedded llama.cpp server and
  points `local-chat-completions` at it. Tasks may come from an include folder (a YAML
  task over a local JSONL runs fully offline).
- `run_alpaca_eval`: generates outputs for AlpacaEval instructions with any backend and
  calls `alpaca_eval.evaluate` with an annotator config written into the run folder whose
  OpenAI client points at one of our OpenAI-compatible backends. The length-controlled
  win rate is tried first; when it cannot be computed (it fits a model over data that may
  have to be fetched) the plain win rate is used, and the result says which.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eval.common import EvalError, greedy_requests, model_label, parse_model_spec, write_run

LM_EVAL_MODELS = ("hf", "vllm", "local-completions", "local-chat-completions")


@contextlib.contextmanager
def serving(spec: str, cache_dir: Path | None) -> Iterator[tuple[str, str, Any]]:
    """(base URL, model name, client) of an OpenAI-compatible endpoint for a model spec;
    `local` starts the embedded llama.cpp server for the duration."""
    from helpsteer.llm import make_client

    config = parse_model_spec(spec, cache_dir)
    if config.backend == "vllm":
        raise EvalError("an in-process vllm model has no URL; serve it and use openai:MODEL@URL")
    client = make_client(config)
    try:
        yield client.config.base_urls[0], client.config.model, client
    finally:
        client.close()


# ------------------------------------------------------------------ lm-eval


def _lm_eval_model_args(model: str, model_args: str, url: str | None, name: str | None) -> str:
    if url is None:
        return model_args
    endpoint = "chat/completions" if model == "local-chat-completions" else "completions"
    parts = [f"model={name}", f"base_url={url.rstrip('/')}/{endpoint}", "num_concurrent=1",
             "max_retries=3", "tokenizer_backend=None"]  # fmt: skip
    return ",".join(parts + ([model_args] if model_args else []))


def run_lm_eval(
    out: Path,
    tasks: list[str],
    model: str = "local-chat-completions",
    model_args: str = "",
    serve: str | None = None,
    include_path: Path | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int | str = 1,
    apply_chat_template: bool | None = None,
) -> dict[str, Any]:
    """Run lm-eval; `serve` (a model spec) starts/names the endpoint for the `local-*`
    models, otherwise `model_args` is passed through unchanged."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise EvalError("lm-eval is not installed (pip install lm-eval)") from None
    if model not in LM_EVAL_MODELS:
        raise EvalError(f"lm-eval model {model!r}: expected one of {', '.join(LM_EVAL_MODELS)}")
    if serve and not model.startswith("local-"):
        raise EvalError("--serve works with the local-completions / local-chat-completions models")
    started = time.perf_counter()
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    chat = model == "local-chat-completions" if apply_chat_template is None else apply_chat_template
    with contextlib.ExitStack() as stack:
        url = name = None
        if serve:
            url, name, _ = stack.enter_context(serving(serve, out / "llm_cache"))
        args = _lm_eval_model_args(model, model_args, url, name)
        try:
            raw = lm_eval.simple_evaluate(
                model=model,
                model_args=args,
                tasks=tasks,
                task_manager=manager,
                limit=limit,
                num_fewshot=num_fewshot,
                batch_size=batch_size,
                apply_chat_template=chat,
                log_samples=True,
            )
        except (KeyError, ValueError) as exc:
            raise EvalError(f"lm-eval could not run tasks {tasks}: {exc}") from None
    if raw is None:
        raise EvalError("lm-eval returned no results")
    metrics = {
        task: {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
        for task, values in raw.get("results", {}).items()
    }
    from eval.common import write_jsonl

    samples = [
        {"task": task, "doc_id": s.get("doc_id"), "target": s.get("target"),
         "response": s.get("filtered_resps"), **{k: s.get(k) for k in ("exact_match", "acc")}}
        for task, rows in (raw.get("samples") or {}).items()
        for s in rows
    ]  # fmt: skip
    write_jsonl(out / "samples.jsonl", json.loads(json.dumps(samples, default=str)))
    shown = model_label(parse_model_spec(serve)) if serve else (model_args or model)
    results = {
        "model": shown,
        "metrics": metrics,
        "n_samples": {
            t: v.get("effective", v.get("original"))
            for t, v in (raw.get("n-samples") or {}).items()
        },  # fmt: skip
    }
    config = {"lm_eval_model": model, "model_args": args, "tasks": tasks, "limit": limit,
              "num_fewshot": num_fewshot, "serve": serve,
              "include_path": str(include_path) if include_path else None}  # fmt: skip
    doc = write_run(out, "lm-eval", results, config, started)
    write_metrics_report(out / "report.md", f"lm-eval: {doc['model']}", metrics)
    return doc


# ------------------------------------------------------------------ alpaca-eval


def _ensure_pkg_resources() -> None:
    """alpaca_eval imports `pkg_resources`, which setuptools >= 81 no longer ships; give it
    the two functions it uses, built on `packaging` and `importlib.metadata`."""
    try:
        import pkg_resources  # noqa: F401

        return
    except ImportError:
        pass
    from importlib import metadata

    from packaging.version import parse

    shim = types.ModuleType("pkg_resources")
    shim.parse_version = parse  # type: ignore[attr-defined]
    shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
        version=metadata.version(name)
    )
    sys.modules["pkg_resources"] = shim


def load_instructions(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """AlpacaEval records (`instruction`, and `output`/`generator` for a reference) from a
    .json, .json.gz or .jsonl file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                raw = handle.read()
        else:
            raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            rows = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(rows, list):
        raise EvalError(f"{path}: expected a list of records")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise EvalError(f"{path}: record {i}: needs a string field 'instruction'")
    return rows[:limit] if limit else rows


ANNOTATOR_PROMPT = """<|im_start|>system
You compare two answers to the same instruction and pick the better one.<|im_end|>
<|im_start|>user
Which output follows the instruction better: more helpful, accurate and relevant?
Reply with exactly "Output (a)" or "Output (b)" and nothing else.

### Instruction:
{instruction}

### Output (a):
{output_1}

### Output (b):
{output_2}

### Which is better, Output (a) or Output (b)?<|im_end|>"""


def write_annotator_config(folder: Path, url: str, model: str, max_tokens: int = 16) -> Path:
    """An alpaca_eval annotator config whose OpenAI client talks to `url`."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.txt").write_text(ANNOTATOR_PROMPT, encoding="utf-8")
    clients = folder / "client_configs.yaml"
    clients.write_text(yaml.safe_dump({"default": [{"api_key": "none", "base_url": url}]}))
    config = {
        "hs_annotator": {
            "prompt_template": str(folder / "prompt.txt"),
            "fn_completions": "openai_completions",
            "completions_kwargs": {
                "model_name": model,
                "max_tokens": max_tokens,
                "temperature": 0,
                "requires_chatml": True,
                "client_config_path": str(clients),
                "price_per_token": 0,
                "num_procs": 1,
            },
            "completion_parser_kwargs": {
                "outputs_to_match": {1: r"(?:^|\n) ?Output \(a\)", 2: r"(?:^|\n) ?Output \(b\)"}
            },
            "batch_size": 1,
        }
    }
    path = folder / "configs.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def generate_outputs(
    client: Any, rows: list[dict[str, Any]], generator: str, max_tokens: int, reporter: Any
) -> list[dict[str, Any]]:
    requests = greedy_requests((r["instruction"] for r in rows), max_tokens)
    done = client.complete_batch(requests, reporter=reporter)
    return [
        {"instruction": r["instruction"], "output": c.text if c.ok else "",
         "generator": generator, "dataset": r.get("dataset", "helpsteer")}
        for r, c in zip(rows, done, strict=True)
    ]  # fmt: skip


def run_alpaca_eval(
    reference: Path,
    out: Path,
    model: str = "local",
    annotator: str | None = None,
    limit: int | None = None,
    max_tokens: int = 256,
    reporter: Any = None,
) -> dict[str, Any]:
    _ensure_pkg_resources()
    try:
        import alpaca_eval
    except ImportError:
        raise EvalError("alpaca-eval is not installed (pip install alpaca-eval)") from None
    started = time.perf_counter()
    rows = load_instructions(reference, limit)
    if not all(isinstance(r.get("output"), str) for r in rows):
        raise EvalError(f"{reference}: every record needs the reference 'output'")
    cache = out / "llm_cache"
    model_cfg = parse_model_spec(model, cache)
    model_id = model_label(model_cfg)
    with serving(model, cache) as (url, name, client):
        outputs = generate_outputs(client, rows, model_id, max_tokens, reporter)
        if annotator and annotator != model:
            with serving(annotator, cache) as (judge_url, judge_name, _):
                metrics, metric = _evaluate(alpaca_eval, outputs, rows, out, judge_url, judge_name)
                judge_id = model_label(parse_model_spec(annotator))
        else:
            metrics, metric = _evaluate(alpaca_eval, outputs, rows, out, url, name)
            judge_id = model_id
    from eval.common import write_jsonl

    write_jsonl(out / "model_outputs.jsonl", outputs)
    results = {
        "model": model_id,
        "annotator": judge_id,
        "metric": metric,
        "metrics": {"alpaca_eval": metrics},
    }
    config = {"model": model, "annotator": annotator or model, "reference": str(reference),
              "limit": limit, "max_tokens": max_tokens}  # fmt: skip
    doc = write_run(out, "alpaca-eval", results, config, started)
    title = f"AlpacaEval: {model_id} (annotator {judge_id}, metric {metric})"
    write_metrics_report(out / "report.md", title, results["metrics"])
    return doc


def write_metrics_report(path: Path, title: str, metrics: dict[str, dict[str, float]]) -> None:
    from helpsteer.atomic import write_text

    lines = [f"# {title}", "", "| task | metric | value |", "|---|---|---|"]
    lines += [f"| {t} | {k} | {v:.4f} |" for t, m in metrics.items() for k, v in m.items()]
    write_text(path, "\n".join(lines) + "\n")


def length_controlled_available() -> bool:
    """The length-controlled win rate fits against `df_gamed.csv` from the Hub; without a
    cached copy (offline) it cannot be computed, and trying costs a minute of retries."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache("tatsu-lab/alpaca_eval", "df_gamed.csv", repo_type="dataset")
    return isinstance(found, str)


def _evaluate(alpaca_eval, outputs, references, out: Path, url: str, model: str):
    import pandas as pd

    out = out.resolve()  # alpaca_eval reads a relative config path as one of its own
    config = write_annotator_config(out / "annotator", url, model)
    kwargs = dict(
        model_outputs=pd.DataFrame(outputs),
        reference_outputs=pd.DataFrame(references),
        annotators_config=str(config),
        output_path=str(out / "alpaca_eval"),
        is_return_instead_of_print=True,
        precomputed_leaderboard=None,
        is_cache_leaderboard=False,
        # alpaca_eval's annotation cache breaks on reload under pandas 3 (int column set to
        # 1.5), so annotations are not cached; the model's outputs are, in our LLM cache.
        caching_path=None,
        name=outputs[0]["generator"] if outputs else "model",
    )
    if length_controlled_available():
        metric, fn_metric = "length_controlled_winrate", "get_length_controlled_winrate"
    else:
        metric, fn_metric = "win_rate", "get_winrate"
    board, _ = alpaca_eval.evaluate(fn_metric=fn_metric, sort_by=metric, **kwargs)
    row = board.iloc[0].to_dict()
    metrics = {k: float(v) for k, v in row.items() if isinstance(v, int | float)}
    return metrics, metric
