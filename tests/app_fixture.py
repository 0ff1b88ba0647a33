"""Build a complete ``melanet reproduce`` results folder for the dashboard tests (docs/run-folders.md).

Real files throughout: PNG images, CSVs, ``metrics.json`` computed by ``melanet.evaluation.metrics``
from predictions on the bundled sample's real test ids, Grad-CAM maps as ``.npy``, and (optionally) a
real tiny Keras classifier so the Predict page can run a prediction and a Grad-CAM.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from melanet import config as config_module
from melanet.runs import runs
from melanet.data import sources
from melanet.evaluation import metrics as metrics_module
from melanet.evaluation import operating_points
from melanet.audits import separability

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = "data/sample"
IMAGE_SIZE = 32
CLASSIFIERS = {"vgg_gap": "original", "augment5x": "augment5x", "augment10x": "augment10x", "melanet": "synthetic"}


def _config(training_set: str = "original", gan_run: str = "") -> config_module.Config:
    base = config_module.load_config(REPO / "configs" / "smoke.yaml")
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, root=DATA_ROOT, image_size=IMAGE_SIZE),
        classifier=dataclasses.replace(base.classifier, training_set=training_set, gan_run=gan_run,
                                       backbone="vgg16-narrow", width=0.0625, weights="none"),
    )


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _done(run: runs.Run, stage: str, epochs: int) -> None:
    run.update_status(stage=stage, state="done", epoch=epochs, epochs=epochs, progress=1.0, eta_seconds=0,
                      message="done")


def write_gan_run(path: Path, benign_ids: list[str], rng: np.random.Generator) -> runs.Run:
    run = runs.Run.create(path, _config(), "train-gan")
    for epoch in (1, 2):
        run.append_history({"epoch": epoch, "adversarial_benign_to_malignant": 0.9 / epoch,
                            "adversarial_malignant_to_benign": 0.8 / epoch, "discriminator_malignant": 0.3,
                            "discriminator_benign": 0.3, "cycle": 2.0 / epoch, "identity": 1.0 / epoch,
                            "seconds": 1.5})
        _png(run.figures_dir / f"samples_epoch_{epoch:03d}.png", rng.integers(0, 255, (64, 96, 3)))
    rows = []
    for source_id in benign_ids:
        synthetic_id = f"syn_{source_id}"
        _png(path / "synthetic" / "images" / f"{synthetic_id}.png", rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3)))
        _png(path / "synthetic" / "reconstructions" / f"{synthetic_id}.png",
             rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3)))
        rows.append({"synthetic_id": synthetic_id, "source_id": source_id,
                     "path": f"synthetic/images/{synthetic_id}.png",
                     "reconstruction_path": f"synthetic/reconstructions/{synthetic_id}.png"})
    runs.atomic_write_csv(path / "synthetic" / "manifest.csv", rows,
                          ["synthetic_id", "source_id", "path", "reconstruction_path"])
    _done(run, "synthesize", 2)
    return run


def write_classifier_run(path: Path, training_set: str, gan_run: str, test: list[sources.Sample],
                         train: list[sources.Sample], skill: float, rng: np.random.Generator,
                         *, explain: bool, embed: bool) -> runs.Run:
    run = runs.Run.create(path, _config(training_set, gan_run), "train-classifier")
    for epoch in (1, 2, 3):
        run.append_history({"epoch": epoch, "loss": 0.2 / epoch, "auc": 0.6 + 0.1 * epoch,
                            "val_loss": 0.25 / epoch, "val_auc": 0.55 + 0.1 * epoch, "learning_rate": 1e-3,
                            "seconds": 2.0})
    labels = np.array([sample.label for sample in test])
    probabilities = np.clip(0.5 + skill * (labels - 0.5) + rng.normal(0, 0.25, len(labels)), 0.001, 0.999)
    validation_labels = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    validation_probabilities = np.clip(0.5 + skill * (validation_labels - 0.5) + rng.normal(0, 0.2, 8), 0, 1)
    report = metrics_module.full_report(labels, probabilities, bootstrap_samples=200,
                                        validation_labels=validation_labels,
                                        validation_probabilities=validation_probabilities)
    report["operating_points"] = operating_points.report(labels, probabilities, validation_labels, validation_probabilities)
    run.write_json("metrics.json", report)
    runs.atomic_write_csv(path / "predictions.csv",
                          [{"image": sample.image_id, "label": int(sample.label), "prob_malignant": float(p)}
                           for sample, p in zip(test, probabilities)], ["image", "label", "prob_malignant"])
    if explain:
        rows = []
        for sample, probability in list(zip(test, probabilities))[:12]:
            predicted = probability > 0.5
            outcome = {(True, 1): "TP", (True, 0): "FP", (False, 0): "TN", (False, 1): "FN"}[(predicted, sample.label)]
            stem = f"explain/{outcome.lower()}/{sample.image_id}"
            activation = np.outer(np.hanning(IMAGE_SIZE), np.hanning(IMAGE_SIZE)).astype(np.float32)
            (path / stem).parent.mkdir(parents=True, exist_ok=True)
            np.save(path / f"{stem}_map.npy", activation)
            picture = np.asarray(Image.open(sample.path).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE)))
            _png(path / f"{stem}_input.png", picture)
            _png(path / f"{stem}_overlay.png", picture // 2 + 60)
            rows.append({"image": sample.image_id, "label": sample.label, "prob_malignant": float(probability),
                         "outcome": outcome, "method": "gradcam", "layer": "block5_conv3",
                         "map_path": f"{stem}_map.npy", "overlay_path": f"{stem}_overlay.png",
                         "input_path": f"{stem}_input.png"})
        runs.atomic_write_csv(path / "explain" / "index.csv", rows,
                              ["image", "label", "prob_malignant", "outcome", "method", "layer", "map_path",
                               "overlay_path", "input_path"])
    if embed:
        rows = []
        for panel in ("original", "balanced"):
            for sample in train[:40]:
                rows.append({"panel": panel, "image": sample.image_id,
                             "tag": "malignant" if sample.label else "benign",
                             "x": float(rng.normal(sample.label * 3, 1)), "y": float(rng.normal(0, 1))})
            if panel == "balanced":
                for sample in [item for item in train if item.label == 0][:10]:
                    rows.append({"panel": panel, "image": f"syn_{sample.image_id}", "tag": "synthetic",
                                 "x": float(rng.normal(2.5, 1)), "y": float(rng.normal(1, 1))})
        (path / "embedding").mkdir(exist_ok=True)
        runs.atomic_write_csv(path / "embedding" / "umap.csv", rows, ["panel", "image", "tag", "x", "y"])
        _png(path / "embedding" / "umap.png", rng.integers(0, 255, (40, 80, 3)))
        groups = {"benign": rng.normal(0, 1, (30, 8)), "malignant": rng.normal(0.5, 1, (10, 8)),
                  "synthetic": rng.normal(2, 1, (10, 8))}
        runs.atomic_write_json(path / "embedding" / "separability.json", separability.domain_gap(groups, seed=0))
    _done(run, "evaluate", 3)
    return run


def write_model(run_path: Path) -> None:
    """A real, tiny, untrained VGG-GAP classifier (32 px, narrow backbone) as ``model.keras``."""
    import keras

    from melanet.classifier import model as model_module

    keras.utils.set_random_seed(0)
    model = model_module.build_classifier(IMAGE_SIZE, backbone="vgg16-narrow", width=0.0625, weights="none")
    model.save(run_path / "model.keras")


def write_results(folder: Path, *, with_model: bool = True) -> Path:
    """``folder`` becomes a reproduce results folder: gan/, vgg_gap/, augment5x/, augment10x/, melanet/."""
    rng = np.random.default_rng(7)
    index = sources.read_index(REPO / DATA_ROOT)
    benign_ids = [sample.image_id for sample in index.train if sample.label == 0][:8]
    gan = write_gan_run(folder / "gan", benign_ids, rng)
    lines = ["| method | AUC % | sensitivity % | specificity % | FN |", "|---|---|---|---|---|"]
    for number, (name, training_set) in enumerate(CLASSIFIERS.items()):
        explained = name in ("vgg_gap", "melanet")
        run = write_classifier_run(folder / name, training_set, str(gan.path) if training_set == "synthetic" else "",
                                   index.test, index.train, 0.2 + 0.1 * number, rng,
                                   explain=explained, embed=name == "melanet")
        values = run.metrics()
        lines.append(f"| {name} | {values['auc'] * 100:.2f} | {values['sensitivity'] * 100:.2f} | "
                     f"{values['specificity'] * 100:.2f} | {values['fn']} |")
    if with_model:
        write_model(folder / "melanet")
    runs.atomic_write_text(folder / "table.md", "\n".join(lines) + "\n")
    runs.atomic_write_text(folder / "table.csv", "method\n" + "\n".join(CLASSIFIERS) + "\n")
    runs.atomic_write_json(folder / "status.json", {"stage": "reproduce", "state": "done", "message": "done"})
    return folder
