"""Similar cases on the Predict and Grad-CAM pages: the training images nearest to an image in the
classifier's own feature space (``melanet similar``), as thumbnails of the original files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from melanet.evaluation import decision
from melanet.explain import retrieval
from melanet.runs import layout, runs

from dashboard import ui

COLUMNS = 3
CAPTION = ("The training images whose features, in this classifier's own global-average-pooled feature space, point "
           "the most the same way as this image's (cosine similarity, 1 = the same direction). They show what the model "
           "treats as alike, not a diagnosis: similar-looking lesions can differ in kind.")


@st.cache_resource(show_spinner="Loading the model (once per process)...", max_entries=4)
def _model(run_path: str, modified: float):
    del modified
    from melanet.classifier import predict

    return predict.load_model(run_path)


def has_index(run_path: Path) -> bool:
    return layout.RunLayout(run_path).retrieval_index.is_file()


def vote_caption(run_path: Path) -> str:
    """The vote's test AUC beside the classifier's, from the run's ``metrics.json`` (or '')."""
    from dashboard import artifacts

    block = (artifacts.metrics(run_path) or {}).get("similar_cases") or {}
    if block.get("test_auc") is None:
        return ""
    versus = block.get("versus_classifier") or {}
    beside = f" (the classifier's own AUC: {versus['classifier_auc']:.3f})" if versus else ""
    return (f"As a classifier, the share of malignant images among the {block['k']} most similar training images "
            f"(k chosen on the validation split) reaches AUC {block['test_auc']:.3f} [{block['ci_low']:.3f}, "
            f"{block['ci_high']:.3f}] on the test images{beside}.")


@st.cache_resource(show_spinner="Measuring how alike the training images are (once per index)...", max_entries=8)
def _unlike_threshold(path: str, modified: float) -> tuple[float, int]:
    del modified  # a rebuilt index is a new cache entry
    index = retrieval.Index.load(path)
    return retrieval.unlike_training_threshold(index), len(index)


def find(run_path: Path, image: np.ndarray, model=None, k: int = retrieval.SHOWN) -> list | str:
    """The ``k`` training images most similar to ``image`` (S, S, 3) uint8, preprocessed as the run's data
    (``retrieval_stage.SimilarCase``, most similar first), or the sentence saying why there are none."""
    from melanet.explain import retrieval_stage

    if not has_index(run_path):
        return f"No similar-cases index in this run: build it with `melanet similar --run {run_path} --build`."
    try:
        if model is None:
            model = _model(str(run_path), runs.model_file(run_path).stat().st_mtime)
        return retrieval_stage.most_similar(run_path, image, k, model=model)
    except (runs.RunError, ValueError) as error:
        return f"No similar cases: {error}"


def typicality(run_path: Path, found: list | str) -> decision.Typicality | None:
    """How like the training images the image of ``found`` is, or None without an index (or one image)."""
    if isinstance(found, str) or not found:
        return None
    files = layout.RunLayout(run_path)
    try:
        threshold, size = _unlike_threshold(str(files.retrieval_index), files.retrieval_index.stat().st_mtime)
    except (runs.RunError, ValueError, OSError):
        return None
    return decision.Typicality(nearest=float(found[0].similarity), threshold=threshold, n_training=size,
                               percentile=retrieval.UNLIKE_PERCENTILE)


def show_found(run_path: Path, found: list | str) -> None:
    """The cases of :func:`find` as thumbnails of the original files with their captions (or why none)."""
    if isinstance(found, str):
        (st.caption if found.startswith("No similar-cases index") else st.warning)(found)
        return
    columns = st.columns(COLUMNS)
    for number, case in enumerate(found):
        diagnosis = f", {case.diagnosis}" if case.diagnosis and case.diagnosis != case.label_name else ""
        with columns[number % COLUMNS]:
            ui.show_image(case.file, f"{case.rank}. {case.image}: {case.label_name}{diagnosis}, "
                                     f"similarity {case.similarity:.3f}")
    caption = vote_caption(run_path)
    st.caption(CAPTION + (" " + caption if caption else ""))


def show(run_path: Path, image: np.ndarray, model=None, k: int = retrieval.SHOWN) -> None:
    """The ``k`` training images most similar to ``image`` (S, S, 3) uint8, preprocessed as the run's data."""
    show_found(run_path, find(run_path, image, model, k))
