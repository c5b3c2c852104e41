"""HelpSteer3 tasks in the web app: 7-point preference with reasoning, feedback and edit.

Items come from files in nvidia/HelpSteer3's layouts and from pipeline outputs; answers go
through the HTTP app (CSRF, field caps) and come out in the HelpSteer3 layouts that
`hs build-dataset` reads, which then aggregates them (the loop is tested end to end).
"""

from __future__ import annotations

import io
import json
import sqlite3

import polars as pl
import pytest
from typer.testing import CliRunner

from annotation_ui import export, importing, store
from annotation_ui.cli import app as annotate
from annotation_ui.tasks import MAX_TEXT, AnswerError, parse_answer
from tests.annotation_ui.conftest import PASSWORD, login, make_project, write_jsonl

runner = CliRunner()

SYSTEM = {"role": "system", "content": "You answer in Python."}
PAIRS = [
    {"domain": "code", "language": "python",
     "context": [SYSTEM, {"role": "user", "content": "Write `add`."},
                 {"role": "assistant", "content": "Which types?"},
                 {"role": "user", "content": "Integers."}],
     "response1": "def add(a: int, b: int) -> int:\n    return a + b",
     "response2": "add = lambda: 0", "overall_preference": -2},
    {"domain": "multilingual", "language": "french",
     "context": [{"role": "user", "content": "Dis bonjour."}],
     "response1": "Hello!", "response2": "Bonjour !", "overall_preference": 2},
]  # fmt: skip


def invoke(*args, input=None):
    return runner.invoke(annotate, [str(a) for a in args], input=input)


def open_next(client) -> int:
    response = client.get("/next", follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


# --- answers ----------------------------------------------------------------------------


def test_hs3_preference_answer_needs_a_score_and_reasoning():
    assert parse_answer("hs3_preference", {"score": "-3", "reasoning": "Response 1 runs."}) == {
        "score": -3,
        "reasoning": "Response 1 runs.",
    }
    for form, message in [
        ({"reasoning": "long enough reasoning"}, "score: choose one of the 7"),
        ({"score": "4", "reasoning": "long enough reasoning"}, "expected an integer -3..3"),
        ({"score": "1", "reasoning": "short"}, "reasoning: write at least 10"),
        ({"score": "1", "reasoning": "x" * (MAX_TEXT["reasoning"] + 1)}, "at most 5000"),
    ]:
        with pytest.raises(AnswerError, match=message):
            parse_answer("hs3_preference", form)
    assert parse_answer("hs3_preference", {"reasoning": "half"}, partial=True)["score"] is None


def test_feedback_and_edit_answers():
    with pytest.raises(AnswerError, match="feedback2: write at least 10"):
        parse_answer("feedback", {"feedback1": "Clear and correct.", "feedback2": "bad"})
    original = "The capital is Lyon."
    form = {"edited_response": " The capital is Lyon.\n", "change_summary": "Nothing at all."}
    with pytest.raises(AnswerError, match="identical to the original"):
        parse_answer("edit", form, original=original)
    form["edited_response"] = "The capital is Paris.\r\n"
    answer = parse_answer("edit", form, original=original)
    assert answer == {"edited_response": "The capital is Paris.\n",
                      "change_summary": "Nothing at all."}  # fmt: skip


# --- import -----------------------------------------------------------------------------


def test_import_from_helpsteer3_layouts_with_rejected_rows(tmp_path):
    bad = {"domain": "general", "context": [{"role": "assistant", "content": "Hi"}],
           "response1": "a", "response2": "b", "overall_preference": 7}  # fmt: skip
    path = write_jsonl(tmp_path / "preference.jsonl", [*PAIRS, bad])
    result = importing.read_items(str(path))
    assert result.kind_counts == {"hs3_preference": 2}
    first = result.items[0]
    assert first["context"][0] == SYSTEM and first["domain"] == "code"
    assert (first["response_1"], first["language"]) == (PAIRS[0]["response1"], "python")
    [rejected] = result.rejected
    assert rejected["line"] == 3
    assert "the last message is the assistant's" in rejected["reason"]
    assert "overall_preference: 7" in rejected["reason"]
    # the same pairs as feedback items have keys of their own
    feedback = importing.read_items(str(path), "feedback")
    assert {i["kind"] for i in feedback.items} == {"feedback"}
    assert not {i["item_key"] for i in feedback.items} & {i["item_key"] for i in result.items}

    # a feedback file makes one edit item per response that has feedback
    rows = [{**PAIRS[0], "feedback1": ["Correct and typed."], "feedback2": []}]
    for row in rows:
        row.pop("overall_preference")
    edits = importing.read_items(str(write_jsonl(tmp_path / "feedback.jsonl", rows)))
    assert [(i["kind"], i["response"], i["feedback"]) for i in edits.items] == [
        ("edit", PAIRS[0]["response1"], ["Correct and typed."])
    ]
    # edit-layout files give the original response and its feedback
    edit_row = {"domain": "stem", "language": "english",
                "context": [{"role": "user", "content": "2+2?"}], "original_response": "5",
                "feedback": ["Wrong: it is 4."], "edited_response": "4",
                "change_summary": "x"}  # fmt: skip
    [item] = importing.read_items(str(write_jsonl(tmp_path / "edit.jsonl", [edit_row]))).items
    assert (item["response"], item["feedback"], item["domain"]) == ("5", ["Wrong: it is 4."],
                                                                    "stem")  # fmt: skip


def test_import_hs3_tasks_from_pipeline_outputs(tmp_path):
    synth = [{"prompt": [{"role": "user", "content": "Name a prime."}],
              "responses": ["2", "9", "7"], "domain": "stem"}]  # fmt: skip
    result = importing.read_items(str(write_jsonl(tmp_path / "s.jsonl", synth)), "hs3_preference")
    assert [(i["response_1"], i["response_2"]) for i in result.items] == [
        ("2", "9"), ("2", "7"), ("9", "7")
    ]  # fmt: skip
    assert all(i["domain"] == "stem" and i["language"] is None for i in result.items)
    flat = [{"prompt": "Hi\n<extra_id_1>Assistant\nHello\n<extra_id_1>User\nBye?",
             "response": "Bye!", "feedback": "Too curt."}]  # fmt: skip
    [item] = importing.read_items(str(write_jsonl(tmp_path / "e.jsonl", flat)), "edit").items
    assert [m["role"] for m in item["context"]] == ["user", "assistant", "user"]
    assert item["feedback"] == ["Too curt."]
    missing = write_jsonl(tmp_path / "m.jsonl", [{"prompt": "Hi", "response": "Yo"}])
    with pytest.raises(importing.InputError, match="`feedback`"):
        importing.read_items(str(missing), "edit")


def test_cli_kind_errors_exit_2(tmp_path):
    path = write_jsonl(tmp_path / "preference.jsonl", PAIRS)
    wrong = invoke("import", path, "--db", tmp_path / "p.db", "--kind", "edit")
    assert wrong.exit_code == 2
    assert "a HelpSteer3 preference file makes hs3_preference or feedback items" in wrong.output
    unknown = invoke("import", path, "--db", tmp_path / "p.db", "--kind", "ranking")
    assert unknown.exit_code == 2 and "--kind: expected one of" in unknown.output
    principle = write_jsonl(tmp_path / "principle.jsonl", [{
        "context": [{"role": "user", "content": "Hi"}], "response": "Hello",
        "principle": "Be brief", "fulfilment": "Yes"}])  # fmt: skip
    result = invoke("import", principle, "--db", tmp_path / "p.db")
    assert result.exit_code == 2 and "principle file has no annotation task" in result.output


# --- the web app --------------------------------------------------------------------------


@pytest.fixture
def hs3_project(tmp_path):
    items = importing.read_items(str(write_jsonl(tmp_path / "pairs.jsonl", PAIRS))).items
    users = {"boss": True, "ann1": False, "ann2": False, "ann3": False}
    project = make_project(tmp_path / "hs3.db", items[:1], users, k=3)
    return project, items[0]


def test_hs3_preference_page_submit_and_caps(hs3_project):
    project, item = hs3_project
    client = project.client()
    csrf = login(client, "ann1")
    item_id = open_next(client)
    page = client.get(f"/item/{item_id}").text
    # the whole multi-turn context, the system message included, and the metadata
    assert page.count('class="turn user"') == 2 and page.count('class="turn system"') == 1
    assert 'class="turn assistant"' in page and "Which types?" in page
    assert 'id="item-domain">domain: code' in page and "language: python" in page
    assert page.count('name="score"') == 7 and "Response 1 is much better" in page

    url = f"/item/{item_id}/submit"
    no_csrf = client.post(url, data={"score": "-2", "reasoning": "Response 1 is typed."})
    assert no_csrf.status_code == 403
    huge = {"csrf_token": csrf, "score": "-2", "reasoning": "y" * (MAX_TEXT["reasoning"] + 1)}
    too_long = client.post(url, data=huge)
    assert too_long.status_code == 422 and "at most 5000" in too_long.text
    draft = client.post(f"/item/{item_id}/draft", data={"csrf_token": csrf, "score": "1"},
                        headers={"Accept": "application/json"})  # fmt: skip
    assert draft.status_code == 200
    assert 'value="1" checked' in client.get(f"/item/{item_id}").text
    form = {"csrf_token": csrf, "score": "-2", "reasoning": "Response 1 is typed and correct."}
    assert client.post(url, data=form, follow_redirects=False).status_code == 303
    conn = project.conn()
    [(answer,)] = conn.execute("SELECT answer FROM annotations").fetchall()
    conn.close()
    assert json.loads(answer) == {"score": -2, "reasoning": "Response 1 is typed and correct."}


def _answer_all(project, form_for):
    """Each annotator answers every item they are given with `form_for(n, item)`."""
    for n, username in enumerate(("ann1", "ann2", "ann3")):
        client = project.client()
        csrf = login(client, username)
        while True:
            response = client.get("/next", follow_redirects=False)
            if response.status_code != 303:
                break
            item_id = int(response.headers["location"].rsplit("/", 1)[1])
            conn = project.conn()
            item = store.get_item(conn, item_id)
            conn.close()
            done = client.post(f"/item/{item_id}/submit",
                               data={"csrf_token": csrf, **form_for(n, item)},
                               follow_redirects=False)  # fmt: skip
            assert done.status_code == 303, done.text


def test_web_app_export_build_dataset_loop(tmp_path):
    """web app -> `hs annotate export` -> `hs build-dataset`: HelpSteer3 preference with
    individual_preference, feedback and edit configs."""
    from helpsteer.cli import app as hs

    pairs = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    db = tmp_path / "loop.db"
    assert invoke("import", pairs, "--db", db).exit_code == 0
    assert invoke("import", pairs, "--db", db, "--kind", "feedback").exit_code == 0
    edit_rows = [{"prompt": "Capital of France?", "response": "Lyon.", "item_id": "cap",
                  "feedback": ["Wrong city."], "domain": "general",
                  "language": "english"}]  # fmt: skip
    edit_file = write_jsonl(tmp_path / "edits.jsonl", edit_rows)
    assert invoke("import", edit_file, "--db", db, "--kind", "edit").exit_code == 0
    conn = store.connect(db)
    store.set_setting(conn, "k", "3")
    for name in ("ann1", "ann2", "ann3"):
        store.add_user(conn, name, PASSWORD, False)
    store.add_user(conn, "boss", PASSWORD, True)
    conn.close()
    project = make_project(db, [], {}, k=3)
    scores = {"python": (-3, -2, 1), "french": (2, 3, 1)}  # per annotator

    def form_for(n: int, item: store.Item) -> dict:
        if item.kind == "hs3_preference":
            return {"score": str(scores[item.language][n]),
                    "reasoning": f"Annotator {n} thinks so."}  # fmt: skip
        if item.kind == "feedback":
            return {"feedback1": f"Fine, says annotator {n}.",
                    "feedback2": f"Weak, says annotator {n}."}  # fmt: skip
        return {"edited_response": f"Paris ({n}).", "change_summary": "Fixed the capital."}

    _answer_all(project, form_for)

    out = tmp_path / "export"
    done = invoke("export", "--db", db, "--out", out)
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ratings": 0, "preferences": 0, "hs3_preferences": 6,
                                  "hs3_feedback": 2, "hs3_edit": 3}  # fmt: skip
    raw = pl.read_ndjson(out / "hs3_preferences.jsonl")
    assert raw.columns == list(export.HS3_PREFERENCE_SCHEMA)
    assert raw["context"][0].to_list()[0] == SYSTEM
    feedback = pl.read_ndjson(out / "hs3_feedback.jsonl")
    assert feedback["feedback1"].to_list()[0] == [f"Fine, says annotator {n}." for n in range(3)]

    toml = tmp_path / "build.toml"
    toml.write_text(
        f'out = "{tmp_path / "built"}"\n'
        '[[stages]]\nuses = "load"\n'
        f'preferences = ["{out / "hs3_preferences.jsonl"}", "{out / "hs3_feedback.jsonl"}", '
        f'"{out / "hs3_edit.jsonl"}"]\n'
        '[[stages]]\nuses = "aggregate"\npreference_min_annotators = 3\n'
        "preference_max_spread = 6\n"
        '[[stages]]\nuses = "split"\nvalidation_fraction = 0.0\n'
        '[[stages]]\nuses = "export"\n'
        'formats = ["hs3_preference", "hs3_feedback", "hs3_edit", "hs3_edit_sft"]\n'
    )
    built = runner.invoke(hs, ["build-dataset", "-q", str(toml)])
    assert built.exit_code == 0, built.output
    root = tmp_path / "built"

    def read(name):
        return pl.concat(pl.read_parquet(p) for p in sorted((root / name).glob("*.parquet")))

    prefs = read("hs3_preference")
    by_language = {r["language"]: r for r in prefs.to_dicts()}
    python = by_language["python"]
    # mean of -3, -2, 1 = -1.33 -> -1; every annotator's reasoning is kept with its score
    assert python["overall_preference"] == -1
    assert sorted(i["score"] for i in python["individual_preference"]) == [-3, -2, 1]
    assert {i["reasoning"] for i in python["individual_preference"]} == {
        f"Annotator {n} thinks so." for n in range(3)
    }
    assert python["domain"] == "code" and python["context"][0] == SYSTEM
    assert by_language["french"]["overall_preference"] == 2  # 2, 3, 1
    fb = read("hs3_feedback")
    assert sorted(fb["language"].to_list()) == ["french", "python"]
    assert all(len(f) == 3 for f in fb["feedback2"].to_list())
    edits = read("hs3_edit")
    assert sorted(edits["edited_response"].to_list()) == [f"Paris ({n})." for n in range(3)]
    assert edits["feedback"].to_list()[0] == ["Wrong city."]
    sft = read("hs3_edit_sft")
    assert sft.height == 3 and "Wrong city." in sft["prompt"].to_list()[0][-1]["content"]


def test_edit_page_starts_from_the_original(tmp_path):
    rows = [{"prompt": "Capital of France?", "response": "It is *Lyon*.",
             "feedback": ["Wrong city.", "Say **Paris**."]}]  # fmt: skip
    items = importing.read_items(str(write_jsonl(tmp_path / "e.jsonl", rows)), "edit").items
    project = make_project(tmp_path / "e.db", items, {"ann1": False}, k=1)
    client = project.client()
    csrf = login(client, "ann1")
    item_id = open_next(client)
    page = client.get(f"/item/{item_id}").text
    assert ">It is *Lyon*.</textarea>" in page  # pre-filled, as typed
    assert "<strong>Paris</strong>" in page and "Wrong city." in page
    same = {"csrf_token": csrf, "edited_response": "It is *Lyon*.", "change_summary": "None."}
    refused = client.post(f"/item/{item_id}/submit", data=same)
    assert refused.status_code == 422 and "identical to the original" in refused.text


def test_admin_downloads_hs3_tables(hs3_project):
    project, _ = hs3_project
    admin = project.client("boss")
    page = admin.get("/admin").text
    assert 'id="export-hs3_preferences"' in page and 'id="export-hs3_edit"' not in page
    body = admin.get("/admin/export/hs3_preferences.parquet")
    assert body.status_code == 200
    frame = pl.read_parquet(io.BytesIO(body.content))
    assert frame.columns == list(export.HS3_PREFERENCE_SCHEMA) and frame.height == 0
    assert admin.get("/admin/export/hs3_edit.jsonl").status_code == 404


def test_old_database_is_upgraded_in_place(tmp_path):
    """A project made before the HelpSteer3 tasks (items CHECK allowed two kinds) keeps its
    items, assignments and answers, and takes HelpSteer3 items."""
    db = tmp_path / "old.db"
    old = store.SCHEMA.replace(store.ITEM_COLUMNS, store.ITEM_COLUMNS.split("active INTEGER")[0]
                               .replace(", 'hs3_preference', 'feedback',\n"
                                        "                                       'edit'", "")
                               + "active INTEGER NOT NULL DEFAULT 0")  # fmt: skip
    assert "hs3_preference" not in old
    conn = sqlite3.connect(db)
    conn.executescript(old)
    conn.execute("INSERT INTO items (item_key, kind, prompt, response) "
                 "VALUES ('r1', 'rating', 'Q', 'A')")  # fmt: skip
    conn.commit()
    conn.close()
    project = make_project(db, [], {"ann1": False}, k=1)
    conn = project.conn()
    uid = store.authenticate(conn, "ann1", PASSWORD)
    item = store.next_item(conn, uid)
    store.submit(conn, item, uid, {"helpfulness": 3, "correctness": 3, "coherence": 3,
                                   "complexity": 1, "verbosity": 2})  # fmt: skip
    assert store.get_item(conn, item).key == "r1"
    assert conn.execute("SELECT active FROM items").fetchone()[0] == 1  # the trigger is back
    added = importing.read_items(str(write_jsonl(tmp_path / "p.jsonl", PAIRS))).items
    assert store.add_items(conn, added) == 2
    assert store.get_item(conn, 2).context[0] == SYSTEM
    conn.close()
    store.init_db(db)  # a second upgrade finds nothing to do


# --- the Argilla mapping (no server) ------------------------------------------------------


def test_argilla_settings_and_records_of_hs3_tasks(tmp_path):
    from annotation_ui import argilla_io as aio

    spec = aio.settings_spec("hs3_preference", "Guidelines", 3)
    questions = {q["name"]: q for q in spec["questions"]}
    assert list(questions) == ["score", "reasoning"]
    assert list(questions["score"]["labels"]) == ["-3", "-2", "-1", "0", "1", "2", "3"]
    assert questions["score"]["labels"]["-3"] == "Response 1 is much better"
    assert questions["reasoning"]["type"] == "text" and questions["reasoning"]["required"]
    assert {m["name"] for m in spec["metadata"]} >= {"domain", "language"}
    assert aio.dataset_kind(["feedback1", "feedback2"]) == "feedback"
    assert aio.dataset_kind(["edited_response", "change_summary"]) == "edit"

    data = aio.read_push_items(str(write_jsonl(tmp_path / "p.jsonl", PAIRS)))
    assert data.kind == "hs3_preference" and len(data.items) == 2
    record = aio.record_spec(data.items[0])
    assert record["fields"]["messages"][0] == SYSTEM
    assert record["metadata"]["domain"] == "code" and record["metadata"]["language"] == "python"
    rows = [{"prompt": "Capital?", "response": "Lyon.", "feedback": ["Wrong city."]}]
    edit = aio.read_push_items(str(write_jsonl(tmp_path / "e.jsonl", rows)), "edit")
    record = aio.record_spec(edit.items[0])
    assert record["fields"]["feedback"] == "1. Wrong city."
    assert record["suggestions"] == [
        {"question_name": "edited_response", "value": "Lyon.", "agent": "original-response"}
    ]
    assert json.loads(record["metadata"]["feedback_list"]) == ["Wrong city."]


def test_argilla_responses_become_hs3_rows_and_bad_ones_are_rejected():
    from annotation_ui import argilla_io as aio

    record = {
        "id": "x", "external_id": "pair-1",
        "fields": {"messages": [SYSTEM, {"role": "user", "content": "Hi"}],
                   "response1": "Hello", "response2": "Yo"},
        "metadata": {"domain": "general", "language": "english"},
        "responses": [
            {"user_id": "u1", "status": "submitted", "updated_at": "2025-01-01T00:00:00",
             "values": {"score": {"value": "-1"}, "reasoning": {"value": " Politer. "}}},
            {"user_id": "u2", "status": "submitted",
             "values": {"score": {"value": "2"}}},
            {"user_id": "u3", "status": "draft", "values": {}},
        ],
    }  # fmt: skip
    result = aio.raw_rows("hs3_preference", [record], {"u1": "ann1"})
    [row] = result.hs3_preferences
    assert (row["pair_id"], row["annotator_id"], row["score"], row["reasoning"]) == (
        "pair-1", "ann1", -1, "Politer.")  # fmt: skip
    assert row["context"][0] == SYSTEM and row["domain"] == "general"
    [rejected] = result.rejected
    assert rejected["annotator_id"] == "u2" and "reasoning: no text" in rejected["reason"]
    assert result.counts == {"records": 1, "submitted": 2, "draft": 1, "discarded": 0}
    frames = aio.frames([result])
    assert frames["hs3_preferences"].columns == list(export.HS3_PREFERENCE_SCHEMA)
    assert "hs3_feedback" not in frames
