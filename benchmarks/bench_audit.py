"""Benchmark the synthesis audit on 1,000 synthetic images.

Two parts, timed separately:

1. Features: GAP features of 1,000 real 64 px lesions (the bundled sample, repeated) through the
   demo's frozen backbone (VGG16 with ``hed`` weights, the features ``melanet audit-synthesis``
   always computes), batch 16.
2. Statistics on features of that width (512): 1,000 synthetic vs 1,000 real malignant and 1,000
   real benign: KID of both pairs with the default subset bootstrap (100 subsets of 500), the
   nearest real image of every synthetic one and the real-to-real yardstick, and the grouped,
   cross-validated realism probe (5 folds). The feature vectors are drawn at random (shifted for
   the synthetic set); the cost does not depend on their values.

    nice -n 10 python benchmarks/bench_audit.py [--images 1000] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

import numpy as np  # noqa: E402

from melanet.classifier import model as classifier_model  # noqa: E402
from melanet.data import preprocess  # noqa: E402
from melanet.audits import synthesis_measures
from melanet.explain import features  # noqa: E402
import report  # noqa: E402  (benchmarks/report.py)


def time_features(count: int, size: int) -> dict:
    folder = REPOSITORY / "data" / "sample" / "ISBI2016_ISIC_Part3_Training_Data"
    decoded = np.stack([preprocess.preprocess_image(path, size) for path in sorted(folder.glob("*.jpg"))])
    images = decoded[np.arange(count) % len(decoded)]
    backbone = classifier_model.build_classifier(size, "vgg16", 1.0, "hed")
    features.extract_features(backbone, images[:16])  # build and trace once
    started = time.perf_counter()
    values = features.extract_features(backbone, images, batch_size=16)
    seconds = time.perf_counter() - started
    return {"images": count, "image_size": size, "backbone": "vgg16, hed weights", "dimensions": int(values.shape[1]),
            "seconds": round(seconds, 3), "images_per_second": round(count / seconds, 2)}


def time_statistics(count: int, dimensions: int) -> dict:
    generator = np.random.default_rng(0)
    real_malignant = generator.normal(0, 1, (count, dimensions))
    real_benign = generator.normal(0.1, 1, (count, dimensions))
    synthetic = generator.normal(0.2, 1, (count, dimensions))
    timings = {}
    started = time.perf_counter()
    kid = synthesis_measures.kernel_inception_distance(synthetic, real_malignant, seed=0)
    synthesis_measures.kernel_inception_distance(real_benign, real_malignant, seed=0)
    timings["kid_two_pairs"] = time.perf_counter() - started
    started = time.perf_counter()
    synthesis_measures.nearest_neighbours(synthetic, real_malignant)
    synthesis_measures.nearest_neighbours(real_malignant, real_malignant, exclude_self=True)
    timings["nearest_neighbours"] = time.perf_counter() - started
    started = time.perf_counter()
    _, probe = synthesis_measures.realism_scores(synthetic, real_malignant, [f"b{index}" for index in range(count)],
                                    [f"m{index}" for index in range(count)], seed=0)
    timings["realism_probe"] = time.perf_counter() - started
    return {"synthetic": count, "real_malignant": count, "real_benign": count, "dimensions": dimensions,
            "kid_subsets": kid["subsets"], "kid_subset_size": kid["subset_size"], "probe_folds": probe["folds"],
            "seconds": {name: round(value, 3) for name, value in timings.items()},
            "total_seconds": round(sum(timings.values()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks" / "results" / "audit.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    feature_timing = time_features(args.images, args.size)
    print(f"features: {feature_timing}", flush=True)
    statistics_timing = time_statistics(args.images, feature_timing["dimensions"])
    print(f"statistics: {statistics_timing}", flush=True)
    summary = {
        "benchmark": "melanet audit-synthesis on 1,000 synthetic images: feature extraction and statistics "
                     "(KID x2 with subset bootstrap, nearest neighbours, grouped realism probe)",
        "features": feature_timing,
        "statistics": statistics_timing,
        "note": "an audit computes features of the synthetic, real malignant and real benign training images "
                "in each feature space (3,000 images here would take about 3x the feature time)",
        "machine": report.machine(load_before, "shared 2-core CPU machine (other engineers' jobs running), run with nice -n 10; no GPU"),
    }
    output = report.write(args.output, summary)
    print(f"written {output}")


if __name__ == "__main__":
    main()
