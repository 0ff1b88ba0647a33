"""Issue 36 in a real browser (`streamlit run app.py` headless, Debian's Chromium through Playwright):

- every page opens at its file name (/predict) and at its earlier path (/prediction, which moves on to
  /predict), with the app's navigation and title, the first request of a fresh server included;
- no page shows "block5c_add" outside a details box;
- Predict says one decision: never "Rule-out" for an image flagged uncertain (a run whose flag threshold
  the test sets), the rule-out evidence as a count with its interval, and "unlike the images this model
  learnt from" for a flat-colour upload;
- Compare opens on MelaNet's model card and nothing runs past the right edge of a 1280 px window.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from test_browser import CHROMIUM, CHROMIUM_ARGS, REPO, choose, playwright_api, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = playwright_api.expect

# title, file-name path, earlier path ("" = the app's root), the page's heading
PAGES = [("Overview", "overview", "", "MelaNet dashboard"), ("Train", "train", "training", "Train"),
         ("Compare", "compare", "comparison", "Compare classifiers"),
         ("External validation", "external", "external-validation", "External validation"),
         ("Synthesized lesions", "lesions", "synthesized-lesions", "Synthesized lesions"),
         ("Grad-CAM", "gradcam", "grad-cam", "Grad-CAM"), ("UMAP", "umap", "umap-embedding", "UMAP embeddings"),
         ("Predict", "predict", "prediction", "Predict"), ("Reader study", "reader_study", "reader-study", "Reader study")]
# Streamlit's frontend first looks for its server at the deep link itself (/predict/_stcore/health and
# /predict/_stcore/host-config), which its server answers 404 on purpose; the app cannot remove these two
# under `streamlit run app.py` (dashboard/navigation.py's docstring says why). Only they are allowed.
FRONTEND_PROBES = ("_stcore/health", "_stcore/host-config")


def _unexpected_errors(errors: list[tuple[str, str, int]], url: str) -> list[tuple[str, str, int]]:
    """The (opened path, response url, status) of ``errors`` that are not the frontend's two 404 probes
    of the path being opened."""
    return [(path, response_url, status) for path, response_url, status in errors
            if not (path and status == 404 and response_url in {f"{url}/{path}/{probe}" for probe in FRONTEND_PROBES})]


# all page text outside details boxes (expanders), tooltips and the sidebar
TEXT_OUTSIDE_DETAILS = """() => {
    const main = document.querySelector('[data-testid="stMain"]').cloneNode(true);
    main.querySelectorAll('[data-testid="stExpander"]').forEach(node => node.remove());
    return main.innerText;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _server(folder: Path, models: Path):
    env = dict(os.environ, MELANET_MODELS_DIR=str(models), MELANET_RUNS_DIR=str(folder / "runs"))
    return start_server(env, folder / "server.log")


def _wait_for_heading(page, heading: str) -> None:
    expect(page.locator("h1").filter(has_text=heading).first).to_be_visible(timeout=90_000)


def _check_app_frame(page) -> None:
    """The app's own navigation (not Streamlit's file list) and title; no 'page not found'."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).to_contain_text("Synthesized lesions", timeout=30_000)
    expect(nav).to_contain_text("Reader study")
    assert "MelaNet" in page.title(), page.title()
    assert "does not seem to exist" not in page.locator("body").inner_text()


def test_each_page_opens_at_its_file_name_and_its_earlier_path(browser, tmp_path: Path) -> None:
    server, url = _server(tmp_path, REPO / "models")
    errors: list[tuple[str, str, int]] = []  # (the path being opened, response url, status) of every 4xx/5xx
    opened = [""]
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("response", lambda response: errors.append((opened[0], response.url, response.status))
                if response.status >= 400 else None)
        # the very first request of this server is a deep link (Streamlit would run pages/predict.py alone)
        for title, stem, earlier, heading in [PAGES[7]] + PAGES:
            # an earlier path moves on to the file name; the root shows the Overview where it is
            for path, landing in ((stem, stem), (earlier, stem if earlier else "")):
                opened[0] = path
                page.goto(f"{url}/{path}")
                _wait_for_heading(page, heading)
                expect(page).to_have_url(re.compile(rf"^{re.escape(url)}/{landing}(\?.*)?$"), timeout=30_000)  # a page may add a query
                _check_app_frame(page)
                if landing:  # the sidebar marks the page (at the root no entry is marked)
                    active = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]')
                    expect(active).to_contain_text(title, timeout=30_000)
                page.wait_for_timeout(1500)  # sections drawn after the heading
                outside = page.evaluate(TEXT_OUTSIDE_DETAILS)
                assert "block5c_add" not in outside, f"/{path}: block5c_add outside a details box"
        screenshot(page, "paths-reader-study")
        page.close()
    finally:
        stop_server(server)
    assert _unexpected_errors(errors, url) == [], errors


def _upload(page, path: Path) -> None:
    page.locator('input[type="file"]').set_input_files(str(path))


def _decision_box(page):
    return page.locator(".st-key-predict_decision")


def test_flat_colour_upload_is_unlike_the_training_images(browser, tmp_path: Path) -> None:
    server, url = _server(tmp_path, REPO / "models")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{url}/predict")
        _wait_for_heading(page, "Predict")
        flat = tmp_path / "flat.png"
        Image.fromarray(np.full((300, 300, 3), (40, 90, 200), np.uint8)).save(flat)
        _upload(page, flat)
        box = _decision_box(page)
        expect(box).to_contain_text("Unlike the images this model learnt from: the result is not meaningful.",
                                    timeout=180_000)
        for other in ("Rule-out:", "Rule-in:", "Between:", "Cannot be ruled out"):
            expect(box).not_to_contain_text(other)
        model_line = page.locator('[data-testid="stMarkdown"]').filter(has_text="Model:").first
        expect(model_line).to_contain_text("test AUC 0.686 [0.569, 0.803]")
        # the heat map's colour-scale ends are page text of 12 px or more, and the layer name is in details only
        scale = page.locator(".heatmap-scale").first
        expect(scale).to_contain_text("high: raised the malignant score most", timeout=60_000)
        sizes = scale.locator("span").evaluate_all("nodes => nodes.map(node => parseFloat(getComputedStyle(node).fontSize))")
        assert len(sizes) == 2 and min(sizes) >= 12, sizes
        expect(page.get_by_text("Where the model looked, over the uploaded image")).to_be_visible()
        assert "block5c_add" not in page.evaluate(TEXT_OUTSIDE_DETAILS)
        page.get_by_text("Which network layer").click()
        expect(page.get_by_text("block5c_add").first).to_be_visible(timeout=30_000)
        screenshot(page, "predict-unlike-training")
        page.close()
    finally:
        stop_server(server)


def test_compare_opens_on_melanets_card_and_fits_1280_px(browser, tmp_path: Path) -> None:
    server, url = _server(tmp_path, REPO / "models")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/compare")
        _wait_for_heading(page, "Compare classifiers")
        card = page.locator('.st-key-model_card_run [role="combobox"]')
        expect(card).to_have_value("models/demo/melanet", timeout=90_000)
        expect(page.get_by_text("AUC(flagged) - AUC(unflagged) = ").first).to_be_visible(timeout=90_000)
        table = page.locator(".st-key-paired_table table")
        expect(table).to_contain_text("melanomas: who was right", timeout=60_000)
        page.wait_for_timeout(2000)
        widths = page.evaluate("""() => {
            const main = document.querySelector('[data-testid="stMain"]');
            return {document: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
                    main: [main.scrollWidth, main.clientWidth]};
        }""")
        for name, (scroll, client) in widths.items():
            assert scroll <= client, (name, widths)
        # no table or grid wider than the room it has (a wider one hides its right columns)
        cut = page.evaluate("""() => [...document.querySelectorAll(
                '[data-testid="stTable"], [data-testid="stTable"] table, [data-testid="stDataFrame"] .dvn-scroller')]
            .filter(node => node.scrollWidth > node.clientWidth + 1)
            .map(node => node.className + ' ' + node.scrollWidth + '>' + node.clientWidth)""")
        assert cut == [], cut
        # the last column's header ends inside the window
        right = table.locator("th").last.bounding_box()
        assert right is not None and right["x"] + right["width"] <= 1280, right
        screenshot(page, "compare-1280")
        page.close()
    finally:
        stop_server(server)


# --- a run whose flag threshold the test sets ---------------------------------------------------------------

def _set_points(run_path: Path) -> None:
    """Rule-out and rule-in thresholds at 0.99855, chosen by the package on validation scores where all five
    benign images score at most 0.998 and the three melanomas above 0.999 (so an untrained model's upload
    falls below rule-out), scored on the run's own test predictions."""
    from melanet.evaluation import operating_points

    test = [line.split(",") for line in (run_path / "predictions.csv").read_text().splitlines()[1:]]
    labels, scores = [int(row[1]) for row in test], [float(row[2]) for row in test]
    validation_labels = [0, 0, 0, 0, 0, 1, 1, 1]
    validation_scores = [0.1, 0.3, 0.5, 0.7, 0.998, 0.9991, 0.9993, 0.9996]
    metrics = json.loads((run_path / "metrics.json").read_text())
    metrics["operating_points"] = operating_points.report(labels, scores, validation_labels, validation_scores)
    (run_path / "metrics.json").write_text(json.dumps(metrics))


def _set_spread(run_path: Path, uncertain_spread: float) -> None:
    config = yaml.safe_load((run_path / "config.yaml").read_text())
    config.setdefault("evaluation", {})["uncertain_spread"] = uncertain_spread
    (run_path / "config.yaml").write_text(yaml.safe_dump(config))


def _lesion_bytes() -> bytes:
    return sorted((REPO / "data" / "sample").rglob("ISIC_*.jpg"))[0].read_bytes()


def _give_spread(run_path: Path) -> float:
    """Scale the untrained model's output layer until the upload's 8 views spread by 0.02-0.8 (all below 0.99);
    save it; return that spread (max - min of the 8 views' probabilities, computed here)."""
    import keras

    from melanet.runs import runs
    from melanet.classifier import predict
    from melanet.data import preprocess

    settings = runs.Run(run_path).config().data
    image = preprocess.preprocess_image(_lesion_bytes(), settings.image_size, settings.max_image_pixels,
                                        settings.resize, settings.color_constancy)
    original = keras.models.load_model(run_path / "model.keras")
    kernel, bias = original.get_layer("predictions").get_weights()
    for factor in (1e1, 1e2, 1e3, 1e4, 1e5, 1e6):
        original.get_layer("predictions").set_weights([kernel * factor, bias])
        _, views = predict.predict_with_views(original, image[None])
        spread = float(views.max() - views.min())
        if 0.02 <= spread <= 0.8 and views.max() < 0.99:
            original.save(run_path / "model.keras")
            return spread
    raise AssertionError("no scale of the output layer gave the upload a usable spread")


@pytest.fixture(scope="module")
def flagged_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The same model (its spread on the upload set by the test) in models/flagged/melanet, flagged uncertain
    above half that spread, and in models/steady/melanet, flagged only above twice it."""
    import app_fixture

    models = tmp_path_factory.mktemp("flag") / "models"
    app_fixture.write_results(models / "flagged")
    spread = _give_spread(models / "flagged" / "melanet")
    shutil.copytree(models / "flagged", models / "steady")
    for name, threshold in (("flagged", spread / 2), ("steady", min(0.99, 2 * spread))):
        _set_points(models / name / "melanet")
        _set_spread(models / name / "melanet", round(threshold, 4))
    return models, spread


def _lesion_jpeg(path: Path) -> Path:
    path.write_bytes(_lesion_bytes())
    return path


def test_an_uncertain_image_is_never_ruled_out_and_the_evidence_is_counted(browser, flagged_runs, tmp_path: Path) -> None:
    models, set_spread = flagged_runs
    server, url = _server(tmp_path, models)
    z = 1.959963984540054
    wilson_low = round(100 * 3 / (3 + z * z))  # Wilson's lower bound for 3 of 3 (the upper is 1): 44 %
    try:
        upload = _lesion_jpeg(tmp_path / "lesion.jpg")
        outcomes = {}
        for folder in ("flagged", "steady"):
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(f"{url}/predict")
            _wait_for_heading(page, "Predict")
            choose(page, "predict_run", f"models/{folder}/melanet")
            expect(page.locator('.st-key-predict_run [role="combobox"]')).to_have_value(f"models/{folder}/melanet")
            _upload(page, upload)
            box = _decision_box(page)
            expect(box.locator('[data-testid="stMetricValue"]')).to_have_text(re.compile(r"^[01]\.\d{3}$"),
                                                                               timeout=180_000)
            probability = float(box.locator('[data-testid="stMetricValue"]').inner_text())
            assert probability <= (0.998 + 0.9991) / 2, "the untrained model must score below the rule-out threshold here"
            page.wait_for_timeout(1000)
            outcomes[folder] = box.inner_text()
            screenshot(page, f"predict-decision-{folder}")
            page.close()
        flagged, steady = outcomes["flagged"], outcomes["steady"]
        shown = re.search(r"\(spread ([0-9.]+);", flagged)
        assert shown and float(shown[1]) == pytest.approx(set_spread, abs=6e-4), (flagged, set_spread)
        assert "Cannot be ruled out: the answer changes when the image is turned." in flagged
        assert "Rule-out:" not in flagged, flagged
        assert "Rule-out:" in steady and "Cannot be ruled out" not in steady, steady
        threshold = (0.998 + 0.9991) / 2  # halfway between the highest benign and the lowest melanoma score
        evidence = (f"rule-out: of 3 melanomas in the validation data, 3 (100 % [{wilson_low} %, 100 %]) scored above "
                    f"this threshold ({threshold:.3f})")
        assert evidence in flagged and evidence in steady, (evidence, flagged, steady)
        # one decision each: one headline in the box
        for text in (flagged, steady):
            assert sum(text.count(head) for head in ("Rule-out:", "Rule-in:", "Between:", "Cannot be ruled out:",
                                                     "Unlike the images")) == 1, text
        assert math.isfinite(probability)
    finally:
        stop_server(server)
