"""Benchmark how far a CycleGAN translates as it trains: translation share (two judges) and two probes per checkpoint.

On the training split of the bundled sample (``configs/demo.yaml`` at ``--size``, with ``--set`` overrides, e.g.
``--set gan.identity_weight=1.0 --set gan.composite=none`` for the paper's losses), one CycleGAN is trained; before
the first epoch (the untrained generators) and every ``--every`` epochs, every benign training lesion goes through
the synthesis path (``melanet.gan.synthesis.translate_batch``: padding bars, composite as configured) and is
measured as ``melanet audit-synthesis`` measures it:

1. **translation share** per judge (``melanet.audits.translation``: judges fitted on real training images only,
   out of fold; 0 = scored like the benign sources, 1 = like real melanomas), with its interval and the share
   scored above its own source; judges: the frozen ImageNet backbone's GAP features (the preset's GAP baseline),
   and the hand-made pixel features;
2. **probes**: the grouped held-out AUC of synthetic vs real malignant in the same two feature spaces (0.5 =
   indistinguishable);
3. the **identity floor**: the same figures for the sources themselves through the same path (an identity map);
4. the **resolution check**: the pixel probe on real training images sharp vs sent down to half the size and back
   (``melanet.gan.resolution``), and both halves down-and-up: a resolution cue, and none left when both take the path.

Training images only; no validation or test image is read.

    nice -n 10 python benchmarks/bench_gan_translation.py --size 64 --epochs 10 --every 2 [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
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
from melanet.audits import pixel_features, separability, translation  # noqa: E402
from melanet.audits import synthesis_measures as audit  # noqa: E402
from melanet.explain import features  # noqa: E402
from melanet.gan import dataset, model, networks, resolution, synthesis, train  # noqa: E402
import report  # noqa: E402  (benchmarks/report.py)

RESAMPLES = 500  # bootstrap draws per judge and checkpoint (the audit uses 2000)


def _translate(to_malignant, to_benign, benign: np.ndarray, gan_config, batch_size: int = 32) -> np.ndarray:
    """(N, S, S, 3) uint8 synthetic images of ``benign`` through the synthesis path."""
    chunks = []
    for start in range(0, len(benign), batch_size):
        translated, _ = synthesis.translate_batch(to_malignant, to_benign, benign[start:start + batch_size], gan_config)
        chunks.append(dataset.to_uint8(translated))
    return np.concatenate(chunks)


class Measure:
    """The real images' features (computed once) and the figures of one set of synthetic images."""

    def __init__(self, config: config_module.Config, benign: np.ndarray, malignant: np.ndarray, benign_ids: list[str],
                 malignant_ids: list[str]):
        classifier = config.classifier
        self.seed = config.seed
        self.backbone = features.feature_model(classifier_model.build_classifier(
            config.data.image_size, classifier.backbone, classifier.width, classifier.weights,
            preprocessing=classifier.preprocessing))
        self.benign_ids, self.malignant_ids = benign_ids, malignant_ids
        self.real = {"backbone": tuple(features.extract_features(self.backbone, group) for group in (benign, malignant)),
                     "pixel": tuple(pixel_features.pixel_features(group) for group in (benign, malignant))}

    def __call__(self, synthetic: np.ndarray) -> dict:
        spaces = {"backbone": features.extract_features(self.backbone, synthetic),
                  "pixel": pixel_features.pixel_features(synthetic)}
        result = {}
        labels = np.r_[np.zeros(len(self.benign_ids), dtype=np.int64), np.ones(len(self.malignant_ids), dtype=np.int64)]
        for name, values in spaces.items():
            benign, malignant = self.real[name]
            figures = translation.judge_translation(np.concatenate([benign, malignant]), labels,
                                                    [*self.benign_ids, *self.malignant_ids], values, self.benign_ids,
                                                    seed=self.seed, resamples=RESAMPLES)
            _, probe = audit.realism_scores(values, malignant, self.benign_ids, self.malignant_ids, seed=self.seed)
            result[name] = {"share": _round(figures["share"]), "share_low": _round(figures["share_low"]),
                            "share_high": _round(figures["share_high"]), "above_source": round(figures["above_source"], 4),
                            "mean_source": round(figures["mean_source"], 4),
                            "mean_synthetic": round(figures["mean_synthetic"], 4),
                            "mean_malignant": round(figures["mean_malignant"], 4),
                            "judge_auc": round(figures["judge_auc"], 4), "probe_auc": round(probe["auc"], 4)}
        return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def resolution_check(benign: np.ndarray, seed: int) -> dict:
    """Pixel-probe AUCs: sharp vs down-and-up (half size) on two interleaved halves, and both down-and-up."""
    first, second = benign[0::2], benign[1::2]
    low = benign.shape[1] // 2
    sharp_first, sharp_second = (pixel_features.pixel_features(half) for half in (first, second))
    down_first, down_second = (pixel_features.pixel_features(resolution.down_and_up(half, low))
                               for half in (first, second))
    auc = lambda a, b: round(separability.held_out_auc(a, b, seed=seed)["auc"], 4)  # noqa: E731
    return {"low_size": low, "sharp_vs_sharp": auc(sharp_first, sharp_second),
            "sharp_vs_down_and_up": auc(sharp_first, down_second),
            "down_and_up_vs_down_and_up": auc(down_first, down_second)}


def measure(size: int, epochs: int, every: int, overrides: list[str]) -> dict:
    config = config_module.load_config(REPOSITORY / "configs" / "demo.yaml", [f"data.image_size={size}", *overrides])
    training_set, _ = splits.training_and_validation(config.data, config.seed)
    benign_index, malignant_index = np.flatnonzero(training_set.labels == 0), np.flatnonzero(training_set.labels == 1)
    benign, malignant = (np.asarray(group) for group in train.split_domains(training_set.images, training_set.labels))
    benign_ids = [training_set.ids[index] for index in benign_index]
    malignant_ids = [training_set.ids[index] for index in malignant_index]
    started = time.perf_counter()
    judge = Measure(config, benign, malignant, benign_ids, malignant_ids)
    identity = networks.build_identity_generator(size)
    floor = judge(_translate(identity, identity, benign, config.gan))
    print(f"identity floor: {json.dumps(floor)}", flush=True)
    keras.utils.set_random_seed(config.seed)
    cyclegan = model.from_config(config.gan, size, augment_seed=config.seed, projection_seed=config.seed)
    step = train.CompiledTrainStep(cyclegan, tf.distribute.get_strategy())
    steps_per_epoch = dataset.steps_per_epoch(len(benign), len(malignant), config.gan.batch_size)
    curve, seconds = [], []
    for epoch in range(0, epochs + 1):
        if epoch:
            cyclegan.augmenter.reset(epoch)
            pairs = dataset.epoch_dataset(benign, malignant, seed=config.seed, epoch=epoch,
                                          batch_size=config.gan.batch_size, flip=config.gan.flip,
                                          masks=config.gan.mask_padding)
            begun = time.perf_counter()
            train.run_epoch(step, pairs, lambda index: None)
            seconds.append(round(time.perf_counter() - begun, 3))
        if epoch % every == 0 or epoch == epochs:
            synthetic = _translate(cyclegan.generator_benign_to_malignant, cyclegan.generator_malignant_to_benign,
                                   benign, config.gan)
            point = {"epoch": epoch, "image_pairs_seen": epoch * steps_per_epoch * config.gan.batch_size,
                     **judge(synthetic)}
            curve.append(point)
            print(json.dumps(point), flush=True)
    return {
        "image_size": size, "epochs": epochs, "every": every, "overrides": overrides,
        "gan": {key: getattr(config.gan, key) for key in ("identity_weight", "composite", "discriminator",
                                                          "diff_augment", "batch_size", "generator_filters")},
        "steps_per_epoch": steps_per_epoch, "training_images": {"benign": len(benign), "malignant": len(malignant)},
        "identity_floor": floor, "curve": curve, "epoch_seconds": seconds, "resolution_check": resolution_check(
            benign, config.seed), "total_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side, a multiple of 32 (64-128 on the sample)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--every", type=int, default=2, help="measure every this many epochs (and at 0 and the end)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override on top of configs/demo.yaml (repeatable)")
    parser.add_argument("--note", default="shared 2-core CPU machine (other helpers' jobs running), no GPU")
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks" / "results" / "gan_translation.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = measure(args.size, args.epochs, args.every, args.overrides)
    summary = {
        "benchmark": "translation share (backbone and pixel judges) and probes against CycleGAN training epochs",
        "model": "configs/demo.yaml networks at the benchmark's image size, with the overrides listed; float32",
        "result": result,
        "machine": report.machine(load_before, args.note),
    }
    output = report.write(args.output, summary)
    print(f"written {output}")


if __name__ == "__main__":
    main()
