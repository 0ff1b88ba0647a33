"""``melanet explain``: Grad-CAM maps and overlays for a classifier run's test images.

Writes, under ``<run>/explain/`` (or ``<run>/explain/<data folder name>/`` for ``--data DIR``)::

    index.csv        image, label, prob_malignant, outcome, method, layer, map_path, overlay_path, input_path,
                     threshold (the decision threshold behind outcome)
    maps/*.npy       (H, W) float32 in [0, 1], one per image, method and layer
    overlays/*.png   heat map over the input, the input's size
    inputs/*.png     the preprocessed input the model saw

Paths in ``index.csv`` are relative to the run folder. Rows are ordered misclassified first (FN, FP,
then TP, TN), the most confident within each outcome first. Rerunning with another method or layer
adds rows; rerunning with the same method and layer replaces that image's row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from melanet.common import choices
from melanet import config as config_module
from melanet.runs import layout, lifecycle, runs
from melanet.config import ConfigError
from melanet.evaluation import metrics, predictions
from melanet.explain import gradcam, lesion_focus, overlay

logger = logging.getLogger(__name__)

STAGE = "explain"
OUTCOMES = choices.OUTCOMES  # the order of the index: mistakes first
INDEX_COLUMNS = (
    "image",
    "label",
    "prob_malignant",
    "outcome",
    "method",
    "layer",
    "map_path",
    "overlay_path",
    "input_path",
    "threshold",  # the decision threshold behind ``outcome`` (an addition to the documented columns)
)
EXPLAIN_FOLDER = layout.EXPLAIN_FOLDER

Progress = lifecycle.Progress


def parse_which(text: str) -> tuple[str, ...]:
    """'fn,fp' -> ('FN', 'FP') in index order; 'all' -> all four. ValueError on anything else."""
    parts = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError("--which is empty; expected a comma list of fn, fp, tp, tn or 'all'")
    if "ALL" in parts:
        return OUTCOMES
    unknown = [part.lower() for part in parts if part not in OUTCOMES]
    if unknown:
        raise ValueError(f"--which: unknown outcome(s) {', '.join(unknown)}; expected fn, fp, tp, tn or all")
    return tuple(outcome for outcome in OUTCOMES if outcome in parts)


def outcomes(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Outcome per image, (N,) 'TP'/'FP'/'TN'/'FN': ``melanet.evaluation.metrics.outcomes`` (its decision rule)."""
    return metrics.outcomes(labels, probabilities, threshold)


def order_for_review(outcome: np.ndarray, probabilities: np.ndarray, which: Iterable[str]) -> list[int]:
    """Indices of the images whose outcome is in ``which``: FN, FP, TP, TN, and within each outcome
    the most confident first (FN/TN by ascending, FP/TP by descending malignant probability)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    wanted = set(which)
    order: list[int] = []
    for name in OUTCOMES:
        if name not in wanted:
            continue
        members = np.flatnonzero(outcome == name)
        key = probabilities[members] if name in ("FN", "TN") else -probabilities[members]
        order.extend(int(index) for index in members[np.argsort(key, kind="stable")])
    return order


def file_stem(image_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", image_id)


def data_folder_name(data_root: str | Path) -> str:
    """The sub-folder of ``explain/`` for the test split of another data folder: its (cleaned) name."""
    return file_stem(Path(data_root).resolve().name)


def _method_slug(method: str) -> str:
    return method.replace("++", "pp")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    # float16 keeps a [0, 1] map to ~5e-4, far finer than a colour map shows, at half the size
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float16))
    return buffer.getvalue()


def read_index(path: Path) -> list[dict[str, str]]:
    """Rows of an ``index.csv`` ([] when it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@dataclasses.dataclass(frozen=True)
class ExplainOptions:
    """What to explain and how."""

    layer: str = "block5_conv3"
    method: str = "gradcam"
    outcomes: tuple[str, ...] = OUTCOMES  # which outcomes to explain
    limit: int = 0  # 0 = every selected image
    threshold: float = 0.5
    opacity: float = 0.5
    colour_map: str = "jet"
    batch_size: int = 8


def explain_images(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    ids: Sequence[str],
    probabilities: np.ndarray,
    *,
    run_path: str | Path,
    output_dir: str | Path,
    options: ExplainOptions = ExplainOptions(),
    progress: Progress | None = None,
) -> list[dict[str, str]]:
    """Compute and write maps, overlays and inputs for the selected images; update ``index.csv``.

    Args:
        model: flat functional classifier, input (N, S, S, 3) float32 in [0, 1].
        images: (N, S, S, 3) uint8; labels: (N,) 0/1; ids: N image ids;
        probabilities: (N,) malignant probabilities in [0, 1] for these images.
        run_path: the run folder (index paths are relative to it).
        output_dir: where ``maps/``, ``overlays/``, ``inputs/`` and ``index.csv`` go (inside the run).
    Returns:
        the rows written for this call, in index order.
    """
    images = np.asarray(images)
    if not (len(labels) == len(ids) == len(probabilities) == len(images)):
        raise ValueError(
            f"images ({len(images)}), labels ({len(labels)}), ids ({len(ids)}) and probabilities "
            f"({len(probabilities)}) must have the same length"
        )
    if options.limit < 0:
        raise ValueError(f"limit must be >= 0, got {options.limit}")
    outcome = metrics.outcomes(labels, probabilities, options.threshold)
    selected = select_for_review(outcome, probabilities, options)
    mapper = gradcam.ActivationMapper(model, layer=options.layer, method=options.method)
    rows: list[dict[str, str]] = []
    if progress is not None:
        progress(0, len(selected), options.method)
    for start in range(0, len(selected), options.batch_size):
        batch = selected[start : start + options.batch_size]
        maps = mapper(images[batch].astype(np.float32) / 255.0)
        for index, activation_map in zip(batch, maps):
            row = {"image": ids[index], "label": str(int(labels[index])),
                   "prob_malignant": f"{float(probabilities[index]):.6f}", "outcome": str(outcome[index])}
            rows.append(_write_image_outputs(images[index], activation_map, row, Path(run_path), Path(output_dir),
                                             options))
        if progress is not None:
            progress(min(start + options.batch_size, len(selected)), len(selected), options.method)
    _merge_index(Path(output_dir) / layout.EXPLAIN_INDEX_NAME, rows)
    return rows


def select_for_review(outcome: np.ndarray, probabilities: np.ndarray, options: ExplainOptions) -> list[int]:
    """``order_for_review`` of ``options.outcomes``, cut to ``options.limit``; logs what was chosen."""
    selected = order_for_review(outcome, probabilities, options.outcomes)
    if options.limit:
        selected = selected[: options.limit]
    wanted = ",".join(options.outcomes)
    if not selected:
        found = ", ".join(f"{name} {int(np.sum(outcome == name))}" for name in OUTCOMES)
        logger.warning("no test image has outcome %s at threshold %s (%s)", wanted, options.threshold, found)
    logger.info("explaining %d of %d images (%s) with %s on %s", len(selected), len(outcome), wanted,
                options.method, options.layer)
    return selected


def _write_image_outputs(
    image: np.ndarray, activation_map: np.ndarray, row: dict[str, str], run_path: Path, output_dir: Path,
    options: ExplainOptions,
) -> dict[str, str]:
    """Write one image's map (.npy), overlay and input (.png); returns its complete index row.

    ``image`` (S, S, 3) uint8, ``activation_map`` (S, S) in [0, 1]; ``row`` holds image, label,
    prob_malignant and outcome.
    """
    stem = file_stem(row["image"])
    slug = f"{_method_slug(options.method)}_{file_stem(options.layer)}"
    paths = {
        "map_path": output_dir / layout.EXPLAIN_MAPS_FOLDER / f"{stem}_{slug}.npy",
        "overlay_path": output_dir / layout.EXPLAIN_OVERLAYS_FOLDER / f"{stem}_{slug}.png",
        "input_path": output_dir / layout.EXPLAIN_INPUTS_FOLDER / f"{stem}.png",
    }
    rendered = overlay.overlay(image, activation_map, colour_map=options.colour_map, opacity=options.opacity)
    runs.atomic_write_bytes(paths["map_path"], _npy_bytes(activation_map))
    runs.atomic_write_bytes(paths["overlay_path"], _png_bytes(rendered))
    runs.atomic_write_bytes(paths["input_path"], _png_bytes(image))
    return {
        **row,
        "method": options.method,
        "layer": options.layer,
        **{key: path.relative_to(run_path).as_posix() for key, path in paths.items()},
        "threshold": f"{options.threshold:.6g}",
    }


def _merge_index(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` into the index, replacing earlier rows of the same (image, method, layer)."""
    new_keys = {(row["image"], row["method"], row["layer"]) for row in rows}
    kept = [row for row in read_index(path) if (row.get("image"), row.get("method"), row.get("layer")) not in new_keys]
    merged = kept + rows
    merged.sort(key=_review_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_csv(path, merged, list(INDEX_COLUMNS))


def _review_key(row: dict[str, str]) -> tuple:
    """Sort key of an index row: method, layer, outcome in review order, most confident first."""
    outcome = row.get("outcome", "")
    rank = OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES)
    try:
        probability = float(row.get("prob_malignant", "nan"))
    except ValueError:
        probability = float("nan")
    confidence = probability if outcome in ("FN", "TN") else -probability
    return (row.get("method", ""), row.get("layer", ""), rank, confidence, row.get("image", ""))


def run_threshold(run: runs.Run, default: float, choice: str | float | None = None) -> float:
    """The decision threshold for outcomes.

    ``choice`` None: ``threshold`` of the run's ``metrics.json`` when evaluated, else ``default``;
    "operating": the operating point ``melanet evaluate`` chose on the validation split
    (ConfigError when there is none); a number in (0, 1): that number.
    """
    metrics = run.metrics() or {}
    if choice is not None and str(choice) != "operating":
        try:
            number = float(choice)
        except ValueError:
            raise ConfigError(f"threshold must be a number in (0, 1) or 'operating', got {choice!r}") from None
        if not 0.0 < number < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {number}")
        return number
    if choice is not None:
        operating = metrics.get("operating_point") or {}
        if not operating.get("available") or not isinstance(operating.get("threshold"), (int, float)):
            raise ConfigError(
                f"{run.path}: no validation operating point in metrics.json "
                f"({operating.get('reason', 'run melanet evaluate first')})"
            )
        return float(operating["threshold"])
    value = metrics.get("threshold")
    if isinstance(value, (int, float)) and 0.0 < float(value) < 1.0:
        return float(value)
    logger.info("%s: no threshold in metrics.json; using %s", run.path, default)
    return default


def _saved_probabilities(run: runs.Run, ids: Sequence[str]) -> np.ndarray | None:
    """Malignant probabilities for ``ids`` from the run's ``predictions.csv``, or None when any is missing."""
    path = run.files.predictions
    if not path.is_file():
        return None
    saved_ids, _, probabilities = predictions.read_predictions(path)
    by_id = dict(zip(saved_ids, probabilities))
    if any(image_id not in by_id for image_id in ids):
        logger.info("%s does not cover every test image; predicting afresh", path)
        return None
    return np.array([by_id[image_id] for image_id in ids], dtype=np.float64)


def explain_run(
    run_path: str | Path,
    *,
    data_root: str | Path | None = None,
    method: str | None = None,
    layer: str | None = None,
    outcomes: str | None = None,
    limit: int = 0,
    threshold: str | float | None = None,
    progress: Progress | None = None,
) -> Path:
    """Grad-CAM for the test split of a classifier run; returns the ``index.csv`` written.

    ``data_root`` explains the test split of another data folder instead, written under
    ``<run>/explain/<folder name>/``; the run's own test split goes to ``<run>/explain/``.
    ``method``, ``layer`` and ``outcomes`` (a comma list of fn, fp, tp, tn or "all") default to the
    run's ``explain`` config section; ``threshold`` as in :func:`run_threshold`. Probabilities come
    from the run's ``predictions.csv`` (``melanet evaluate``) when it covers the images, else the
    model predicts them here. The run's ``status.json`` keeps an ``explain`` entry (running/done/failed).
    """
    from melanet.data import prepare

    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    config = run.config()
    if runs.model_file(run.path) is None:
        raise runs.RunError(f"{run.path}: no trained model ({' or '.join(layout.MODEL_FILES)}); "
                            "explain a finished train-classifier run")
    from melanet.classifier import backbones

    options = explain_options(config.explain, method=method, layer=layer or backbones.explain_layer(config),
                              outcomes=outcomes, limit=limit)
    data_config = config.data if data_root is None else dataclasses.replace(config.data, root=str(data_root))
    output_dir = run.files.explain_folder(None if data_root is None else data_folder_name(data_root))
    with lifecycle.step_session(run, STAGE, method=options.method, layer=options.layer,
                               folder=output_dir.relative_to(run.path).as_posix()) as entry:
        model = _load_model_for(run, options.layer)
        image_set = prepare.load_split(data_config, "test", progress=progress)
        probabilities = _saved_probabilities(run, image_set.ids) if data_root is None else None
        if probabilities is None:
            probabilities = _predict(model, image_set.images, config.classifier.batch_size)
        options = dataclasses.replace(options, threshold=run_threshold(run, config.evaluation.threshold, threshold))
        entry.update(threshold=options.threshold)

        def report(done: int, total: int, message: str) -> None:
            entry.update(done=done, total=total)
            if progress is not None:
                progress(done, total, message)

        rows = explain_images(model, image_set.images, image_set.labels, image_set.ids, probabilities,
                              run_path=run.path, output_dir=output_dir, options=options, progress=report)
        focus = lesion_focus.summarize_folder(run.path, output_dir)  # does the map point at the lesion?
        tp_share = focus["by_outcome"].get("TP", {}).get("mass_share")
        entry.update(done=len(rows), total=len(rows), tp_lesion_mass_share=tp_share)
    return output_dir / layout.EXPLAIN_INDEX_NAME


def explain_options(
    settings: config_module.ExplainConfig, *, method: str | None = None, layer: str | None = None,
    outcomes: str | None = None, limit: int = 0,
) -> ExplainOptions:
    """``ExplainOptions`` from the run's ``explain`` section, each argument given replacing its setting."""
    if limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    try:
        selection = parse_which(outcomes or settings.outcomes)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return ExplainOptions(layer=layer or settings.layer, method=method or settings.method, outcomes=selection,
                          limit=limit, opacity=settings.opacity)


def _load_model_for(run: runs.Run, layer: str):
    """The run's model, checked to have ``layer`` (ConfigError naming it otherwise)."""
    from melanet.classifier import predict as classifier_predict

    model = classifier_predict.load_model(run.path)
    try:
        gradcam.find_target_layer(model, layer)
    except ValueError as error:
        raise ConfigError(f"explain.layer: {error}") from None
    return model


def _predict(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """(N,) malignant probabilities of uint8 images (N, S, S, 3)."""
    from melanet.classifier import predict as classifier_predict

    probabilities = np.asarray(classifier_predict.predict_probabilities(model, images, batch_size), dtype=np.float64)
    return probabilities[:, 1] if probabilities.ndim == 2 else probabilities
