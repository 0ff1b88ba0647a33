"""Benchmark the two CycleGAN discriminators side by side: PatchGAN against projected (frozen Lite0).

In one process, on the demo preset's training split of the bundled sample (``configs/demo.yaml``, at
``--size``), both CycleGANs are built from the preset (same generators, same seed) and trained
epoch by epoch in alternation (which arm goes first alternates too), so a shared machine's load hits
both alike. Reported:

1. **epoch time**: seconds of each epoch of each arm (the first, with tracing, reported apart) and the
   median over epochs of the per-epoch ratio projected / PatchGAN;
2. **epochs to the same KID**: every ``--every`` epochs, each arm translates every benign training
   lesion and the KID of those against the real malignant training lesions is computed in the frozen
   EfficientNet-Lite0 GAP features (scaled as ``audit-synthesis`` scales them). The target is the KID
   PatchGAN reaches at its last epoch; reported is the first measured epoch at which each arm is at or
   below it (``null``: not within ``--epochs``). The real benign vs real malignant KID is given beside it
   as the yardstick.

Training and validation images only; no test image is read.

    nice -n 10 python benchmarks/bench_gan_discriminators.py [--size 64] [--epochs 20] [--every 4]
"""

from __future__ import annotations

import argparse
import json
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

from melanet import config as config_module  # noqa: E402
from melanet.classifier import model as classifier_model  # noqa: E402
from melanet.data import splits  # noqa: E402
from melanet.audits import synthesis_measures
from melanet.explain import features  # noqa: E402
from melanet.gan import dataset, model, train  # noqa: E402
import report  # noqa: E402  (benchmarks/report.py)

ARMS = ("patchgan", "projected")


def _config(size: int, arm: str) -> config_module.Config:
    overrides = [f"data.image_size={size}", f"gan.discriminator={arm}",
                 f"gan.diff_augment={'true' if arm == 'projected' else 'false'}"]  # as the demo arms compare them
    return config_module.load_config(REPOSITORY / "configs" / "demo.yaml", overrides)


def _kid(feature_net: keras.Model, images: np.ndarray, reference: np.ndarray, scale: float, seed: int) -> dict:
    values = features.extract_features(feature_net, images) / scale
    result = synthesis_measures.kernel_inception_distance(values, reference, seed=seed)
    return {key: round(float(result[key]), 5) for key in ("kid", "low", "high")}


def measure(size: int, epochs: int, every: int) -> dict:
    configs = {arm: _config(size, arm) for arm in ARMS}
    base = configs["patchgan"]
    training_set, _ = splits.training_and_validation(base.data, base.seed)
    benign, malignant = train.split_domains(training_set.images, training_set.labels)
    classifier = base.classifier
    feature_net = features.feature_model(classifier_model.build_classifier(
        size, classifier.backbone, classifier.width, classifier.weights, preprocessing=classifier.preprocessing))
    real_benign, real_malignant = (features.extract_features(feature_net, group) for group in (benign, malignant))
    scale = synthesis_measures.feature_scale(np.concatenate([real_benign, real_malignant]))
    yardstick = synthesis_measures.kernel_inception_distance(real_benign / scale, real_malignant / scale, seed=base.seed)

    strategy = tf.distribute.get_strategy()
    steps = {}
    for arm, config in configs.items():
        keras.utils.set_random_seed(config.seed)
        cyclegan = model.from_config(config.gan, size, augment_seed=config.seed, projection_seed=config.seed)
        steps[arm] = train.CompiledTrainStep(cyclegan, strategy)
    seconds = {arm: [] for arm in ARMS}
    kid_curve = {arm: [] for arm in ARMS}
    for epoch in range(1, epochs + 1):
        order = ARMS if epoch % 2 else ARMS[::-1]
        for arm in order:
            config, step = configs[arm], steps[arm]
            step.cyclegan.augmenter.reset(epoch)
            pairs = dataset.epoch_dataset(benign, malignant, seed=config.seed, epoch=epoch,
                                          batch_size=config.gan.batch_size, flip=config.gan.flip,
                                          masks=config.gan.mask_padding)
            started = time.perf_counter()
            losses = train.run_epoch(step, pairs, lambda index: None)
            seconds[arm].append(time.perf_counter() - started)
            if epoch % every == 0 or epoch == epochs:
                translations, _ = train.translate_and_reconstruct(step.cyclegan, benign)
                kid_curve[arm].append({"epoch": epoch, **_kid(feature_net, translations, real_malignant / scale,
                                                               scale, config.seed)})
            print(f"epoch {epoch} {arm:>9}: {seconds[arm][-1]:.2f} s, discriminator_malignant "
                  f"{losses['discriminator_malignant']:.3f}"
                  + (f", KID {kid_curve[arm][-1]['kid']:.3f}" if kid_curve[arm] and kid_curve[arm][-1]["epoch"] == epoch
                     else ""), flush=True)
    target = kid_curve["patchgan"][-1]["kid"]
    reached = {arm: next((point["epoch"] for point in kid_curve[arm] if point["kid"] <= target), None) for arm in ARMS}
    ratios = [p / q for p, q in zip(seconds["projected"][1:], seconds["patchgan"][1:])]
    return {
        "image_size": size, "epochs": epochs, "kid_every": every, "batch_size": base.gan.batch_size,
        "steps_per_epoch": dataset.steps_per_epoch(len(benign), len(malignant), base.gan.batch_size),
        "training_images": {"benign": len(benign), "malignant": len(malignant)},
        "epoch_seconds": {arm: {"first_with_tracing": round(seconds[arm][0], 3),
                                "median_after_first": round(statistics.median(seconds[arm][1:]), 3),
                                "all": [round(value, 3) for value in seconds[arm]]} for arm in ARMS},
        "median_epoch_ratio_projected_over_patchgan": round(statistics.median(ratios), 4),
        "kid_curve": kid_curve,
        "kid_target": {"value": target, "rule": "PatchGAN's KID at its last epoch"},
        "first_epoch_at_or_below_target": reached,
        "yardstick_real_benign_vs_real_malignant": {key: round(float(yardstick[key]), 5)
                                                    for key in ("kid", "low", "high")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side, a multiple of 32")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=4, help="measure KID every this many epochs")
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks" / "results" / "gan_discriminators.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = measure(args.size, args.epochs, args.every)
    summary = {
        "benchmark": "CycleGAN epoch time and KID over epochs: PatchGAN (from scratch) vs projected "
                     "(frozen ImageNet EfficientNet-Lite0 pyramid, DiffAugment on)",
        "model": "demo preset networks (configs/demo.yaml) at the benchmark's image size; batch 4; float32",
        "result": result,
        "machine": report.machine(load_before, "shared 2-core CPU machine, no GPU; both arms alternate epoch by epoch in one process"),
    }
    output = report.write(args.output, summary)
    print(json.dumps({key: result[key] for key in ("median_epoch_ratio_projected_over_patchgan", "kid_target",
                                                   "first_epoch_at_or_below_target")}, indent=2))
    print(f"written {output}")


if __name__ == "__main__":
    main()
