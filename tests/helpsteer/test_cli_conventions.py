"""CLI conventions (issue 13 §4): --version, the exit-status rule, one install line for a
missing optional extra (per command, the module hidden), did-you-mean for config keys,
zsh/fish completion."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpsteer import __version__
from helpsteer.cli import app
from helpsteer.testing import raw_preferences

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def hide(monkeypatch, missing: str, *reload: str) -> None:
    """Make `import missing` fail; drop already imported modules that must import it anew."""
    for name in list(sys.modules):
        if name == missing or name.startswith(missing + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    for name in reload:
        monkeypatch.delitem(sys.modules, name, raising=False)


def assert_install_line(result, extra: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f'pip install "helpsteer-workbench[{extra}]"' in lines[0]
    assert "Traceback" not in result.output


def test_version_flag_and_command():
    assert runner.invoke(app, ["--version"]).stdout.strip() == __version__
    assert runner.invoke(app, ["version"]).stdout.strip() == __version__


def test_help_states_the_exit_status_rule():
    for args in (["--help"], ["build-dataset", "--help"], ["judge", "--help"]):
        text = " ".join(runner.invoke(app, args).stdout.split())
        assert "0 done; 1 the run failed" in text and "2 usage, config or setup error" in text


@pytest.mark.parametrize("shell,marker", [("zsh", "#compdef hs"), ("fish", "complete --command hs"),
                                          ("bash", "complete -o")])  # fmt: skip
def test_completion_script_per_shell(shell, marker):
    result = runner.invoke(app, ["completion", shell])
    assert result.exit_code == 0 and marker in result.stdout
    assert runner.invoke(app, ["completion", "tcsh"]).exit_code == 2


def test_tiny_model_without_transformers(monkeypatch, tmp_path):
    hide(monkeypatch, "transformers")
    result = runner.invoke(app, ["train", "tiny-model", str(tmp_path / "m")])
    assert_install_line(result, "train")


def test_train_rm_without_torch(monkeypatch):
    hide(monkeypatch, "torch", "trainers.train_rm", "trainers.model", "trainers.data")
    result = runner.invoke(app, ["train", "rm", str(EXAMPLES / "train_bt.toml")])
    assert_install_line(result, "train")


def test_judge_reward_without_transformers(monkeypatch, tmp_path):
    hide(monkeypatch, "transformers", "judge.reward")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"pair_id": "p", "prompt": "q", "response_a": "a",
                                 "response_b": "b", "label": "A"}) + "\n")  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text(
        f'out = "{tmp_path / "o"}"\n[data]\nformat = "pairs"\npath = "{pairs}"\n'
        '[[judges]]\nname = "rm"\nkind = "reward"\nmodel = "some/model"\n'
    )
    assert_install_line(runner.invoke(app, ["judge", "compare", str(config), "-q"]), "judge")


def test_local_backend_without_llama_cpp(monkeypatch, tmp_path):
    hide(monkeypatch, "llama_cpp")
    seed = tmp_path / "seed.jsonl"
    seed.write_text('{"prompt": "Hi"}\n')
    args = ["synth", "responses", "-i", f"prompts={seed}", "-o", str(tmp_path / "o"), "-q",
            "--set", 'models=[{name = "m", llm = {backend = "local"}}]']  # fmt: skip
    assert_install_line(runner.invoke(app, args), "local")


def test_lm_eval_without_lm_eval(monkeypatch, tmp_path):
    hide(monkeypatch, "lm_eval")
    args = ["eval", "lm-eval", "--task", "x", "--out", str(tmp_path / "o"), "--quiet"]
    assert_install_line(runner.invoke(app, args), "eval")


def test_argilla_push_without_argilla(monkeypatch, tmp_path):
    hide(monkeypatch, "argilla", "annotation_ui.argilla_io")
    items = tmp_path / "items.jsonl"
    items.write_text('{"prompt": "p", "response": "r"}\n')
    assert_install_line(runner.invoke(app, ["annotate", "push", str(items)]), "argilla")


def test_annotator_app_without_uvicorn(monkeypatch, tmp_path):
    hide(monkeypatch, "uvicorn")
    result = runner.invoke(app, ["annotate", "serve", "--db", str(tmp_path / "db.sqlite")])
    assert_install_line(result, "ui")


def test_an_unrelated_import_error_is_not_disguised(monkeypatch, tmp_path):
    hide(monkeypatch, "no_such_module_anywhere")
    from helpsteer.extras import missing_extra_message

    error = ModuleNotFoundError("x", name="no_such_module_anywhere")
    assert missing_extra_message(error) is None
    assert "[train]" in missing_extra_message(ModuleNotFoundError("x", name="torch.nn"))
    assert "[judge]" in missing_extra_message(ModuleNotFoundError("x", name="torch"), "judge x")


def _prefs(tmp_path) -> Path:
    path = tmp_path / "prefs.jsonl"
    raw_preferences(4, 3, seed=1).write_ndjson(path)
    return path


def test_did_you_mean_for_a_top_level_key(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        f'seeed = 1\n[[stages]]\nuses = "load"\npreferences = ["{_prefs(tmp_path)}"]\n'
    )
    result = runner.invoke(app, ["build-dataset", str(config), "-q"])
    assert result.exit_code == 2
    assert "seeed" in result.stderr and "did you mean 'seed'?" in result.stderr


def test_did_you_mean_for_a_stage_option_a_stage_and_a_set_target(tmp_path):
    prefs = _prefs(tmp_path)
    args = ["build-dataset", "-q", "--preferences", str(prefs), "-o", str(tmp_path / "o")]
    option = runner.invoke(app, [*args, "--set", "export.formts=[]"])
    assert option.exit_code == 2 and "did you mean 'formats'?" in option.stderr
    target = runner.invoke(app, [*args, "--set", "exprt.formats=[]"])
    assert target.exit_code == 2 and "did you mean 'export'?" in target.stderr
    config = tmp_path / "c.toml"
    config.write_text('[[stages]]\nuses = "synth.respones"\n')
    stage = runner.invoke(app, ["build-dataset", str(config), "-q"])
    assert stage.exit_code == 2 and "did you mean 'synth.responses'?" in stage.stderr


def test_a_long_error_is_one_unwrapped_line(tmp_path):
    missing = tmp_path / ("a-very-long-folder-name-" * 6) / "config.toml"
    result = runner.invoke(app, ["build-dataset", str(missing), "-q"])
    assert result.exit_code == 2
    assert f"{missing}: config file not found" in result.stderr.replace("\n", "\n")
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_entry_point_leaves_what_a_command_made_out_of_exit_s_collections(monkeypatch):
    import gc

    from helpsteer import cli

    monkeypatch.setattr(sys, "argv", ["hs", "--version"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as done:
            cli.main()
        assert done.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_long_warning_is_one_unwrapped_line(tmp_path):
    from helpsteer.testing import raw_preferences

    folder = tmp_path / ("a-very-long-folder-name-" * 6)
    folder.mkdir()
    (folder / "empty.jsonl").write_text("")
    prefs = folder / "prefs.jsonl"
    raw_preferences(20, 3, seed=2).write_ndjson(prefs)
    args = ["--ratings", str(folder / "empty.jsonl"), "--preferences", str(prefs)]
    result = runner.invoke(app, ["build-dataset", "-q", *args, "-o", str(tmp_path / "o")])
    warnings = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert warnings and all(str(folder / "empty.jsonl") in x for x in warnings), result.stderr
