"""The dashboard in a real browser: `streamlit run app.py` headless on 127.0.0.1, driven by Playwright
in Debian's Chromium. Visits every page, checks what is visible, saves a screenshot of each into
test-artifacts/screenshots/, launches a smoke-sized GAN training from the Train page and watches it
finish, then stops a longer one mid-way (from a second tab's view of the same job).
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dashboard import server as server_module


pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists() and os.environ.get("MELANET_REQUIRE_BROWSER"):
    pytest.fail(f"{CHROMIUM} is missing and MELANET_REQUIRE_BROWSER is set (CI must install chromium)", pytrace=False)
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (CI installs Debian's chromium package)", allow_module_level=True)
try:
    import playwright.sync_api as playwright_api
except ImportError as error:
    if os.environ.get("MELANET_REQUIRE_BROWSER"):  # CI: a missing Playwright must fail, not skip the browser tests
        pytest.fail(f"playwright is not importable ({error}) and MELANET_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(f"playwright is not installed ({error})", allow_module_level=True)
expect = playwright_api.expect


def start_server(env: dict[str, str], log_path: Path, script: str = "app.py") -> tuple[subprocess.Popen, str]:
    """`streamlit run` headless on a free port (``dashboard.server``); the process and its URL once healthy."""
    try:
        return server_module.start(env, log_path, script)
    except RuntimeError as error:
        raise AssertionError(str(error)) from None


stop_server = server_module.stop


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The dashboard as a fresh clone shows it: the shipped ``models/demo``, and an empty runs folder."""
    folder = tmp_path_factory.mktemp("browser")
    assert (REPO / "models" / "demo" / "table.md").is_file(), "the shipped demo run models/demo is missing"
    env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(folder / "runs"))
    server, url = start_server(env, folder / "server.log")
    try:
        yield url, folder / "runs"
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser):
    # tall: Streamlit scrolls inside the page, so a screenshot shows only the viewport
    return browser.new_page(viewport={"width": 1400, "height": 2000})


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # let images and charts paint
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the select box whose widget key is ``key``."""
    try:
        page.locator(f'.st-key-{key} [role="combobox"]').click(timeout=20_000)
    except Exception:
        screenshot(page, f"failed-choose-{key}")
        raise
    page.locator('[role="option"]').filter(has_text=option).first.click()


def open_page(page, url: str, title: str) -> None:
    """Enter at the root and switch pages with the sidebar, as people do (deep links to each page are
    tested in test_browser_paths_and_decision.py)."""
    page.goto(url)
    link = page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first
    link.wait_for(timeout=60_000)
    if title != "Overview":
        link.click()


def metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_every_page_shows_its_content(dashboard, browser) -> None:
    url, _ = dashboard
    page = new_page(browser)
    checks = {
        "Overview": ["What to do next", "Data set", "Table 1 of models/demo"],
        "Train": ["GAN run name", "Launch GAN training"],
        "Compare": ["ROC curves", "Metrics at threshold 0.5", "Confusion matrices"],
        "Synthesized lesions": ["syn_ISIC_", "synthetic malignant", "cycle reconstruction"],
        "Grad-CAM": ["Outcome", "Side by side with", "P(malignant)"],
        "UMAP": ["Original training set", "Balanced (originals + synthetic malignant)", "Domain gap",
                 "synthetic vs real malignant"],
        "Predict": ["not a medical device", "Dermoscopy image (JPEG or PNG)"],
    }
    for title, texts in checks.items():
        open_page(page, url, title)
        for text in texts:
            expect(page.get_by_text(text).first).to_be_visible(timeout=60_000)
        if title == "Overview":  # the class counts and the runs table (canvas grids: their cells are not DOM text)
            expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(2, timeout=30_000)
            # .streamlit/config.toml: the viewer toolbar, no Deploy button
            expect(page.locator('[data-testid="stAppDeployButton"]')).to_have_count(0)
        if title == "Compare":
            expect(page.locator(".legendtext").filter(has_text="AUC")).to_have_count(4, timeout=30_000)
        expect(page.locator('[data-testid="stSidebarNav"]')).to_contain_text("Synthesized lesions")  # our navigation
        screenshot(page, title.lower().replace(" ", "-"))
    page.close()


def test_umap_click_on_a_synthetic_point_shows_its_image(dashboard, browser) -> None:
    url, _ = dashboard
    page = new_page(browser)
    open_page(page, url, "UMAP")
    expect(page.get_by_text("No point selected.")).to_be_visible(timeout=60_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(2, timeout=60_000)
    # panel (b): traces benign, malignant, synthetic; plotly picks the point under the mouse
    synthetic_points = charts.nth(1).locator(".scatterlayer .trace").nth(2).locator("path.point")
    expect(synthetic_points.first).to_be_attached(timeout=60_000)
    box = synthetic_points.nth(0).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text("Selected", exact=True)).to_be_visible(timeout=60_000)
    caption = page.get_by_text(__import__("re").compile(r"^syn_ISIC_\d+ \(synthetic\)$")).first
    expect(caption).to_be_visible(timeout=60_000)
    expect(page.get_by_text("No point selected.")).to_have_count(0)
    screenshot(page, "umap-selected")
    page.close()


def test_predict_upload_good_and_bad(dashboard, browser, tmp_path: Path) -> None:
    url, _ = dashboard
    page = new_page(browser)
    open_page(page, url, "Predict")
    good = tmp_path / "lesion.jpg"
    good.write_bytes(jpeg_bytes())
    page.locator('input[type="file"]').set_input_files(str(good))
    expect(metric(page, "P(malignant)")).to_have_text(__import__("re").compile(r"^[01]\.\d{3}$"), timeout=120_000)
    expect(page.get_by_text("Where the model looked, over the uploaded image").first).to_be_visible(timeout=60_000)
    expect(page.locator(".st-key-predict_decision")).to_be_visible()  # one decision box
    # the shipped run's retrieval index: six similar training cases, each captioned with its similarity
    expect(page.get_by_text("Similar training cases")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(__import__("re").compile(r"^\d\. ISIC_\d+: (benign|malignant).*similarity [01]\.\d{3}$"))
           ).to_have_count(6, timeout=60_000)
    screenshot(page, "predict-upload")
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all")
    page.locator('input[type="file"]').set_input_files(str(bad))
    expect(page.get_by_text("Cannot use notes.png").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    screenshot(page, "predict-bad-upload")
    page.close()


def _launch_gan(page, name: str, epochs: int) -> None:
    choose(page, "gan_preset", "smoke.yaml")
    epochs_input = page.locator(".st-key-gan_epochs_smoke input")
    expect(epochs_input).to_have_value("2", timeout=30_000)  # the smoke preset's defaults are shown
    page.locator(".st-key-gan_name input").fill(name)
    epochs_input.fill(str(epochs))
    epochs_input.press("Tab")
    page.get_by_role("button", name="Launch GAN training").click()
    expect(page.get_by_text(f"on `{name}`").or_(page.get_by_text(f"on {name}")).first).to_be_visible(timeout=30_000)


STOP_EPOCHS = 5000


def _history_rows(run_dir: Path) -> int:
    path = run_dir / "history.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def test_launch_watch_finish_then_stop_one_midway(dashboard, browser) -> None:
    url, runs_dir = dashboard
    page = new_page(browser)
    open_page(page, url, "Train")
    _launch_gan(page, "browser-finish", 1)
    expect(metric(page, "State")).to_have_text("done", timeout=300_000)
    expect(metric(page, "Epoch")).to_have_text("1/1")
    screenshot(page, "train-finished")

    page.reload()  # a refresh forgets the session, not the job: the run list is on disk
    expect(metric(page, "State")).to_have_text("done", timeout=60_000)
    # the form's largest epoch count: a fast machine must not finish the run before it is stopped midway
    _launch_gan(page, "browser-stop", STOP_EPOCHS)
    run_dir = runs_dir / "browser-stop"
    deadline = time.monotonic() + 300
    while _history_rows(run_dir) < 1:
        assert time.monotonic() < deadline, "no epoch finished within 300 s"
        time.sleep(0.5)
    expect(metric(page, "State")).to_have_text("running", timeout=30_000)

    second = new_page(browser)  # a second tab sees the same job
    open_page(second, url, "Train")
    second.locator('[data-testid="stSelectbox"]').filter(has_text="Run to watch").locator('[role="combobox"]').click()
    second.locator('[role="option"]').filter(has_text="runs/browser-stop").first.click()
    expect(metric(second, "State")).to_have_text("running", timeout=30_000)
    screenshot(second, "train-running-second-tab")

    second.locator(".st-key-stop_button button").click()
    expect(metric(page, "State")).to_have_text("stopped", timeout=120_000)
    screenshot(page, "train-stopped")
    status = __import__("json").loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and status["epoch"] < STOP_EPOCHS
    assert (run_dir / "checkpoints" / "latest.json").is_file()  # resumable
    expect(page.locator(".st-key-resume_button button")).to_be_enabled(timeout=30_000)
    second.close()
    page.close()


def _wait_for_file(path: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        assert time.monotonic() < deadline, f"no {path} within {timeout_s} s"
        time.sleep(0.5)


def _wait_done(page, run_dir: Path, step: str = "", timeout_s: float = 300) -> None:
    """``run_dir``'s status.json reads done (its ``step`` entry, e.g. ``evaluation``, when given), and the
    progress panel, watching that run, says so too (the panel of an earlier run may still be on screen
    right after a launch, so the file is checked first)."""
    status_path = run_dir / "status.json"
    deadline = time.monotonic() + timeout_s
    while True:
        status = __import__("json").loads(status_path.read_text()) if status_path.is_file() else {}
        state = (status.get(step) or {}).get("state") if step else status.get("state")
        if state == "done":
            break
        assert state != "failed", f"{run_dir.name} failed: {status}"
        assert time.monotonic() < deadline, f"{run_dir.name} not done within {timeout_s} s: {status}"
        time.sleep(0.5)
    watched = page.locator('[data-testid="stSelectbox"]').filter(has_text="Run to watch").locator('[role="combobox"]')
    expect(watched).to_have_value(f"runs/{run_dir.name}", timeout=30_000)
    expect(metric(page, "State")).to_have_text("done", timeout=60_000)


def test_synthesis_classifier_and_evaluation_forms_chain_into_a_metrics_file(dashboard, browser) -> None:
    """The Train page's other three forms, in the order a user runs them, on the smoke preset."""
    url, runs_dir = dashboard
    page = new_page(browser)
    open_page(page, url, "Train")
    _launch_gan(page, "chain-gan", 1)
    _wait_done(page, runs_dir / "chain-gan")

    page.reload()  # the forms list the runs on disk when the page renders
    page.get_by_role("tab", name="Synthesis").click()
    choose(page, "synthesis_run", "runs/chain-gan")
    page.get_by_role("button", name="Launch synthesis").click()
    expect(page.get_by_text("Launched synthesize").first).to_be_visible(timeout=30_000)
    manifest_path = runs_dir / "chain-gan" / "synthetic" / "manifest.csv"
    _wait_for_file(manifest_path)  # the GAN run already read 'done' before synthesis started
    _wait_done(page, runs_dir / "chain-gan")
    manifest = manifest_path.read_text().splitlines()
    assert len(manifest) > 1 and manifest[0].startswith("synthetic_id,")

    page.reload()
    page.get_by_role("tab", name="Classifier").click()
    choose(page, "classifier_preset", "smoke.yaml")
    expect(page.locator(".st-key-classifier_epochs_smoke input")).to_have_value("2", timeout=30_000)
    page.locator(".st-key-classifier_name input").fill("chain-melanet")
    page.get_by_text("originals + CycleGAN synthetic malignant lesions (MelaNet)").click()
    choose(page, "classifier_gan_run", "runs/chain-gan")
    epochs_input = page.locator(".st-key-classifier_epochs_smoke input")
    epochs_input.fill("1")
    epochs_input.press("Tab")
    page.get_by_role("button", name="Launch classifier training").click()
    expect(page.get_by_text("on `chain-melanet`").or_(page.get_by_text("on chain-melanet")).first).to_be_visible(
        timeout=30_000)
    run_dir = runs_dir / "chain-melanet"
    _wait_done(page, run_dir)
    saved = (run_dir / "config.yaml").read_text()
    assert "training_set: synthetic" in saved and str(runs_dir / "chain-gan") in saved and "epochs: 1" in saved

    page.reload()
    page.get_by_role("tab", name="Evaluation").click()
    choose(page, "evaluation_run", "runs/chain-melanet")
    page.get_by_role("button", name="Launch", exact=True).click()
    expect(page.get_by_text("Launched evaluate").first).to_be_visible(timeout=30_000)
    _wait_done(page, run_dir, step="evaluation")
    expect(metric(page, "Stage")).to_have_text("evaluate")  # the panel follows the launched step
    metrics = __import__("json").loads((run_dir / "metrics.json").read_text())
    assert metrics["n"] == 73 and metrics["tp"] + metrics["fn"] == 39 and 0.0 <= metrics["auc"] <= 1.0
    screenshot(page, "train-chain-evaluated")
    page.close()
