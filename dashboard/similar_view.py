"""Similar cases on the Predict and Grad-CAM pages: the training images nearest to an image in the
classifier's own feature space (``melanet similar``), as thumbnails of the original files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from melanet.runs import layout, runs
from melanet.explain import retrieval

from dashboard import ui

COLUMNS = 3
CAPTION = ("The training images whose features, in this classifier's own global-average-pooled feature space, point "
           "the most the same way as this image's (cosine similarity, 1 = the same direction). They show what the model "
           "treats as alike, not a diagnosis: similar-looking lesions can differ in kind.")


@st.cache_resource(show_spinner="Loading the similar-cases index...", max_entries=8)
def _index(path: str, modified: float) -> retrieval.Index:
    del modified  # a rebuilt index is a new cache entry
    return retrieval.Index.load(path)


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


def show(run_path: Path, image: np.ndarray, model=None, k: int = retrieval.SHOWN) -> None:
    """The ``k`` training images most similar to ``image`` (S, S, 3) uint8, preprocessed as the run's data."""
    from melanet.explain import retrieval_stage

    files = layout.RunLayout(run_path)
    if not has_index(run_path):
        st.caption(f"No similar-cases index in this run: build it with `melanet similar --run {run_path} --build`.")
        return
    try:
        index = _index(str(files.retrieval_index), files.retrieval_index.stat().st_mtime)
        if model is None:
            model = _model(str(run_path), runs.model_file(run_path).stat().st_mtime)
        rows = retrieval_stage.similar_images(model, index, image, k)
    except (runs.RunError, ValueError) as error:
        st.warning(f"No similar cases: {error}")
        return
    columns = st.columns(COLUMNS)
    for number, row in enumerate(rows):
        label = "malignant" if row["label"] == 1 else "benign"
        diagnosis = f", {row['diagnosis']}" if row["diagnosis"] and row["diagnosis"] != label else ""
        with columns[number % COLUMNS]:
            ui.show_image(ui.source_image(run_path, row["image"]),
                          f"{row['rank']}. {row['image']}: {label}{diagnosis}, similarity {row['similarity']:.3f}")
    st.caption(CAPTION + (" " + vote_caption(run_path) if vote_caption(run_path) else ""))
