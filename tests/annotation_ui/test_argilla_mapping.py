"""The Argilla mappings without a server: tasks -> settings, rows -> records, responses ->
raw annotation rows, preference strength <-> label."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from annotation_ui import argilla_io as io
from annotation_ui import importing
from annotation_ui.cli import app
from annotation_ui.export import PREFERENCE_COLUMNS, RATING_COLUMNS
from annotation_ui.tasks import LEVELS, PREFERENCE_CHOICES, default_guidelines
from helpsteer.attributes import ATTRIBUTES
from helpsteer.conversation import flat_to_messages

from .conftest import MULTI_TURN, write_jsonl

runner = CliRunner()

# --- labels ----------------------------------------------------------------------------


def test_every_strength_round_trips_through_its_label():
    labels = io.preference_labels()
    assert list(labels) == ["-3", "-2", "-1", "0", "1", "2", "3"]
    for strength, text in PREFERENCE_CHOICES:
        label = io.strength_label(strength)
        assert labels[label] == text
        assert io.label_strength(label) == strength


@pytest.mark.parametrize("bad", [4, -4, True, "1", 1.5])
def test_strength_outside_the_scale_has_no_label(bad):
    with pytest.raises(io.ArgillaIOError, match="-3..3"):
        io.strength_label(bad)


@pytest.mark.parametrize("bad", ["4", "+1", "Response 1 is better", ""])
def test_unknown_label_has_no_strength(bad):
    with pytest.raises(io.ArgillaIOError, match="unknown label"):
        io.label_strength(bad)


# --- settings --------------------------------------------------------------------------


def _questions(spec):
    return {q["name"]: q for q in spec["questions"]}


def test_rating_settings_come_from_the_task_definitions():
    spec = io.settings_spec("rating", default_guidelines(), 3)
    assert [(f["type"], f["name"]) for f in spec["fields"]] == [
        ("chat", "messages"),
        ("text", "response"),
    ]
    questions = _questions(spec)
    assert list(questions) == list(ATTRIBUTES)
    for name, question in questions.items():
        assert question["type"] == "rating" and question["values"] == [0, 1, 2, 3, 4]
        assert question["required"] == (name == "helpfulness")
        # every level's wording is the one tasks.py defines
        for level, text in enumerate(LEVELS[name]):
            assert f"{level}: {text}" in question["description"]
        assert len(question["description"]) <= 1000  # argilla-server's limit
    assert spec["min_submitted"] == 3
    assert spec["guidelines"] == default_guidelines()
    assert [m["name"] for m in spec["metadata"]] == ["item_id", "source"]


def test_preference_settings_have_labels_justification_and_optional_ratings():
    spec = io.settings_spec("preference", "Be fair.", 2, io.BASE_METADATA + ("model_1",))
    assert [f["name"] for f in spec["fields"]] == ["messages", "response_1", "response_2"]
    questions = _questions(spec)
    label = questions["preference"]
    assert label["type"] == "label" and label["required"]
    assert label["labels"] == {str(s): text for s, text in PREFERENCE_CHOICES}
    assert questions["justification"]["type"] == "text"
    assert questions["justification"]["required"]
    side = [n for n in questions if n.startswith(("r1_", "r2_"))]
    assert side == [f"{s}_{a}" for s in ("r1", "r2") for a in ATTRIBUTES]
    assert not any(questions[n]["required"] for n in side)
    visible = {m["name"]: m["visible_for_annotators"] for m in spec["metadata"]}
    assert visible == {"item_id": True, "source": True, "model_1": False}


def test_preference_settings_without_attribute_ratings():
    spec = io.settings_spec("preference", "g", 1, attribute_ratings=False)
    assert list(_questions(spec)) == ["preference", "justification"]


@pytest.mark.parametrize(
    ("kind", "guidelines", "k", "message"),
    [
        ("ranking", "g", 1, "unknown task kind"),
        ("rating", "g", 0, "at least 1 annotator"),
        ("rating", "x" * 10_001, 1, "at most 10000"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(kind, guidelines, k, message):
    with pytest.raises(io.ArgillaIOError, match=message):
        io.settings_spec(kind, guidelines, k)


def test_dataset_kind_from_questions():
    assert io.dataset_kind(io.question_names("rating")) == "rating"
    assert io.dataset_kind(io.question_names("preference")) == "preference"
    with pytest.raises(io.ArgillaIOError, match="not an annotation-task dataset"):
        io.dataset_kind(["label", "text"])


# --- rows -> items -> records ----------------------------------------------------------


def test_rating_rows_become_records_with_judge_suggestions(tmp_path):
    path = write_jsonl(
        tmp_path / "judged.jsonl",
        [
            {"prompt": MULTI_TURN, "response": "It is 12.", "model": "m-a", "helpfulness": 3.4,
             "correctness": 2.5, "coherence": None},
            {"prompt": "Say hi", "response": "Hi!", "model": "m-b", "helpfulness": 9},
        ],
    )  # fmt: skip
    data = io.read_push_items(str(path))
    assert data.kind == "rating" and data.metadata == ("item_id", "source", "model")
    assert [r["line"] for r in data.rejected] == [2]
    assert "helpfulness" in data.rejected[0]["reason"] and "0..4" in data.rejected[0]["reason"]
    [first] = data.items
    # the same item id as the web app's importer gives
    assert first.key == importing.rating_key(MULTI_TURN, "It is 12.")
    assert first.suggestions == {"helpfulness": 3, "correctness": 3}  # rounded half away
    assert first.metadata == {"item_id": first.key, "source": "judged.jsonl", "model": "m-a"}
    record = io.record_spec(first, agent="judge:smol")
    assert record["id"] == first.key
    assert record["fields"]["messages"] == flat_to_messages(MULTI_TURN)
    assert len(record["fields"]["messages"]) == 3
    assert record["fields"]["response"] == "It is 12."
    assert {s["agent"] for s in record["suggestions"]} == {"judge:smol"}
    assert data.suggested == 1


def test_list_valued_judge_columns_follow_the_responses_list(tmp_path):
    rows = [{"prompt": "List", "responses": ["a", "b"], "helpfulness": [0, 4.0]}]
    data = io.read_push_items(str(write_jsonl(tmp_path / "l.jsonl", rows)))
    assert [i.key for i in data.items] == [
        importing.rating_key("List", "a"),
        importing.rating_key("List", "b"),
    ]
    assert [i.suggestions for i in data.items] == [{"helpfulness": 0}, {"helpfulness": 4}]
    rows = [{"prompt": "List", "responses": ["a", "b"], "helpfulness": [1, 2, 3]}]
    data = io.read_push_items(str(write_jsonl(tmp_path / "l.jsonl", rows)))
    assert data.rejected[0]["reason"] == "helpfulness: 3 values for 2 responses"


def test_preference_rows_suggest_a_label_and_keep_model_names(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"pair_id": "p0", "prompt": "Colour?", "response_1": "Blue", "response_2": "Red",
             "preference_strength": -2, "model_1": "m-a", "model_2": "m-b"},
            {"pair_id": "p1", "prompt": "Fruit?", "response_1": "Apple", "response_2": "Pear"},
        ],
    )  # fmt: skip
    data = io.read_push_items(str(path))
    assert data.kind == "preference" and not data.rejected
    p0, p1 = data.items
    assert (p0.key, p1.key) == ("p0", "p1")
    assert p0.suggestions == {"preference": "-2"} and p1.suggestions == {}
    assert p0.metadata["model_2"] == "m-b"
    record = io.record_spec(p0)
    assert record["fields"]["response_1"] == "Blue" and record["fields"]["response_2"] == "Red"
    assert record["suggestions"] == [
        {"question_name": "preference", "value": "-2", "agent": io.DEFAULT_AGENT}
    ]
    assert io.read_push_items(str(path), suggestions=False).items[0].suggestions == {}


def test_pairs_made_from_a_responses_list_carry_no_strength(tmp_path):
    path = write_jsonl(
        tmp_path / "synth.jsonl",
        [{"prompt": "Q", "responses": ["a", "b", "c"], "preference_strength": 2}],
    )
    data = io.read_push_items(str(path), kind="preference")
    assert len(data.items) == 3 and all(not i.suggestions for i in data.items)


def test_a_non_numeric_judge_column_rejects_the_row(tmp_path):
    path = write_jsonl(
        tmp_path / "x.jsonl", [{"prompt": "Q", "response": "A", "verbosity": "lots"}]
    )
    data = io.read_push_items(str(path))
    assert not data.items
    assert data.rejected == [
        {"source": str(path), "line": 1, "reason": "verbosity: expected a judge score 0..4, "
         "got 'lots'"}
    ]  # fmt: skip


# --- responses -> raw rows -------------------------------------------------------------

USERS = {"u1": "alice", "u2": "bob"}


def _response(user, values, status="submitted", updated="2024-05-01T12:00:00.123456"):
    return {
        "user_id": user,
        "status": status,
        "values": {k: {"value": v} for k, v in values.items()},
        "inserted_at": "2024-05-01T11:00:00",
        "updated_at": updated,
    }


def _record(external_id, fields, responses):
    return {"id": "uuid-" + external_id, "external_id": external_id, "fields": fields,
            "metadata": {"item_id": external_id}, "responses": responses}  # fmt: skip


RATING_FIELDS = {"messages": flat_to_messages(MULTI_TURN), "response": "It is 12."}
PAIR_FIELDS = {"messages": [{"role": "user", "content": "Colour?"}], "response_1": "Blue",
               "response_2": "Red"}  # fmt: skip


def test_rating_responses_become_one_row_per_annotator():
    full = dict(zip(ATTRIBUTES, [3, 4, 4, 1, 2], strict=True))
    records = [
        _record(
            "r0",
            RATING_FIELDS,
            [
                _response("u1", full),
                _response("u2", {"helpfulness": 2}, updated="2024-05-01T12:00:00+02:00"),
                _response("u3", full),
                _response("u1", {"helpfulness": 1}, status="draft"),
                _response("u2", {}, status="discarded"),
            ],
        ),
        _record("r1", RATING_FIELDS, []),
    ]
    result = io.raw_rows("rating", records, USERS)
    assert result.counts == {"records": 2, "submitted": 3, "draft": 1, "discarded": 1}
    frame = io.frames([result])["ratings"]
    assert frame.columns == list(RATING_COLUMNS)
    assert frame["annotator_id"].to_list() == ["alice", "bob", "u3"]  # unknown user keeps its id
    alice, bob, _ = frame.iter_rows(named=True)
    assert alice["prompt"] == MULTI_TURN and alice["item_id"] == "r0"
    assert [alice[a] for a in ATTRIBUTES] == [3, 4, 4, 1, 2]
    assert [bob[a] for a in ATTRIBUTES] == [2, None, None, None, None]  # empty = not ratable
    assert alice["created_at"] == "2024-05-01T12:00:00.123+00:00"
    assert bob["created_at"] == "2024-05-01T10:00:00.000+00:00"
    assert all(frame.schema[a] == pl.Int64 for a in ATTRIBUTES)


def test_preference_responses_map_labels_back_and_split_off_side_ratings():
    records = [
        _record(
            "p0",
            PAIR_FIELDS,
            [
                _response("u1", {"preference": "-3", "justification": " Blue is a colour. ",
                                 "r1_helpfulness": 4, "r1_verbosity": 2}),
                _response("u2", {"preference": "1", "justification": "Red is nicer."}),
            ],
        )
    ]  # fmt: skip
    result = io.raw_rows("preference", records, USERS)
    frames = io.frames([result])
    prefs = frames["preferences"]
    assert prefs.columns == list(PREFERENCE_COLUMNS)
    assert prefs["preference_strength"].to_list() == [-3, 1]
    assert prefs["justification"].to_list() == ["Blue is a colour.", "Red is nicer."]
    assert prefs.row(0, named=True)["prompt"] == "Colour?"
    side = frames["ratings"]
    assert side.height == 1
    row = side.row(0, named=True)
    assert row["item_id"] == importing.rating_key("Colour?", "Blue")
    assert row["response"] == "Blue" and row["annotator_id"] == "alice"
    assert (row["helpfulness"], row["correctness"], row["verbosity"]) == (4, None, 2)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"justification": "no label here"}, "no label chosen"),
        ({"preference": "7", "justification": "odd label"}, "unknown label '7'"),
        ({"preference": "0", "r2_coherence": 9}, "r2_coherence: expected a rating 0-4"),
    ],
)
def test_unusable_submitted_responses_are_rejected_with_the_reason(values, reason):
    records = [
        _record("p0", PAIR_FIELDS, [_response("u2", values), _response("u1", {"preference": "0"})])
    ]
    result = io.raw_rows("preference", records, USERS)
    assert len(result.preferences) == 1 and result.preferences[0]["annotator_id"] == "alice"
    [rejected] = result.rejected
    assert rejected["record"] == "p0" and rejected["annotator_id"] == "bob"
    assert reason in rejected["reason"]


def test_a_conversation_that_has_no_flat_form_is_rejected():
    fields = {"messages": [{"role": "system", "content": "Be nice"}], "response": "x"}
    result = io.raw_rows(
        "rating", [_record("r9", fields, [_response("u1", {"helpfulness": 1})])], USERS
    )
    assert not result.ratings and "flat form" in result.rejected[0]["reason"]


def test_empty_pull_still_has_the_columns():
    frames = io.frames([io.PullResult()])
    assert frames["ratings"].columns == list(RATING_COLUMNS) and frames["ratings"].height == 0
    assert frames["preferences"].schema["preference_strength"] == pl.Int64


# --- users file ------------------------------------------------------------------------


def test_users_csv_defaults_and_errors(tmp_path):
    good = tmp_path / "users.csv"
    good.write_text("username,password,role\nann,pass-word-1,\nlead,pass-word-2,admin\n")
    assert io.read_users_csv(good) == [
        {"username": "ann", "password": "pass-word-1", "role": "annotator", "first_name": "ann"},
        {"username": "lead", "password": "pass-word-2", "role": "admin", "first_name": "lead"},
    ]
    cases = {
        "name,password\nann,pass-word-1\n": "missing username",
        "username,password\nann,short\n": "line 2: password of 'ann' needs at least 8",
        "username,password,role\nann,pass-word-1,owner\n": "line 2: role 'owner'",
        "username,password\nann,pass-word-1\n,pass-word-1\n": "line 3: username is empty",
    }
    for text, message in cases.items():
        good.write_text(text)
        with pytest.raises(io.ArgillaIOError, match=message):
            io.read_users_csv(good)


# --- SDK objects (no server: the connection check is skipped) --------------------------


@pytest.fixture
def offline_client(monkeypatch):
    rg = pytest.importorskip("argilla")
    monkeypatch.setattr(rg.Argilla, "_validate_connection", lambda self: None)
    return rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline-key")


def test_sdk_settings_and_records(offline_client):
    import argilla as rg

    spec = io.settings_spec("preference", "Be fair.", 2, io.BASE_METADATA + ("model_1",))
    settings = io.build_settings(spec, offline_client)
    assert isinstance(settings.fields["messages"], rg.ChatField)
    assert isinstance(settings.fields["response_2"], rg.TextField)
    assert settings.questions["preference"].labels == list(io.preference_labels())
    assert settings.questions["r1_helpfulness"].values == [0, 1, 2, 3, 4]
    assert settings.questions["justification"].required
    assert settings.distribution.min_submitted == 2
    assert settings.guidelines == "Be fair."
    assert [m.name for m in settings.metadata] == ["item_id", "source", "model_1"]
    item = io.PushItem("p0", "preference", "Q", ("a", "b"), {"item_id": "p0"}, {"preference": "3"})
    record = io.to_record(io.record_spec(item, agent="judge"))
    assert record.id == "p0" and record.metadata["item_id"] == "p0"
    assert record.suggestions["preference"].value == "3"
    assert record.suggestions["preference"].agent == "judge"


# --- CLI errors ------------------------------------------------------------------------


def test_push_with_unreachable_server_fails_in_one_line(tmp_path):
    pytest.importorskip("argilla")
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "Q", "response": "A"}])
    args = ["push", str(path), "--api-url", "http://127.0.0.1:9", "--api-key", "key-key-key"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "error: cannot use Argilla at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "labelstudio"], "--to: only argilla"),
        (["--agent", "!!"], "--agent: '!!' is not a valid"),
        (["--kind", "ranking"], "--kind: expected one of auto"),
        (["--k", "0"], "at least 1 annotator"),
    ],
)
def test_push_refuses_bad_options_before_connecting(tmp_path, extra, message):
    pytest.importorskip("argilla")
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "Q", "response": "A"}])
    result = runner.invoke(app, ["push", str(path), "--api-url", "http://127.0.0.1:9", *extra])
    # a usage error: exit status 2 and one line, as for every `hs` command
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1


def test_push_of_a_file_without_usable_rows(tmp_path):
    pytest.importorskip("argilla")
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "response": ""}) + "\n")
    result = runner.invoke(app, ["push", str(path), "--rejected", str(tmp_path / "bad.jsonl")])
    assert result.exit_code == 1 and "no usable rows" in result.output
    assert "response: expected non-empty text" in (tmp_path / "bad.jsonl").read_text()
