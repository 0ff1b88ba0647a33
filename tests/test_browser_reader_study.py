"""The Reader study page in a real browser (Streamlit server + Playwright/Chromium, 1400x900): a 6-case
study of the shipped demo run (created with the command line in a temporary folder; the run is only read),
read unaided with a reload and a server restart in the middle, blind (nothing about a case's label or the model's output
reaches the browser), then aided; the results shown and downloaded equal `melanet reader-study results`.
The reading screen shows the whole original file (its own pixels) first, at least 600 px wide; a second
browser opening the same URL is not that reader; a reader mid-study finds no Results view.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from PIL import Image

from melanet.common import formatting
from melanet.studies import study as study_module

from test_browser import CHROMIUM, CHROMIUM_ARGS, choose, open_page, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "models" / "demo" / "melanet"
NAME = "browser-6"
READER = "Dr Browser"


def melanet(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "melanet", "-q", *arguments], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=True)


@pytest.fixture(scope="module")
def served_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Callable[[], str]]]:
    folder = tmp_path_factory.mktemp("reader-study")
    studies = folder / "studies"
    melanet("reader-study", "create", "--run", str(DEMO_RUN), "--name", NAME, "--cases", "6", "--seed", "1",
            "--root", str(studies))
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(folder / "runs"),
               MELANET_STUDIES_DIR=str(studies))
    servers = [start_server(env, folder / "server.log")]

    def restart() -> str:
        """Stop the server and start a fresh one (nothing survives but the files); its URL."""
        stop_server(servers[-1][0])
        servers.append(start_server(env, folder / "server-restarted.log"))
        return servers[-1][1]

    try:
        yield servers[0][1], studies / NAME, restart
    finally:
        stop_server(servers[-1][0])


def leaks(study: study_module.Study) -> list[str]:
    """Strings that would give away a case's label or the model's output."""
    found = ["P(malignant)", "Grad-CAM over", "raised the malignant score", "Model:", "model_decision", "prob_malignant", study_module.OVERLAYS_FOLDER]
    for case in study.cases:
        found += [f"{case.prob_malignant:.6f}", f"{case.prob_malignant:.3f}", f"{case.prob_malignant:.4g}"]
    return found


def revealed(secrets: list[str], received: str | bytes) -> list[str]:
    """The secrets found in ``received``; a number counts only as a whole number ("0.807" is not found in
    an SVG path's "20.807")."""
    text = received.decode("utf-8", "replace") if isinstance(received, bytes) else received
    found = []
    for secret in secrets:
        if re.fullmatch(r"[\d.e+-]+", secret):
            if re.search(rf"(?<![\d.]){re.escape(secret)}(?![\d])", text):
                found.append(secret)
        elif secret in text:
            found.append(secret)
    return found


def idle(page) -> None:
    """Wait for the script run to finish: what is on screen is that run's, and input is not lost to it."""
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning",
                                                                     timeout=60_000)


def sign_in(page, url: str) -> None:
    """Open the page, pick the study and give the reader's name, as a reader does."""
    open_page(page, url, "Reader study")
    idle(page)
    for _ in range(3):  # a click on the sidebar link while the first page still loads can be lost: click again
        try:
            expect(page.locator(".st-key-study_pick")).to_be_visible(timeout=15_000)
            break
        except AssertionError:
            page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Reader study").first.click()
            idle(page)
    choose(page, "study_pick", f"studies/{NAME}")
    idle(page)
    page.locator(".st-key-reader_name input").fill(READER)
    page.locator(".st-key-reader_name input").press("Enter")


def answer(page, decision: str, confidence: int) -> None:
    idle(page)  # the form on screen is this case's, not the previous case's still being replaced
    form = page.locator('[data-testid="stForm"]')
    expect(form).to_have_count(1, timeout=30_000)
    form.get_by_role("radiogroup", name="Your decision").get_by_text(decision, exact=True).click()
    form.get_by_role("radiogroup", name="Confidence").get_by_text(str(confidence), exact=True).click()
    form.get_by_role("button", name="Save and next").click()


def expect_case(page, number: int, phase: str, case_id: str) -> None:
    try:
        expect(page.get_by_text(f"Case {number} of 6 ({phase})")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(f"this is case {case_id}")).to_be_visible(timeout=10_000)
    except AssertionError:
        screenshot(page, f"failed-reader-study-{phase}-{number}")
        raise


VIEWPORT = {"width": 1400, "height": 900}


def viewer_image(page, case_id: str, layer: str = "lesion"):
    """The viewer's image (``lesion`` or ``heat``) of ``case_id`` inside the reading screen's iframe."""
    return page.frame_locator(".st-key-reader_viewer iframe").locator(
        f'.reader-study-image[data-case="{case_id}"] #{layer}')


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def check_first_screen(page, case_id: str, original: Path) -> None:
    """The case image lies wholly inside the 1400x900 window, at least 600 px on its long side, and is
    the original file at its own size."""
    lesion = viewer_image(page, case_id)
    expect(lesion).to_have_count(1, timeout=30_000)
    expect(lesion).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"), timeout=30_000)
    assert base64.b64decode(lesion.get_attribute("src").split(",", 1)[1]) == original.read_bytes()
    width, height = Image.open(original).size
    natural = None
    for _ in range(100):  # the viewer fits the image once it has loaded
        natural = lesion.evaluate("image => [image.naturalWidth, image.naturalHeight]")
        box = lesion.bounding_box()
        if natural[0] and box and box["width"] > 1:
            break
        page.wait_for_timeout(100)
    assert natural == [width, height]
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= VIEWPORT["width"] + 0.5 and box["y"] + box["height"] <= VIEWPORT["height"] + 0.5, box
    assert max(box["width"], box["height"]) >= 600, box


def check_no_results_view(page) -> None:
    """A reader mid-study: no View control, no results on the page."""
    expect(page.locator(".st-key-study_view")).to_have_count(0)
    expect(page.get_by_text("Readers and the model")).to_have_count(0)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(0)


def unaided_choice(position: int) -> tuple[str, int]:
    return ("malignant" if position % 3 else "benign"), position % 5 + 1


def test_read_blind_reload_resume_aided_and_results(served_study, tmp_path: Path) -> None:
    url, study_path, restart_server = served_study
    study = study_module.open_study(study_path)
    unaided_order = study_module.case_order(study, READER, "unaided")
    aided_order = study_module.case_order(study, READER, "aided")
    secrets = leaks(study)
    received: list[bytes | str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: received.append(frame)))
        sign_in(page, url)
        expect_case(page, 1, "unaided", unaided_order[0])
        page.locator('[data-testid="stForm"]').get_by_role("button", name="Save and next").click()
        expect(page.get_by_text("Choose benign or malignant")).to_be_visible(timeout=30_000)  # decision required
        assert not study.responses_path.exists()

        for position in range(6):
            if position in (3, 5):
                expect_case(page, position + 1, "unaided", unaided_order[position])  # the last answer is saved
                assert len(study.responses_path.read_text().splitlines()) == position + 1
            if position == 2:  # a colleague opens the same URL in another browser: not signed in as this reader
                other = browser.new_context(viewport=VIEWPORT)
                colleague = other.new_page()
                colleague.goto(page.url)
                idle(colleague)
                expect(colleague.locator(".st-key-reader_name input")).to_be_visible(timeout=60_000)
                expect(colleague.locator(".st-key-reader_name input")).to_have_value("")
                expect(colleague.get_by_text(re.compile(r"Case \d of 6"))).to_have_count(0)
                expect(colleague.get_by_text(READER)).to_have_count(0)
                other.close()
                check_no_results_view(page)  # and the reader still reading sees no results
            if position == 3:  # a reload forgets the session (and the URL names no reader): the name again
                page.reload()
                idle(page)
                expect(page.locator(".st-key-reader_name input")).to_have_value("", timeout=60_000)
                expect(page.get_by_text("Case 4 of 6")).to_have_count(0)
                sign_in(page, url)
            if position == 5:  # so does a server restart: the reader comes back and gives the name again
                sign_in(page, restart_server())
            expect_case(page, position + 1, "unaided", unaided_order[position])
            idle(page)
            check_first_screen(page, unaided_order[position],
                               study.image_path(study.case(unaided_order[position]), REPO))
            expect(viewer_image(page, unaided_order[position], "heat")).to_have_count(1)
            assert viewer_image(page, unaided_order[position], "heat").evaluate("node => node.tagName") == "SPAN"
            expect(page.locator('[data-testid="stForm"]')).to_have_count(1, timeout=30_000)
            check_no_results_view(page)
            html = page.content() + "".join(frame.content() for frame in page.frames)
            assert not revealed(secrets, html), "unaided page gives the case away"
            if position == 0:
                screenshot(page, "reader-study-unaided")
            unaided_frames = len(received)  # all the server sent while this unaided case was on screen
            answer(page, *unaided_choice(position))
        expect_case(page, 1, "aided", aided_order[0])
        frames = b"".join(frame if isinstance(frame, bytes) else frame.encode() for frame in received[:unaided_frames])
        assert len(frames) > 10_000  # the six lesion images went through the socket
        assert not revealed(secrets, frames), "the server sent a secret unaided"
        later = b"".join(frame if isinstance(frame, bytes) else frame.encode() for frame in received[unaided_frames:])
        assert b"P(malignant)" in later  # the check would see a secret if there were one
        screenshot(page, "reader-study-aided")

        for position, case_id in enumerate(aided_order):
            case = study.case(case_id)
            expect_case(page, position + 1, "aided", case_id)
            idle(page)
            check_first_screen(page, case_id, study.image_path(case, REPO))
            heat = viewer_image(page, case_id, "heat")
            assert base64.b64decode(heat.get_attribute("src").split(",", 1)[1]) == study.overlay_path(case).read_bytes()
            heat_box, lesion_box = heat.bounding_box(), viewer_image(page, case_id).bounding_box()
            assert all(abs(heat_box[key] - lesion_box[key]) < 1 for key in ("x", "y", "width", "height"))
            model_output = re.escape(f"P(malignant) = {case.prob_malignant:.3f}") + f".* it says {case.model_decision}"
            expect(page.get_by_text(re.compile(model_output))).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Grad-CAM over the image you read")).to_be_visible()
            expect(page.get_by_text("Red: the regions that raised the malignant score most")).to_be_visible()
            answer(page, case.model_decision, 4)
        expect(page.get_by_text(f"Thank you, {READER}")).to_be_visible(timeout=60_000)

        rows = [line.split(",") for line in study.responses_path.read_text().splitlines()[1:]]
        assert [(row[0], row[3], row[4], row[5]) for row in rows] == (
            [(case, "unaided", *map(str, unaided_choice(n))) for n, case in enumerate(unaided_order)]
            + [(case, "aided", study.case(case).model_decision, "4") for case in aided_order])

        page.locator(".st-key-study_view").get_by_text("Results").click()
        expect(page.get_by_text("Readers and the model")).to_be_visible(timeout=60_000)
        idle(page)
        melanet("reader-study", "results", NAME, "--root", str(study_path.parent))
        expected = json.loads((study_path / study_module.RESULTS_FILE).read_text())
        tables = page.locator('[data-testid="stTable"]')
        shown = {}
        for row in tables.first.locator("tbody tr").all():
            cells = [text.strip() for text in row.locator("th, td").all_inner_texts()]
            shown[(cells[0], cells[1])] = cells
        for entry in expected["readers"]:
            cells = shown[(READER, entry["phase"])]
            low, high = entry["sensitivity_ci"]
            assert cells[3] == f"{100 * entry['sensitivity']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
            low, high = entry["specificity_ci"]
            assert cells[4] == f"{100 * entry['specificity']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
            # undefined figures are null in results.json (kappa when reader and model each give one answer
            # throughout) and "n/a" on the page
            assert cells[5:8] == [_figure(entry["auc"]), _figure(entry["kappa_vs_model"]), _figure(entry["model"]["auc"])]
            assert cells[10] == f"{entry['delong']['delta_auc']:.3f} ({formatting.p_value(entry['delong']['p'])})"
        assert shown[("model", f"threshold {study.threshold:.4g}")][5] == f"{expected['model']['auc']:.3f}"
        change = expected["aided_vs_unaided"][0]
        expect(tables.nth(1)).to_contain_text(f"{change['right_to_wrong']}")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download results.json").click()
        assert Path(download.value.path()).read_bytes() == (study_path / study_module.RESULTS_FILE).read_bytes()
        with page.expect_download() as download:
            page.get_by_role("button", name="Download responses.csv").click()
        assert Path(download.value.path()).read_bytes() == study.responses_path.read_bytes()
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
        screenshot(page, "reader-study-results")
        browser.close()
