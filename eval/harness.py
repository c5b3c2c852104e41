"""Adapters to lm-evaluation-harness and AlpacaEval that point them at our backends and
store their results beside ours (results.json in the leaderboard's shape).

- `run_lm_eval`: what `lm-eval run` does, with its flags' semantics (tasks resolved by
  lm-eval's EvaluatorConfig, `key=val` / JSON model and generation args by its own parsers,
  results and samples saved by its EvaluationTracker, so `results_<date>.json` and
  `samples_<task>_<date>.jsonl` are lm-eval's own files). Any registered lm-eval model;
  torch models get CUDA when present and the CPU otherwise; the `local-*` API models can
  be pointed at one of our specs (`local` starts the embedded llama.cpp server).
- `run_alpaca_eval`: generates outputs for AlpacaEval instructions with any backend, writes
  them as alpaca_eval's `model_outputs.json`, and calls `alpaca_eval.evaluate` with an
  annotator config whose OpenAI client points at one of our OpenAI-compatible backends:
  alpaca_eval's own `weighted_alpaca_eval_gpt4_turbo` (verdict-token log-probabilities, the
  AlpacaEval 2 leaderboard's annotator) or a discrete "Output (a)/(b)" verdict. Its
  annotations are scored as `--annotations` scores them (eval.alpaca_results), which adds
  alpaca_eval's length-controlled GLM when df_gamed.csv is given or cached.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
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


class HarnessRunError(RuntimeError):
    """lm-eval or alpaca_eval started and then failed (exit status 1, one line)."""


def _lm_eval_cli_utils():
    """lm-eval's own parsers for `key=value,...` / JSON arguments and comma-split task lists
    (`lm_eval._cli.utils`, what `lm-eval run` uses); None on an lm-eval without them."""
    try:
        from lm_eval._cli import utils
    except ImportError:
        return None
    return utils


def parse_kv_args(values: list[str] | None, flag: str) -> dict[str, Any]:
    """`--model-args` / `--gen-kwargs` as `lm-eval run` reads them: each value is a JSON
    object or `key=val,key2=val2` (values through lm-eval's own literal parser); repeated
    values merge, later keys win."""
    from lm_eval.utils import simple_parse_args_string

    utils = _lm_eval_cli_utils()
    merged: dict[str, Any] = {}
    for value in values or []:
        try:
            if utils is None:
                parsed: Any = simple_parse_args_string(value)
            else:
                parsed = utils.try_parse_json(value)
                if not isinstance(parsed, dict):
                    parsed = utils.key_val_to_dict(value)
        except ValueError as exc:
            raise EvalError(f"{flag} {value!r}: {exc}") from None
        merged.update(parsed)
    return merged


def split_tasks(values: list[str] | None) -> list[str]:
    """Task names from repeated and comma-separated values (`--tasks a,b --tasks c`)."""
    tasks = [t.strip() for v in values or [] for t in v.split(",") if t.strip()]
    if not tasks:
        raise EvalError("give --tasks NAME[,NAME...] (lm-eval task names or YAML files)")
    return tasks


def parse_batch_size(value: str | int) -> int | str:
    """lm-eval's batch size: a positive integer, `auto` or `auto:N`."""
    text = str(value).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text == "auto" or (text.startswith("auto:") and text[5:].isdigit() and int(text[5:]) > 0):
        return text
    raise EvalError(f"--batch-size {value!r}: expected a positive integer, auto or auto:N")


def parse_limit(value: float | None) -> int | float | None:
    """lm-eval's --limit: a count (>= 1) or a fraction of each task (< 1)."""
    if value is None:
        return None
    if not value > 0:
        raise EvalError(f"--limit {value}: expected a count >= 1 or a fraction in (0, 1)")
    return int(value) if value >= 1 and value == int(value) else value


DEFAULT_SEEDS = "0,1234,1234,1234"
"""lm-eval's --seed default: python random, numpy, torch, few-shot sampling."""


def parse_seed(value: str | None) -> list[int | None]:
    """lm-eval's --seed: one integer for all four seeds, or four comma-separated values
    (`None` leaves that one unset), read by lm-eval's own parser."""
    utils = _lm_eval_cli_utils()
    text = DEFAULT_SEEDS if value is None else value
    try:
        if utils is not None:
            return utils._int_or_none_list_arg_type(3, 4, DEFAULT_SEEDS, text)
        items = [None if v.strip().lower() == "none" else int(v) for v in text.split(",")]
    except ValueError as exc:
        raise EvalError(f"--seed {value!r}: {exc}") from None
    if len(items) not in (1, 4):
        raise EvalError(f"--seed {value!r}: expected one integer or four, comma-separated")
    return items * 4 if len(items) == 1 else items


def lm_eval_model_class(model: str) -> type:
    from lm_eval.api.registry import get_model

    try:
        return get_model(model)
    except (KeyError, ValueError):
        import lm_eval.api.registry as registry

        known = sorted(getattr(registry, "MODEL_REGISTRY", {}))
        raise EvalError(
            f"lm-eval model {model!r}: expected one of {', '.join(known or LM_EVAL_MODELS)}"
        ) from None


def pick_device(model_class: type, device: str | None) -> str | None:
    """The device for a torch-backed lm-eval model: as given, else CUDA when present and the
    CPU otherwise (lm-eval's `hf` default is `cuda`, which fails on a CPU-only torch). API
    models get none."""
    from lm_eval.models.api_models import TemplateAPI

    if issubclass(model_class, TemplateAPI):
        return device
    try:
        import torch
    except ImportError:
        return device
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(f"--device {device}: this torch has no CUDA device; use --device cpu")
    return device


def resolve_tasks(
    tasks: list[str], include_path: Path | None, model_args: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """A TaskManager and the tasks resolved as `lm-eval run` resolves them (names, groups,
    YAML files and globs, a folder of YAMLs; the model args are the tasks' metadata)."""
    folder = str(include_path) if include_path else None
    try:
        from lm_eval.config.evaluate_config import EvaluatorConfig
    except ImportError:  # an lm-eval before its `run` sub-command
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=folder, metadata=dict(model_args)), list(tasks)
    config = EvaluatorConfig(tasks=list(tasks), include_path=folder, metadata=dict(model_args))
    try:
        manager = config.process_tasks(dict(model_args))
    except ValueError as exc:
        hint = "" if include_path else " (local task YAMLs: --include-path FOLDER)"
        raise EvalError(f"lm-eval: {exc}{hint}") from None
    return manager, list(config.tasks)


def _served_model_args(model: str, url: str, name: str) -> dict[str, Any]:
    endpoint = "chat/completions" if "chat" in model else "completions"
    return {"model": name, "base_url": f"{url.rstrip('/')}/{endpoint}", "num_concurrent": 1,
            "max_retries": 3, "tokenizer_backend": None}  # fmt: skip


def lm_eval_result_files(tracker: Any, tasks: list[str] | None) -> dict[str, Any]:
    """Where EvaluationTracker wrote results_<date>.json (and samples_<task>_<date>.jsonl),
    following its own naming; missing files mean it could not save (it only logs that)."""
    base = Path(tracker.output_path)
    date = getattr(tracker, "date_id", None)
    if base.suffix == ".json":
        results, folder = base.with_name(f"{base.stem}_{date}.json"), base.parent
    else:
        folder = base / str(tracker.general_config_tracker.model_name_sanitized)
        results = folder / f"results_{date}.json"
    samples = {t: str(folder / f"samples_{t}_{date}.jsonl") for t in tasks or []}
    files = {"results": str(results), "samples": samples}
    missing = [p for p in [files["results"], *files["samples"].values()] if not Path(p).is_file()]
    if date is None or missing:
        raise HarnessRunError(f"lm-eval could not write {', '.join(missing) or base}")
    return files


def run_lm_eval(
    out: Path,
    tasks: list[str],
    model: str = "local-chat-completions",
    model_args: dict[str, Any] | str | None = None,
    serve: str | None = None,
    include_path: Path | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int | str = 1,
    apply_chat_template: bool | str | None = None,
    device: str | None = None,
    gen_kwargs: dict[str, Any] | None = None,
    log_samples: bool = False,
    output_path: Path | None = None,
    max_batch_size: int | None = None,
    seed: list[int | None] | None = None,
    system_instruction: str | None = None,
    predict_only: bool = False,
) -> dict[str, Any]:
    """Run lm-eval as `lm-eval run` does and save its own result layout (EvaluationTracker:
    `results_<date>.json`, with --log-samples `samples_<task>_<date>.jsonl`) under
    `output_path` (default OUT), plus our leaderboard entry in OUT.

    `serve` (a model spec) starts/names the endpoint for the `local-*` models; `model_args`
    given by the user override the ones it sets. `seed`: lm-eval's four seeds (see
    `parse_seed`); `predict_only` skips the metrics and, as in lm-eval, logs the samples."""
    try:
        import lm_eval
        from lm_eval.loggers import EvaluationTracker
    except ImportError:
        raise EvalError("lm-eval is not installed (pip install lm-eval)") from None
    model_class = lm_eval_model_class(model)
    if serve and not model.startswith("local-"):
        raise EvalError("--serve works with the local-completions / local-chat-completions models")
    if isinstance(model_args, str):
        user_args = parse_kv_args([model_args], "--model-args")
    else:
        user_args = dict(model_args or {})
    device = pick_device(model_class, device)
    seed = seed or parse_seed(None)
    started = time.perf_counter()
    if include_path is not None and not include_path.is_dir():
        raise EvalError(f"--include-path {include_path}: no such folder")
    chat = "chat" in model if apply_chat_template is None else apply_chat_template
    target = output_path or out
    tracker = EvaluationTracker(output_path=str(target))
    with contextlib.ExitStack() as stack:
        args = dict(user_args)
        if serve:
            url, name, _ = stack.enter_context(serving(serve, out / "llm_cache"))
            args = {**_served_model_args(model, url, name), **user_args}
        manager, resolved = resolve_tasks(tasks, include_path, args)
        try:
            raw = lm_eval.simple_evaluate(
                model=model,
                model_args=args,
                tasks=resolved,
                task_manager=manager,
                limit=limit,
                num_fewshot=num_fewshot,
                batch_size=batch_size,
                max_batch_size=max_batch_size,
                device=device,
                gen_kwargs=gen_kwargs or None,
                apply_chat_template=chat,
                fewshot_as_multiturn=True if chat else None,
                system_instruction=system_instruction,
                predict_only=predict_only,
                **_seed_arguments(seed),
                log_samples=True,
                evaluation_tracker=tracker,
                metadata=dict(args),
            )
        except (KeyError, ValueError, OSError) as exc:
            raise EvalError(f"lm-eval could not run tasks {', '.join(tasks)}: {exc}") from None
        except Exception as exc:  # a model or task that fails while running
            raise HarnessRunError(f"lm-eval failed: {type(exc).__name__}: {exc}") from None
    if raw is None:
        raise HarnessRunError("lm-eval returned no results")
    samples = raw.pop("samples", None) or {}
    _write_compact_samples(out / "samples.jsonl", samples)
    metrics = {
        task: {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
        for task, values in raw.get("results", {}).items()
    }
    n_samples = {t: v.get("effective", v.get("original"))
                 for t, v in (raw.get("n-samples") or {}).items()}  # fmt: skip
    # What `lm-eval run` does after simple_evaluate: one aggregated file, then one samples
    # file per task (EvaluationTracker sanitizes each sample for `datasets` on the way).
    log_samples = log_samples or predict_only
    tracker.save_results_aggregated(results=raw, samples=samples if log_samples else None)
    written = list(raw.get("configs", {})) if log_samples else []
    for task_name in written:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    files = lm_eval_result_files(tracker, written)
    shown = model_label(parse_model_spec(serve)) if serve else _model_name(model, user_args)
    results = {"model": shown, "metrics": metrics, "n_samples": n_samples, "lm_eval_files": files}
    config = {"lm_eval_model": model, "model_args": _json_safe_args(args), "tasks": tasks,
              "limit": limit, "num_fewshot": num_fewshot, "batch_size": batch_size,
              "device": device, "gen_kwargs": gen_kwargs or None,
              "apply_chat_template": chat, "log_samples": log_samples, "serve": serve,
              "seed": seed, "system_instruction": system_instruction,
              "predict_only": predict_only,
              "output_path": str(target),
              "include_path": str(include_path) if include_path else None}  # fmt: skip
    doc = write_run(out, "lm-eval", results, config, started)
    write_metrics_report(out / "report.md", f"lm-eval: {doc['model']}", metrics)
    return doc


def _seed_arguments(seed: list[int | None]) -> dict[str, int | None]:
    names = ("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed")
    return dict(zip(names, seed, strict=True))


def _model_name(model: str, args: dict[str, Any]) -> str:
    for key in ("pretrained", "model", "path"):
        if args.get(key):
            return str(args[key]).rstrip("/").rsplit("/", 1)[-1]
    return model


def _json_safe_args(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(args, default=str))


def _write_compact_samples(path: Path, samples: dict[str, list[dict[str, Any]]]) -> None:
    from eval.common import write_jsonl

    rows = [
        {"task": task, "doc_id": s.get("doc_id"), "target": s.get("target"),
         "response": s.get("filtered_resps"), **{k: s.get(k) for k in ("exact_match", "acc")}}
        for task, rows in samples.items()
        for s in rows
    ]  # fmt: skip
    write_jsonl(path, json.loads(json.dumps(rows, default=str)))


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


ANNOTATORS = ("weighted", "discrete")
"""`weighted`: alpaca_eval's `weighted_alpaca_eval_gpt4_turbo` (the AlpacaEval 2 leaderboard's
annotator: its prompt, one token, and P(m) / (P(m) + P(M)) from the top log-probabilities
as a preference in [1, 2]); `discrete`: an "Output (a)" / "Output (b)" verdict (1 or 2)."""
WEIGHTED_CONFIG = "weighted_alpaca_eval_gpt4_turbo"


def _client_config(folder: Path, url: str) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    clients = folder / "client_configs.yaml"
    clients.write_text(yaml.safe_dump({"default": [{"api_key": "none", "base_url": url}]}))
    return clients


def weighted_annotator_config(folder: Path, url: str, model: str) -> Path:
    """alpaca_eval's own `weighted_alpaca_eval_gpt4_turbo` config, read from the installed
    package, with its OpenAI client pointed at `url` and `model` as the judge; the prompt
    template stays alpaca_eval's file, the parser its `logprob_parser`."""
    import yaml
    from alpaca_eval import constants

    source = constants.EVALUATORS_CONFIG_DIR / WEIGHTED_CONFIG / "configs.yaml"
    try:
        config = yaml.safe_load(source.read_text(encoding="utf-8"))[WEIGHTED_CONFIG]
    except (OSError, KeyError, TypeError) as exc:
        raise EvalError(f"alpaca_eval has no {WEIGHTED_CONFIG} annotator ({exc})") from None
    template = constants.EVALUATORS_CONFIG_DIR / config["prompt_template"]
    kwargs = {**config["completions_kwargs"], "model_name": model, "requires_chatml": True,
              "client_config_path": str(_client_config(folder, url)), "price_per_token": 0,
              "num_procs": 1}  # fmt: skip
    config = {**config, "prompt_template": str(template), "completions_kwargs": kwargs}
    path = folder / "configs.yaml"
    path.write_text(yaml.safe_dump({"hs_weighted": config}, sort_keys=False), encoding="utf-8")
    return path


def write_annotator_config(folder: Path, url: str, model: str, max_tokens: int = 16) -> Path:
    """A discrete alpaca_eval annotator ("Output (a)" / "Output (b)") whose OpenAI client
    talks to `url`."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.txt").write_text(ANNOTATOR_PROMPT, encoding="utf-8")
    clients = _client_config(folder, url)
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
    annotator_kind: str = "weighted",
    glm_data: Path | None = None,
) -> dict[str, Any]:
    """Generate outputs, write them as alpaca_eval's `model_outputs.json` (and the
    reference as `reference_outputs.json`), annotate with `alpaca_eval.evaluate` reading
    those two files, and score its annotations as `--annotations` does (eval.alpaca_results):
    win rate, discrete win rate and, with df_gamed.csv, alpaca_eval's length-controlled GLM."""
    if annotator_kind not in ANNOTATORS:
        raise EvalError(f"--annotator-config {annotator_kind!r}: expected weighted or discrete")
    _ensure_pkg_resources()
    try:
        import alpaca_eval
    except ImportError:
        raise EvalError("alpaca-eval is not installed (pip install alpaca-eval)") from None
    from eval import alpaca_results
    from helpsteer.atomic import write_text

    started = time.perf_counter()
    rows = load_instructions(reference, limit)
    if not all(isinstance(r.get("output"), str) for r in rows):
        raise EvalError(f"{reference}: every record needs the reference 'output'")
    glm = alpaca_results.glm_data_path(glm_data)
    cache = out / "llm_cache"
    model_id = model_label(parse_model_spec(model, cache))
    judge_spec = annotator or model
    judge_id = model_label(parse_model_spec(judge_spec))
    out = out.resolve()  # alpaca_eval reads a relative config path as one of its own
    with serving(model, cache) as (url, name, client):
        outputs = generate_outputs(client, rows, model_id, max_tokens, reporter)
        # alpaca_eval's own input files: JSON lists of {instruction, output, generator, ...}.
        write_text(out / "model_outputs.json", json.dumps(outputs, indent=2, ensure_ascii=False))
        references = [{**r, "generator": r.get("generator", "reference")} for r in rows]
        write_text(out / "reference_outputs.json", json.dumps(references, indent=2,
                                                              ensure_ascii=False))  # fmt: skip
        with contextlib.ExitStack() as stack:
            judge_url, judge_name = url, name
            if annotator and annotator != model:
                judge_url, judge_name, _ = stack.enter_context(serving(annotator, cache))
            board, annotations = _evaluate(alpaca_eval, out, judge_url, judge_name, annotator_kind)
    scored = _annotation_rows(annotations, out)
    row = alpaca_results.model_row(scored, glm)
    metrics = {k: float(v) for k, v in board.iloc[0].to_dict().items()
               if isinstance(v, int | float)}  # fmt: skip
    metric = "win_rate"
    if row["length_controlled_winrate"] is not None:
        metric = "length_controlled_winrate"
        metrics["length_controlled_winrate"] = row["length_controlled_winrate"]
        metrics["lc_standard_error"] = row["lc_standard_error"]
    results = {
        "model": model_id,
        "annotator": judge_id,
        "annotator_config": WEIGHTED_CONFIG if annotator_kind == "weighted" else "discrete",
        "metric": metric,
        "models": {model_id: alpaca_results._json_safe(row)},
        "metrics": {"alpaca_eval": metrics},
        "unannotated": sum(1 for r in scored if r["preference"] != r["preference"]),
    }
    write_text(out / "leaderboard.csv", alpaca_results.leaderboard_csv({model_id: row}))
    config = {"model": model, "annotator": judge_spec, "annotator_config": annotator_kind,
              "reference": str(reference), "limit": limit, "max_tokens": max_tokens,
              "glm_data": str(glm) if glm else None}  # fmt: skip
    doc = write_run(out, "alpaca-eval", results, config, started)
    title = f"AlpacaEval: {model_id} (annotator {judge_id}, {results['annotator_config']})"
    write_metrics_report(out / "report.md", title, results["metrics"])
    return doc


def _annotation_rows(annotations: Any, out: Path) -> list[dict[str, Any]]:
    """alpaca_eval's annotations as the records `--annotations` reads (preference as a
    number, NaN for a failed annotation)."""
    import pandas as pd

    frame = annotations if isinstance(annotations, pd.DataFrame) else pd.DataFrame(annotations)
    rows = []
    for i, r in enumerate(frame.to_dict(orient="records")):
        p = r.get("preference")
        pref = float(p) if isinstance(p, int | float) and not isinstance(p, bool) else math.nan
        rows.append({**r, "preference": pref, "_where": f"{out}/alpaca_eval: record {i}"})
    return rows


def write_metrics_report(path: Path, title: str, metrics: dict[str, dict[str, float]]) -> None:
    from helpsteer.atomic import write_text

    lines = [f"# {title}", "", "| task | metric | value |", "|---|---|---|"]
    lines += [f"| {t} | {k} | {v:.4f} |" for t, m in metrics.items() for k, v in m.items()]
    write_text(path, "\n".join(lines) + "\n")


def _evaluate(alpaca_eval, out: Path, url: str, model: str, kind: str):
    """alpaca_eval.evaluate on the two files written in `out`, annotated through `url`;
    the win rate is its `get_winrate` (the length-controlled one is computed afterwards,
    offline, from the same annotations)."""
    if kind == "weighted":
        config = weighted_annotator_config(out / "annotator", url, model)
    else:
        config = write_annotator_config(out / "annotator", url, model)
    try:
        board, annotations = alpaca_eval.evaluate(
            model_outputs=str(out / "model_outputs.json"),
            reference_outputs=str(out / "reference_outputs.json"),
            annotators_config=str(config),
            output_path=str(out / "alpaca_eval"),
            is_return_instead_of_print=True,
            precomputed_leaderboard=None,
            is_cache_leaderboard=False,
            # alpaca_eval's annotation cache breaks on reload under pandas 3 (int column set
            # to 1.5), so annotations are not cached; the model's outputs are, in our cache.
            caching_path=None,
            fn_metric="get_winrate",
            sort_by="win_rate",
        )
    except Exception as exc:  # the judge endpoint failed, or answered without logprobs
        hint = ""
        if kind == "weighted":
            hint = (" (the weighted annotator reads the tokens m and M among the judge's top "
                    "log-probabilities: the endpoint must return logprobs; or use "
                    "--annotator-config discrete)")  # fmt: skip
        raise HarnessRunError(f"alpaca_eval failed: {type(exc).__name__}: {exc}{hint}") from None
    return board, annotations
