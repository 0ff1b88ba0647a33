"""Benchmark stage-2 training throughput: the real training loop versus the bare compiled train step.

1. Real loop: ``melanet.classifier.train.fit_classifier`` in a temporary run folder, exactly the path of
   ``melanet train-classifier`` after data loading: tf.data pipeline from uint8 arrays (shuffle, batch,
   scale to [0, 1], prefetch), class weights, per-batch status updates, validation AUC, per-epoch
   history, checkpoint and best-model save. Throughput = training images / epoch wall time (epoch 1,
   which includes tracing, is left out; the ratio uses median epochs, fastest epochs also reported). The epoch time includes the validation pass (5 % of the
   training images) and ~0.2-0.5 s of checkpoint + model writes, so epochs must be long enough
   (seconds, as in real training) for the figure to mean anything.
2. Bare step (timed before and after the real loop, pooled): the same compiled model's ``train_step`` under ``tf.function`` on batches already in
   memory as float32 tensors: no input pipeline, no callbacks, no validation.

Target: real >= 90 % of bare. Prints a table and writes ``benchmarks/results/classifier.json``.

    python benchmarks/bench_classifier.py [--image-size 64] [--width 0.25] [--images 960] [--epochs 4]
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

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from melanet import config as config_module  # noqa: E402
from melanet.runs import lifecycle, runs  # noqa: E402
from melanet.classifier import train  # noqa: E402
from melanet.data.prepare import ImageSet  # noqa: E402


def synthetic_sets(count: int, validation_count: int, image_size: int) -> tuple[ImageSet, ImageSet]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count + validation_count, image_size, image_size, 3), dtype=np.uint8)
    labels = (rng.random(count + validation_count) < 0.25).astype(np.int64)
    labels[:2] = [0, 1]
    labels[count:count + 2] = [0, 1]
    ids = [f"image_{index}" for index in range(count + validation_count)]
    return (ImageSet(images[:count], labels[:count], ids[:count]),
            ImageSet(images[count:], labels[count:], ids[count:]))


def real_loop(config: config_module.Config, training_set: ImageSet, validation: ImageSet) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        run = runs.Run.create(Path(folder) / "run", config, train.STAGE)
        with lifecycle.stage_session(run, train.STAGE):
            train.fit_classifier(config, run, training_set, validation)
        seconds = [float(row["seconds"]) for row in run.history()]
    return {"epoch_seconds": seconds}


def bare_step(config: config_module.Config, training_set: ImageSet, epochs: int) -> dict:
    keras.utils.set_random_seed(config.seed)
    model = train.build_compiled_model(config)
    batch = config.classifier.batch_size
    weights = train.balanced_sample_weights(training_set.labels)
    batches = [
        (tf.constant(training_set.images[start:start + batch].astype("float32") / 255.0),
         tf.constant(training_set.labels[start:start + batch]),
         tf.constant(weights[start:start + batch]))
        for start in range(0, len(training_set.ids), batch)
    ]
    step = tf.function(model.train_step)
    for data in batches[:2]:  # trace (a last partial batch traces once more, inside the timing as in fit)
        step(data)
    timings = []
    for _ in range(epochs - 1):
        started = time.perf_counter()
        for data in batches:
            logs = step(data)
        float(logs["loss"])  # wait for the last step
        timings.append(time.perf_counter() - started)
    return {"epoch_seconds": timings}


def summarise(seconds: list[float], images: int) -> dict:
    return {"epoch_seconds": [round(value, 3) for value in seconds],
            "images_per_second": images / min(seconds),
            "images_per_second_median": images / statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=960)
    parser.add_argument("--validation-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "results" / "classifier.json"))
    args = parser.parse_args()

    config = config_module.load_config(overrides=[
        f"data.image_size={args.image_size}", "classifier.backbone=vgg16-narrow", f"classifier.width={args.width}",
        "classifier.weights=none", "classifier.optimizer=adadelta", "classifier.learning_rate=0.001",
        f"classifier.batch_size={args.batch_size}", f"classifier.epochs={args.epochs}",
        "classifier.early_stopping_patience=1000",
    ])
    training_set, validation = synthetic_sets(args.images, args.validation_images, args.image_size)
    # bare, real, bare, real: a shared machine's load drifts over a minute, so both paths see it.
    bare_seconds, real_seconds = [], []
    for _ in range(2):
        bare_seconds += bare_step(config, training_set, args.epochs)["epoch_seconds"]
        real_seconds += real_loop(config, training_set, validation)["epoch_seconds"][1:]
    bare = summarise(bare_seconds, args.images)
    real = summarise(real_seconds, args.images)
    ratio = real["images_per_second_median"] / bare["images_per_second_median"]
    result = {
        "benchmark": "classifier training throughput: real loop vs bare compiled train step",
        "model": f"VGG-GAP vgg16-narrow width {args.width}, {args.image_size} px, batch {args.batch_size}, "
                 "focal loss, Adadelta, class weights, all layers trainable",
        "training_images": args.images, "validation_images": args.validation_images, "epochs": args.epochs,
        "real_loop": real, "bare_step": bare, "real_over_bare": round(ratio, 4),
        "real_over_bare_median": round(real["images_per_second_median"] / bare["images_per_second_median"], 4),
        "target": 0.9,
        "meets_target": ratio >= 0.9,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'path':<12}{'images/s':>10}{'median':>9}   epoch seconds")
    for name, values in (("real loop", real), ("bare step", bare)):
        print(f"{name:<12}{values['images_per_second']:>10.1f}{values['images_per_second_median']:>9.1f}   "
              f"{[round(s, 2) for s in values['epoch_seconds']]}")
    print(f"real / bare (median epochs) = {ratio:.1%} (target >= 90 %); written {args.out}")


if __name__ == "__main__":
    main()
