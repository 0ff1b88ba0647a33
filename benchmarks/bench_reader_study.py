"""Many readers at once: N Chromium browsers, each with its own reader code, read M cases of one study on one
reading-only Streamlit server (``MELANET_READING_ONLY=1``), all at the same time; then every answer must be
in ``responses.csv`` under the reader whose code answered it, with that reader's decision and confidence.

The study is made from the shipped demo run with the command line (unaided phase only), in a temporary
folder. Reader k answers the case at position p of their own order "malignant" when (p + k) is even, with
confidence 1 + (p + k) mod 5, so a swapped or lost answer shows.

    python benchmarks/bench_reader_study.py [--browsers 20] [--cases 40]  ->  benchmarks/results/reader_study.json
    (not in CI: 20 browsers x 40 cases need minutes of a machine of their own)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

DEMO_RUN = REPO / "models" / "demo" / "melanet"
NAME = "bench"


def choice(reader_index: int, position: int) -> tuple[str, int]:
    """What reader ``reader_index`` answers at ``position`` of their order."""
    return ("malignant" if (position + reader_index) % 2 == 0 else "benign"), 1 + (position + reader_index) % 5


def read_as(arguments: tuple[str, int, str, int]) -> dict:
    """One browser: sign in with ``code``, give the experience, answer ``cases`` cases; seconds per answer."""
    import test_browser_reader_study as helpers
    from playwright.sync_api import sync_playwright

    url, reader_index, code, cases = arguments
    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=helpers.CHROMIUM, args=helpers.CHROMIUM_ARGS)
        page = browser.new_page(viewport=helpers.VIEWPORT)
        page.goto(url)
        helpers.idle(page)
        page.locator(".st-key-reader_code input").wait_for(timeout=120_000)
        helpers.type_code(page, code)
        helpers.give_experience(page)
        for position in range(cases):
            start = time.perf_counter()
            helpers.expect(page.get_by_text(f"Case {position + 1} of {cases} (unaided)")).to_be_visible(
                timeout=300_000)
            helpers.answer(page, *choice(reader_index, position))
            seconds.append(time.perf_counter() - start)
        helpers.expect(page.get_by_text("Thank you")).to_be_visible(timeout=300_000)
        browser.close()
    return {"reader": reader_index, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browsers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reader_study.json"))
    args = parser.parse_args()

    from dashboard import server
    from melanet.studies import responses, study as study_module

    work = Path(tempfile.mkdtemp(prefix="bench-reader-study-"))
    names = [f"Reader {index:02d}" for index in range(args.browsers)]
    codes_file = work / "private" / "codes.txt"
    subprocess.run([sys.executable, "-m", "melanet", "-q", "reader-study", "create", "--run", str(DEMO_RUN),
                    "--name", NAME, "--cases", str(args.cases), "--no-aided", "--root", str(work / "studies"),
                    "--readers", ",".join(names), "--codes-out", str(codes_file)], cwd=REPO, check=True,
                   capture_output=True)
    codes = {line.split("\t")[1]: line.split("\t")[2] for line in codes_file.read_text().splitlines()[1:]
             if line.startswith("reader\t")}
    env = dict(os.environ, MELANET_READING_ONLY="1", MELANET_STUDIES_DIR=str(work / "studies"),
               MELANET_MODELS_DIR=str(work / "no-models"), MELANET_RUNS_DIR=str(work / "no-runs"))
    process, url = server.start(env, work / "server.log")
    started = time.perf_counter()
    try:
        with multiprocessing.get_context("spawn").Pool(args.browsers) as pool:
            finished = pool.map(read_as, [(url, index, codes[name], args.cases) for index, name in enumerate(names)])
    finally:
        server.stop(process)
    wall = time.perf_counter() - started

    study = study_module.open_study(work / "studies" / NAME)
    rows = responses.read_responses(study)
    wrong = []
    for index, name in enumerate(names):
        mine = {row["case"]: row for row in rows if row["reader"] == name}
        for position, case in enumerate(study_module.case_order(study, name, "unaided")):
            row = mine.get(case)
            if row is None or (row["decision"], row["confidence"]) != choice(index, position):
                wrong.append((name, case))
    every = sorted(second for item in finished for second in item["seconds"])
    record = {
        "browsers": args.browsers, "cases": args.cases, "answers_expected": args.browsers * args.cases,
        "answers_saved": len(rows), "answers_missing_or_misfiled": len(wrong), "wall_s": round(wall, 1),
        "seconds_per_answer_median": round(every[len(every) // 2], 2),
        "seconds_per_answer_p95": round(every[int(0.95 * (len(every) - 1))], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    if wrong or len(rows) != args.browsers * args.cases:
        raise SystemExit(f"{len(wrong)} answers missing or under the wrong reader: {wrong[:5]}")


if __name__ == "__main__":
    main()
