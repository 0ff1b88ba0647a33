"""Offline means offline: every page of the dashboard, in a real browser, on the shipped demo, records every
request the page makes; none may leave the loopback address (no favicon, font or script from a CDN).
Also, at the 1400x900 window of a laptop, the Compare page's paired-test matrix is readable (cell text of
12 px or more) and marks its significant cells."""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, REPO, open_page, playwright_api, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = playwright_api.expect

PAGES = ["Overview", "Train", "Compare", "External validation", "Synthesized lesions", "Grad-CAM", "UMAP",
         "Predict", "Reader study"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_no_page_makes_a_request_off_this_machine(tmp_path: Path) -> None:
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(tmp_path / "runs"))
    server, url = start_server(env, tmp_path / "server.log")
    requests: list[tuple[str, str]] = []
    try:
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = chromium.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            current = {"title": "start"}
            page.on("request", lambda request: requests.append((current["title"], request.url)))
            # refuse anything off the machine, so a missed request fails here and not on a clinic's network
            context.route(lambda address: urllib.parse.urlsplit(address).hostname not in LOOPBACK
                          and not address.startswith(("data:", "blob:")),
                          lambda route: route.abort())
            for title in PAGES:
                current["title"] = title
                open_page(page, url, title)
                expect(page.locator("h1").first).to_be_visible(timeout=60_000)
                page.wait_for_load_state("networkidle", timeout=60_000)
                time.sleep(1.5)  # charts and images that load after the first paint
            page.close()
            chromium.close()
    finally:
        stop_server(server)
    outside = [(title, address) for title, address in requests
               if not address.startswith(("data:", "blob:")) and urllib.parse.urlsplit(address).hostname not in LOOPBACK]
    assert outside == [], outside
    assert len({title for title, _ in requests}) >= 2  # the recorder saw the pages' own requests
    favicons = [address for _, address in requests if "favicon" in address or address.endswith(".png")]
    assert favicons and all(urllib.parse.urlsplit(address).hostname in LOOPBACK for address in favicons), favicons


def test_compare_at_laptop_size_matrix_text_is_readable_and_labels_whole(tmp_path: Path) -> None:
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(tmp_path / "runs"))
    server, url = start_server(env, tmp_path / "server.log")
    try:
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = chromium.new_page(viewport={"width": 1400, "height": 900})
            open_page(page, url, "Compare")
            matrix = page.locator(".st-key-paired_matrix")
            matrix.scroll_into_view_if_needed(timeout=60_000)
            cells = matrix.locator("text").filter(has_text=re.compile(r"Δ [+-]\d"))
            expect(cells.first).to_be_visible(timeout=60_000)
            sizes = cells.evaluate_all("nodes => nodes.map(node => parseFloat(getComputedStyle(node).fontSize))")
            assert len(sizes) == 6 and min(sizes) >= 12, sizes  # MelaNet against each of 3 runs, both ways
            ticks = matrix.locator(".ytick text, .xtick text").evaluate_all("nodes => nodes.map(node => node.textContent)")
            assert any("Augment-10x" in text for text in ticks), ticks  # whole names, not cut
            labels = page.locator('[data-testid="stMetricLabel"]')
            expect(labels.first).to_be_visible(timeout=60_000)
            cut = labels.evaluate_all("nodes => nodes.filter(node => [node, ...node.querySelectorAll('*')]"
                                      ".some(part => part.scrollWidth > part.clientWidth + 1)).map(node => node.innerText)")
            assert cut == [], cut
            screenshot(page, "compare-1400x900")
            chromium.close()
    finally:
        stop_server(server)
