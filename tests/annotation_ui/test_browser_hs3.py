"""A real browser (Debian chromium via Playwright) on the HelpSteer3 7-point task: the
context with its system turn, the domain/language metadata, keys 1-7 for the score, the
reasoning typed (digits in it stay text), and the answer stored as {score, reasoning}."""

import json

import pytest

from annotation_ui import importing, loadgen, store
from annotation_ui.screenshots import chromium_available, launch, log_in
from tests.annotation_ui.conftest import PASSWORD, make_project, write_jsonl
from tests.annotation_ui.test_hs3_tasks import PAIRS

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    missing = chromium_available()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


@pytest.mark.timeout(120)
def test_seven_point_task_by_keyboard(browser, tmp_path):
    items = importing.read_items(str(write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:1]))).items
    project = make_project(tmp_path / "b.db", items, {"ann1": False}, k=1)
    port = loadgen.free_port()
    server = loadgen.start_server(project.db, port, log=tmp_path / "server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        log_in(page, base, "ann1", PASSWORD)
        page.click("text=Start annotating")
        page.wait_for_selector("#preference")
        assert page.inner_text(".turn.system .speaker").lower() == "system"  # CSS capitals
        assert "You answer in Python." in page.inner_text(".turn.system")
        assert page.inner_text("#item-domain") == "domain: code"
        assert page.inner_text("#item-language") == "language: python"
        page.keyboard.press("2")  # the second of 7: -2, response 1 is better
        page.click("#reasoning")
        page.keyboard.type("Response 1 adds 2 numbers; 2 does not.")
        assert page.eval_on_selector("#preference input:checked", "e => e.value") == "-2"
        page.screenshot(path=tmp_path / "hs3_preference.png", full_page=True)
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("text=All done")
    finally:
        server.kill()
        server.wait()
    conn = store.connect(project.db)
    [(answer,)] = conn.execute("SELECT answer FROM annotations").fetchall()
    conn.close()
    assert json.loads(answer) == {
        "score": -2,
        "reasoning": "Response 1 adds 2 numbers; 2 does not.",
    }
