"""Benchmark: Grad-CAM seconds per image at 256 px against a plain forward + backward pass of the
same model, and UMAP seconds for 1627 points x 512 features (the paper's balanced training set).

The model is VGG16-GAP as the paper's (random weights: timing does not depend on the values).
Writes benchmarks/results/explain.json. Usage: python benchmarks/bench_explain.py [--images 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from melanet.explain import embedding, gradcam

RESULTS = Path(__file__).resolve().parent / "results" / "explain.json"


def vgg_gap(image_size: int) -> keras.Model:
    """Flat VGG16 (weights=None) -> GlobalAveragePooling2D -> Dense(2, softmax)."""
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(backbone.output)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    return keras.Model(backbone.input, outputs, name="vgg_gap")


def seconds_per_image(function, images: np.ndarray, repeats: int) -> float:
    """Best of ``repeats`` timed calls (after one warm-up call), divided by the batch size."""
    function(images)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(images)
        best = min(best, time.perf_counter() - start)
    return best / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=4, help="images per timed batch")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--points", type=int, default=1627)
    parser.add_argument("--features", type=int, default=512)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = vgg_gap(args.size)
    images = np.random.default_rng(0).random((args.images, args.size, args.size, 3), dtype=np.float32)

    def forward_backward(batch: np.ndarray) -> None:
        inputs = tf.constant(batch)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            score = model(inputs, training=False)[:, 1]
        tape.gradient(score, inputs).numpy()

    timings = {"forward_backward": seconds_per_image(forward_backward, images, args.repeats)}
    for method in ("gradcam", "gradcam++"):
        mapper = gradcam.ActivationMapper(model, layer="block5_conv3", method=method)
        timings[method] = seconds_per_image(mapper, images, args.repeats)
        print(f"{method}: {timings[method]:.3f} s/image", flush=True)
    print(f"forward+backward: {timings['forward_backward']:.3f} s/image", flush=True)

    # Clustered random features: 3 groups like benign / malignant / synthetic.
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 3, args.points)
    centres = rng.normal(0.0, 2.0, (3, args.features))
    features = (centres[groups] + rng.normal(0.0, 1.0, (args.points, args.features))).astype(np.float32)
    embedding.umap_embedding(features[:50], seed=0)  # numba compiles on first use; not part of the figure
    start = time.perf_counter()
    embedding.umap_embedding(features, seed=0)
    umap_seconds = time.perf_counter() - start
    print(f"UMAP {args.points} x {args.features}: {umap_seconds:.1f} s", flush=True)

    result = {
        "image_size": args.size,
        "images_per_batch": args.images,
        "model": "VGG16-GAP, weights=None, float32",
        "gradcam_seconds_per_image": round(timings["gradcam"], 4),
        "gradcam_plus_plus_seconds_per_image": round(timings["gradcam++"], 4),
        "forward_backward_seconds_per_image": round(timings["forward_backward"], 4),
        "gradcam_over_forward_backward": round(timings["gradcam"] / timings["forward_backward"], 2),
        "note": (
            "forward_backward = softmax score gradient down to the input pixels; Grad-CAM backpropagates "
            "only to block5_conv3 (plus tf-keras-vis bookkeeping), so it can be cheaper. 2 shared CPU cores: "
            "best of repeats, still noisy"
        ),
        "umap_points": args.points,
        "umap_features": args.features,
        "umap_seconds": round(umap_seconds, 2),
        "umap_settings": "n_neighbors 15, min_dist 0.1, random_state 0 (single-threaded), numba warmed up",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, TF {tf.__version__}",
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
