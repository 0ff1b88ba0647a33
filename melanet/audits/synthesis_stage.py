"""``melanet audit-synthesis``: can these synthetic lesions pass for real ones, and are they copies?

For a stage-1 run with synthetic images (and optionally a trained classifier), in the training
part of the run's own split (the split stage 1 trained on; validation and test images are never
read):

- features: the GAP features of the frozen backbone named by the run's ``classifier`` config
  (e.g. ``hed``: VGG16 edge-detector convolutions, not ImageNet), and, with ``--classifier RUN``,
  those of that trained classifier;
- in each feature space, KID (``melanet.audits.synthesis_measures``) of synthetic vs real malignant, and of
  real benign vs real malignant as the yardstick (how far apart the two real classes are), each
  with a subset-bootstrap interval;
- memorisation: each synthetic image's nearest real malignant training image, against each real
  malignant image's nearest other one;
- realism: each synthetic image's held-out probability of "real malignant" from the grouped,
  cross-validated probe, in the classifier's features when given (else the backbone's), and the
  same probe's AUC on real benign vs real malignant as its yardstick (how far apart the two real
  classes are in those features);
- an independent pixel probe: the same probe on hand-made pixel features
  (``melanet.audits.pixel_features``: colour, gradient and spectrum statistics, no network), with
  its own real-benign-vs-real-malignant yardstick.

Writes ``audit/audit.json``, ``audit/realism.csv`` and ``audit/nearest.csv`` into the run
(``melanet.runs.audit_files``) and keeps an ``audit`` entry in its ``status.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import layout, lifecycle, runs
from melanet.audits import synthesis_measures
from melanet.runs import audit_files
from melanet.explain import features

logger = logging.getLogger(__name__)

STAGE = "audit-synthesis"
Progress = lifecycle.Progress


def refuse_without_synthesis(run: runs.Run) -> None:
    """``RunError`` (one line) when ``run`` has no synthetic images to audit."""
    if not run.files.synthetic_manifest.is_file():
        raise runs.RunError(
            f"{run.path}: no synthetic images to audit ({layout.SYNTHETIC_MANIFEST_FILE} missing); "
            f"run `melanet synthesize --run {run.path}` first"
        )


def audit_run(gan_run: str | Path, classifier_run: str | Path | None = None, *,
              progress: Progress | None = None) -> Path:
    """Audit the synthetic images of stage-1 run ``gan_run``; returns the path of ``audit/audit.json``."""
    run = runs.Run.open(gan_run)
    lifecycle.check_folder(run, STAGE)
    refuse_without_synthesis(run)
    config = run.config()
    classifier_model = _classifier_model(classifier_run, config.data.image_size) if classifier_run else None
    with lifecycle.step_session(run, STAGE, classifier_run=str(classifier_run or "")) as entry:
        real_benign, real_malignant, synthetic, manifest = _images(run, config, progress)
        spaces = {"backbone": (_backbone_model(config), _backbone_description(config))}
        if classifier_model is not None:
            spaces["classifier"] = (classifier_model, f"GAP features of the trained classifier {classifier_run}")
        results, nearest_rows, realism_features = {}, [], None
        for name, (model, description) in spaces.items():
            groups = _features(model, (real_benign, real_malignant, synthetic), name, config, progress)
            results[name], rows = audit_space(groups, real_malignant.ids, synthetic.ids, seed=config.seed)
            results[name]["description"] = description
            results[name]["probe"] = space_probes(groups, real_benign.ids, real_malignant.ids, synthetic.ids,
                                                  manifest, seed=config.seed)
            nearest_rows += [{"features": name, **row} for row in rows]
            realism_features = (name, groups)
        name, (benign_features, real_features, synthetic_features) = realism_features
        realism_rows, probe = realism_table(synthetic_features, real_features, synthetic.ids, real_malignant.ids,
                                            manifest, seed=config.seed)
        yardstick = class_probe(benign_features, real_features, real_benign.ids, real_malignant.ids, seed=config.seed)
        pixel = pixel_probes((real_benign, real_malignant, synthetic), manifest, seed=config.seed, progress=progress)
        summary = {
            "gan_run": str(run.path), "classifier_run": str(classifier_run) if classifier_run else None,
            "seed": config.seed, "image_size": config.data.image_size, "created_at": runs.now_iso(),
            "counts": {"synthetic": len(synthetic.ids), "real_malignant": len(real_malignant.ids),
                       "real_benign": len(real_benign.ids)},
            "feature_spaces": results,
            "realism": {"features": name, "probe": probe, "yardstick": yardstick, **pixel},
            "probe_real_ids": list(real_malignant.ids),
        }
        path = audit_files.write_audit(run.path, summary, realism_rows, nearest_rows)
        kid = results[name]["kid"]["synthetic_vs_real_malignant"]["kid"]
        entry.update(synthetic=len(synthetic.ids), realism_auc=round(probe["auc"], 4),
                     pixel_probe_auc=round(pixel["pixel_probe"]["auc"], 4),
                     kid_synthetic_vs_real_malignant=round(kid, 6))
    return path


def audit_space(groups: tuple[np.ndarray, np.ndarray, np.ndarray], malignant_ids: list[str],
                synthetic_ids: list[str], *, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """KID and memorisation in one feature space.

    ``groups``: (real benign (B, C), real malignant (M, C), synthetic (N, C)) features. All three are
    first divided by one constant, ``feature_scale``: the root mean square of the real images'
    feature values, so that ``x . y / C`` is about 1 in KID's cubic kernel whatever the backbone's
    scale (raw VGG GAP features are in the tens and would put KID in the tens of thousands).
    Returns the summary (``feature_scale``; ``kid``: two pairs; ``memorisation``: distance
    summaries, in scaled units, and the share of synthetic images closer to a real one than the
    closest 5 % of real-to-real pairs) and the nearest rows.
    """
    scale = synthesis_measures.feature_scale(np.concatenate([groups[0], groups[1]]))
    benign, malignant, synthetic = (group / scale for group in groups)
    kid = {
        "synthetic_vs_real_malignant": synthesis_measures.kernel_inception_distance(synthetic, malignant, seed=seed),
        "real_benign_vs_real_malignant": synthesis_measures.kernel_inception_distance(benign, malignant, seed=seed),
    }
    synthetic_index, synthetic_distance = synthesis_measures.nearest_neighbours(synthetic, malignant)
    real_index, real_distance = synthesis_measures.nearest_neighbours(malignant, malignant, exclude_self=True)
    real_summary = synthesis_measures.distance_summary(real_distance)
    memorisation = {
        "synthetic_to_real": synthesis_measures.distance_summary(synthetic_distance),
        "real_to_real": real_summary,
        "share_closer_than_real_q05": float(np.mean(synthetic_distance < real_summary["q05"])),
        "dimensions": int(malignant.shape[1]),
    }
    rows = [{"kind": "synthetic", "image": image, "nearest_id": malignant_ids[index], "distance": float(distance)}
            for image, index, distance in zip(synthetic_ids, synthetic_index, synthetic_distance)]
    rows += [{"kind": "real", "image": image, "nearest_id": malignant_ids[index], "distance": float(distance)}
             for image, index, distance in zip(malignant_ids, real_index, real_distance)]
    return {"feature_scale": scale, "kid": kid, "memorisation": memorisation}, rows


def realism_table(synthetic: np.ndarray, real: np.ndarray, synthetic_ids: list[str], real_ids: list[str],
                  manifest: dict[str, dict[str, str]], *, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``realism.csv`` rows, most realistic first (rank 1), and the probe summary."""
    sources = [manifest[image]["source_id"] for image in synthetic_ids]
    scores, probe = synthesis_measures.realism_scores(synthetic, real, sources, real_ids, seed=seed)
    order = sorted(range(len(synthetic_ids)), key=lambda position: (-scores[position], position))
    rows = [{"synthetic_id": synthetic_ids[position], "source_id": sources[position],
             "path": manifest[synthetic_ids[position]]["path"], "realism": float(scores[position]), "rank": rank}
            for rank, position in enumerate(order, start=1)]
    return rows, probe


def space_probes(groups: tuple[np.ndarray, np.ndarray, np.ndarray], benign_ids: list[str], malignant_ids: list[str],
                 synthetic_ids: list[str], manifest: dict[str, dict[str, str]], *, seed: int) -> dict[str, float]:
    """The grouped probe's held-out AUC in one feature space: ``synthetic_vs_real_malignant`` and the
    yardstick ``real_benign_vs_real_malignant``. In a trained classifier's features, which were fitted to
    these very training images, the yardstick is near 1 too; the frozen backbone's are the fairer reading."""
    benign, malignant, synthetic = groups
    sources = [manifest[image]["source_id"] for image in synthetic_ids]
    _, probe = synthesis_measures.realism_scores(synthetic, malignant, sources, malignant_ids, seed=seed)
    return {"synthetic_vs_real_malignant": probe["auc"],
            "real_benign_vs_real_malignant": class_probe(benign, malignant, benign_ids, malignant_ids, seed=seed)["auc"]}


def class_probe(benign: np.ndarray, malignant: np.ndarray, benign_ids: list[str], malignant_ids: list[str], *,
                seed: int) -> dict[str, Any]:
    """The realism probe's held-out AUC of real malignant vs real benign features: the yardstick.

    The same grouped, cross-validated logistic probe as ``audit.realism_scores`` (each image its own
    group), so a synthetic-vs-real AUC can be read against how far apart the two real classes are.
    """
    _, summary = synthesis_measures.realism_scores(benign, malignant, benign_ids, malignant_ids, seed=seed)
    return {"auc": summary["auc"], "n_benign": len(benign_ids), "n_malignant": len(malignant_ids),
            "folds": summary["folds"]}


def pixel_probes(image_sets, manifest: dict[str, dict[str, str]], *, seed: int,
                 progress: Progress | None = None) -> dict[str, Any]:
    """``pixel_probe`` (synthetic vs real malignant) and ``pixel_yardstick`` (real benign vs real malignant)
    on ``pixel_features`` of the (real benign, real malignant, synthetic) ``ImageSet``s."""
    from melanet.audits import pixel_features

    benign, malignant, synthetic = (
        pixel_features.pixel_features(image_set.images, progress=progress, message=f"pixel features ({label})")
        for image_set, label in zip(image_sets, ("benign", "malignant", "synthetic"))
    )
    real_benign, real_malignant, synthetic_set = image_sets
    sources = [manifest[image]["source_id"] for image in synthetic_set.ids]
    _, probe = synthesis_measures.realism_scores(synthetic, malignant, sources, real_malignant.ids, seed=seed)
    return {"pixel_probe": {**probe, "features": pixel_features.PIXEL_FEATURES_DESCRIPTION,
                            "dimensions": int(malignant.shape[1])},
            "pixel_yardstick": class_probe(benign, malignant, real_benign.ids, real_malignant.ids, seed=seed)}


def _images(run: runs.Run, config, progress: Progress | None):
    """(real benign, real malignant, synthetic) ``ImageSet``s of the run's training part, and the manifest by id."""
    from melanet.classifier import training_sets
    from melanet.data import splits
    from melanet.gan import synthesis

    training_part, _ = splits.training_and_validation(config.data, config.seed, progress=progress)
    real_benign = training_part.subset(np.flatnonzero(training_part.labels == 0))
    real_malignant = training_part.subset(np.flatnonzero(training_part.labels == 1))
    synthetic = training_sets.synthetic_images(training_part, str(run.path),
                                               color_constancy=config.data.color_constancy)
    manifest = {row["synthetic_id"]: row for row in synthesis.read_manifest(run.path)}
    logger.info("audit: %d synthetic, %d real malignant, %d real benign training images",
                len(synthetic.ids), len(real_malignant.ids), len(real_benign.ids))
    return real_benign, real_malignant, synthetic, manifest


def _features(model, image_sets, name: str, config, progress: Progress | None) -> tuple[np.ndarray, ...]:
    return tuple(
        features.extract_features(model, image_set.images, batch_size=config.classifier.batch_size,
                                  progress=progress, message=f"{name} features ({label})")
        for image_set, label in zip(image_sets, ("benign", "malignant", "synthetic"))
    )


def _backbone_model(config):
    from melanet.classifier import model as classifier_model

    classifier = config.classifier
    return classifier_model.build_classifier(config.data.image_size, classifier.backbone, classifier.width,
                                             classifier.weights, preprocessing=classifier.preprocessing)


def _backbone_description(config) -> str:
    from melanet.classifier import backbones

    classifier = config.classifier
    return f"GAP features of the frozen backbone: {backbones.describe(classifier.backbone, classifier.weights)}"


def _classifier_model(classifier_run: str | Path, image_size: int):
    from melanet.classifier import predict

    model = predict.load_model(classifier_run)
    size = model.input_shape[1]
    if size != image_size:
        raise runs.RunError(f"{classifier_run}: the classifier takes {size} px images, the GAN run's are "
                            f"{image_size} px; audit with a classifier trained at the GAN run's size")
    return model
