"""Pieces shared by the benchmark runners: model specs, run folders, manifests, JSONL IO."""

from __future__ import annotations

import contextlib
import gzip
import json
import platform
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from helpsteer.atomic import write_json, write_text
from helpsteer.llm import ChatRequest, LLMConfig

RESULT_FILE = "results.json"
MANIFEST_FILE = "manifest.json"
RESULTS_SCHEMA = 1


class EvalError(ValueError):
    """Bad input to a benchmark run; the CLI prints it as one line and exits non-zero."""


def parse_model_spec(spec: str, cache_dir: Path | None = None, **extra: Any) -> LLMConfig:
    """An LLM config from a short spec.

    `local` (the embedded SmolLM2), `local:/path/model.gguf`, `openai:MODEL@URL[,URL...]`
    (any OpenAI-compatible server: vLLM, NIM, llama.cpp), `vllm:MODEL` (in process), or a
    TOML file with an `[llm]` table (or the LLMConfig keys at top level).
    """
    spec = spec.strip()
    if spec.endswith(".toml"):
        return _config_from_toml(Path(spec), cache_dir)
    kind, _, rest = spec.partition(":")
    if kind == "local":
        options = {"n_ctx": 4096, **extra}
        return LLMConfig(backend="local", model=rest, cache_dir=cache_dir, extra=options)
    if kind == "openai":
        model, at, urls = rest.partition("@")
        if not model or not at or not urls:
            raise EvalError(f"model spec {spec!r}: expected openai:MODEL@http://host:port/v1")
        return LLMConfig(
            backend="openai", model=model, base_urls=urls.split(","), cache_dir=cache_dir
        )
    if kind == "vllm":
        if not rest:
            raise EvalError(f"model spec {spec!r}: expected vllm:MODEL")
        return LLMConfig(backend="vllm", model=rest, cache_dir=cache_dir)
    raise EvalError(
        f"model spec {spec!r}: expected local, local:FILE.gguf, openai:MODEL@URL, vllm:MODEL "
        "or a .toml file"
    )


def _config_from_toml(path: Path, cache_dir: Path | None) -> LLMConfig:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EvalError(f"{path}: cannot read LLM config: {exc}") from None
    table = data.get("llm", data)
    if cache_dir is not None and "cache_dir" not in table:
        table = {**table, "cache_dir": str(cache_dir)}
    try:
        return LLMConfig.model_validate(table)
    except ValueError as exc:
        first = str(exc).splitlines()
        raise EvalError(f"{path}: invalid [llm] table: {' '.join(first[:3])}") from None


@contextlib.contextmanager
def llm_clients(configs: list[LLMConfig], engine: dict[str, Any] | None, cache_dir: Path):
    """Yields `open(config) -> client` for a run's LLMs and closes them at the end.

    `engine` is the CLI's engine options (`{"engine": "ray", "ray": {...}}`): on Ray one
    actor pool answers every config's requests (`eval.distributed.RayLLMSession`);
    otherwise each config gets its own in-process client.
    """
    from helpsteer.llm import make_client

    opened: list[Any] = []
    session = None
    kind = (engine or {}).get("engine", "local")
    if kind not in ("local", "ray"):
        raise EvalError(f"--engine {kind!r}: expected local or ray")
    if kind == "ray":
        from eval.distributed import RayLLMSession

        session = RayLLMSession(engine.get("ray") or {}, configs, cache_dir)

    def open_client(config: LLMConfig):
        client = session.client(config) if session is not None else make_client(config)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            client.close()
        if session is not None:
            session.close()


def model_label(config: LLMConfig) -> str:
    """A short name for a model in tables and file names."""
    if config.backend == "local":
        return Path(config.model).stem if config.model else "SmolLM2-135M-Instruct"
    return config.model.rsplit("/", 1)[-1]


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of the packages that shaped a result (absent ones left out)."""
    names = ("helpsteer-workbench", "torch", "transformers", "datasets", "polars",
             "llama_cpp_python", "lm_eval", "alpaca_eval", *packages)  # fmt: skip
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_run(
    out: Path, benchmark: str, results: dict[str, Any], config: dict[str, Any], started: float
) -> dict[str, Any]:
    """results.json (the leaderboard's input) and manifest.json in the run folder."""
    document = {
        "schema": RESULTS_SCHEMA,
        "benchmark": benchmark,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "versions": versions(),
        **results,
    }
    write_json(out / RESULT_FILE, document)
    manifest = {
        "benchmark": benchmark,
        "config": config,
        "versions": document["versions"],
        "wall_s": round(time.perf_counter() - started, 3),
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
    }
    write_json(out / MANIFEST_FILE, manifest)
    return document


def read_jsonl(
    path: Path, what: str, check: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Records of a JSON Lines file (plain or .gz); a bad line is an EvalError naming file
    and line. `check(row, "FILE:LINE")` validates each record where given."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise EvalError(f"{path}: cannot read {what}: {reason}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvalError(f"{path}:{number}: expected a JSON object")
        rows.append(check(row, f"{path}:{number}") if check else row)
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    write_text(path, "".join(line + "\n" for line in lines))


def require(row: dict[str, Any], field: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = row.get(field)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise EvalError(f"{where}: field {field!r} must be {names}, got {value!r:.60}")
    return value


def answered(client: Any, requests: list[ChatRequest], reporter: Any = None) -> list:
    """The batch's answers; EvalError when the server answered none of them: a score over
    nothing but errors is not a result."""
    from helpsteer.llm.client import answered as llm_answered

    return llm_answered(client, requests, reporter, EvalError)


def greedy_requests(
    user_texts: Iterable[str], max_tokens: int, seed: int | None = 0
) -> list[ChatRequest]:
    """One single-turn, temperature-0 request per user message (benchmark generation)."""
    return [
        ChatRequest(
            messages=[{"role": "user", "content": text}],
            temperature=0,
            max_tokens=max_tokens,
            seed=seed,
        )
        for text in user_texts
    ]
