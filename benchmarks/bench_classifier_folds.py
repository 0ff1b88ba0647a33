"""Benchmark the cross-validated demo classifier (issue 33) on real sample images, EfficientNet-Lite0.

1. Training throughput at 128 and 224 px with the demo's trainable depth (``block6a_expand_conv`` on):
   the frozen prefix's activations, computed once per image and per dihedral view (images/s), and the
   trainable suffix's training steps on those cached activations (images/s), the figure that decides a
   K-fold run's cost (``melanet.classifier.cross_validation``).
2. Predict with a 5-member ensemble at 224 px, per upload: preprocessing of the JPEG, the 8 dihedral
   views of every member (``predict.predict_with_views``) and the ensemble's Grad-CAM (mean of the members'
   maps); median of 20 uploads after loading and one warm-up. Target: at most 2.0 s on 2 idle cores.
3. Similar cases for the same upload: the ensemble's GAP features (members side by side) and the nearest
   images of an index of the 353 training images; target: at most 2.0 s more.

The members are ImageNet Lite0 models whose trained layers are left at their start (5 different head
seeds): the time of a prediction does not depend on the weights' values. From 1 it also estimates one
5-fold run at 224 px on the sample with ``configs/demo-cv.yaml``'s settings (353 training images).

    python benchmarks/bench_classifier_folds.py [--images 64] [--uploads 20] [--estimate-only]
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
import tensorflow as tf  # noqa: E402

from melanet import config as config_module  # noqa: E402
from melanet.classifier import model as model_module  # noqa: E402
from melanet.classifier import predict, train  # noqa: E402
from melanet.data import prepare, preprocess  # noqa: E402
from melanet.explain import features, gradcam, retrieval  # noqa: E402

SAMPLE = REPOSITORY / "data" / "sample"
TRAINABLE_FROM = "block6a_expand_conv"
TRAINING_IMAGES = 353


def _config(image_size: int) -> config_module.Config:
    return config_module.load_config(REPOSITORY / "configs" / "demo-cv.yaml", [f"data.image_size={image_size}"])


def training_throughput(image_size: int, count: int, batch_size: int, steps: int) -> dict:
    """Prefix images/s (one view) and suffix training images/s at ``image_size``."""
    config = _config(image_size)
    images = np.asarray(prepare.load_split(config.data, "train").images[:count])
    labels = (np.arange(count) % 4 == 0).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = train.build_compiled_model(config)
    prefix, suffix = model_module.split_at(model, TRAINABLE_FROM)
    settings = config.classifier
    from melanet.classifier import losses

    model_module.compile_classifier(suffix, settings.optimizer, settings.learning_rate,
                                    losses.effective_alpha(settings.focal_alpha, settings.focal_alpha_mode),
                                    settings.focal_gamma)
    train.frozen_features(prefix, images[:batch_size], batch_size)  # trace once
    started = time.perf_counter()
    cached = train.frozen_features(prefix, images, batch_size, view=predict.DIHEDRAL_VIEWS[5])
    prefix_seconds = time.perf_counter() - started
    orders = train.augmented_orders(np.arange(count), 1, count, 0, 0, 2 + steps * batch_size // count + 1, count)
    dataset = train.make_dataset(cached, labels, batch_size, sample_weights=train.balanced_sample_weights(labels),
                                 orders=orders)
    iterator = iter(dataset)
    suffix.train_on_batch(*next(iterator))  # trace once
    started = time.perf_counter()
    for _ in range(steps):
        suffix.train_on_batch(*next(iterator))
    suffix_seconds = time.perf_counter() - started
    suffix.predict(cached[:batch_size], batch_size=batch_size, verbose=0)  # trace once
    started = time.perf_counter()
    suffix.predict(cached, batch_size=batch_size, verbose=0)
    suffix_predict_seconds = time.perf_counter() - started
    return {"image_size": image_size, "images": count, "batch_size": batch_size,
            "prefix_activations": list(cached.shape[1:]),
            "prefix_images_per_second": count / prefix_seconds,
            "suffix_training_images_per_second": steps * batch_size / suffix_seconds,
            "suffix_prediction_images_per_second": count / suffix_predict_seconds,
            "trainable_parameters": int(sum(np.prod(variable.shape) for variable in suffix.trainable_variables))}


def five_fold_estimate(rates: dict, config: config_module.Config, test_images: int = 73) -> dict:
    """Seconds of one K-fold run on the sample from the measured rates: the prefix once per image and view,
    then per fold and epoch ``steps_per_epoch`` batches of the suffix and the held-out fold's test-time views,
    then the test images through every member's full model (about the prefix's cost) under every view."""
    settings = config.classifier
    folds, epochs = settings.folds, settings.epochs
    views = len(train.training_views(settings.augment))
    test_views = len(predict.TTA_VIEWS[config.evaluation.tta])
    examples_per_epoch = train.epoch_length(TRAINING_IMAGES * (folds - 1) // folds, settings)[0]
    prefix = views * TRAINING_IMAGES / rates["prefix_images_per_second"]
    training = folds * epochs * examples_per_epoch / rates["suffix_training_images_per_second"]
    held_out = epochs * test_views * TRAINING_IMAGES / rates["suffix_prediction_images_per_second"]
    evaluation = folds * test_views * test_images / rates["prefix_images_per_second"]
    return {"folds": folds, "epochs": epochs, "training_views": views, "test_time_views": test_views,
            "examples_per_fold_epoch": examples_per_epoch, "prefix_seconds": prefix, "training_seconds": training,
            "held_out_prediction_seconds": held_out, "test_evaluation_seconds": evaluation,
            "total_seconds": prefix + training + held_out + evaluation,
            "not_counted": "data decoding (cached after the first run), one model build per fold (~2-5 s), "
                           "checkpoint and snapshot writes, and the CycleGAN",
            "kind": "estimate from the measured rates, not a measured run"}


def upload_timings(uploads: int, members: int) -> dict:
    """Median seconds per upload: preprocessing, 8 views x members, ensemble Grad-CAM, similar cases."""
    config = _config(224)
    ensemble_members = []
    for member in range(members):
        keras.utils.set_random_seed(member)
        ensemble_members.append(model_module.build_from_config(config))
    ensemble = predict.Ensemble(ensemble_members)
    from melanet.classifier import backbones

    layer = backbones.explain_layer(config)
    training = prepare.load_split(config.data, "train")
    started = time.perf_counter()
    index = retrieval.Index.build(features.extract_features(ensemble, np.asarray(training.images), batch_size=32),
                                  training.ids, training.labels, [""] * len(training.ids))
    index_seconds = time.perf_counter() - started
    files = sorted((SAMPLE / "ISBI2016_ISIC_Part3_Test_Data").glob("*.jpg"))[:uploads + 1]
    rows = []
    for number, path in enumerate(files):
        started = time.perf_counter()
        image = preprocess.preprocess_image(path.read_bytes(), 224, config.data.max_image_pixels, config.data.resize,
                                            config.data.color_constancy)
        prepared = time.perf_counter()
        predict.predict_with_views(ensemble, image[None], tta=config.evaluation.tta)
        predicted = time.perf_counter()
        gradcam.compute_maps(ensemble, image[None], layer=layer, method="gradcam")
        explained = time.perf_counter()
        query = features.extract_features(ensemble, image[None])
        retrieval.nearest(index, query, retrieval.SHOWN)
        similar = time.perf_counter()
        if number:  # the first upload traces the graphs: a warm-up
            rows.append({"preprocess": prepared - started, "views": predicted - prepared,
                         "gradcam": explained - predicted, "similar_cases": similar - explained,
                         "predict_total": explained - started})
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    return {"members": members, "uploads": len(rows), "views": len(predict.DIHEDRAL_VIEWS), "gradcam_layer": layer,
            "median_seconds": median, "max_seconds": {key: max(row[key] for row in rows) for key in rows[0]},
            "index_images": len(index), "index_build_seconds": index_seconds,
            "feature_dimension": int(index.features.shape[1]),
            "predict_target_seconds": 2.0, "similar_target_seconds": 2.0,
            "meets_predict_target": median["predict_total"] <= 2.0,
            "meets_similar_target": median["similar_cases"] <= 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--uploads-only", action="store_true", help="rerun part 2-3 only, keep the rest of --out")
    parser.add_argument("--throughput-only", action="store_true", help="rerun part 1 only, keep the rest of --out")
    parser.add_argument("--estimate-only", action="store_true",
                        help="recompute the 5-fold estimate from the rates already in --out (configs/demo-cv.yaml)")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "results" / "classifier_folds.json"))
    args = parser.parse_args()
    if args.uploads_only:
        result = json.loads(Path(args.out).read_text())
        result["predict_ensemble_224px"] = upload_timings(args.uploads, 5)
        result["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["predict_ensemble_224px"]["median_seconds"], indent=2))
        return
    if args.throughput_only:
        result = json.loads(Path(args.out).read_text())
        result["training_throughput"] = {str(size): training_throughput(size, args.images, 16, args.steps)
                                         for size in (128, 224)}
        result["five_fold_run_estimate_224px"] = five_fold_estimate(result["training_throughput"]["224"], _config(224))
        result["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["training_throughput"], indent=2))
        print(json.dumps(result["five_fold_run_estimate_224px"], indent=2))
        return
    if args.estimate_only:
        result = json.loads(Path(args.out).read_text())
        result["five_fold_run_estimate_224px"] = five_fold_estimate(result["training_throughput"]["224"], _config(224))
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["five_fold_run_estimate_224px"], indent=2))
        return
    throughput = {size: training_throughput(size, args.images, 16, args.steps) for size in (128, 224)}
    for size, row in throughput.items():
        print(f"{size} px: prefix {row['prefix_images_per_second']:.1f} img/s, suffix training "
              f"{row['suffix_training_images_per_second']:.1f} img/s")
    estimate = five_fold_estimate(throughput[224], _config(224))
    print(f"5-fold run at 224 px, {estimate['epochs']} epochs: about {estimate['total_seconds'] / 60:.1f} min (estimate)")
    uploads = upload_timings(args.uploads, 5)
    print(f"5-member ensemble, median of {uploads['uploads']} uploads: {uploads['median_seconds']}")
    load = os.getloadavg()
    result = {
        "benchmark": "cross-validated demo classifier: training throughput, 5-fold estimate, ensemble Predict",
        "model": f"EfficientNet-Lite0 ImageNet, trainable from {TRAINABLE_FROM}, batch 16, configs/demo-cv.yaml",
        "training_throughput": {str(size): row for size, row in throughput.items()},
        "five_fold_run_estimate_224px": estimate,
        "predict_ensemble_224px": uploads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                    "keras": keras.__version__, "load_average_at_end": [round(value, 2) for value in load]},
        "note": ("measured on 2 CPU cores shared with other jobs (see load_average_at_end): the cores were NOT idle, "
                 "so the absolute figures are upper bounds of what 2 idle cores give"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
