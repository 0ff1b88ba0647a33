"""Benchmark the memory of building a baseline's training set, and training on it, for a data set on disk.

Augment-5x multiplies the training images by six. Before, the copies were made in memory (and cached as
an ``.npz``), then joined to the originals with ``np.concatenate``: two more in-memory copies of the
whole set. Now the copies are written to the data cache a block at a time and joined lazily, so training
streams every batch from disk.

1. Peak resident memory (``ru_maxrss``), and its growth while building (measured after TensorFlow's
   one-time set-up for the augmentation ops), of building the Augment-5x set from a prepared split of
   ``--images`` images at ``--size`` px, each in a fresh process: "before" is
   ``melanet/classifier/training_sets.py`` as of BEFORE_COMMIT fed the split as an in-memory array (as the
   old trainer did), "after" the current module fed the split's ``DiskImages``. The cache folder is emptied
   between runs, so each makes its copies. Each is measured with all ``--images`` images and with a
   quarter of them: memory that grows with the data set grows about 4x, a flat one about 1x (target: at
   most 1.25x after; the first target set, growth under 10 % of the set's pixels, is kept and reported:
   the working set of one block of 64 images at 128 px is about 150 MB whatever the data set's size).
2. Images per second of a training epoch (``melanet.classifier.train.make_dataset`` with shuffled epoch
   orders feeding the demo's ``vgg16-narrow`` VGG-GAP at width 0.0625) on the lazily joined set versus the
   same rows as one in-memory array; epochs alternate, the median of the timed ones is reported.

Prints a summary and writes ``benchmarks/results/training_memory.json``. Run it niced on a shared machine:

    nice -n 10 python benchmarks/bench_training_memory.py [--images 4000] [--size 128]
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
sys.path.insert(0, str(REPOSITORY / "benchmarks"))
BEFORE_COMMIT = "d391cfd"  # the last commit whose training sets were built in memory


def _module_before():
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:melanet/classifier/training_sets.py"], cwd=REPOSITORY,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "training_sets_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("training_sets_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split(root: str, cache: str, size: int):
    from melanet.config import DataConfig
    from melanet.data import prepare

    return prepare.load_split(DataConfig(root=root, image_size=size, workers=2, cache_dir=cache), "train")


def child_build(which: str, root: str, cache: str, size: int, count: int) -> dict:
    """In a fresh process: build Augment-5x from the first ``count`` images of the prepared split; seconds
    and peak memory."""
    import numpy as np

    from melanet.data.prepare import ImageSet

    originals = _split(root, cache, size)
    originals = originals.subset(np.arange(min(count, len(originals))))
    if which == "before":
        module = _module_before()
        originals = ImageSet(np.asarray(originals.images), originals.labels, originals.ids)
    else:
        module = importlib.import_module("melanet.classifier.training_sets")
    from melanet.classifier import augment

    augment.augment_images(np.zeros((2, size, size, 3), np.uint8), 1, seed=0)  # TensorFlow's one-time set-up
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    built = module.build_training_set("augment5x", originals, seed=0, cache_dir=Path(cache) / f"augmented-{which}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"which": which, "images": len(built.labels), "seconds": round(seconds, 1),
            "images_type": type(built.images).__name__,
            "peak_rss_mb_before_building": round(baseline, 1), "peak_rss_mb": round(peak, 1),
            "growth_mb": round(peak - baseline, 1)}


def child_train(root: str, cache: str, size: int, epochs: int, batch_size: int) -> dict:
    """In a fresh process: epochs alternating lazily joined / in-memory; images per second of each."""
    import numpy as np

    from melanet.classifier import model as model_module
    from melanet.classifier import train as classifier_train
    from melanet.classifier import training_sets

    built = training_sets.build_training_set("augment5x", _split(root, cache, size), seed=0,
                                             cache_dir=Path(cache) / "augmented-after")  # from the cache of part 1
    count = len(built.labels)
    sources = {"lazy": built.images, "in_memory": np.asarray(built.images)}
    model = model_module.build_classifier(size, "vgg16-narrow", 0.0625, "none")
    model_module.compile_classifier(model, "adam", 1e-3, 0.25, 2.0)
    orders = classifier_train.epoch_orders(count, seed=0, first_epoch=0, epochs=2 * (epochs + 1))
    rates: dict[str, list[float]] = {name: [] for name in sources}
    for epoch in range(epochs + 1):
        for offset, name in enumerate(sources if epoch % 2 == 0 else reversed(list(sources))):
            dataset = classifier_train.make_dataset(sources[name], built.labels, batch_size,
                                                    orders=orders[2 * epoch + offset][None, :])
            started = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            if epoch > 0:  # the first round warms up graph tracing and the page cache
                rates[name].append(count / (time.perf_counter() - started))
    medians = {name: round(statistics.median(values), 1) for name, values in rates.items()}
    return {"images": count, "images_type": type(built.images).__name__, "batch_size": batch_size,
            "epochs_timed": epochs, "images_per_second": medians,
            "all_images_per_second": {name: [round(value, 1) for value in values] for name, values in rates.items()},
            "lazy_over_in_memory": round(medians["lazy"] / medians["in_memory"], 3)}


def _run_child(*arguments: str) -> dict:
    from bench_data_scale import run_child

    return run_child(__file__, *arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_build(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4])) if kind == "build" else \
            child_train(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]))
        print(json.dumps(result))
        return
    from bench_data_scale import make_large_folder

    scratch = Path(tempfile.mkdtemp(prefix=".bench-training-memory-", dir=REPOSITORY / "benchmarks"))
    try:
        root, cache = scratch / "data", scratch / "cache"
        make_large_folder(root, args.images)
        _split(str(root), str(cache), args.size)  # prepare once, outside the measured processes
        set_mb = 6 * args.images * args.size * args.size * 3 / 2**20
        print(f"Augment-5x of {args.images} images at {args.size} px = {set_mb:.0f} MiB of pixels", flush=True)
        building = {}
        quarter = args.images // 4
        for key, which, count in (("before", "before", args.images), ("before_quarter", "before", quarter),
                                  ("after_quarter", "after", quarter), ("after", "after", args.images)):
            shutil.rmtree(cache / f"augmented-{which}", ignore_errors=True)
            building[key] = _run_child("build", which, str(root), str(cache), str(args.size), str(count))
            print(f"build {key}: {building[key]}", flush=True)
        training = _run_child("train", str(root), str(cache), str(args.size), str(args.epochs), str(args.batch_size))
        print(f"training epoch: {training}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "benchmark": "training_memory",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "shared 2-core machine, run with nice -n 10 while other work ran"},
        "augment5x_pixels_mib": round(set_mb, 1),
        "build": building,
        "build_peak_ratio_after_over_before": round(building["after"]["peak_rss_mb"] / building["before"]["peak_rss_mb"], 3),
        # growth with 4x the images: about 4 for memory proportional to the data set, about 1 when it is not
        "growth_ratio_4x_images": {"before": round(building["before"]["growth_mb"] / building["before_quarter"]["growth_mb"], 2),
                                   "after": round(building["after"]["growth_mb"] / building["after_quarter"]["growth_mb"], 2)},
        "training_epoch": training,
        "targets": {"build_after_growth_mb_below": round(0.1 * set_mb, 1), "after_growth_ratio_4x_images_at_most": 1.25,
                    "lazy_over_in_memory_at_least": 0.9},
        "met": {"build_memory": building["after"]["growth_mb"] < 0.1 * set_mb,
                "build_memory_flat": building["after"]["growth_mb"] <= 1.25 * building["after_quarter"]["growth_mb"],
                "training_throughput": training["lazy_over_in_memory"] >= 0.9},
    }
    out = REPOSITORY / "benchmarks" / "results" / "training_memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
