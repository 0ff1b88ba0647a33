"""The Reader study page in a real browser (Streamlit server + Playwright/Chromium, 1400x900): a 10-case
study of the shipped demo run with three readers and their codes (created with the command line in a
temporary folder; the run is only read).

- Without a code, with a wrong code or with another reader's name, nobody reads or answers.
- A reader reads blind (nothing about a case's label or the model's output reaches the browser), through
  a reload and a server restart (the code again), then aided: the heat map starts hidden behind its box,
  "1:1" is one image pixel per CSS pixel. The sidebar is gone while reading.
- Results are refused to an unfinished reader after a reload and in a second browser, shown to a
  finished reader (own figures and the model's only) and to the organiser (every reader; the same
  bytes as `melanet reader-study results`).
- Ten wrong codes make the browser wait, also after a reload.
- No code appears in the study folder, responses.csv, the server's log or any URL.
- ``MELANET_READING_ONLY=1``: the reader page and nothing else, at every path.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from PIL import Image

from melanet.common import formatting
from melanet.studies import access, results as results_module, study as study_module

from test_browser import CHROMIUM, CHROMIUM_ARGS, choose, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "models" / "demo" / "melanet"
NAME = "browser-10"
CASES = 10
READERS = ("Dr One", "Dr Two", "Dr Three")
VIEWPORT = {"width": 1400, "height": 900}


def melanet(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "melanet", "-q", *arguments], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=True)


def read_codes(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.split("\t")
        found[parts[0] if parts[0] == access.ORGANISER else parts[1]] = parts[-1]
    return found


@pytest.fixture(scope="module")
def served_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("reader-study")
    studies = folder / "studies"
    codes_file = folder / "private" / "codes.txt"
    melanet("reader-study", "create", "--run", str(DEMO_RUN), "--name", NAME, "--cases", str(CASES), "--seed", "1",
            "--root", str(studies), "--readers", ",".join(READERS), "--codes-out", str(codes_file))
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(folder / "runs"),
               MELANET_STUDIES_DIR=str(studies))
    logs = [folder / "server.log"]
    servers = [start_server(env, logs[0])]

    def restart() -> str:
        """Stop the server and start a fresh one (nothing survives but the files); its URL."""
        stop_server(servers[-1][0])
        logs.append(folder / "server-restarted.log")
        servers.append(start_server(env, logs[-1]))
        return servers[-1][1]

    try:
        yield {"url": lambda: servers[-1][1], "path": studies / NAME, "restart": restart,
               "codes": read_codes(codes_file), "logs": logs, "urls": []}
    finally:
        stop_server(servers[-1][0])


def leaks(study: study_module.Study) -> list[str]:
    """Strings that would give away a case's label or the model's output."""
    found = ["P(malignant)", "Grad-CAM over", "raised the malignant score", "Model:", "model_decision",
             "prob_malignant", study_module.OVERLAYS_FOLDER]
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


def open_study(page, url: str, visited: list[str]) -> None:
    """Open the Reader study page with this study picked, as a reader does: at the root, once app.py has run
    (its sidebar caption shows; before that the sidebar holds Streamlit's own links to pages/, which run a
    page without app.py), then the sidebar link."""
    page.goto(url)
    expect(page.get_by_text("MelaNet reproduction (Zunair & Hamza 2020)")).to_be_visible(timeout=60_000)
    idle(page)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Reader study").first.click()
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
    visited.append(page.url)


def type_code(page, code: str) -> None:
    """Type the code and press Start; return once the server took it (the form empties or gives way)."""
    idle(page)
    box = page.locator(".st-key-reader_code input")
    box.fill(code)
    page.get_by_role("button", name="Start reading").click()
    page.wait_for_function("() => { const box = document.querySelector('.st-key-reader_code input');"
                           " return !box || box.value === ''; }", timeout=60_000)
    idle(page)


def give_experience(page) -> None:
    expect(page.get_by_text("Years in dermatology")).to_be_visible(timeout=60_000)
    page.get_by_label("Years in dermatology").fill("12")
    page.get_by_label(re.compile("Specialty")).fill("dermatologist")
    page.get_by_label("Dermoscopy images you read in a week").fill("200")
    page.get_by_role("button", name="Save and start").click()
    idle(page)


def answer(page, decision: str, confidence: int) -> None:
    idle(page)  # the form on screen is this case's, not the previous case's still being replaced
    form = page.locator('[data-testid="stForm"]')
    expect(form).to_have_count(1, timeout=30_000)
    form.get_by_role("radiogroup", name="Your decision").get_by_text(decision, exact=True).click()
    form.get_by_role("radiogroup", name="Confidence").get_by_text(str(confidence), exact=True).click()
    form.get_by_role("button", name="Save and next").click()


def viewer(page):
    return page.frame_locator(".st-key-reader_viewer iframe")


def viewer_image(page, case_id: str, layer: str = "lesion"):
    """The viewer's image (``lesion`` or ``heat``) of ``case_id`` inside the reading screen's iframe."""
    return viewer(page).locator(f'.reader-study-image[data-case="{case_id}"] #{layer}')


def expect_case(page, number: int, phase: str, case_id: str) -> None:
    try:
        expect(page.get_by_text(f"Case {number} of {CASES} ({phase})")).to_be_visible(timeout=60_000)
        expect(viewer_image(page, case_id)).to_have_count(1, timeout=30_000)
    except AssertionError:
        screenshot(page, f"failed-reader-study-{phase}-{number}")
        raise


def check_whole_image(page, case_id: str, original: Path) -> None:
    """The case image is the original file at its own size, wholly inside the window, >= 600 px."""
    lesion = viewer_image(page, case_id)
    expect(lesion).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"), timeout=30_000)
    assert base64.b64decode(lesion.get_attribute("src").split(",", 1)[1]) == original.read_bytes()
    width, height = Image.open(original).size
    natural = box = None
    for _ in range(100):  # the viewer fits the image once it has loaded and the frame has its final size
        natural = lesion.evaluate("image => [image.naturalWidth, image.naturalHeight]")
        box = lesion.bounding_box()
        if natural[0] and box and max(box["width"], box["height"]) >= 600:
            break
        page.wait_for_timeout(100)
    if max(box["width"], box["height"]) < 600:
        screenshot(page, f"failed-whole-image-{case_id}")
    assert natural == [width, height]
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= VIEWPORT["width"] + 0.5 and box["y"] + box["height"] <= VIEWPORT["height"] + 0.5
    assert max(box["width"], box["height"]) >= 600, box


def results_refused(page) -> None:
    page.locator(".st-key-study_view").get_by_text("Results").click()
    idle(page)
    expect(page.get_by_text(re.compile("No results: "))).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Readers and the model")).to_have_count(0)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(0)


def shown_readers(page) -> set[str]:
    table = page.locator('[data-testid="stTable"]').first
    try:
        expect(table.locator("tbody tr").first).to_be_visible(timeout=60_000)
    except AssertionError:
        screenshot(page, "failed-reader-study-results-table")
        raise
    rows = table.locator("tbody tr").all()
    return {row.locator("th, td").first.inner_text().strip() for row in rows}


def unaided_choice(position: int) -> tuple[str, int]:
    return ("malignant" if position % 3 else "benign"), position % 5 + 1


def test_codes_blinding_guarded_results_and_rate_limit(served_study, tmp_path: Path) -> None:
    study_path, codes, visited = served_study["path"], served_study["codes"], served_study["urls"]
    study = study_module.open_study(study_path)
    first, second, third = READERS
    unaided_order = study_module.case_order(study, first, "unaided")
    aided_order = study_module.case_order(study, first, "aided")
    secrets = leaks(study)
    received: list[bytes | str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: received.append(frame)))
        open_study(page, served_study["url"](), visited)

        # no code, a reader's name, a wrong code: nobody is signed in, nothing is saved
        page.get_by_role("button", name="Start reading").click()
        idle(page)
        for attempt in (first, "ABCDE-FGHJK"):
            type_code(page, attempt)
            expect(page.get_by_text("Not signed in: unknown code for this study.")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(re.compile(rf"Case \d+ of {CASES}"))).to_have_count(0)
        assert not study.responses_path.exists()

        type_code(page, codes[first])
        give_experience(page)
        expect(page.locator('[data-testid="stSidebar"]')).to_be_hidden()  # no way to the other pages
        for position in range(CASES):
            if position == 3:  # a reload signs out (the URL names no reader); results are refused, code again
                page.reload()
                idle(page)
                visited.append(page.url)
                expect(page.locator(".st-key-reader_code input")).to_be_visible(timeout=60_000)
                expect(page.get_by_text(f"Case 4 of {CASES}")).to_have_count(0)
                results_refused(page)
                page.locator(".st-key-study_view").get_by_text("Read", exact=True).click()
                idle(page)
                type_code(page, codes[first])
            if position == 5:  # a second browser: results refused to the unfinished reader there too
                other = browser.new_context(viewport=VIEWPORT)
                colleague = other.new_page()
                colleague.goto(page.url)
                idle(colleague)
                visited.append(colleague.url)
                expect(colleague.locator(".st-key-reader_code input")).to_be_visible(timeout=60_000)
                expect(colleague.get_by_text(first)).to_have_count(0)
                type_code(colleague, codes[first])
                expect(colleague.get_by_text(f"Case 6 of {CASES} (unaided)")).to_be_visible(timeout=60_000)
                other.close()
                other = browser.new_context(viewport=VIEWPORT)
                colleague = other.new_page()
                colleague.goto(page.url)
                idle(colleague)
                results_refused(colleague)
                other.close()
            if position == 8:  # a server restart: the code again, and the reading resumes
                url = served_study["restart"]()
                open_study(page, url, visited)
                type_code(page, codes[first])
            expect_case(page, position + 1, "unaided", unaided_order[position])
            idle(page)
            if position in (0, 9):
                check_whole_image(page, unaided_order[position], study.image_path(study.case(unaided_order[position]), REPO))
            assert viewer_image(page, unaided_order[position], "heat").evaluate("node => node.tagName") == "SPAN"
            html = page.content() + "".join(frame.content() for frame in page.frames)
            assert not revealed(secrets, html), "unaided page gives the case away"
            if position == 0:
                screenshot(page, "reader-study-unaided")
            unaided_frames = len(received)
            answer(page, *unaided_choice(position))
        expect_case(page, 1, "aided", aided_order[0])
        frames = b"".join(frame if isinstance(frame, bytes) else frame.encode() for frame in received[:unaided_frames])
        assert len(frames) > 10_000  # the lesion images went through the socket
        assert not revealed(secrets, frames), "the server sent a secret unaided"

        for position, case_id in enumerate(aided_order):
            case = study.case(case_id)
            expect_case(page, position + 1, "aided", case_id)
            idle(page)
            model_output = re.escape(f"P(malignant) = {case.prob_malignant:.3f}") + f".* it says {case.model_decision}"
            expect(page.get_by_text(re.compile(model_output))).to_be_visible(timeout=30_000)
            if position == 0:
                heat, lesion = viewer_image(page, case_id, "heat"), viewer_image(page, case_id)
                expect(heat).to_be_hidden()  # the heat map starts hidden behind its box
                assert base64.b64decode(heat.get_attribute("src").split(",", 1)[1]) == \
                    study.overlay_path(case).read_bytes()
                viewer(page).locator("#show-heat").check()
                expect(heat).to_be_visible()
                heat_box, lesion_box = heat.bounding_box(), lesion.bounding_box()
                assert all(abs(heat_box[key] - lesion_box[key]) < 1 for key in ("x", "y", "width", "height"))
                viewer(page).locator("#actual").click()  # 1:1: one image pixel per CSS pixel
                natural_width = lesion.evaluate("image => image.naturalWidth")
                expect(viewer(page).locator("#zoom-level")).to_have_text("100%")
                assert abs(lesion.bounding_box()["width"] - natural_width) < 1
                screenshot(page, "reader-study-aided")
            answer(page, case.model_decision, 4)
        expect(page.get_by_text(f"Thank you, {first}")).to_be_visible(timeout=60_000)

        # the second reader reads in another browser: answers under their own name
        other = browser.new_context(viewport=VIEWPORT)
        second_page = other.new_page()
        open_study(second_page, served_study["url"](), visited)
        type_code(second_page, codes[second])
        give_experience(second_page)
        second_order = study_module.case_order(study, second, "unaided")
        for position in range(3):
            expect_case(second_page, position + 1, "unaided", second_order[position])
            answer(second_page, "benign", 2)
        expect(second_page.get_by_text(f"Case 4 of {CASES} (unaided)")).to_be_visible(timeout=60_000)
        expect(second_page.locator(".st-key-study_view")).to_have_count(0)  # while reading: no views at all
        second_page.reload()  # after a reload: results refused to this unfinished reader
        idle(second_page)
        results_refused(second_page)
        other.close()

        rows = [line.split(",") for line in study.responses_path.read_text().splitlines()[1:]]
        assert [(row[0], row[2], row[3], row[4], row[5]) for row in rows] == (
            [(case, first, "unaided", *map(str, unaided_choice(n))) for n, case in enumerate(unaided_order)]
            + [(case, first, "aided", study.case(case).model_decision, "4") for case in aided_order]
            + [(case, second, "unaided", "benign", "2") for case in second_order[:3]])

        # the finished reader: own figures and the model's only, after a reload too
        page.reload()
        idle(page)
        type_code(page, codes[first])
        page.locator(".st-key-study_view").get_by_text("Results").click()
        expect(page.get_by_text("Readers and the model")).to_be_visible(timeout=60_000)
        idle(page)
        assert shown_readers(page) == {first, "model"}
        expect(page.get_by_text(re.compile("Multi-reader"))).to_have_count(0)
        expect(page.get_by_role("button", name="Download responses.csv")).to_have_count(0)

        # the organiser, in another browser: everyone, and results.json as the command line writes it
        other = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        organiser = other.new_page()
        open_study(organiser, served_study["url"](), visited)
        type_code(organiser, codes[access.ORGANISER])
        expect(organiser.get_by_text("Signed in with the organiser code.")).to_be_visible(timeout=60_000)
        organiser.locator(".st-key-study_view").get_by_text("Results").click()
        expect(organiser.get_by_text("Readers and the model")).to_be_visible(timeout=60_000)
        idle(organiser)
        assert shown_readers(organiser) == {first, second, "model"}
        melanet("reader-study", "results", NAME, "--root", str(study_path.parent))
        expected = json.loads((study_path / study_module.RESULTS_FILE).read_text())
        for entry in expected["readers"]:
            if entry["reader"] == first and entry["phase"] == "unaided":
                assert entry["experience"] == {"years_in_dermatology": 12.0, "specialty": "dermatologist",
                                               "dermoscopy_images_per_week": 200}
        shown = {}
        for row in organiser.locator('[data-testid="stTable"]').first.locator("tbody tr").all():
            cells = [text.strip() for text in row.locator("th, td").all_inner_texts()]
            shown[(cells[0], cells[1])] = cells
        for entry in expected["readers"]:  # the organiser's table shows what results.json holds
            cells = shown[(entry["reader"], entry["phase"])]
            assert cells[2] == f"{entry['n']} of {CASES}"
            low, high = entry["sensitivity_ci"]
            if entry["sensitivity"] is not None:
                assert cells[3] == f"{100 * entry['sensitivity']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
            assert cells[5] == ("n/a" if entry["auc"] is None else f"{entry['auc']:.3f}")
            if entry["delong"].get("available"):
                assert cells[10] == f"{entry['delong']['delta_auc']:.3f} ({formatting.p_value(entry['delong']['p'])})"
        with organiser.expect_download() as download:
            organiser.get_by_role("button", name="Download results.json").click()
        assert Path(download.value.path()).read_bytes() == (study_path / study_module.RESULTS_FILE).read_bytes()
        assert results_module.results_bytes(expected) == (study_path / study_module.RESULTS_FILE).read_bytes()
        other.close()

        # ten wrong codes: the browser waits, also after a reload and with the right code
        limited = browser.new_page(viewport=VIEWPORT)
        open_study(limited, served_study["url"](), visited)
        log = study_path / access.FAILURES_FILE

        def wrong_since_success() -> int:
            count = 0
            for line in log.read_text().splitlines():
                count = 0 if line.endswith(" ok") else count + 1
            return count

        for attempt in range(3 * access.MAX_FAILURES):  # a submit lost to a rerun is typed again
            if wrong_since_success() >= access.MAX_FAILURES:
                break
            before = wrong_since_success()
            type_code(limited, f"WRONG-{attempt:05d}")
            for _ in range(50):
                if wrong_since_success() > before:
                    break
                limited.wait_for_timeout(100)
        assert wrong_since_success() == access.MAX_FAILURES
        type_code(limited, codes[third])
        expect(limited.get_by_text(re.compile("too many wrong codes: try again in"))).to_be_visible(timeout=30_000)
        limited.reload()
        idle(limited)
        type_code(limited, codes[third])
        expect(limited.get_by_text(re.compile("too many wrong codes: try again in"))).to_be_visible(timeout=30_000)
        expect(limited.get_by_text(re.compile(rf"Case \d+ of {CASES}"))).to_have_count(0)
        visited += [page.url, limited.url]
        browser.close()

    # no code anywhere it could leak: the study folder, responses.csv, the server logs, the URLs
    places = {str(path): path.read_bytes() for path in study_path.rglob("*") if path.is_file()}
    places.update({str(log): log.read_bytes() for log in served_study["logs"]})
    places["urls"] = "\n".join(visited).encode()
    assert study.responses_path.is_file() and len(visited) >= 6
    for who, code in codes.items():
        for form in {code, code.replace("-", ""), code.lower()}:
            assert not [where for where, content in places.items() if form.encode() in content], (who, form)


READING_ONLY_PATHS = ("", "/predict", "/prediction", "/comparison", "/compare", "/grad-cam", "/gradcam", "/training",
                      "/train", "/umap", "/umap-embedding", "/external", "/external-validation", "/lesions",
                      "/synthesized-lesions", "/overview", "/reader-study", "/reader_study", "/no-such-page")
OTHER_TITLES = ("MelaNet dashboard", "Compare classifiers", "External validation", "Grad-CAM", "Predict", "Train",
                "Synthesized lesions", "UMAP embeddings")


def test_the_reading_only_server_serves_the_reader_page_alone(served_study, tmp_path: Path) -> None:
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(tmp_path / "runs"),
               MELANET_STUDIES_DIR=str(served_study["path"].parent), MELANET_READING_ONLY="1")
    server, url = start_server(env, tmp_path / "reading-only.log")
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for path in READING_ONLY_PATHS:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(url + path)
                try:
                    expect(page.locator("h1").filter(has_text="Reader study")).to_be_visible(timeout=60_000)
                    idle(page)
                    expect(page.locator(".st-key-reader_code input")).to_be_visible(timeout=30_000)
                except AssertionError:
                    screenshot(page, f"failed-reading-only{path.replace('/', '-')}")
                    raise
                headings = [text.strip() for text in page.locator("h1").all_inner_texts()]
                assert headings == ["Reader study"], (path, headings)
                expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
                expect(page.locator(".st-key-study_view").get_by_text("New study")).to_have_count(0)
                body = page.inner_text("body")
                assert not [title for title in OTHER_TITLES if title in body], (path, body[:500])
                page.close()
            browser.close()
    finally:
        stop_server(server)
