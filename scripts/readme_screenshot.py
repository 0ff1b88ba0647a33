"""The README's Predict screenshot: the dashboard on the shipped demo, one sample image uploaded.

    python scripts/readme_screenshot.py [--image data/sample/ISBI2016_ISIC_Part3_Test_Data/ISIC_0000070.jpg]

Starts ``streamlit run app.py`` headless on a free loopback port, opens the Predict page in Debian's
Chromium (Playwright), uploads the image, waits for the probability, the Grad-CAM map and the six similar
training cases, and writes ``docs/images/predict.jpg`` (1400 px wide, the page down to its last content,
JPEG quality 85).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from dashboard import server as server_module  # noqa: E402
CHROMIUM = "/usr/bin/chromium"
DEFAULT_IMAGE = REPO / "data" / "sample" / "ISBI2016_ISIC_Part3_Test_Data" / "ISIC_0000070.jpg"


def _save_trimmed(shot: Path, out: Path, margin: int = 40) -> None:
    """Cut the empty space below the page's last content (rows equal to the background colour)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    main = pixels[:, pixels.shape[1] // 4:]  # right of the sidebar
    busy = np.flatnonzero(np.abs(main - main[-1:, :1]).max(axis=(1, 2)) > 8)
    bottom = min(pixels.shape[0], int(busy[-1]) + margin) if busy.size else pixels.shape[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[:bottom].astype(np.uint8)).save(out, quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "predict.jpg")
    args = parser.parse_args()
    if not args.image.is_file():
        raise SystemExit(f"{args.image}: no such image")
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, MELANET_MODELS_DIR=str(REPO / "models"), MELANET_RUNS_DIR=str(Path(scratch) / "runs"))
        server, url = server_module.start(env, Path(scratch) / "server.log", timeout=60)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1400, "height": 2400})
                page.goto(url)
                page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Predict").first.click(timeout=60_000)
                page.locator('input[type="file"]').set_input_files(str(args.image), timeout=180_000)
                expect(page.get_by_text("Where the model looked").first).to_be_visible(timeout=180_000)
                expect(page.get_by_text("similarity").first).to_be_visible(timeout=180_000)
                time.sleep(2.0)  # let the thumbnails paint
                shot = Path(scratch) / "page.png"
                page.screenshot(path=str(shot), full_page=True)
                browser.close()
            _save_trimmed(shot, args.out)
        finally:
            server_module.stop(server)
    print(args.out)


if __name__ == "__main__":
    main()
