"""`hs judge code` on bad input: one `error:` line naming the file or option, exit status 2,
and the candidate never run. None of these needs bubblewrap: the input is refused first."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import judge.code as code_module
from judge.cli import app

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sol.py").write_text("def add(a, b):\n    return a + b\n")
    Path("t.py").write_text("assert add(1, 2) == 3\n")
    Path("latin1.py").write_bytes(b'x = "\xff"\n')

    def never(*args, **kwargs):
        raise AssertionError("bad input reached the judge")

    monkeypatch.setattr(code_module, "judge_assert_tests", never)
    monkeypatch.setattr(code_module, "judge_io_cases", never)
    return tmp_path


def assert_usage_error(args: list[str], expected: str) -> None:
    result = runner.invoke(app, ["code", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {expected}"), result.output
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize(
    "args,expected",
    [
        (["nosuch.py", "--tests", "t.py"], "SOLUTION: cannot read nosuch.py: No such file"),
        (["sol.py", "--tests", "nosuch.py"], "--tests: cannot read nosuch.py: No such file"),
        (["sol.py", "--io", "nosuch.json"], "--io: cannot read nosuch.json: No such file"),
        (["sol.py", "--tests", "."], "--tests: cannot read .: Is a directory"),
        (["latin1.py", "--tests", "t.py"], "SOLUTION: latin1.py: expected UTF-8 text, byte 5"),
        (["sol.py", "--tests", "latin1.py"], "--tests: latin1.py: expected UTF-8 text, byte 5"),
        (["sol.py", "--io", "latin1.py"], "--io: latin1.py: expected UTF-8 text, byte 5"),
    ],
)
def test_unreadable_files_are_usage_errors(workdir, args, expected):
    assert_usage_error(args, expected)


@pytest.mark.parametrize(
    "content,expected",
    [
        ('[{"stdin": "a", "stdout', "not valid JSON: "),
        ('{"stdin": "a", "stdout": "a"}', "expected a non-empty JSON list"),
        ("[]", "expected a non-empty JSON list"),
        ('["a"]', 'case 0: expected an object with "stdin" and "stdout"'),
        (
            '[{"stdin": "", "stdout": ""}, {"input": "a", "stdout": "a"}]',
            "case 1: missing 'stdin' (its keys: 'input', 'stdout')",
        ),
        ('[{"stdin": "a"}]', "case 0: missing 'stdout'"),
        ('[{"stdin": null, "stdout": "a"}]', "case 0: 'stdin': expected text, got null"),
        ('[{"stdin": "", "stdout": [1]}]', "case 0: 'stdout': expected text, got [1]"),
    ],
)
def test_malformed_io_files_are_usage_errors(workdir, content, expected):
    Path("io.json").write_text(content)
    assert_usage_error(["sol.py", "--io", "io.json"], f"--io: io.json: {expected}")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_wall_seconds_must_be_a_positive_finite_number(workdir, value):
    expected = "--wall-seconds: expected a number of seconds > 0, got "
    assert_usage_error(["sol.py", "--tests", "t.py", "--wall-seconds", value], expected)
