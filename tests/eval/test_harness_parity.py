"""`hs eval lm-eval` and `hs eval alpaca-eval` behave like the tools themselves: lm-eval's
flags, its result layout read back by its own tooling (and equal to what `lm-eval run`
writes for the same flags), alpaca_eval's model_outputs.json, the weighted annotator and
the length-controlled win rate; and every `hs eval` command prints its output paths."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.testing import alpaca_gamed_csv, write_lm_eval_task
from helpsteer.cli import app
from helpsteer.llm.testing import FaultServer
from tests.eval.conftest import ALPACA_REFERENCE

runner = CliRunner()

needs_lm_eval = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="lm-eval is not installed"
)
needs_alpaca_eval = pytest.mark.skipif(
    importlib.util.find_spec("alpaca_eval") is None, reason="alpaca-eval is not installed"
)


def _stdout_paths(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def _one_results_file(folder: Path) -> Path:
    found = sorted(folder.rglob("results_*.json"))
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ lm-eval


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory):
    pytest.importorskip("transformers")
    from trainers.tiny import build_model

    return build_model(tmp_path_factory.mktemp("tiny") / "lm", causal_lm=True)


def _lm_eval_cli(argv: list[str]) -> None:
    """lm-eval's own command line (`lm-eval run ...`), in process."""
    from lm_eval._cli import HarnessCLI

    cli = HarnessCLI()
    cli.execute(cli._parser.parse_args(["run", *argv]))


IGNORED_KEYS = {"date", "start_time", "end_time", "total_evaluation_time_seconds",
                "pretty_env_info", "git_hash", "upper_git_hash"}  # fmt: skip


@needs_lm_eval
def test_hf_model_on_cpu_writes_what_lm_eval_run_writes(tmp_path, tiny_causal_lm, monkeypatch):
    """The same lm-eval flags to `hs eval lm-eval` and to `lm-eval run`: the same result
    files (keys, metrics, task configs, every sample), read back by lm-eval's tooling. Our
    run gives no --device: on a CPU-only torch lm-eval's `hf` default (cuda) would fail."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    include = write_lm_eval_task(tmp_path / "tasks")
    flags = ["--model", "hf", "--model_args", f"pretrained={tiny_causal_lm}", "--tasks",
             "hs_tiny_qa", "--include_path", str(include), "--limit", "3", "--gen_kwargs",
             "max_gen_toks=4", "--log_samples"]  # fmt: skip
    _lm_eval_cli([*flags, "--device", "cpu", "--output_path", str(tmp_path / "theirs")])
    result = runner.invoke(app, ["eval", "lm-eval", *flags, "--output_path",
                                 str(tmp_path / "ours"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output

    theirs_file = _one_results_file(tmp_path / "theirs")
    ours_file = _one_results_file(tmp_path / "ours")
    # Same layout: OUTPUT/<sanitized model name>/results_<date>.json.
    assert ours_file.parent.name == theirs_file.parent.name
    theirs, ours = json.loads(theirs_file.read_text()), json.loads(ours_file.read_text())
    assert set(ours) == set(theirs)
    for key in set(theirs) - IGNORED_KEYS:
        assert ours[key] == theirs[key], key
    assert ours["task_hashes"]["hs_tiny_qa"]  # computed from the logged samples
    assert ours["n-samples"]["hs_tiny_qa"]["effective"] == 3
    assert ours["config"]["device"] == "cpu"

    their_samples = sorted((tmp_path / "theirs").rglob("samples_hs_tiny_qa_*.jsonl"))
    our_samples = sorted((tmp_path / "ours").rglob("samples_hs_tiny_qa_*.jsonl"))
    assert len(our_samples) == 1 == len(their_samples)
    rows = [json.loads(line) for line in our_samples[0].read_text().splitlines()]
    assert rows == [json.loads(line) for line in their_samples[0].read_text().splitlines()]
    assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "doc_hash",
            "prompt_hash", "target_hash", "exact_match"} <= set(rows[0])  # fmt: skip

    # lm-eval's own readers: file discovery by name, the results table, and the samples
    # loaded with `datasets` as lm-eval's Hub upload expects them to load.
    from lm_eval import utils

    files = [str(p) for p in (tmp_path / "ours").rglob("*")]
    assert utils.get_results_filenames(files) == [str(ours_file)]
    sample_files = utils.get_sample_results_filenames(files)
    assert sample_files == [str(our_samples[0])]
    assert utils.get_file_task_name(Path(sample_files[0]).stem) == "hs_tiny_qa"
    assert utils.get_latest_filename(sample_files) == sample_files[0]
    table = utils.make_table(ours)
    assert "hs_tiny_qa" in table and "exact_match" in table
    from datasets import load_dataset

    loaded = load_dataset("json", data_files=str(our_samples[0]), split="train")
    assert len(loaded) == 3 and "filtered_resps" in loaded.column_names

    # Our leaderboard entry beside it, with the same numbers, and the paths on stdout.
    doc = json.loads((tmp_path / "ours" / "results.json").read_text())
    em = ours["results"]["hs_tiny_qa"]["exact_match,none"]
    assert doc["metrics"]["hs_tiny_qa"]["exact_match,none"] == em
    assert doc["lm_eval_files"]["results"] == str(ours_file)
    printed = _stdout_paths(result)
    assert str(ours_file) in printed and str(our_samples[0]) in printed
    assert all(Path(p).is_file() for p in printed)


def _fake_model_args(server) -> str:
    return (
        f"model=fake,base_url={server.url}/chat/completions,num_concurrent=1,tokenizer_backend=None"
    )


def _two_task_folder(root: Path) -> Path:
    write_lm_eval_task(root, "hs_qa_one")
    write_lm_eval_task(root, "hs_qa_two")
    return root


@needs_lm_eval
def test_lm_eval_flags_reach_the_model(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    include = _two_task_folder(tmp_path / "tasks")
    target = tmp_path / "lm" / "scores.json"
    result = runner.invoke(
        app,
        ["eval", "lm-eval", "--tasks", "hs_qa_one,hs_qa_two", "--model",
         "local-chat-completions", "--model-args", _fake_model_args(fake_server), "--include-path",
         str(include), "--gen-kwargs", "max_gen_toks=7", "--num-fewshot", "1", "--limit",
         "0.5", "--output-path", str(target), "--json", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    doc = json.loads((tmp_path / "lm" / "results.json").read_text())
    # Both comma-separated tasks ran, on half of their 4 documents each (--limit 0.5).
    assert doc["n_samples"] == {"hs_qa_one": 2, "hs_qa_two": 2}
    assert doc["config"]["tasks"] == ["hs_qa_one", "hs_qa_two"]
    # --model-args with base_url: no embedded server was started.
    assert doc["config"]["serve"] is None
    bodies = [r.body for r in fake_server.requests]
    assert len(bodies) == 4
    assert all(b["max_tokens"] == 7 for b in bodies)  # --gen-kwargs
    # --num-fewshot 1 on a chat model: one earlier question and answer as a chat turn.
    assert all(len([m for m in b["messages"] if m["role"] == "user"]) == 2 for b in bodies)
    # lm-eval's .json output path: FILE_<date>.json beside it; no samples without -s.
    written = Path(doc["lm_eval_files"]["results"])
    assert re.fullmatch(r"scores_.+\.json", written.name) and written.parent == target.parent
    assert not list(target.parent.glob("samples_*"))
    assert json.loads(written.read_text())["config"]["gen_kwargs"] == {"max_gen_toks": 7}
    assert summary["benchmark"] == "lm-eval" and str(written) in summary["files"]
    assert all(Path(p).is_file() for p in summary["files"])


@needs_lm_eval
def test_lm_eval_seed_system_instruction_and_predict_only(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    include = _two_task_folder(tmp_path / "tasks")
    out = tmp_path / "lm"
    result = runner.invoke(
        app,
        ["eval", "lm-eval", "--tasks", "hs_qa_one", "--model", "local-chat-completions",
         "--model-args", _fake_model_args(fake_server), "--include-path", str(include),
         "--system_instruction", "Answer tersely.", "--seed", "7", "--predict-only",
         "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bodies = [r.body for r in fake_server.requests]
    assert len(bodies) == 4
    assert all(b["messages"][0] == {"role": "system", "content": "Answer tersely."}
               for b in bodies)  # fmt: skip
    theirs = json.loads(_one_results_file(out).read_text())
    # lm-eval's own record of the run: the four seeds, and no metric computed.
    assert [theirs["config"][k] for k in ("random_seed", "numpy_seed", "torch_seed",
                                          "fewshot_seed")] == [7, 7, 7, 7]  # fmt: skip
    metrics = {k for k in theirs["results"]["hs_qa_one"] if "," in k}
    assert metrics == {"bypass,none", "bypass_stderr,none"}
    # --predict-only logs the samples, as lm-eval does.
    assert len(list(out.rglob("samples_hs_qa_one_*.jsonl"))) == 1
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["seed"] == [7, 7, 7, 7] and doc["config"]["predict_only"]


@needs_lm_eval
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "many"], "--batch-size 'many': expected a positive integer"),
        (["--limit", "0"], "--limit 0.0: expected a count"),
        (["--model-args", "pretrained"], "--model-args 'pretrained'"),
        (["--gen-kwargs", "{broken"], "--gen-kwargs '{broken'"),
        (["--seed", "1,2"], "--seed '1,2'"),
        (["--model", "no-such-model"], "expected one of"),
    ],
)
def test_lm_eval_usage_errors_are_one_line(tmp_path, extra, message):
    args = ["eval", "lm-eval", "--tasks", "x", "--out", str(tmp_path), "--model-args",
            "base_url=http://127.0.0.1:9", *extra, "--quiet"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@needs_lm_eval
def test_lm_eval_unknown_task_and_missing_folder(tmp_path, fake_server):
    url = f"model=fake,base_url={fake_server.url}/chat/completions"
    result = runner.invoke(app, ["eval", "lm-eval", "--tasks", "hs_no_such_task", "--out",
                                 str(tmp_path), "--model-args", url, "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "Tasks not found: hs_no_such_task" in result.output
    result = runner.invoke(app, ["eval", "lm-eval", "--tasks", "x", "--model-args", url])
    assert result.exit_code == 2 and "give --out FOLDER or --output-path PATH" in result.output
    assert fake_server.requests == []


@needs_lm_eval
def test_lm_eval_cuda_device_without_cuda(tmp_path, tiny_causal_lm):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["eval", "lm-eval", "--tasks", "x", "--out", str(tmp_path),
                                 "--model", "hf", "--model-args",
                                 f"pretrained={tiny_causal_lm}", "--device", "cuda"])  # fmt: skip
    assert result.exit_code == 2 and "no CUDA device; use --device cpu" in result.output


# ------------------------------------------------------------------ alpaca-eval


MODEL_WIN = 0.8
"""P(the model's output is better) that the scripted judge gives, in either order."""


def _judge_and_model(body: dict) -> list:
    """Answers instructions; as the weighted judge, puts MODEL_WIN on the identifier (m or
    M) that shows the model's answer, which always starts with "Answer:"."""
    text = " ".join(m["content"] for m in body["messages"])
    if '"model_identifier": "m"' in text:
        first = text.split('"model_identifier": "m"', 1)[1].split('"model_identifier": "M"')[0]
        p_m = MODEL_WIN if '"""Answer:' in first else 1 - MODEL_WIN
        token = "m" if p_m > 0.5 else "M"
        return [{"text": token, "logprobs": [{"m": math.log(p_m), "M": math.log(1 - p_m)}]}]
    if "Output (a)" in text:
        return ["Output (b)"]
    return [f"Answer: {body['messages'][-1]['content'][:30]}"]


@pytest.fixture()
def judge_server():
    with FaultServer(responder=_judge_and_model) as server:
        yield server


def _alpaca(tmp_path, server, *extra):
    if not ALPACA_REFERENCE.is_file():
        pytest.skip(f"AlpacaEval data not found at {ALPACA_REFERENCE}")
    out = tmp_path / "ae"
    args = ["eval", "alpaca-eval", "--out", str(out), "--reference", str(ALPACA_REFERENCE),
            "--model", f"openai:fake@{server.url}", "--limit", "12", "--quiet", *extra]  # fmt: skip
    return out, runner.invoke(app, args)


@needs_alpaca_eval
def test_alpaca_eval_weighted_annotator_and_length_controlled(tmp_path, judge_server):
    gamed = alpaca_gamed_csv(tmp_path / "df_gamed.csv")
    out, result = _alpaca(tmp_path, judge_server, "--glm-data", str(gamed))
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    row = doc["models"]["fake"]
    # Weighted: each preference is 1 + P(model better) = 1.8, not a rounded 2.
    annotations = json.loads((out / "alpaca_eval" / "annotations.json").read_text())
    assert len(annotations) == 12
    assert all(a["preference"] == pytest.approx(1 + MODEL_WIN) for a in annotations)
    assert row["win_rate"] == pytest.approx(100 * MODEL_WIN)
    assert row["discrete_win_rate"] == pytest.approx(100.0)
    assert row["n_wins"] == 12 and row["n_total"] == 12
    # alpaca_eval's own leaderboard for the run says the same.
    assert doc["metrics"]["alpaca_eval"]["win_rate"] == pytest.approx(row["win_rate"])
    assert doc["annotator_config"] == "weighted_alpaca_eval_gpt4_turbo"
    # The judge was asked as the leaderboard's annotator asks: one token, top-5 logprobs.
    judged = [r.body for r in judge_server.requests if "model_identifier" in str(r.body)]
    assert len(judged) == 12
    assert all(b["logprobs"] and b["top_logprobs"] == 5 and b["max_tokens"] == 1 for b in judged)
    # Length-controlled: alpaca_eval's GLM on these annotations, the same as scoring the
    # annotation file afterwards with --annotations.
    assert doc["metric"] == "length_controlled_winrate"
    lc = row["length_controlled_winrate"]
    assert lc is not None and 0 < lc < 100
    rescored = tmp_path / "rescored"
    again = runner.invoke(app, ["eval", "alpaca-eval", "--annotations",
                                str(out / "alpaca_eval" / "annotations.json"), "--glm-data",
                                str(gamed), "--out", str(rescored), "--quiet"])  # fmt: skip
    assert again.exit_code == 0, again.output
    other = json.loads((rescored / "results.json").read_text())["models"]["fake"]
    assert other["length_controlled_winrate"] == pytest.approx(lc, rel=1e-12)
    assert other["win_rate"] == pytest.approx(row["win_rate"], rel=1e-12)


@needs_alpaca_eval
def test_alpaca_eval_model_outputs_json_is_alpaca_evals_format(tmp_path, judge_server):
    out, result = _alpaca(tmp_path, judge_server, "--annotator-config", "discrete")
    assert result.exit_code == 0, result.output
    outputs = json.loads((out / "model_outputs.json").read_text())
    assert isinstance(outputs, list) and len(outputs) == 12
    assert all(set(o) >= {"instruction", "output", "generator", "dataset"} for o in outputs)
    assert {o["generator"] for o in outputs} == {"fake"}
    from eval.harness import _ensure_pkg_resources

    _ensure_pkg_resources()
    from alpaca_eval import utils

    frame = utils.load_or_convert_to_dataframe(out / "model_outputs.json")
    assert list(frame["output"]) == [o["output"] for o in outputs]
    reference = utils.load_or_convert_to_dataframe(out / "reference_outputs.json")
    assert list(reference["instruction"]) == list(frame["instruction"])
    # Discrete verdicts: every preference 1 or 2, and no length-controlled rate without
    # df_gamed.csv, saying why.
    doc = json.loads((out / "results.json").read_text())
    row = doc["models"]["fake"]
    annotations = json.loads((out / "alpaca_eval" / "annotations.json").read_text())
    assert {a["preference"] for a in annotations} <= {1.0, 2.0}
    assert row["win_rate"] == pytest.approx(row["discrete_win_rate"])
    if doc["config"]["glm_data"] is None:
        assert row["length_controlled_winrate"] is None and "df_gamed.csv" in row["lc_note"]
    printed = _stdout_paths(result)
    assert str(out / "model_outputs.json") in printed and str(out / "results.json") in printed
    assert not any("llm_cache" in p for p in printed)


@needs_alpaca_eval
def test_alpaca_eval_weighted_judge_without_verdict_logprobs_fails_in_one_line(
    tmp_path, fake_server
):
    """A judge whose top log-probabilities never hold m or M annotates nothing: the run
    failed (exit 1), said in one line with the way out."""
    out, result = _alpaca(tmp_path, fake_server)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--annotator-config discrete" in lines[0]
    assert "Traceback" not in result.output


@needs_alpaca_eval
def test_alpaca_eval_bad_annotator_config(tmp_path):
    result = runner.invoke(app, ["eval", "alpaca-eval", "--out", str(tmp_path), "--reference",
                                 str(ALPACA_REFERENCE), "--annotator-config", "fuzzy"])  # fmt: skip
    assert result.exit_code == 2 and "expected weighted or discrete" in result.output


# ------------------------------------------------------------------ output paths


@needs_alpaca_eval
def test_eval_commands_print_paths_unwrapped_or_json(tmp_path, monkeypatch):
    """Paths on stdout one per line at any terminal width (the table is on stderr), or one
    JSON summary with --json; the same for `hs eval report`."""
    from eval.testing import alpaca_annotations

    monkeypatch.setenv("COLUMNS", "30")
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "scored"
    source = tmp_path / "annotations.json"
    source.write_text(json.dumps(alpaca_annotations("model-q", n=10)))
    result = runner.invoke(app, ["eval", "alpaca-eval", "--annotations", str(source), "--out",
                                 str(deep)])  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = _stdout_paths(result)
    assert printed and all(Path(p).is_file() and len(p) > 30 for p in printed)
    assert str(deep / "leaderboard.csv") in printed and str(deep / "results.json") in printed
    assert "model-q" in result.stderr  # the summary table

    as_json = runner.invoke(app, ["eval", "alpaca-eval", "--annotations", str(source), "--out",
                                  str(deep), "--json", "--quiet"])  # fmt: skip
    summary = json.loads(as_json.stdout)
    assert summary["benchmark"] == "alpaca-eval" and summary["results"] == str(
        deep / "results.json"
    )
    assert sorted(summary["files"]) == sorted(printed)

    report = runner.invoke(app, ["eval", "report", str(tmp_path), "--out", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    shown = _stdout_paths(report)
    assert str(tmp_path / "r" / "leaderboard.md") in shown
    assert all(Path(p).is_file() for p in shown)
