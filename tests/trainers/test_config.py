from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainers.cli import app
from trainers.config import ConfigError, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_are_valid_configs():
    files = sorted(EXAMPLES.glob("train_*.toml"))
    assert len(files) >= 3
    for path in files:
        cfg = load_config(path)
        assert cfg.optim.batch_size % cfg.optim.micro_batch_size == 0
    recipe = load_config(EXAMPLES / "train_hs2p_recipe.toml")
    assert recipe.recipe.name == "helpsteer2-preference" and recipe.objective.loss == "bt_scaled"


def test_overrides_are_parsed_as_toml_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('output_dir = "o"\n[model]\nname_or_path = "m"\n[data]\ntrain = "t.jsonl"\n')
    cfg = load_config(
        path,
        ["optim.lr=3e-5", "objective.attributes=['helpfulness']", "data.truncation_side=right"],
    )
    assert cfg.optim.lr == 3e-5
    assert cfg.objective.attributes == ["helpfulness"]
    assert cfg.data.truncation_side == "right"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.batch_size=5", "multiple of optim.micro_batch_size"),
        ("objective.attributes=['charm']", "unknown attributes"),
        ("optim.schedule='linear'", "optim.schedule"),
        ("recipe.name='helpsteer2-preference'", "needs recipe.regression_train"),
        ("data.colour=1", "data.colour: Extra inputs"),
        ("nonsense", "expected KEY=VALUE"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, override, message):
    path = tmp_path / "c.toml"
    path.write_text('output_dir = "o"\n[model]\nname_or_path = "m"\n[data]\ntrain = "t.jsonl"\n')
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_cli_reports_user_errors_in_one_line(tmp_path, tiny_llama):
    runner = CliRunner()
    result = runner.invoke(app, ["rm", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "no such config file" in result.output

    path = tmp_path / "c.toml"
    path.write_text(
        f'output_dir = "{tmp_path / "o"}"\n[model]\nname_or_path = "{tiny_llama}"\n'
        f'[data]\ntrain = "{tmp_path / "absent.jsonl"}"\n'
    )
    result = runner.invoke(app, ["rm", str(path), "--quiet"])
    assert result.exit_code == 2
    assert "absent.jsonl: no such file or folder" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["{tmp}/nomodel", "./nomodel", "../nomodel", "sub/nomodel"])
def test_a_missing_local_model_folder_is_named(tmp_path, monkeypatch, value):
    from trainers.config import validate_config
    from trainers.model import ModelError, load_tokenizer

    (tmp_path / "here" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    value = value.format(tmp=tmp_path)
    raw = {"output_dir": "o", "model": {"name_or_path": value}, "data": {"train": "t.jsonl"}}
    with pytest.raises(ModelError, match=f"^model.name_or_path: no such folder: {value}$"):
        load_tokenizer(validate_config(raw))


def test_hub_ids_and_existing_folders_are_not_taken_for_missing_folders(tmp_path, monkeypatch):
    from trainers.model import check_local

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "rm").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in ("meta-llama/Llama-3.1-8B", "gpt2", "models/rm", "./models", "~/models/rm"):
        check_local(value, "model.name_or_path")  # no error: a Hub id or a real folder
    with pytest.raises(ValueError, match="no such folder: ~/models/none"):
        check_local("~/models/none", "model.tokenizer")
    config = tmp_path / "c.toml"
    config.write_text(
        'output_dir = "o"\n[model]\nname_or_path = "~/models/rm"\n[data]\ntrain = "t"\n'
    )
    # from_pretrained does not expand "~": the config does it
    assert load_config(config).model.name_or_path == str(tmp_path / "models" / "rm")


def test_cli_missing_model_folder_and_short_quiet_flag(tmp_path, bt_file):
    path = tmp_path / "c.toml"
    path.write_text(
        f'output_dir = "{tmp_path / "o"}"\n[model]\nname_or_path = "{tmp_path / "nomodel"}"\n'
        f'[data]\ntrain = "{bt_file}"\n'
    )
    result = CliRunner().invoke(app, ["rm", str(path), "-q"])
    assert result.exit_code == 2
    assert f"error: model.name_or_path: no such folder: {tmp_path / 'nomodel'}" in result.output
    assert "Repo id" not in result.output and "Traceback" not in result.output
