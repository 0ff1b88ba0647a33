"""Compare: ROC curves overlaid, Table 1 metrics with 95 % intervals, confusion matrices, threshold slider."""

from __future__ import annotations

import streamlit as st

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.evaluation import compare

from dashboard import artifacts, charts, discovery, evidence_views, glossary, navigation, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

st.title("Compare classifiers")
st.caption("Figures on the test split. Malignant = positive class; an image is called malignant when its "
           "probability is above the threshold. Sensitivity here is the true TP/(TP+FN); the paper's "
           "'sensitivity' column is the NPV.")

evaluated = (discovery.with_file(ui.all_runs(), layout.METRICS_FILE)
             or discovery.with_file(ui.all_runs(), layout.PREDICTIONS_FILE))
if not evaluated:
    ui.no_runs("evaluated classifier runs", ui.how_to_get_runs("Train and evaluate a classifier"))
    st.stop()

labels = [entry.label for entry in evaluated]
chosen_labels = st.multiselect("Runs", labels, default=labels[:4], key="compare_runs")
chosen = [entry for entry in evaluated if entry.label in chosen_labels]
if not chosen:
    st.info("Choose at least one run.")
    st.stop()

colours = charts.run_colours([entry.label for entry in chosen])  # one colour per run on every figure


def _method(entry) -> str | None:
    try:
        return str(compare.load_row(entry.path)["method"])
    except (runs.RunError, config_module.ConfigError):  # an unreadable run has no method: its seeds bar stays grey
        return None


method_colours = {}
for entry in chosen:
    method_colours.setdefault(_method(entry), colours[entry.label])

curves = []
for entry in chosen:
    curve = artifacts.roc_curve(entry.path)
    if curve is None:
        st.warning(f"{entry.label}: no ROC curve (metrics.json has no 'roc' and predictions.csv is missing).")
    else:
        curves.append((entry.label, *curve))

st.subheader("Metrics at threshold 0.5 (95 % confidence intervals)")
table = artifacts.metrics_table(chosen)
if not table.empty:
    with st.container(key="metrics_table"):  # a wrapping table: a grid would cut its right columns off at 1280 px
        st.table(table.set_index(table.columns[0]))
    st.caption("AUC interval: stratified bootstrap; proportions: Wilson score intervals.")

st.subheader("Threshold")
slider_entry = ui.pick_run(chosen, "Move the threshold of", key="threshold_run")
frame = artifacts.predictions(slider_entry.path)
values = artifacts.metrics(slider_entry.path) or {}
marker = None
if frame.empty:
    st.caption(f"{slider_entry.label} has no predictions.csv: the threshold cannot move.")
else:
    operating = artifacts.operating_threshold(values)
    threshold = st.slider("Threshold on prob_malignant", 0.0, 1.0, 0.5, 0.01, key="threshold")
    current = artifacts.at_threshold(frame, threshold)
    columns = st.columns(5)
    columns[0].metric("Sensitivity", f"{current['sensitivity']:.1%}", help=glossary.TERMS["sensitivity"])
    columns[1].metric("Specificity", f"{current['specificity']:.1%}", help=glossary.TERMS["specificity"])
    columns[2].metric("Missed melanomas (FN)", current["fn"])
    columns[3].metric("False alarms (FP)", current["fp"])
    columns[4].metric("Operating threshold", "-" if operating is None else f"{operating:.3f}",
                      help=glossary.TERMS["operating threshold"])
    marker = (f"{slider_entry.label} at {threshold:.2f}", 1 - current["specificity"], current["sensitivity"])

st.subheader("ROC curves", help=glossary.help_for("AUC"))
st.plotly_chart(charts.roc_figure(curves, marker, colours), key="roc_chart")
st.subheader("Paired differences (DeLong, Holm)", help=glossary.help_for("DeLong", "Holm", "McNemar"))
evidence_views.render_paired(chosen)

st.subheader("Confusion matrices at threshold 0.5")
columns = st.columns(min(4, len(chosen)))
for number, entry in enumerate(chosen):
    values = artifacts.metrics(entry.path) or {}
    if all(key in values for key in ("tp", "fp", "tn", "fn")):
        with columns[number % len(columns)]:
            st.plotly_chart(charts.confusion_figure(values, entry.label), key=f"confusion_{number}")

st.subheader("Calibration", help=glossary.help_for("ECE", "Brier", "calibration"))
evidence_views.render_calibration(chosen, artifacts.metrics, colours)

st.subheader("Uncertainty under flips and rotations", help=glossary.help_for("uncertain", "risk-coverage"))
evidence_views.render_risk_coverage(chosen, artifacts.metrics, colours)

st.subheader("Repeated seeds")
evidence_views.render_seeds(ui.all_runs(), method_colours)

st.subheader("Model card")
evidence_views.render_model_card(chosen)
