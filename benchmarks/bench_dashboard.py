"""Dashboard responsiveness: Overview time to first render and a page switch, next to a bare Streamlit page.

Starts `streamlit run app.py` and `streamlit run <bare page>` headless on 127.0.0.1 in the same run,
drives both with Playwright in /usr/bin/chromium, and times (a) a fresh tab until the Overview's last
section is visible, (b) a sidebar switch Overview -> Compare until its ROC chart is visible, and
(c) a fresh tab of a bare page showing one line of text. Runs are read from MELANET_MODELS_DIR /
MELANET_RUNS_DIR when set (default: the shipped models/ and runs/).

    python benchmarks/bench_dashboard.py [--repeats 3]   ->  benchmarks/results/dashboard.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_browser as browser_helpers  # noqa: E402  (server start-up and Chromium settings)
from playwright.sync_api import sync_playwright  # noqa: E402

BARE_PAGE = 'import streamlit as st\nst.title("Bare page")\nst.write("hello")\n'


def timed(action, wait) -> float:
    start = time.perf_counter()
    action()
    wait()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dashboard.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    bare = work / "bare_page.py"
    bare.write_text(BARE_PAGE)
    env = dict(os.environ)
    app_server, app_url = browser_helpers.start_server(env, work / "app.log")
    bare_server, bare_url = browser_helpers.start_server(env, work / "bare.log", script=str(bare))
    results: dict[str, list[float]] = {"overview_first_render_s": [], "switch_to_compare_s": [],
                                       "bare_page_first_render_s": []}
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=browser_helpers.CHROMIUM,
                                                  args=browser_helpers.CHROMIUM_ARGS)
            for _ in range(args.repeats):
                page = chromium.new_page()
                results["bare_page_first_render_s"].append(timed(
                    lambda: page.goto(bare_url), lambda: page.get_by_text("hello").wait_for(timeout=60_000)))
                page.close()
                page = chromium.new_page()
                results["overview_first_render_s"].append(timed(
                    lambda: page.goto(app_url),
                    lambda: page.get_by_text("What to do next").wait_for(timeout=60_000)))
                link = page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Compare").first
                results["switch_to_compare_s"].append(timed(
                    link.click,
                    lambda: page.get_by_text("ROC curves").or_(page.get_by_text("No evaluated")).first
                    .wait_for(timeout=60_000)))
                page.close()
            chromium.close()
    finally:
        browser_helpers.stop_server(app_server)
        browser_helpers.stop_server(bare_server)
    summary = {name: {"median": round(statistics.median(values), 3), "runs": [round(v, 3) for v in values]}
               for name, values in results.items()}
    record = {"benchmark": "dashboard", "repeats": args.repeats, "cpu_count": os.cpu_count(),
              "python": platform.python_version(),
              "models_dir": os.environ.get("MELANET_MODELS_DIR", str(REPO / "models")),
              "note": "first repeat includes Python imports in the server's script thread (cold)", **summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
