"""``melanet similar``: a classifier run's retrieval index, and the training images most similar to an image.

``build_run`` (``melanet similar --run RUN --build``), once per run, writes:

- ``retrieval/index.npz``: the run's *training* split (``melanet.data.splits.training_and_validation``:
  the training images minus the validation split, so no validation or test image is ever in it) as
  L2-normalised float16 GAP features of the run's own classifier, ids, labels, ISIC diagnoses;
- ``retrieval/votes.csv``: for every validation and test image, the share of malignant images among its
  k = 1..15 nearest training images (:mod:`melanet.explain.similar_cases` chooses k on validation);
- ``retrieval/retrieval.json``: what the index holds and the vote's figures;

and, for an evaluated run, adds ``similar_cases`` to ``metrics.json`` (the CLI then refreshes the model card).
The test split is read here, as by ``evaluate``: build the index of a final model. ``most_similar``
answers the dashboard's one question, "the K training cases most like this image", with each case's
file, label, diagnosis and similarity; ``similar_images`` / ``similar_to_file`` answer from the index
and the model alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import layout, lifecycle, runs
from melanet.data.errors import DataError
from melanet.explain import similar_cases
from melanet.explain import features, retrieval

logger = logging.getLogger(__name__)

STAGE = "similar"
Progress = lifecycle.Progress


def build_run(run_path: str | Path, *, progress: Progress | None = None) -> dict[str, Any]:
    """Build the retrieval index and votes of classifier run ``run_path``; returns ``retrieval.json``'s mapping."""
    from melanet.classifier import predict as classifier_predict
    from melanet.data import metadata, prepare, splits

    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    if runs.model_file(run.path) is None:
        raise runs.RunError(f"{run.path}: no trained model ({' or '.join(layout.MODEL_FILES)}); "
                            "build the similar-cases index of a finished train-classifier run")
    config = run.config()
    batch_size = config.classifier.batch_size
    with lifecycle.step_session(run, STAGE) as entry:
        model = classifier_predict.load_model(run.path)
        _, found = metadata.read_metadata(config.data.root, "train")

        def gap(images, message: str) -> np.ndarray:
            return features.extract_features(model, images, batch_size=batch_size, progress=progress, message=message)

        if isinstance(model, classifier_predict.Ensemble):
            index, split_votes = _cross_validated_votes(run, model, found, batch_size, progress)
        else:
            training, validation = splits.training_and_validation(config.data, config.seed, progress=progress)
            diagnoses = [(found[image_id].diagnosis or "") if image_id in found else "" for image_id in training.ids]
            index = retrieval.Index.build(gap(training.images, "features (training)"), training.ids, training.labels,
                                          diagnoses)
            split_votes = {"validation": (validation.ids, validation.labels,
                                          retrieval.votes(index, gap(validation.images, "features (validation)")))}
        try:
            test = prepare.load_split(config.data, splits.evaluation_split(config.data, external=False), progress=progress)
        except DataError as error:  # e.g. ISIC 2019/2020 data has no labelled test split
            logger.warning("similar-cases vote not measured on test images: %s", str(error).splitlines()[0])
        else:
            split_votes["test"] = (test.ids, test.labels, retrieval.votes(index, gap(test.images, "features (test)")))
        files = run.files
        files.retrieval_index.parent.mkdir(parents=True, exist_ok=True)
        index.save(files.retrieval_index)
        similar_cases.write_votes(files.retrieval_votes, split_votes)
        summary = {
            "run": str(run.path), "data_root": str(config.data.root), "model_file": runs.model_file(run.path).name,
            "features": "global average pooling of the classifier, L2-normalised, stored as float16",
            "similarity": "cosine", "n_index": len(index), "n_malignant": int(index.labels.sum()),
            "feature_dimension": int(index.features.shape[1]),
            "index_split": ("the whole training part; k chosen on out-of-fold votes (each fold's images against the "
                            "other folds, in the features of the member that did not see them)")
            if (run.path / layout.CROSS_VALIDATION_FILE).is_file()
            else "training (the training split minus the validation split)",
            "with_diagnosis": sum(bool(name) for name in index.diagnoses),
            "similar_cases": similar_cases.run_block(run.path, config.evaluation.confidence),
            "created_at": runs.now_iso(),
        }
        runs.atomic_write_json(files.retrieval_summary, summary)
        entry.update(n_index=len(index), k=(summary["similar_cases"] or {}).get("k"),
                     test_auc=_rounded((summary["similar_cases"] or {}).get("test_auc")))
    similar_cases.add_to_metrics(run.path)  # metrics.json's similar_cases block, when the run is evaluated
    return summary


def _cross_validated_votes(run: runs.Run, model: Any, found: dict, batch_size: int, progress: Progress | None
                           ) -> tuple[retrieval.Index, dict[str, tuple]]:
    """A cross-validated run: the index holds the whole training part in the ensemble's features (its members'
    side by side); the ``validation`` votes are out of fold: fold k's images voted by the images of the other
    folds, all in the features of fold k's member, which never saw fold k."""
    from melanet.data import folds

    config = run.config()
    whole, _ = folds.whole_training_part(config.data, progress=progress)
    fold_of = folds.read_folds(run.file(folds.FOLDS_FILE))
    assignment = np.asarray([fold_of[image_id] for image_id in whole.ids])
    diagnoses = [(found[image_id].diagnosis or "") if image_id in found else "" for image_id in whole.ids]
    member_features = [features.extract_features(member, whole.images, batch_size=batch_size, progress=progress,
                                                 message=f"features (member {number})")
                       for number, member in enumerate(model.members, start=1)]
    index = retrieval.Index.build(np.concatenate(member_features, axis=1), whole.ids, whole.labels, diagnoses)
    ids: list[str] = []
    labels, votes = [], []
    for fold, member in enumerate(member_features, start=1):
        inside, outside = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
        others = retrieval.Index.build(member[outside], [whole.ids[row] for row in outside], whole.labels[outside],
                                       [diagnoses[row] for row in outside])
        ids += [whole.ids[row] for row in inside]
        labels.append(whole.labels[inside])
        votes.append(retrieval.votes(others, member[inside]))
    return index, {"validation": (ids, np.concatenate(labels), np.concatenate(votes))}


def read_index(run_path: str | Path) -> retrieval.Index:
    """The run's index (RunError naming the file when it has none)."""
    return retrieval.Index.load(layout.RunLayout(Path(run_path)).retrieval_index)


def similar_images(model, index: retrieval.Index, image: np.ndarray, k: int = retrieval.SHOWN) -> list[dict[str, Any]]:
    """The ``k`` training images most similar to ``image`` (S, S, 3) uint8 (preprocessed as the run's data),
    most similar first: ``rank``, ``image``, ``label`` (0/1), ``diagnosis``, ``similarity`` (cosine)."""
    query = features.extract_features(model, np.asarray(image)[None])
    rows, similarities = retrieval.nearest(index, query, k)
    return [{"rank": rank, "image": index.ids[row], "label": int(index.labels[row]), "diagnosis": index.diagnoses[row],
             "similarity": float(similarity)}
            for rank, (row, similarity) in enumerate(zip(rows[0], similarities[0]), start=1)]


def similar_to_file(run_path: str | Path, image_path: str | Path, k: int = retrieval.SHOWN) -> list[dict[str, Any]]:
    """``similar_images`` of an image file, preprocessed with the run's data settings."""
    from melanet.classifier import predict as classifier_predict
    from melanet.data import preprocess

    image_path = Path(image_path)
    if not image_path.is_file():
        raise FileNotFoundError(f"{image_path}: image file not found")
    run = runs.Run.open(run_path)
    index = read_index(run.path)  # before the model: a run without an index fails fast
    config = run.config().data
    image = preprocess.preprocess_image(image_path, config.image_size, config.max_image_pixels, config.resize,
                                        config.color_constancy)  # BadImageError names the file
    return similar_images(classifier_predict.load_model(run.path), index, image, k)


@dataclasses.dataclass(frozen=True)
class SimilarCase:
    """One training image near a query; ``rank`` 1 is the most similar."""

    rank: int
    image: str  # the image id
    file: Path | None  # its original file in the run's data folder; None when that folder is not on this machine
    label: int  # 0 = benign, 1 = malignant
    diagnosis: str  # the ISIC diagnosis where the data records one, else ""
    similarity: float  # cosine similarity of the GAP features, in [-1, 1]

    @property
    def label_name(self) -> str:
        return "malignant" if self.label == 1 else "benign"


def most_similar(run_path: str | Path, image: np.ndarray, k: int = retrieval.SHOWN, *,
                 model=None) -> list[SimilarCase]:
    """The ``k`` training cases of a classifier run most like ``image`` (S, S, 3) uint8, preprocessed as the
    run's data, most similar first.

    ``model``: the run's loaded classifier where the caller already holds it (else it is loaded). The
    index is read once per version of ``retrieval/index.npz``; each case's file is looked up in the
    run's ``data.root``. ``RunError`` naming the file when the run has no index or no model.
    """
    run = runs.Run.open(run_path)
    index_path = layout.RunLayout(run.path).retrieval_index
    if not index_path.is_file():
        raise runs.RunError(f"{index_path}: no similar-cases index; build it with `melanet similar --run {run.path} --build`")
    index = _cached_index(str(index_path), index_path.stat().st_mtime_ns)
    if model is None:
        from melanet.classifier import predict as classifier_predict

        model = classifier_predict.load_model(run.path)
    files = _image_files(str(run.config().data.root))
    return [SimilarCase(rank=row["rank"], image=row["image"], file=files.get(row["image"]), label=row["label"],
                        diagnosis=row["diagnosis"] or "", similarity=row["similarity"])
            for row in similar_images(model, index, image, k)]


@functools.lru_cache(maxsize=8)
def _cached_index(path: str, modified_ns: int) -> retrieval.Index:
    del modified_ns  # part of the cache key: a rebuilt index is read again
    return retrieval.Index.load(path)


def _image_files(data_root: str) -> dict[str, Path]:
    """Image id -> file of every sample of ``data_root``; empty when the folder is not readable here."""
    root = Path(data_root)
    try:
        modified = root.stat().st_mtime_ns
    except OSError:
        return {}
    return _image_files_cached(str(root.resolve()), modified)


@functools.lru_cache(maxsize=4)
def _image_files_cached(root: str, modified_ns: int) -> dict[str, Path]:
    from melanet.data import sources

    del modified_ns  # part of the cache key
    return sources.image_files(root)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
