"""Predict: one uploaded dermoscopy image -> one decision with its evidence, the heat map, similar cases.

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
from melanet.evaluation import decision, uncertainty
from melanet.explain import overlay

from dashboard import artifacts, discovery, glossary, navigation, similar_view, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

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
DECISION_BOXES = {"unlike_training": st.error, "cannot_rule_out": st.warning, "rule_in": st.warning,
                  "between": st.info, "rule_out": st.info, "no_bands": st.info}


def _model_line(label: str, metrics: dict) -> str:
    """The model and its test AUC with its interval, as the run's metrics.json has them."""
    interval = (metrics.get("confidence_intervals") or {}).get("auc") or {}
    if metrics.get("auc") is None:
        return f"**Model:** {label} (not evaluated: no test AUC)."
    figure = f"test AUC {metrics['auc']:.3f}"
    if interval.get("low") is not None:
        figure += f" [{interval['low']:.3f}, {interval['high']:.3f}]"
    return f"**Model:** {label}, {figure} on {metrics.get('n', '?')} test images."


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
st.markdown(_model_line(entry.label, metrics), help=glossary.help_for("AUC", "confidence interval"))

spread = float(uncertainty.spread(views)["range"][0])
uncertain = bool(uncertainty.is_uncertain(spread, config.evaluation.uncertain_spread))
turned = (f"Over the 8 flips and 90-degree rotations of the image, P(malignant) ranges from {views.min():.3f} to "
          f"{views.max():.3f} (spread {spread:.3f}; flagged uncertain above {config.evaluation.uncertain_spread:g}).")
similar = similar_view.find(entry.path, image, model)
made = decision.decide(probability, metrics.get("operating_points"), uncertain=uncertain,
                       typicality=similar_view.typicality(entry.path, similar), spread_sentence=turned)
with st.container(key="predict_decision", border=True):
    DECISION_BOXES.get(made.kind, st.info)(f"**{made.headline}**")
    st.metric("P(malignant)", f"{probability:.3f}", help=glossary.help_for("rule-out", "rule-in", "uncertain"))
    for line in made.evidence:
        st.markdown(line)
with st.expander("Other thresholds, the spread under turning, the network layer"):
    for line in decision.other_thresholds(probability, metrics.get("operating_points"),
                                          artifacts.operating_threshold(metrics)):
        st.markdown(f"- {line}")
    st.markdown(f"- {turned}")
    if made.kind == "unlike_training":
        st.markdown("- The triage band is not given for an image unlike the training images.")

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
                        "Where the model looked, over the uploaded image", layer=layer)
    except ValueError as error:
        st.warning(f"No heat map for this model: {error}")

st.subheader("Similar training cases", help="the 6 training images nearest to the upload in the model's features")
similar_view.show_found(entry.path, similar)
