"""Benchmark the paired comparison: DeLong on 10,000 test images x 4 runs (target: well under a second).

Times, as medians over repeats on seeded synthetic scores with ties (rounded to 3 decimals):

1. ``delong.auc_covariance``: the four AUCs and their 4 x 4 DeLong covariance (mid-ranks, Sun & Xu 2014);
2. ``paired.compare_scored``: everything ``melanet compare --out`` computes from loaded predictions:
   the covariance, all 6 pairs with CIs and p-values, Holm, and McNemar on sensitivity and specificity.

Prints a table and writes ``benchmarks/results/delong.json``.

    python benchmarks/bench_delong.py [--images 10000] [--runs 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from melanet.evaluation import delong, paired  # noqa: E402


def scores_with_ties(images: int, runs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), scores (K, N) in [0, 1] rounded to 3 decimals), 20 % malignant, correlated runs."""
    generator = np.random.default_rng(seed)
    labels = (generator.uniform(size=images) < 0.2).astype(np.int64)
    shared = generator.normal(size=images)
    scores = np.vstack([
        np.round(1 / (1 + np.exp(-(shared + (0.8 + 0.2 * run) * labels + generator.normal(scale=0.8, size=images)))), 3)
        for run in range(runs)])
    return labels, scores


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "results" / "delong.json"))
    args = parser.parse_args()

    labels, scores = scores_with_ties(args.images, args.runs)
    ids = [f"ISIC_{index:07d}" for index in range(args.images)]
    scored = [paired.ScoredRun(f"run{k}", f"method {k}", ids, labels, scores[k], 0.5) for k in range(args.runs)]
    covariance_seconds = median_seconds(lambda: delong.auc_covariance(labels, scores), args.repeats)
    comparison_seconds = median_seconds(lambda: paired.compare_scored(scored), args.repeats)
    comparison = paired.compare_scored(scored)
    result = {
        "benchmark": f"DeLong on {args.images} images x {args.runs} runs (scores with ties), median of {args.repeats}",
        "images": args.images,
        "malignant": int(labels.sum()),
        "runs": args.runs,
        "seconds": {
            "auc_covariance": round(covariance_seconds, 4),
            "compare_all_pairs_with_holm_and_mcnemar": round(comparison_seconds, 4),
        },
        "target": "well under a second for the whole comparison",
        "met": comparison_seconds < 0.5,
        "example_pair": {key: comparison["pairs"][0][key] for key in ("delta_auc", "ci_low", "ci_high", "p", "p_holm")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "numpy": np.__version__,
                    "python": platform.python_version(), "load_average": os.getloadavg()},
    }
    print(f"{'step':<45} {'seconds':>9}")
    for name, seconds in result["seconds"].items():
        print(f"{name:<45} {seconds:>9.4f}")
    print(f"target met (< 0.5 s for the whole comparison): {result['met']}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
