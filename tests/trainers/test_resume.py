"""Resuming into an output_dir that already holds checkpoints: only the same training goes on."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from helpsteer.progress import Reporter
from tests.trainers.conftest import bt_rows, make_config, write_jsonl
from trainers import checkpoint as ckpt
from trainers.cli import app
from trainers.config import ConfigError, validate_config
from trainers.provenance import fingerprint
from trainers.train_rm import Dist, Trainer, train

STOP = {"checkpoint": {"every_steps": 2, "stop_after_step": 2}}


class Notes(Reporter):
    """A quiet reporter that keeps its notes for the test to read."""

    def __init__(self):
        super().__init__(quiet=True)
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def _run(raw: dict, reporter: Reporter | None = None) -> dict:
    return Trainer(validate_config(raw), Dist(), reporter or Reporter(quiet=True)).run()


def _interrupted(tiny_llama, bt_file, out) -> dict:
    """A run stopped after step 2, as a killed run would leave it; its config."""
    raw = make_config(tiny_llama, bt_file, out, **STOP)
    assert _run(raw)["stopped"]
    raw["checkpoint"] = {"every_steps": 2}
    return raw


def _files(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_a_changed_config_is_refused_naming_the_fields(tiny_llama, bt_file, tmp_path):
    out = tmp_path / "run"
    raw = _interrupted(tiny_llama, bt_file, out)
    before = _files(out)
    changed = json.loads(json.dumps(raw))
    changed["optim"].update(lr=5e-4, epochs=2)
    changed["objective"]["loss"] = "bt_margin"
    with pytest.raises(ConfigError) as err:
        _run(changed)
    message = str(err.value)
    assert f"{out / 'checkpoints' / 'step_000002'} was trained with a different config" in message
    assert "objective.loss: 'bt_plain' -> 'bt_margin'" in message
    assert "optim.epochs: 1 -> 2; optim.lr: 0.001 -> 0.0005" in message
    assert "new output_dir" in message and "checkpoint.resume = false" in message
    assert "logging" not in message and "checkpoint.every_steps" not in message
    assert _files(out) == before  # nothing trained, saved or rewritten


def test_changed_data_content_is_refused_even_under_the_same_name(tiny_llama, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", bt_rows(42))
    out = tmp_path / "run"
    raw = _interrupted(tiny_llama, data, out)
    rows = bt_rows(42)
    rows[0]["chosen"][1]["content"] = "an edited answer"
    write_jsonl(data, rows)
    with pytest.raises(ConfigError, match=r"data\.train \(content\): sha256 \w{12} -> sha256"):
        _run(raw)


def test_logging_and_checkpoint_fields_do_not_block_a_resume(tiny_llama, bt_file, tmp_path):
    out = tmp_path / "run"
    raw = _interrupted(tiny_llama, bt_file, out)
    recorded = ckpt.read_state(out / "checkpoints" / "step_000002")["fingerprint"]
    assert recorded == fingerprint(validate_config(raw))
    assert recorded["optim.lr"] == 1e-3 and recorded["data.train (content)"]
    raw["logging"] = {"every_steps": 3, "tensorboard": True, "eval_every_steps": 2}
    raw["checkpoint"] = {"every_steps": 3, "keep_last": 1}
    raw["parallel"] = {"activation_checkpointing": True}
    summary = _run(raw)
    assert summary["resumed_from"] == 2 and not summary["stopped"]
    assert ckpt.read_state(ckpt.latest(out / "checkpoints"))["finished"] is True


def test_a_finished_run_with_the_same_config_has_nothing_to_do(tiny_llama, bt_file, tmp_path):
    out = tmp_path / "run"
    raw = make_config(tiny_llama, bt_file, out)
    first = _run(raw)
    before = _files(out)
    notes = Notes()
    again = _run({**raw, "logging": {"every_steps": 5, "tensorboard": False}}, notes)
    assert again == {"step": first["step"], "stopped": False, "already_trained": True}
    assert notes.notes == [
        f"already trained: {out / 'model'} holds the model of this config "
        f"(step {first['step']}); nothing to do"
    ]
    assert _files(out) == before  # manifest included: it still tells how the model was made
    raw["optim"]["epochs"] = 2
    with pytest.raises(ConfigError, match="optim.epochs: 1 -> 2"):
        _run(raw)


def test_resume_false_starts_afresh_without_the_earlier_checkpoints(tiny_llama, bt_file, tmp_path):
    out = tmp_path / "run"
    raw = make_config(tiny_llama, bt_file, out, checkpoint={"every_steps": 2})
    _run(raw)
    assert len(list((out / "checkpoints").iterdir())) == 2
    raw["optim"]["lr"] = 5e-4
    raw["checkpoint"] = {"every_steps": 2, "resume": False, "stop_after_step": 2}
    assert _run(raw)["resumed_from"] == 0
    # the earlier run's later steps would otherwise outlive this run's in the pruning
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000002"]
    del raw["checkpoint"]["stop_after_step"], raw["checkpoint"]["resume"]
    assert _run(raw)["resumed_from"] == 2  # the fresh run resumes with its own config


def test_a_checkpoint_without_a_fingerprint_still_resumes(tiny_llama, bt_file, tmp_path):
    out = tmp_path / "run"
    raw = _interrupted(tiny_llama, bt_file, out)
    state_file = out / "checkpoints" / "step_000002" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=False)
    del state["fingerprint"], state["finished"]  # as written before checkpoints had them
    torch.save(state, state_file)
    notes = Notes()
    assert _run(raw, notes)["resumed_from"] == 2
    assert any("does not record its config" in n for n in notes.notes)


def test_recipe_stage1_trained_with_another_config_is_refused(
    tiny_llama, bt_file, regression_file, tmp_path
):
    out = tmp_path / "recipe"
    recipe = {"name": "helpsteer2-preference", "regression_train": str(regression_file)}
    raw = make_config(
        tiny_llama, bt_file, out, objective={"loss": "bt_scaled"}, recipe=recipe,
        optim={"max_steps": 1},
    )  # fmt: skip
    train(validate_config(raw), Reporter(quiet=True))
    again = train(validate_config(raw), Reporter(quiet=True))
    assert again["already_trained"] and again["stage1"]["already_trained"]
    raw["recipe"]["regression_lr"] = 5e-4
    with pytest.raises(ConfigError, match="stage1_regression.*recipe.regression_lr: None"):
        train(validate_config(raw), Reporter(quiet=True))


def test_cli_refuses_a_changed_config_with_exit_status_2(tiny_llama, bt_file, tmp_path):
    import tomli_w

    raw = make_config(tiny_llama, bt_file, tmp_path / "o", **STOP)
    path = tmp_path / "c.toml"
    path.write_bytes(tomli_w.dumps(raw).encode())
    runner = CliRunner()
    assert runner.invoke(app, ["rm", str(path), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["rm", str(path), "--quiet", "--set", "optim.lr=5e-4"])
    assert result.exit_code == 2
    assert "error: " in result.output and "optim.lr: 0.001 -> 0.0005" in result.output
    assert "Traceback" not in result.output


def test_the_fingerprint_follows_content_not_path_spelling(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "a.jsonl", bt_rows(4))
    write_jsonl(tmp_path / "copy.jsonl", bt_rows(4))
    write_jsonl(tmp_path / "other.jsonl", bt_rows(4, seed=1))
    monkeypatch.chdir(tmp_path)

    def fp(train: str, **groups) -> dict:
        return fingerprint(validate_config(make_config(tmp_path, train, tmp_path / "o", **groups)))

    base = fp("a.jsonl")
    assert fp(str(tmp_path / "copy.jsonl"), logging={"every_steps": 9}) == base
    assert fp("other.jsonl") != base
    assert fp("a.jsonl", parallel={"mixed_precision": "bf16"}) != base
