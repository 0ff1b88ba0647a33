"""Predict: one uploaded dermoscopy image -> malignant probability, decisions, Grad-CAM overlay.

The only page that imports TensorFlow (through melanet.classifier.predict and melanet.explain.gradcam),
and only once an image is uploaded; models are loaded once per process.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from melanet.common import training_sets
from melanet.runs import runs
from melanet.data import errors as data_errors
from melanet.data import preprocess
from melanet.evaluation import metrics as metrics_module
from melanet.evaluation import operating_points, uncertainty
from melanet.explain import overlay

from dashboard import artifacts, discovery, glossary, similar_view, ui

MAX_UPLOAD_MB = 20
EXTENSIONS = ("jpg", "jpeg", "png")
# Far below the data pipeline's decompression-bomb guard: a 100 MP image costs the dashboard ~740 MB,
# and dermoscopy images are rarely over 24 MP (6000 x 4000).
MAX_MEGAPIXELS = 25
# Below this the image holds no lesion detail; the model would still give a confident-looking answer.
MIN_SIDE_PIXELS = 64

st.title("Predict")
st.warning(f"**{ui.NOT_A_DEVICE}** The models here were trained on a small public data set; their "
           "errors are shown on the Compare and Grad-CAM pages.", icon=":material/warning:")

classifiers = discovery.with_model(ui.all_runs())
if not classifiers:
    ui.no_runs("trained classifiers", ui.how_to_get_runs("Train a classifier"))
    st.stop()


@st.cache_resource(show_spinner="Loading the model (once per process)...", max_entries=4)
def _model(run_path: str, modified: float):
    del modified  # a retrained model.keras is a new cache entry
    from melanet.classifier import predict

    return predict.load_model(run_path)


MELANET_FOLDER = training_sets.REGISTRY[training_sets.SYNTHETIC].folder  # the run preferred when shown


def _decision(probability: float, threshold: float) -> str:
    return "malignant" if metrics_module.predicted_malignant(probability, threshold) else "benign"


preferred = next((index for index, entry in enumerate(classifiers) if entry.path.name == MELANET_FOLDER), 0)
entry = ui.pick_run(classifiers, "Classifier run", key="predict_run", index=preferred)
uploaded = st.file_uploader("Dermoscopy image (JPEG or PNG)", type=list(EXTENSIONS), key="predict_upload",
                            max_upload_size=MAX_UPLOAD_MB)
if uploaded is None:
    st.info("Upload an image to get its malignant probability.")
    st.stop()

data = uploaded.getvalue()
if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
    st.error(f"{uploaded.name} is {len(data) / 1024 / 1024:.1f} MB; the limit is {MAX_UPLOAD_MB} MB. "
             "Downsize the image first.")
    st.stop()
if Path(uploaded.name).suffix.lower().lstrip(".") not in EXTENSIONS:
    st.error(f"{uploaded.name}: only JPEG and PNG images are accepted.")
    st.stop()
config = artifacts.run_config(entry.path)
if config is None:
    st.error(f"{entry.label}: its config.yaml is missing or invalid; choose another run.")
    st.stop()
accepted = f"JPEG or PNG dermoscopy images of up to {MAX_MEGAPIXELS} megapixels (e.g. 6000 x 4000) are accepted"
try:
    width, height = preprocess.read_dimensions(data, config.data.max_image_pixels)
    if width * height > MAX_MEGAPIXELS * 1_000_000:
        st.error(f"{uploaded.name} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels): too large. "
                 f"{accepted}; downsize it first.")
        st.stop()
    image = preprocess.preprocess_image(data, config.data.image_size, config.data.max_image_pixels, config.data.resize,
                                        config.data.color_constancy)
except data_errors.DataError as error:
    st.error(f"Cannot use {uploaded.name}: {error}. {accepted}.")
    st.stop()
if min(width, height) < MIN_SIDE_PIXELS:
    st.warning(f"{uploaded.name} is only {width} x {height} pixels: too small to show a lesion, so no prediction is "
               f"made. Upload the dermoscopy image at its original size (at least {MIN_SIDE_PIXELS} pixels a side).")
    st.stop()

try:
    model = _model(str(entry.path), runs.model_file(entry.path).stat().st_mtime)
except runs.RunError as error:
    st.error(f"{entry.label}: {error}. Choose another run.")
    st.stop()
from melanet.classifier import predict  # noqa: E402  (TensorFlow only once an image is here)

# the run's own evaluation.tta views give the probability (as for its thresholds); all 8 views its spread
probabilities, views = predict.predict_with_views(model, image[None], tta=config.evaluation.tta)
probability = float(probabilities[0])
metrics = artifacts.metrics(entry.path) or {}
operating = artifacts.operating_threshold(metrics)

columns = st.columns(3)
columns[0].metric("P(malignant)", f"{probability:.3f}")
columns[1].metric("Decision at 0.5", _decision(probability, 0.5))
columns[2].metric("Decision at the operating threshold",
                  "-" if operating is None else _decision(probability, operating),
                  help=None if operating is None else f"threshold {operating:.3f}, chosen on the "
                  f"{'out-of-fold predictions' if (metrics.get('selection') or {}).get('kind') == 'out_of_fold' else 'validation split'} "
                  f"to reach sensitivity {config.evaluation.target_sensitivity:g}")
if operating is None:
    st.caption("This run has no operating threshold (evaluate it to choose one on the validation split).")
band = operating_points.band(probability, metrics.get("operating_points"))
if band is None:
    st.caption("No triage bands for this run: its metrics.json has no rule-out and rule-in thresholds "
               "(`melanet evaluate --run RUN --from-predictions` chooses them on the validation split).")
else:
    st.info(f"**Triage band:** {band['sentence']}")
    st.caption(glossary.line("rule-out") + " " + glossary.line("rule-in"))
spread = float(uncertainty.spread(views)["range"][0])
turned = (f"Over the 8 flips and 90-degree rotations of the image, P(malignant) ranges from {views.min():.3f} to "
          f"{views.max():.3f} (spread {spread:.3f}")
if uncertainty.is_uncertain(spread, config.evaluation.uncertain_spread):
    st.warning(f"**Uncertain.** {turned}, more than {config.evaluation.uncertain_spread:g}): the answer depends on how "
               "the image is turned, so weigh it less.")
else:
    st.caption(f"Stable under turning. {turned}; flagged uncertain above {config.evaluation.uncertain_spread:g}).")

opacity = st.slider("Overlay opacity", 0.0, 1.0, config.explain.opacity, 0.05, key="predict_opacity")
original = overlay.load_original(data, max_side=1024, max_pixels=config.data.max_image_pixels)
left, right = st.columns(2)
with left:
    st.image(original, width="stretch", caption=f"{uploaded.name}, {width} x {height} px")
    with st.expander(f"As the model sees it ({config.data.image_size} px, {config.data.resize})"):
        st.image(image, width=min(config.data.image_size * 2, 384))
with right:
    try:
        from melanet.classifier import backbones
        from melanet.explain import gradcam

        layer = backbones.explain_layer(config)
        maps = gradcam.compute_maps(model, image[None], layer=layer, method="gradcam")
        ui.show_heatmap(original, maps[0], config.data.resize, config.data.image_size, opacity,
                        f"Grad-CAM on {layer}, over the uploaded image")
    except ValueError as error:
        st.warning(f"No Grad-CAM for this model: {error}")

st.subheader("Similar training cases", help="the 6 training images nearest to the upload in the model's features")
similar_view.show(entry.path, image, model)
