"""Benchmark stage-1 training throughput: the real epoch loop versus the bare compiled CycleGAN step.

The paper's networks (U-Net 32 base filters, 4 levels; PatchGAN 64-512), batch 1, at 128 and 256 px.

1. Full loop: exactly the hot path of ``melanet train-gan`` after data loading: per epoch a fresh
   balanced draw (``dataset.epoch_dataset``: from_tensor_slices on uint8 arrays, batch, scale to
   [-1, 1] + random flip, prefetch), ``strategy.experimental_distribute_dataset``, the compiled step,
   and the real ``EpochReporter`` (tqdm-free progress + throttled status.json writes in a temporary run).
   Each timed epoch has exactly ``--steps`` steps (malignant images = steps, benign = 4x).
2. Bare step: the same compiled step (forward + backward + four Adam updates) called on one
   (benign, malignant) batch already in memory as float32 tensors.

The two are interleaved in rounds (bare, full, bare, full, ...) so that a shared machine's changing
load hits both alike; the first call of each (tracing) is left out. Besides the pooled rates, the
median of the per-round full/bare ratios is reported: one load spike from another process during a
single round moves it far less, so the target is judged on it. The per-epoch extras of real
training (history row, sample grid, checkpoint) are timed once and reported separately, also as a
share of a paper epoch (173 steps). Target: full >= 90 % of bare.

    python benchmarks/bench_gan.py [--sizes 128 256] [--steps 10] [--rounds 2]
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

from melanet.runs import lifecycle, runs  # noqa: E402
from melanet import config as config_module  # noqa: E402
from melanet.gan import dataset, model, samples, train  # noqa: E402

PAPER_SIZES = dict(generator_filters=32, generator_levels=4, discriminator_filters=64, discriminator_levels=4)
PAPER_STEPS_PER_EPOCH = 173  # 173 malignant ISIC-2016 training images, batch 1


def measure(image_size: int, steps: int, rounds: int) -> dict:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    benign = rng.integers(0, 256, (4 * steps, image_size, image_size, 3), dtype=np.uint8)
    malignant = rng.integers(0, 256, (steps, image_size, image_size, 3), dtype=np.uint8)
    strategy = tf.distribute.get_strategy()
    cyclegan = model.CycleGan(model.CycleGanSizes(image_size=image_size, **PAPER_SIZES))
    step = train.CompiledTrainStep(cyclegan, strategy)
    in_memory = (dataset.to_model_range(benign[:1]), dataset.to_model_range(malignant[:1]))

    with tempfile.TemporaryDirectory() as folder:
        run = runs.Run.create(Path(folder) / "run", config_module.Config(), train.STAGE)
        reporter = lifecycle.EpochReporter(run, rounds + 1, steps)
        step(in_memory)  # trace once; both modes share the compiled function
        bare_seconds, full_seconds = [], []
        for epoch in range(1, rounds + 2):
            started = time.perf_counter()
            for _ in range(steps):
                step(in_memory)
            step.sums.numpy()  # wait for the last step
            bare = time.perf_counter() - started

            started = time.perf_counter()
            reporter.start_epoch(epoch)
            pairs = dataset.epoch_dataset(benign, malignant, seed=0, epoch=epoch, batch_size=1)
            train.run_epoch(step, pairs, lambda index: reporter.batch_done(epoch, index))
            full = time.perf_counter() - started
            if epoch > 1:  # epoch 1 warms up the tf.data pipeline
                bare_seconds.append(bare)
                full_seconds.append(full)
            print(f"{image_size} px round {epoch}: bare {steps / bare:.3f} steps/s, full {steps / full:.3f} steps/s",
                  flush=True)

        # per-epoch extras of the real loop, once
        started = time.perf_counter()
        reporter.end_epoch(1, step.mean_losses())
        history_seconds = time.perf_counter() - started
        started = time.perf_counter()
        translations, reconstructions = train.translate_and_reconstruct(cyclegan, benign[:4])
        samples.write_sample_grid(train.sample_path(run, 1), benign[:4], translations, reconstructions)
        grid_seconds = time.perf_counter() - started
        started = time.perf_counter()
        lifecycle.save_checkpoint(cyclegan.checkpoint(), run, 1)
        checkpoint_seconds = time.perf_counter() - started

    bare_rate = steps * len(bare_seconds) / sum(bare_seconds)
    full_rate = steps * len(full_seconds) / sum(full_seconds)
    extras = history_seconds + grid_seconds + checkpoint_seconds
    paper_epoch = PAPER_STEPS_PER_EPOCH / full_rate
    return {
        "image_size": image_size,
        "steps_per_round": steps,
        "timed_rounds": len(bare_seconds),
        "bare_step": {"round_seconds": bare_seconds, "steps_per_second": bare_rate},
        "full_loop": {"round_seconds": full_seconds, "steps_per_second": full_rate},
        "full_over_bare": round(full_rate / bare_rate, 4),
        "median_round_full_over_bare": round(
            statistics.median(bare / full for bare, full in zip(bare_seconds, full_seconds)), 4
        ),
        "per_epoch_extras_seconds": {
            "history_and_status": round(history_seconds, 3),
            "sample_grid": round(grid_seconds, 3),
            "checkpoint": round(checkpoint_seconds, 3),
        },
        "paper_epoch_with_extras_over_bare": round(
            (PAPER_STEPS_PER_EPOCH / bare_rate) / (paper_epoch + extras), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round and mode")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (after one warm-up round)")
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks" / "results" / "gan.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = [measure(size, args.steps, args.rounds) for size in args.sizes]
    report = {
        "benchmark": "CycleGAN training throughput: full epoch loop (tf.data + step + status) vs bare compiled step",
        "model": "paper networks: U-Net 32 filters / 4 levels, PatchGAN 64-512 / 4 levels; batch 1; float32",
        "target": 0.9,
        "results": results,
        "meets_target": all(result["median_round_full_over_bare"] >= 0.9 for result in results),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "note": "shared 2-core CPU machine (other engineers' jobs running); no GPU",
        },
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    for result in results:
        print(f"{result['image_size']} px: bare {result['bare_step']['steps_per_second']:.3f} steps/s, "
              f"full {result['full_loop']['steps_per_second']:.3f} steps/s, "
              f"full/bare {result['full_over_bare']:.3f} (median round {result['median_round_full_over_bare']:.3f}); "
              f"extras {result['per_epoch_extras_seconds']}")
    print(f"written {output}")


if __name__ == "__main__":
    main()
