"""The External validation page in a real browser (Streamlit on 127.0.0.1, Debian's Chromium): type a data
folder, launch the evaluation, and watch its row and ROC curve appear beside the run's own test row."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from challenge_layouts import build_isic2020
from melanet.runs import layout
from melanet.reports import evaluate_stage
from test_browser import CHROMIUM, CHROMIUM_ARGS, new_page, open_page, playwright_api, screenshot, start_server, stop_server
from test_evaluation_evaluate import TEST_LEVELS, write_folder_dataset
from test_evaluation_external import make_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = playwright_api.expect


def test_launch_from_the_page_and_see_the_row_and_curve(tmp_path: Path) -> None:
    write_folder_dataset(tmp_path / "own", TEST_LEVELS, seed=0)
    run = make_run(tmp_path, tmp_path / "own")
    evaluate_stage.evaluate_run(run)
    data = build_isic2020(tmp_path / "isic2020")
    env = dict(os.environ, MELANET_MODELS_DIR=str(tmp_path / "no-models"), MELANET_RUNS_DIR=str(tmp_path / "runs"))
    server, url = start_server(env, tmp_path / "server.log")
    try:
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = new_page(chromium)
            open_page(page, url, "External validation")
            field = page.locator(".st-key-external_data input")
            field.wait_for(timeout=60_000)
            field.fill(str(data))
            field.press("Enter")
            expect(page.get_by_text("ISIC 2020 layout (train)")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Evaluate on this folder").click()
            expect(page.get_by_text("results go to")).to_be_visible(timeout=60_000)
            table = page.locator('[data-testid="stTable"]')
            expect(table.get_by_text("all labelled images (no labelled test split)")).to_be_visible(timeout=240_000)
            expect(table.get_by_text("own (the run's own test split)")).to_be_visible()
            expect(page.locator(".legendtext").filter(has_text="isic2020 (AUC")).to_have_count(1, timeout=30_000)
            expect(page.locator(".legendtext").filter(has_text="own test split (AUC")).to_have_count(1)
            screenshot(page, "external-validation")
            chromium.close()
    finally:
        stop_server(server)
    assert (run / layout.EXTERNAL_FOLDER / "isic2020" / layout.METRICS_FILE).is_file()
