"""Benchmark preparing and training on a data set larger than memory should have to hold.

1. Peak memory of preparing 20,000 images at 128 px (about 0.98 GB of pixels), made from the bundled
   sample: its 426 JPEGs hard-linked (copied where links are impossible) under new names into an
   ISIC-2016-layout folder. "before" is ``melanet.data.prepare`` as it was before the disk cache
   (``git show <before>:melanet/data/prepare.py``: every image decoded into a list, stacked, saved);
   "after" is the current module (decoded a block at a time straight into the cache file). Each runs
   in its own process; peak resident memory is ``ru_maxrss`` of that process (the decoding workers are
   reported separately: the largest one).
2. Images per second of a classifier training epoch (``melanet.classifier.train.make_dataset`` with
   shuffled epoch orders feeding the CPU demo's VGG-GAP, ``vgg16-narrow`` width 0.0625, 128 px) streaming
   from the prepared cache (``DiskImages``) versus from the same images in an in-memory array. Target:
   streaming at least 90 % of in-memory. Epochs alternate between the two; the median of the timed
   epochs (after one warm-up each) is reported.

Prints a summary and writes ``benchmarks/results/data_scale.json``. Run it niced on a shared machine:

    nice -n 10 python benchmarks/bench_data_scale.py [--images 20000] [--train-images 3000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
SAMPLE = REPOSITORY / "data" / "sample"
BEFORE_COMMIT = "a39f524"  # the last commit whose prepare.py decoded a split into memory


def make_large_folder(root: Path, count: int) -> None:
    """An ISIC-2016-layout folder with ``count`` training and 40 test images, links to the sample's JPEGs."""
    sources = sorted((SAMPLE / "ISBI2016_ISIC_Part3_Training_Data").glob("*.jpg"))
    sources += sorted((SAMPLE / "ISBI2016_ISIC_Part3_Test_Data").glob("*.jpg"))
    for folder, csv_name, total in (("ISBI2016_ISIC_Part3_Training_Data", "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", count),
                                    ("ISBI2016_ISIC_Part3_Test_Data", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", 40)):
        (root / folder).mkdir(parents=True)
        rows = []
        for number in range(total):
            image_id = f"ISIC_{9_000_000 + number if folder.endswith('Test_Data') else number:07d}"
            target = root / folder / f"{image_id}.jpg"
            try:
                os.link(sources[number % len(sources)], target)
            except OSError:
                shutil.copy(sources[number % len(sources)], target)
            rows.append(f"{image_id},{'malignant' if number % 4 == 0 else 'benign'}\r\n")
        (root / csv_name).write_text("".join(rows))


def _before_module():
    """``melanet.data.prepare`` as of BEFORE_COMMIT, importable by name (the decoding workers fork)."""
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:melanet/data/prepare.py"], cwd=REPOSITORY,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "prepare_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("prepare_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["prepare_before"] = module
    spec.loader.exec_module(module)
    return module


def child_prepare(which: str, root: str, cache: str, size: int, workers: int) -> dict:
    """In a fresh process: prepare the training split; seconds and peak memory."""
    from melanet.config import DataConfig

    module = _before_module() if which == "before" else importlib.import_module("melanet.data.prepare")
    config = DataConfig(root=root, image_size=size, workers=workers, cache_dir=cache)
    started = time.perf_counter()
    image_set = module.load_split(config, "train")
    seconds = time.perf_counter() - started
    return {"which": which, "images": len(image_set), "seconds": round(seconds, 2),
            "images_type": type(image_set.images).__name__,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "largest_worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def child_train(root: str, cache: str, size: int, count: int, epochs: int, batch_size: int) -> dict:
    """In a fresh process: epochs alternating streamed / in-memory; images per second of each."""
    import numpy as np

    from melanet.classifier import model as model_module
    from melanet.classifier import train as classifier_train
    from melanet.config import DataConfig
    from melanet.data import disk_images, prepare

    full = prepare.load_split(DataConfig(root=root, image_size=size, workers=2, cache_dir=cache), "train")
    assert isinstance(full.images, disk_images.DiskImages) and full.from_cache
    chosen = np.sort(np.random.default_rng(0).choice(len(full), count, replace=False))
    subset = full.subset(chosen)
    sources = {"streamed": subset.images, "in_memory": np.asarray(subset.images)}
    model = model_module.build_classifier(size, "vgg16-narrow", 0.0625, "none")
    model_module.compile_classifier(model, "adam", 1e-3, 0.25, 2.0)
    orders = classifier_train.epoch_orders(count, seed=0, first_epoch=0, epochs=2 * (epochs + 1))
    rates: dict[str, list[float]] = {name: [] for name in sources}
    for epoch in range(epochs + 1):
        for offset, name in enumerate(sources if epoch % 2 == 0 else reversed(list(sources))):
            order = orders[2 * epoch + offset][None, :]
            dataset = classifier_train.make_dataset(sources[name], subset.labels, batch_size, orders=order)
            started = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            if epoch > 0:  # the first round warms up graph tracing and the page cache
                rates[name].append(count / (time.perf_counter() - started))
    medians = {name: round(statistics.median(values), 1) for name, values in rates.items()}
    return {"images": count, "batch_size": batch_size, "epochs_timed": epochs,
            "images_per_second": medians, "all_images_per_second": {k: [round(v, 1) for v in values] for k, values in rates.items()},
            "streamed_over_in_memory": round(medians["streamed"] / medians["in_memory"], 3),
            "peak_rss_mb_both": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_child(script: str, *arguments: str) -> dict:
    """Run ``script --child ARGUMENTS`` in a fresh process; the JSON object of its last output line."""
    output = subprocess.run([sys.executable, script, "--child", *arguments], capture_output=True, text=True,
                            check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
    return json.loads(output.strip().splitlines()[-1])


def _run_child(*arguments: str) -> dict:
    return run_child(__file__, *arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_prepare(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4])) if kind == "prepare" else \
            child_train(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]), int(rest[5]))
        print(json.dumps(result))
        return
    scratch = Path(tempfile.mkdtemp(prefix=".bench-data-scale-", dir=REPOSITORY / "benchmarks"))
    try:
        root = scratch / "data"
        make_large_folder(root, args.images)
        pixels_mb = args.images * args.size * args.size * 3 / 2**20
        print(f"{args.images} training images at {args.size} px = {pixels_mb:.0f} MiB of pixels", flush=True)
        prepare_results = {}
        for which in ("before", "after"):
            prepare_results[which] = _run_child("prepare", which, str(root), str(scratch / f"cache-{which}"),
                                                str(args.size), str(args.workers))
            print(f"prepare {which}: {prepare_results[which]}", flush=True)
        training = _run_child("train", str(root), str(scratch / "cache-after"), str(args.size),
                              str(args.train_images), str(args.epochs), str(args.batch_size))
        print(f"training epoch: {training}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "benchmark": "data_scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "shared 2-core machine, run with nice -n 10 while other sessions worked"},
        "pixels_mib": round(pixels_mb, 1),
        "prepare": prepare_results,
        "prepare_peak_ratio_after_over_before": round(
            prepare_results["after"]["peak_rss_mb"] / prepare_results["before"]["peak_rss_mb"], 3),
        "training_epoch": training,
        "targets": {"prepare_after_peak_rss_mb_below": 1024, "streamed_over_in_memory_at_least": 0.9},
        "met": {"prepare_memory": prepare_results["after"]["peak_rss_mb"] < 1024,
                "training_throughput": training["streamed_over_in_memory"] >= 0.9},
    }
    out = REPOSITORY / "benchmarks" / "results" / "data_scale.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
