"""Round trip against a real argilla-server 2.8 on loopback (tools/argilla-stack): push both
tasks, answer as two annotators, pull, and aggregate the pull with `hs build-dataset`.

Skips when the stack's scripts are absent or the server cannot start. Set
ARGILLA_STACK_DIR to choose its state folder and ARGILLA_STACK_KEEP=1 to keep it running.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from annotation_ui.cli import app
from annotation_ui.tasks import default_guidelines
from helpsteer.attributes import ATTRIBUTES

from .conftest import MULTI_TURN, write_jsonl

pytestmark = pytest.mark.argilla
STACK = Path(__file__).resolve().parents[2] / ".." / "shared" / "tools" / "argilla-stack"
runner = CliRunner()


@pytest.fixture(scope="module")
def argilla_env():
    pytest.importorskip("argilla", reason="the `argilla` extra is not installed")
    if not (STACK / "start.sh").is_file():
        pytest.skip(f"argilla-stack not found at {STACK}")
    state = os.environ.get("ARGILLA_STACK_DIR", "/tmp/argilla-stack")
    try:
        subprocess.run(
            [str(STACK / "start.sh"), state],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        lines = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        # start.sh ends with what it stopped; the cause is the line before that clean-up
        causes = [line for line in lines if "stopped" not in line] or lines
        pytest.skip(f"argilla-stack did not start: {' | '.join(causes[-2:])}")
    lines = Path(state, "env").read_text().splitlines()
    env = dict(line.strip().split("=", 1) for line in lines if "=" in line)
    yield env
    if not os.environ.get("ARGILLA_STACK_KEEP"):
        subprocess.run([str(STACK / "stop.sh"), state], check=False, capture_output=True)


@pytest.fixture
def names(argilla_env):
    """Unique names for this test's workspace, datasets and users; deleted afterwards."""
    import argilla as rg

    run = uuid.uuid4().hex[:8]
    made = {
        "workspace": f"hs-ws-{run}",
        "ratings": f"hs-ratings-{run}",
        "prefs": f"hs-prefs-{run}",
        "users": [f"hs-ann1-{run}", f"hs-ann2-{run}"],
    }
    yield made
    client = _client(argilla_env)
    workspace = client.workspaces(made["workspace"])
    if workspace is not None:
        for key in ("ratings", "prefs"):
            dataset = client.datasets(name=made[key], workspace=workspace)
            if dataset is not None:
                dataset.delete()
    for username in made["users"]:
        user = client.users(username)
        if user is not None:
            user.delete()
    if workspace is not None:
        rg.Workspace.delete(workspace)


def _client(env, api_key=None):
    import argilla as rg

    return rg.Argilla(api_url=env["ARGILLA_API_URL"], api_key=api_key or env["ARGILLA_API_KEY"])


def _invoke(env, *args):
    cli_env = {"ARGILLA_API_URL": env["ARGILLA_API_URL"], "ARGILLA_API_KEY": env["ARGILLA_API_KEY"]}
    result = runner.invoke(app, [str(a) for a in args], env=cli_env)
    return result


RATINGS = [
    {"item_id": "r0", "prompt": MULTI_TURN, "response": "It is **12**.", "model": "m-a",
     "helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2},
    {"item_id": "r1", "prompt": "Say hi", "response": "Hi!", "model": "m-b", "helpfulness": 3.4},
]  # fmt: skip
PAIRS = [
    {"pair_id": "p0", "prompt": "Name a colour", "response_1": "Blue",
     "response_2": "I like *red* best.", "preference_strength": -2, "model_1": "m-a",
     "model_2": "m-b"},
    {"pair_id": "p1", "prompt": "Name a fruit", "response_1": "Apple", "response_2": "Pear"},
]  # fmt: skip


def _rating(h, c, co, cx, v):
    return dict(zip(ATTRIBUTES, (h, c, co, cx, v), strict=True))


# What each annotator answers: annotator 1 through the REST call the Argilla UI makes, with
# their own API key; annotator 2 logged by the owner with their user id.
ANN1 = {
    "r0": _rating(3, 4, 4, 1, 2),
    "r1": _rating(2, 3, 4, 0, 1),
    "p0": {"preference": "-3", "justification": "Blue answers; red is chatty.",
           "r1_helpfulness": 4, "r1_verbosity": 2},
    "p1": {"preference": "0", "justification": "Both are fruits, equally fine."},
}  # fmt: skip
ANN2 = {
    "r0": _rating(4, 4, 3, 2, 2),
    "r1": _rating(2, 2, 4, 0, 2),
    "p0": {"preference": "-2", "justification": "Response 1 is direct. It names a colour."},
}


def test_push_answer_pull_build(argilla_env, names, tmp_path):
    import argilla as rg
    import httpx

    ratings = write_jsonl(tmp_path / "ratings.jsonl", RATINGS)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    users_csv = tmp_path / "users.csv"
    users_csv.write_text("username,password\n" + "".join(f"{u},pass-{u}\n" for u in names["users"]))
    ws = ["--workspace", names["workspace"]]
    push = ["push", "--to", "argilla", ratings, "--name", names["ratings"], *ws, "--k", "2"]
    pushed = _invoke(argilla_env, *push, "--create-users", users_csv, "--agent", "judge:test")
    assert pushed.exit_code == 0, pushed.output
    assert "2 rating records (2 with suggestions by 'judge:test')" in pushed.output
    assert "users: 2 created" in pushed.output
    pushed = _invoke(argilla_env, "push", pairs, "--name", names["prefs"], *ws, "--k", "2",
                     "--create-users", users_csv)  # fmt: skip
    assert pushed.exit_code == 0, pushed.output
    assert "users: 0 created, 2 existing, 0 added" in pushed.output

    client = _client(argilla_env)
    workspace = client.workspaces(names["workspace"])
    rating_ds = client.datasets(name=names["ratings"], workspace=workspace)
    pref_ds = client.datasets(name=names["prefs"], workspace=workspace)
    _check_settings(rating_ds, pref_ds)
    records = {r.id: r for ds in (rating_ds, pref_ds) for r in ds.records(with_suggestions=True)}
    assert sorted(records) == ["p0", "p1", "r0", "r1"]
    assert records["r1"].suggestions["helpfulness"].value == 3
    assert records["r1"].suggestions["helpfulness"].agent == "judge:test"
    assert records["p0"].suggestions["preference"].value == "-2"
    assert records["r0"].metadata["model"] == "m-a"
    assert [m.role for m in records["r0"].fields["messages"]] == ["user", "assistant", "user"]

    # annotator 1 submits through the UI's REST call with their own key
    ann1, ann2 = (client.users(u) for u in names["users"])
    key = httpx.get(
        f"{argilla_env['ARGILLA_API_URL']}/api/v1/users/{ann1.id}",
        headers={"X-Argilla-Api-Key": argilla_env["ARGILLA_API_KEY"]},
    ).json()["api_key"]
    as_ann1 = _client(argilla_env, api_key=key)
    assert as_ann1.me.username == names["users"][0]
    for item, values in ANN1.items():
        reply = as_ann1.api.http_client.post(
            f"/api/v1/records/{records[item]._server_id}/responses",
            json={"values": {q: {"value": v} for q, v in values.items()}, "status": "submitted"},
        )
        assert reply.status_code == 201, reply.text
    # annotator 2's answers logged by the owner; p1 is discarded, so it is not exported
    for ds in (rating_ds, pref_ds):
        logged = []
        for record in ds.records:
            values = ANN2.get(record.id)
            status = "submitted" if values else "discarded"
            responses = [
                rg.Response(q, v, user_id=ann2.id, status=status)
                for q, v in (values or {"justification": "skip"}).items()
            ]
            logged.append(rg.Record(id=record.id, fields=record.fields.to_dict(),
                                    responses=responses))  # fmt: skip
        ds.records.log(logged)

    out = tmp_path / "pulled"
    pulled = _invoke(argilla_env, "pull", names["ratings"], names["prefs"], *ws, "--out", out)
    assert pulled.exit_code == 0, pulled.output
    _check_pulled(out, names)
    _check_build(out, tmp_path)

    # a re-push updates the records in place; a task of the other kind is refused
    again = _invoke(argilla_env, "push", ratings, "--name", names["ratings"], *ws)
    assert again.exit_code == 0, again.output
    assert len(list(rating_ds.records)) == 2
    repulled = _invoke(argilla_env, "pull", names["ratings"], *ws, "--out", tmp_path / "again")
    assert repulled.exit_code == 0, repulled.output
    # the annotators' answers survive the re-push
    assert (tmp_path / "again" / "ratings.jsonl").read_text().count("\n") == 4
    wrong = _invoke(argilla_env, "push", pairs, "--name", names["ratings"], *ws)
    assert wrong.exit_code == 1
    assert "is a rating task; this input is preference" in wrong.output


def _check_settings(rating_ds, pref_ds):
    settings = rating_ds.settings
    assert settings.distribution.min_submitted == 2
    assert settings.guidelines == default_guidelines().strip()  # the server strips it
    assert [q.name for q in settings.questions] == list(ATTRIBUTES)
    assert settings.questions["helpfulness"].values == [0, 1, 2, 3, 4]
    assert [f.name for f in settings.fields] == ["messages", "response"]
    assert {m.name for m in settings.metadata} == {"item_id", "source", "model"}
    prefs = pref_ds.settings
    assert prefs.questions["preference"].labels == ["-3", "-2", "-1", "0", "1", "2", "3"]
    assert prefs.questions["justification"].required
    assert not prefs.questions["r2_verbosity"].required


def _check_pulled(out: Path, names):
    ann1, ann2 = names["users"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ratings": 5, "preferences": 3, "rejected": 0}
    assert manifest["datasets"][names["prefs"]] == {
        "records": 2, "submitted": 3, "draft": 0, "discarded": 1
    }  # fmt: skip
    prefs = pl.read_ndjson(out / "preferences.jsonl")
    got = {(r["pair_id"], r["annotator_id"]): r["preference_strength"] for r in prefs.to_dicts()}
    assert got == {("p0", ann1): -3, ("p0", ann2): -2, ("p1", ann1): 0}
    assert prefs.filter(pl.col("pair_id") == "p0")["prompt"].to_list() == ["Name a colour"] * 2
    ratings = pl.read_ndjson(out / "ratings.jsonl")
    mine = ratings.filter(pl.col("item_id") == "r0").sort("annotator_id")
    assert mine["prompt"].to_list() == [MULTI_TURN, MULTI_TURN]
    assert mine["helpfulness"].to_list() == [3, 4]
    side = ratings.filter(pl.col("item_id").str.starts_with("r-"))
    assert side["response"].to_list() == ["Blue"] and side["helpfulness"].to_list() == [4]
    assert ratings["created_at"].str.ends_with("+00:00").all()


def _check_build(out: Path, tmp_path: Path):
    from helpsteer.cli import app as hs

    built = tmp_path / "built"
    args = ["build-dataset", "-q", "--ratings", out / "ratings.jsonl", "--preferences",
            out / "preferences.jsonl", "--out", built, "--set", "aggregate.min_annotators=2",
            "--set", "aggregate.preference_min_annotators=2"]  # fmt: skip
    result = runner.invoke(hs, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    ratings = pl.concat(pl.read_parquet(p) for p in sorted((built / "ratings").glob("*.parquet")))
    by_response = {r["response"]: r for r in ratings.to_dicts()}
    assert set(by_response) == {"It is **12**.", "Hi!"}  # the 1-annotator side rating is dropped
    # mean of two annotators, rounded half away from zero
    assert [by_response["It is **12**."][a] for a in ATTRIBUTES] == [4, 4, 4, 2, 2]
    assert [by_response["Hi!"][a] for a in ATTRIBUTES] == [2, 3, 4, 0, 2]
    files = sorted((built / "preference").glob("*.parquet"))
    prefs = pl.concat(pl.read_parquet(p) for p in files)
    assert prefs["prompt"].to_list() == ["Name a colour"]
    assert prefs["preference_strength"].to_list() == [-3]  # mean -2.5 rounds away from zero


# --- HelpSteer3 tasks -------------------------------------------------------------------

HS3_SYSTEM = {"role": "system", "content": "You answer in Python."}
HS3_PAIRS = [
    {"domain": "code", "language": "python",
     "context": [HS3_SYSTEM, {"role": "user", "content": "Write `add`."}],
     "response1": "def add(a, b):\n    return a + b", "response2": "add = 0",
     "overall_preference": -2},
    {"domain": "multilingual", "language": "french",
     "context": [{"role": "user", "content": "Dis bonjour."}],
     "response1": "Hello!", "response2": "Bonjour !", "overall_preference": 2},
]  # fmt: skip
HS3_FEEDBACK = [
    {"domain": "stem", "language": "english", "context": [{"role": "user", "content": "2+2?"}],
     "response1": "4", "response2": "5", "feedback1": ["Correct and short."],
     "feedback2": ["Wrong: 2+2 is 4.", "No working shown."]},
]  # fmt: skip


@pytest.fixture
def hs3_names(argilla_env):
    """A workspace, three datasets and users (two annotators, one admin) for this test."""
    import argilla as rg

    run = uuid.uuid4().hex[:8]
    made = {"workspace": f"hs3-ws-{run}", "datasets": [f"hs3-{t}-{run}" for t in ("p", "f", "e")],
            "users": [f"hs3-ann1-{run}", f"hs3-ann2-{run}", f"hs3-adm-{run}"]}  # fmt: skip
    yield made
    client = _client(argilla_env)
    workspace = client.workspaces(made["workspace"])
    if workspace is not None:
        for name in made["datasets"]:
            dataset = client.datasets(name=name, workspace=workspace)
            if dataset is not None:
                dataset.delete()
    for username in made["users"]:
        user = client.users(username)
        if user is not None:
            user.delete()
    if workspace is not None:
        rg.Workspace.delete(workspace)


def _api_key(env, user) -> str:
    import httpx

    reply = httpx.get(
        f"{env['ARGILLA_API_URL']}/api/v1/users/{user.id}",
        headers={"X-Argilla-Api-Key": env["ARGILLA_API_KEY"]},
    )
    return reply.json()["api_key"]


def _invoke_as(env, key, *args):
    cli_env = {"ARGILLA_API_URL": env["ARGILLA_API_URL"], "ARGILLA_API_KEY": key}
    return runner.invoke(app, [str(a) for a in args], env=cli_env)


def test_hs3_tasks_push_answer_pull_build(argilla_env, hs3_names, tmp_path):
    """HelpSteer3 preference, feedback and edit datasets: settings on the server, answers
    submitted by two annotators with their own keys, pulled with an admin key (an
    annotator's key is refused in one line), then aggregated by `hs build-dataset`."""
    from helpsteer.cli import app as hs

    pairs = write_jsonl(tmp_path / "pairs.jsonl", HS3_PAIRS)
    feedback = write_jsonl(tmp_path / "feedback.jsonl", HS3_FEEDBACK)
    users_csv = tmp_path / "users.csv"
    ann1, ann2, adm = hs3_names["users"]
    users_csv.write_text(
        f"username,password,role\n{ann1},pass-{ann1},annotator\n{ann2},pass-{ann2},annotator\n"
        f"{adm},pass-{adm},admin\n"
    )
    p_name, f_name, e_name = hs3_names["datasets"]
    ws = ["--workspace", hs3_names["workspace"]]
    for args in ([pairs, "--name", p_name, "--create-users", users_csv],
                 [pairs, "--kind", "feedback", "--name", f_name],
                 [feedback, "--name", e_name]):  # fmt: skip
        pushed = _invoke(argilla_env, "push", *args, *ws, "--k", "2")
        assert pushed.exit_code == 0, pushed.output
    assert "2 edit records (2 with the original response suggested)" in pushed.output

    client = _client(argilla_env)
    workspace = client.workspaces(hs3_names["workspace"])
    p_ds, f_ds, e_ds = (
        client.datasets(name=n, workspace=workspace) for n in (p_name, f_name, e_name)
    )
    questions = p_ds.settings.questions
    assert questions["score"].labels == ["-3", "-2", "-1", "0", "1", "2", "3"]
    assert questions["score"].required and questions["reasoning"].required
    assert [f.name for f in p_ds.settings.fields] == ["messages", "response1", "response2"]
    metadata = {m.name: m for m in p_ds.settings.metadata}
    assert {"domain", "language"} <= set(metadata) and metadata["domain"].visible_for_annotators
    assert [q.name for q in f_ds.settings.questions] == ["feedback1", "feedback2"]
    assert [f.name for f in e_ds.settings.fields] == ["messages", "original_response", "feedback"]
    p_records = list(p_ds.records)
    code = next(r for r in p_records if r.metadata["domain"] == "code")
    assert [m.role for m in code.fields["messages"]] == ["system", "user"]
    assert code.metadata["language"] == "python"
    e_records = list(e_ds.records(with_suggestions=True))
    wrong = next(r for r in e_records if r.fields["original_response"] == "5")
    assert wrong.suggestions["edited_response"].value == "5"
    assert wrong.suggestions["edited_response"].agent == "original-response"
    assert wrong.fields["feedback"] == "1. Wrong: 2+2 is 4.\n2. No working shown."

    keys = {u: _api_key(argilla_env, client.users(u)) for u in (ann1, ann2, adm)}
    scores = {ann1: {"python": "-3", "french": "2"}, ann2: {"python": "-2", "french": "3"}}
    for n, user in enumerate((ann1, ann2)):
        http = _client(argilla_env, api_key=keys[user]).api.http_client
        answers = [
            (r, {"score": scores[user][r.metadata["language"]],
                 "reasoning": f"{user} explains the score."})
            for r in p_records
        ]  # fmt: skip
        answers += [(r, {"feedback1": f"Good, says {n}.", "feedback2": f"Weak, says {n}."})
                    for r in f_ds.records]  # fmt: skip
        answers += [
            (r, {"edited_response": f"{r.fields['original_response']} (edit {n})",
                 "change_summary": "Followed the feedback."})
            for r in e_records
        ]  # fmt: skip
        for record, values in answers:
            reply = http.post(
                f"/api/v1/records/{record._server_id}/responses",
                json={"values": {q: {"value": v} for q, v in values.items()},
                      "status": "submitted"},
            )  # fmt: skip
            assert reply.status_code == 201, reply.text

    # an annotator's key: one line, exit status 2, nothing written
    refused = _invoke_as(argilla_env, keys[ann1], "pull", p_name, *ws, "--out", tmp_path / "no")
    assert refused.exit_code == 2, refused.output
    assert refused.output.count("\n") == 1
    assert "pull needs an owner or admin API key" in refused.output
    assert not (tmp_path / "no").exists()
    # an admin's key works, and names the annotators through the workspace's members
    out = tmp_path / "pulled"
    pulled = _invoke_as(argilla_env, keys[adm], "pull", p_name, f_name, e_name, *ws, "--out", out)
    assert pulled.exit_code == 0, pulled.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ratings": 0, "preferences": 0, "hs3_preferences": 4,
                                  "hs3_feedback": 2, "hs3_edit": 4, "rejected": 0}  # fmt: skip
    raw = pl.read_ndjson(out / "hs3_preferences.jsonl")
    assert set(raw["annotator_id"]) == {ann1, ann2}
    assert raw.filter(pl.col("language") == "python")["context"].to_list()[0][0] == HS3_SYSTEM
    edits = pl.read_ndjson(out / "hs3_edit.jsonl")
    assert edits.filter(pl.col("original_response") == "5")["feedback"].to_list()[0] == [
        "Wrong: 2+2 is 4.", "No working shown."]  # fmt: skip

    toml = tmp_path / "build.toml"
    inputs = ", ".join(f'"{out / n}"' for n in ("hs3_preferences.jsonl", "hs3_feedback.jsonl",
                                                "hs3_edit.jsonl"))  # fmt: skip
    toml.write_text(
        f'out = "{tmp_path / "built"}"\n[[stages]]\nuses = "load"\npreferences = [{inputs}]\n'
        '[[stages]]\nuses = "aggregate"\npreference_min_annotators = 2\n'
        '[[stages]]\nuses = "split"\nvalidation_fraction = 0.0\n'
        '[[stages]]\nuses = "export"\nformats = ["hs3_preference", "hs3_feedback", "hs3_edit"]\n'
    )
    built = runner.invoke(hs, ["build-dataset", "-q", str(toml)])
    assert built.exit_code == 0, built.output

    def read(name):
        files = sorted((tmp_path / "built" / name).glob("*.parquet"))
        return pl.concat(pl.read_parquet(p) for p in files)

    prefs = {r["language"]: r for r in read("hs3_preference").to_dicts()}
    assert prefs["python"]["overall_preference"] == -3  # mean -2.5 rounds away from zero
    assert prefs["french"]["overall_preference"] == 3  # 2.5 -> 3
    reasons = {i["reasoning"] for i in prefs["python"]["individual_preference"]}
    assert reasons == {f"{ann1} explains the score.", f"{ann2} explains the score."}
    assert prefs["python"]["domain"] == "code"
    fb = read("hs3_feedback")
    assert sorted(len(f) for f in fb["feedback1"].to_list()) == [2, 2]
    assert read("hs3_edit").height == 4
