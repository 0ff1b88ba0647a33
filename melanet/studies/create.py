"""``melanet reader-study create``: a study folder from an evaluated classifier run.

The cases are the test split of the run's data (or of ``--data DIR``), optionally a stratified
random subset. Each case carries the run's malignant probability (the run's ``predictions.csv``
when it was made on the same data, else the model predicts here) and the model's decision at the
run's operating threshold: ``metrics.json``'s ``operating_point``, chosen on the *validation* split
by ``melanet evaluate`` (0.5 when the run has none, and ``study.json`` says so). For a study with an
aided phase, each case gets the run's Grad-CAM map drawn over the original image in its own framing
(the map from the run's ``explain/`` outputs when they hold it, else computed here with
``melanet.explain``). The run folder is only read.

The study folder is built under a temporary name and renamed into place, so a study either exists
complete or not at all.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from melanet.runs import layout, lifecycle, runs, stages
from melanet.data import errors as data_errors, sources
from melanet.studies import study as study_module
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

OVERLAY_MAX_SIDE = 1024  # long side of an aided-phase overlay: the original's framing, downscaled for the screen


@dataclasses.dataclass(frozen=True)
class CreateOptions:
    """What ``create_study`` builds: ``cases`` 0 = every test image; ``aided`` adds the aided phase."""

    data_root: str | None = None
    cases: int = 0
    seed: int = 0
    aided: bool = True


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` of the (N,) 0/1 ``labels``, drawn with ``seed`` so that each class keeps its
    share (rounded, at least one of each class present), returned in a seeded random order."""
    labels = np.asarray(labels)
    total = len(labels)
    if count < 2 or count > total:
        raise study_module.StudyError(f"--cases must be between 2 and {total} (the test images available), got {count}")
    generator = np.random.default_rng(seed)
    malignant = np.flatnonzero(labels == 1)
    benign = np.flatnonzero(labels == 0)
    chosen_malignant = int(round(count * len(malignant) / total))
    if len(malignant) and len(benign):
        chosen_malignant = min(max(chosen_malignant, 1), count - 1)
    chosen_malignant = min(chosen_malignant, len(malignant))
    chosen_malignant = max(chosen_malignant, count - len(benign))
    picked = np.concatenate([generator.choice(malignant, chosen_malignant, replace=False),
                             generator.choice(benign, count - chosen_malignant, replace=False)])
    return picked[generator.permutation(len(picked))]


def operating_threshold(run: runs.Run) -> dict[str, Any]:
    """``{"value", "source"}``: the run's validation operating point, else 0.5 with the reason."""
    metrics = run.metrics()
    if metrics is None:
        raise study_module.StudyError(f"{run.path}: not evaluated ({layout.METRICS_FILE} missing); "
                                      f"run `melanet evaluate --run {run.path}` first")
    operating = metrics.get("operating_point") or {}
    if operating.get("available") and isinstance(operating.get("threshold"), (int, float)):
        return {"value": float(operating["threshold"]),
                "source": f"{layout.METRICS_FILE} operating_point: {operating.get('rule', '')}, "
                          f"chosen on the validation split"}
    value = float(metrics.get("threshold", 0.5))
    return {"value": value, "source": f"{layout.METRICS_FILE} threshold (no operating point: "
                                      f"{operating.get('reason', 'unknown')})"}


def _labelled_test_samples(data_root: str) -> list[sources.Sample]:
    index = sources.read_index(data_root)
    samples = index.test
    if not samples:
        reasons = "; ".join(f"{item['file']}: {item['reason']}" for item in index.split_problems("test")[:3])
        raise study_module.StudyError(f"{data_root}: no labelled test images ({reasons or 'empty test split'})")
    return samples


def _saved_probabilities(run: runs.Run, data_root: str, ids: Sequence[str]) -> np.ndarray | None:
    """The run's ``predictions.csv`` values for ``ids`` when they were made on ``data_root``, else None."""
    from melanet.evaluation import predictions

    metrics = run.metrics() or {}
    evaluated_root = (metrics.get("data") or {}).get("root")
    path = layout.RunLayout(run.path).predictions
    if not evaluated_root or not path.is_file() or Path(evaluated_root).resolve() != Path(data_root).resolve():
        return None
    saved_ids, _, probabilities = predictions.read_predictions(path)
    by_id = dict(zip(saved_ids, probabilities))
    if any(image_id not in by_id for image_id in ids):
        return None
    return np.array([by_id[image_id] for image_id in ids], dtype=np.float64)


class _ModelInputs:
    """The run's model and its preprocessed test images, loaded on first use (TensorFlow is slow to import)."""

    def __init__(self, run: runs.Run, data_root: str, progress: Progress | None):
        self.run, self.data_root, self.progress = run, data_root, progress
        self._loaded: tuple[Any, dict[str, np.ndarray]] | None = None

    def get(self) -> tuple[Any, dict[str, np.ndarray]]:
        if self._loaded is None:
            from melanet.classifier import predict
            from melanet.data import prepare

            config = self.run.config()
            data_config = dataclasses.replace(config.data, root=self.data_root)
            image_set = prepare.load_split(data_config, "test", progress=self.progress)
            self._loaded = (predict.load_model(self.run.path), dict(zip(image_set.ids, image_set.images)))
        return self._loaded

    def probabilities(self, ids: Sequence[str]) -> np.ndarray:
        from melanet.classifier import predict

        model, images = self.get()
        batch = np.stack([images[image_id] for image_id in ids])
        return np.asarray(predict.predict_probabilities(model, batch), dtype=np.float64).reshape(-1)

    def maps(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Activation maps (h, w) over the model's input square, with the run's explain settings."""
        from melanet.classifier import backbones
        from melanet.explain import gradcam

        model, images = self.get()
        config = self.run.config()
        batch = np.stack([images[image_id] for image_id in ids])
        return list(gradcam.compute_maps(model, batch, layer=backbones.explain_layer(config),
                                         method=config.explain.method))


def _explain_maps(run: runs.Run, data_root: str) -> dict[str, Path]:
    """Image id -> activation map file (.npy) in the run's ``melanet explain`` outputs for this data
    (Grad-CAM preferred).

    ``melanet explain`` writes the run's own test split to ``explain/`` and ``--data DIR`` to
    ``explain/<DIR's name>/``.
    """
    run_files = layout.RunLayout(run.path)
    index_path = run_files.explain_index()
    if Path(data_root).resolve() != Path(run.config().data.root).resolve():
        from melanet.explain import explain_stage  # imports TensorFlow: only for another data folder

        index_path = run_files.explain_index(explain_stage.file_stem(Path(data_root).resolve().name))
    if not index_path.is_file():
        return {}
    found: dict[str, Path] = {}
    with index_path.open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            path = run.path / (row.get("map_path") or "")
            if path.is_file() and (row.get("image") not in found or row.get("method") == "gradcam"):
                found[row["image"]] = path
    return found


def _saved_map(path: Path) -> np.ndarray | None:
    """A saved (h, w) activation map, or None when the file is unreadable or not a finite 2-D map."""
    try:
        activation = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if activation.ndim != 2 or not np.all(np.isfinite(activation)):
        return None
    return activation.astype(np.float32)


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class CreateError(study_module.StudyError):
    """A request ``create_study`` refuses, with the ``field`` it is about: one of ``CREATE_FIELDS``."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


CREATE_FIELDS = ("name", "run", "data", "cases", "seed")  # the command line's --name, --run, --data, --cases, --seed


@dataclasses.dataclass(frozen=True)
class CheckedRequest:
    """What ``check_request`` found: the target folder, the opened run, its threshold and the chosen cases."""

    target: Path
    run: runs.Run
    threshold: dict[str, Any]
    data_root: str
    samples: list[sources.Sample]


def check_request(run_path: str | Path, name: str, *, root: str | Path = study_module.DEFAULT_STUDIES_DIR,
                  options: CreateOptions = CreateOptions()) -> CheckedRequest:
    """Every check ``create_study`` makes before it writes anything (the command line and the dashboard's
    form use this one function); CreateError naming the field for a bad name, an existing study, an unknown,
    unevaluated or non-classifier run, a data folder without labelled test images, a case count out of
    range or a negative seed."""
    try:
        target = study_module.resolve_study_name(root, name)
    except study_module.StudyError as error:
        raise CreateError("name", str(error)) from None
    if target.exists():
        raise CreateError("name", f"{target}: a study of that name exists already; choose another --name")
    if isinstance(options.seed, bool) or not isinstance(options.seed, int) or options.seed < 0:
        raise CreateError("seed", f"--seed must be a whole number >= 0, got {options.seed!r}")
    try:
        run = runs.Run.open(run_path)
        if lifecycle.folder_stage(run) != stages.get("train-classifier").folder_stage:
            raise study_module.StudyError(f"{run.path}: holds {lifecycle.describe_folder(run)}, not an evaluated "
                                          "classifier run; a study reads a train-classifier run")
        threshold = operating_threshold(run)
        data_root = str(options.data_root) if options.data_root is not None else str(run.config().data.root)
    except runs.RunError as error:
        raise CreateError("run", str(error)) from None
    try:
        samples = _labelled_test_samples(data_root)
    except (runs.RunError, data_errors.DataError, OSError) as error:
        raise CreateError("data" if options.data_root is not None else "run", str(error)) from None
    if options.cases:
        try:
            picked = stratified_subset([s.label for s in samples], options.cases, options.seed)
        except study_module.StudyError as error:
            raise CreateError("cases", str(error)) from None
        samples = [samples[index] for index in picked]
    else:
        samples = [samples[index] for index in np.random.default_rng(options.seed).permutation(len(samples))]
    return CheckedRequest(target=target, run=run, threshold=threshold, data_root=data_root, samples=samples)


def create_study(
    run_path: str | Path,
    name: str,
    *,
    root: str | Path = study_module.DEFAULT_STUDIES_DIR,
    options: CreateOptions = CreateOptions(),
    progress: Progress | None = None,
) -> study_module.Study:
    """Write ``root/name/`` (study.json, cases.csv, overlays/) from an evaluated classifier run; returns it.

    CreateError (a StudyError, a RunError) from ``check_request`` for a bad request; StudyError when the
    run can give neither the probabilities nor the Grad-CAM maps.
    """
    checked = check_request(run_path, name, root=root, options=options)
    target, run, threshold, data_root, samples = (checked.target, checked.run, checked.threshold,
                                                   checked.data_root, checked.samples)
    ids = [sample.image_id for sample in samples]
    model_inputs = _ModelInputs(run, data_root, progress)
    probabilities = _saved_probabilities(run, data_root, ids)
    if probabilities is None:
        if runs.model_file(run.path) is None:
            raise study_module.StudyError(f"{run.path}: no trained model and no predictions for {data_root}")
        probabilities = model_inputs.probabilities(ids)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.creating-", dir=_mkdir(target.parent)))
    try:
        rows = _case_rows(samples, probabilities, threshold["value"], data_root)
        phases = list(study_module.PHASES if options.aided else study_module.PHASES[:1])
        sources_of_overlays = _write_overlays(building, run, rows, model_inputs) if options.aided else {}
        runs.atomic_write_csv(building / study_module.CASES_FILE, rows, study_module.CASE_COLUMNS)
        runs.atomic_write_json(building / study_module.STUDY_FILE, {
            "name": name.strip(), "run": str(run_path), "data": data_root, "split": "test", "seed": options.seed,
            "cases": len(rows), "n_malignant": int(sum(row["label"] for row in rows)),
            "subset": "stratified random subset" if options.cases else "every test image",
            "phases": phases, "threshold": threshold, "overlays": sources_of_overlays,
            "rating": "malignant/confidence 5 = 10 ... malignant/1 = 6, benign/1 = 5 ... benign/5 = 1",
            "created": runs.now_iso(), "created_by": "melanet reader-study create",
        })
        os.rename(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("study %s: %d cases (%d malignant)", target, len(rows), sum(row["label"] for row in rows))
    return study_module.open_study(target)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _case_rows(samples: Sequence[sources.Sample], probabilities: np.ndarray, threshold: float,
               data_root: str) -> list[dict[str, Any]]:
    rows = []
    for number, (sample, probability) in enumerate(zip(samples, probabilities), start=1):
        try:
            file = Path(sample.path).resolve().relative_to(Path(data_root).resolve()).as_posix()
        except ValueError:
            file = str(Path(sample.path).resolve())
        rows.append({"case": f"c{number:03d}", "image": sample.image_id, "label": int(sample.label),
                     "prob_malignant": f"{float(probability):.6f}",
                     "model_decision": study_module.model_decision(float(probability), threshold),
                     "file": file, "overlay": ""})
    return rows


def _write_overlays(building: Path, run: runs.Run, rows: list[dict[str, Any]],
                    model_inputs: _ModelInputs) -> dict[str, int]:
    """Fill ``overlays/<case>.jpg`` and each row's ``overlay``; returns how many maps were reused / computed.

    Each overlay is the case's Grad-CAM map drawn over the original image in its own framing (not the
    model's padded square), as the reader sees the image in the unaided phase: the run's saved map
    where ``melanet explain`` made one for this data, else a map computed here.
    """
    from melanet.explain import overlay

    saved = {image: _saved_map(path) for image, path in _explain_maps(run, model_inputs.data_root).items()}
    maps = {image: activation for image, activation in saved.items() if activation is not None}
    missing = [row["image"] for row in rows if row["image"] not in maps]
    if missing:
        if runs.model_file(run.path) is None:
            raise study_module.StudyError(f"{run.path}: no Grad-CAM maps for {len(missing)} case(s) in its "
                                          "explain/ outputs and no trained model to compute them")
        logger.info("computing Grad-CAM maps for %d case(s)", len(missing))
        maps.update(zip(missing, model_inputs.maps(missing)))
    config = run.config()
    folder = building / study_module.OVERLAYS_FOLDER
    folder.mkdir()
    for row in rows:
        original = overlay.load_original(Path(model_inputs.data_root) / row["file"], max_side=OVERLAY_MAX_SIDE,
                                         max_pixels=config.data.max_image_pixels)
        picture = overlay.heatmap_on_original(original, maps[row["image"]], config.data.resize,
                                              config.data.image_size, opacity=config.explain.opacity)
        row["overlay"] = f"{study_module.OVERLAYS_FOLDER}/{row['case']}.jpg"
        runs.atomic_write_bytes(building / row["overlay"], _jpeg_bytes(picture))
    return {"from_run_explain": len(rows) - len(missing), "computed": len(missing)}


def copy_study(source: study_module.Study, root: str | Path) -> study_module.Study:
    """A fresh copy of ``source`` (study.json, cases.csv, overlays/; no answers, no results) as
    ``root/<its name>``, or the copy already there. Lets readers answer a study that ships read-only."""
    target = study_module.resolve_study_name(root, source.name)
    if (target / study_module.STUDY_FILE).is_file():
        return study_module.open_study(target)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.copying-", dir=_mkdir(target.parent)))
    try:
        for name in (study_module.STUDY_FILE, study_module.CASES_FILE):
            shutil.copyfile(source.path / name, building / name)
        if (source.path / study_module.OVERLAYS_FOLDER).is_dir():
            shutil.copytree(source.path / study_module.OVERLAYS_FOLDER, building / study_module.OVERLAYS_FOLDER)
        os.rename(building, target)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (target / study_module.STUDY_FILE).is_file():
            raise
        # another session copied it first: use that copy
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return study_module.open_study(target)
