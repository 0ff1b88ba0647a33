"""The prediction files of an evaluated run: one module reads and writes them.

- ``predictions.csv``: ``image, label, prob_malignant`` (label 0 = benign, 1 = malignant, the
  probability with 8 decimals), then where the 8 views were predicted ``prob_sd, prob_range,
  uncertain`` (:mod:`melanet.evaluation.uncertainty`);
- ``predictions_isic.csv``: the ``isic-challenge-scoring`` format ``image, benign, malignant``;
- ``validation_predictions.csv`` (written at training time by ``melanet.classifier.train``) is read
  here with the same reader.

Evaluation, the rescore from saved predictions, paired tests, the model card, similar cases,
Grad-CAM and reader studies read them through ``read_predictions``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from melanet.data.errors import DataError
from melanet.evaluation import uncertainty
from melanet.runs import layout, runs

PREDICTIONS_FILE = layout.PREDICTIONS_FILE
ISIC_PREDICTIONS_FILE = layout.ISIC_PREDICTIONS_FILE
VALIDATION_PREDICTIONS_FILE = layout.VALIDATION_PREDICTIONS_FILE


def read_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read an ``image, label, prob_malignant`` CSV -> (ids, (N,) int64 labels, (N,) float64 probabilities).

    Raises DataError naming the file and line of the first bad row.
    """
    path = Path(path)
    try:
        stream = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read predictions ({error.strerror or error})") from None
    ids: list[str] = []
    labels: list[int] = []
    probabilities: list[float] = []
    with stream:
        reader = csv.DictReader(stream)
        missing = {"image", "label", "prob_malignant"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))} "
                            "(expected image,label,prob_malignant)")
        for line, row in enumerate(reader, start=2):
            try:
                label = int(float(row["label"]))
                probability = float(row["prob_malignant"])
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {line}: expected a 0/1 label and a probability, got {row}") from None
            if label not in (0, 1) or not 0.0 <= probability <= 1.0:
                raise DataError(f"{path}: line {line}: label must be 0/1 and prob_malignant in [0, 1], got {row}")
            ids.append(row["image"])
            labels.append(label)
            probabilities.append(probability)
    return ids, np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float64)


def write_predictions(out_dir: str | Path, ids: Sequence[str], labels: np.ndarray, probabilities: np.ndarray,
                      spread: dict[str, np.ndarray] | None = None) -> None:
    """Write ``predictions.csv`` and ``predictions_isic.csv`` for (N,) ``labels`` and ``probabilities``.

    ``spread``: :func:`melanet.evaluation.uncertainty.columns` ((N,) ``prob_sd``, ``prob_range``,
    ``uncertain``), written as extra columns of ``predictions.csv`` only; the ISIC file keeps its
    official three columns.
    """
    out_dir = Path(out_dir)
    rows = [
        {"image": image_id, "label": int(label), "prob_malignant": f"{float(probability):.8f}"}
        for image_id, label, probability in zip(ids, labels, probabilities)
    ]
    fields = ["image", "label", "prob_malignant"]
    if spread is not None:
        fields += list(uncertainty.COLUMNS)
        for row, sd, width, flagged in zip(rows, *(spread[column] for column in uncertainty.COLUMNS)):
            row.update({uncertainty.SD_COLUMN: f"{float(sd):.8f}", uncertainty.RANGE_COLUMN: f"{float(width):.8f}",
                        uncertainty.FLAG_COLUMN: int(bool(flagged))})
    runs.atomic_write_csv(out_dir / PREDICTIONS_FILE, rows, fields)
    isic_rows = [
        {"image": image_id, "benign": f"{1.0 - float(probability):.8f}", "malignant": f"{float(probability):.8f}"}
        for image_id, probability in zip(ids, probabilities)
    ]
    runs.atomic_write_csv(out_dir / ISIC_PREDICTIONS_FILE, isic_rows, ["image", "benign", "malignant"])
