"""Benchmark the classifier backbones side by side: EfficientNet-Lite0 against VGG16 at the same size.

In one process, on the same real lesions (the bundled sample, repeated), for each backbone:

1. prediction: images per second of ``model.predict`` (batch 16) on the whole network;
2. training: images per second of the demo's training step, i.e. the trainable suffix after
   ``classifier.trainable_from`` on cached frozen features (what ``train-classifier`` runs each epoch),
   and of a full-network step (``trainable_from: ""``, what the paper preset runs);
3. the Predict page's work for one uploaded image after the model is loaded: preprocessing one JPEG,
   the prediction and a Grad-CAM map on the backbone's Grad-CAM layer (median of 10).

VGG16 uses the ``hed`` weights (same shapes and cost as ImageNet's); EfficientNet-Lite0 the package's
ImageNet weights. The ratios in the result file are measured in this one run.

    nice -n 10 python benchmarks/bench_backbones.py [--size 128] [--images 256]
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

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from melanet.classifier import backbones, losses  # noqa: E402
from melanet.classifier import model as model_module  # noqa: E402
from melanet.data import preprocess  # noqa: E402
from melanet.explain import gradcam  # noqa: E402

ARMS = {
    "vgg16": {"weights": "hed", "trainable_from": "block5_conv3"},  # the earlier demo preset
    "efficientnet-lite0": {"weights": "imagenet", "trainable_from": "block6a_expand_conv"},  # the demo preset
}


def _images(count: int, size: int) -> tuple[np.ndarray, list[Path]]:
    folder = REPOSITORY / "data" / "sample" / "ISBI2016_ISIC_Part3_Training_Data"
    paths = sorted(folder.glob("*.jpg"))[:64]
    decoded = np.stack([preprocess.preprocess_image(path, size) for path in paths])
    return decoded[np.arange(count) % len(decoded)].astype("float32") / 255.0, paths


def _rate(function, count: int, repeats: int = 2) -> float:
    function()  # build and trace
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return count / best


def _train_rate(model: keras.Model, inputs: np.ndarray, labels: np.ndarray) -> float:
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=losses.FocalLoss(alpha=0.25, gamma=2.0))
    return _rate(lambda: model.fit(inputs, labels, batch_size=16, epochs=1, verbose=0), len(inputs))


def bench(backbone: str, size: int, count: int) -> dict:
    arm = ARMS[backbone]
    images, paths = _images(count, size)
    labels = (np.arange(count) % 2).astype("int64")
    model = model_module.build_classifier(size, backbone, weights=arm["weights"], trainable_from=arm["trainable_from"])
    result = {"backbone": backbone, "weights": arm["weights"], "trainable_from": arm["trainable_from"],
              "parameters": int(model.count_params())}
    result["predict_images_per_second"] = round(_rate(lambda: model.predict(images, batch_size=16, verbose=0), count), 1)

    prefix, suffix = model_module.split_at(model, arm["trainable_from"])
    features = prefix.predict(images, batch_size=16, verbose=0)
    result["train_suffix_images_per_second"] = round(_train_rate(suffix, features, labels), 1)
    full = model_module.build_classifier(size, backbone, weights=arm["weights"])
    subset = min(count, 64)
    result["train_full_images_per_second"] = round(_train_rate(full, images[:subset], labels[:subset]), 1)

    layer = backbones.gradcam_layer(backbone, size)
    mapper = gradcam.ActivationMapper(model, layer=layer)
    latencies = []
    for path in paths[:11]:
        started = time.perf_counter()
        image = preprocess.preprocess_image(path, size)[None].astype("float32") / 255.0
        model.predict(image, verbose=0)
        mapper(image)
        latencies.append(time.perf_counter() - started)
    result["predict_page_seconds_median"] = round(statistics.median(latencies[1:]), 3)  # first one traces
    result["gradcam_layer"] = layer
    result["gradcam_map_side"] = int(model.get_layer(layer).output.shape[1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rows = [bench(backbone, args.size, args.images) for backbone in ARMS]
    by_name = {row["backbone"]: row for row in rows}
    lite, vgg = by_name["efficientnet-lite0"], by_name["vgg16"]
    ratios = {key: round(lite[key] / vgg[key], 2) for key in
              ("predict_images_per_second", "train_suffix_images_per_second", "train_full_images_per_second")}
    ratios["predict_page_seconds_median"] = round(lite["predict_page_seconds_median"] / vgg["predict_page_seconds_median"], 2)
    report = {"benchmark": "backbones", "image_size": args.size, "images": args.images, "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "python": platform.python_version(), "results": rows,
              "lite0_over_vgg16": ratios}
    output = REPOSITORY / "benchmarks" / "results" / "backbones.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
