"""Benchmark one CycleGAN epoch with and without DiffAugment, side by side in one process.

Both models use the demo's networks (U-Net 16 filters / 3 levels, PatchGAN 32 / 3 levels, batch 4)
and padding masks (``gan.mask_padding``); they differ only in ``gan.diff_augment``. Inputs are real
padded lesions from the bundled sample (``data/sample``), so the masks have real bars. Each round
runs one epoch of the real loop (``dataset.epoch_dataset`` with masks + the compiled step) for each
model, alternating which goes first, so a shared machine's changing load hits both alike; the
first round (tracing) is left out. Reported: seconds per epoch and steps per second of each, and
the median over rounds of the per-round ratio (with / without): the cost of DiffAugment.

    nice -n 10 python benchmarks/bench_gan_diffaugment.py [--size 64] [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from melanet.data import preprocess  # noqa: E402
from melanet.gan import dataset, model, train  # noqa: E402
import report  # noqa: E402  (benchmarks/report.py)

DEMO_SIZES = dict(generator_filters=16, generator_levels=3, discriminator_filters=32, discriminator_levels=3)
BATCH_SIZE = 4


def sample_images(count: int, size: int) -> np.ndarray:
    """``count`` padded sample lesions, (count, S, S, 3) uint8 (repeated when the sample has fewer)."""
    folder = REPOSITORY / "data" / "sample" / "ISBI2016_ISIC_Part3_Training_Data"
    paths = sorted(folder.glob("*.jpg"))[:count]
    images = np.stack([preprocess.preprocess_image(path, size) for path in paths])
    return images[np.arange(count) % len(images)]


def measure(size: int, steps: int, rounds: int) -> dict:
    count = steps * BATCH_SIZE
    images = sample_images(2 * count, size)
    benign, malignant = images[:count], images[count:]
    strategy = tf.distribute.get_strategy()
    steps_by_mode, seconds = {}, {"without": [], "with": []}
    for mode in seconds:
        keras.utils.set_random_seed(0)
        cyclegan = model.CycleGan(model.CycleGanSizes(image_size=size, **DEMO_SIZES), mask_padding=True,
                                  diff_augment=mode == "with", augment_seed=0)
        steps_by_mode[mode] = train.CompiledTrainStep(cyclegan, strategy)
    for number in range(rounds + 1):
        order = ("without", "with") if number % 2 == 0 else ("with", "without")
        for mode in order:
            step = steps_by_mode[mode]
            step.cyclegan.augmenter.reset(number)
            pairs = dataset.epoch_dataset(benign, malignant, seed=0, epoch=number + 1, batch_size=BATCH_SIZE,
                                          masks=True)
            started = time.perf_counter()
            losses = train.run_epoch(step, pairs, lambda index: None)
            elapsed = time.perf_counter() - started
            if number > 0:
                seconds[mode].append(elapsed)
            print(f"round {number} {mode:>7} DiffAugment: {elapsed:.2f} s ({steps / elapsed:.2f} steps/s), "
                  f"discriminator_malignant {losses['discriminator_malignant']:.3f}", flush=True)
    ratios = [augmented / plain for augmented, plain in zip(seconds["with"], seconds["without"])]
    return {
        "image_size": size, "batch_size": BATCH_SIZE, "steps_per_epoch": steps, "timed_rounds": rounds,
        "without_diff_augment": {"epoch_seconds": seconds["without"],
                                 "steps_per_second": steps * rounds / sum(seconds["without"])},
        "with_diff_augment": {"epoch_seconds": seconds["with"],
                              "steps_per_second": steps * rounds / sum(seconds["with"])},
        "median_round_with_over_without": round(statistics.median(ratios), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="steps (batches of 4) per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks" / "results" / "gan_diffaugment.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = measure(args.size, args.steps, args.rounds)
    summary = {
        "benchmark": "CycleGAN epoch with vs without DiffAugment (colour, translation, cutout on every "
                     "discriminator input), padding masks on in both",
        "model": "demo networks: U-Net 16 filters / 3 levels, PatchGAN 32 / 3 levels; batch 4; float32",
        "result": result,
        "machine": report.machine(load_before, "shared 2-core CPU machine (other engineers' jobs running), run with nice -n 10; no GPU"),
    }
    output = report.write(args.output, summary)
    print(f"with/without DiffAugment, median over rounds: {result['median_round_with_over_without']:.3f}; "
          f"written {output}")


if __name__ == "__main__":
    main()
