"""Grad-CAM: test images by outcome (TP/FP/TN/FN), the map over the image, two runs side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from melanet.common import choices, formatting
from melanet.runs import layout
from melanet.explain import overlay as overlay_module
from melanet.audits import shortcuts

from dashboard import artifacts, charts, discovery, glossary, navigation, similar_view, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

OUTCOME_NAMES = {"FN": "missed melanoma (FN)", "FP": "false alarm (FP)", "TP": "found melanoma (TP)",
                 "TN": "correct benign (TN)"}

st.title("Grad-CAM", help=glossary.help_for("Grad-CAM", "GAP", "block5_conv3", "block5c_add"))
st.caption("Where each classifier looks when it scores 'malignant' (class activation maps on the backbone's "
           "deepest feature map of at least 7 x 7), drawn over the original image as the dermoscope framed it. "
           "Misclassified images first.")

explained = discovery.with_file(ui.all_runs(), layout.EXPLAIN_INDEX_FILE)
if not explained:
    ui.no_runs("Grad-CAM maps", ui.how_to_get_runs("Train a classifier and run Evaluation > Grad-CAM maps"))
    st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def _map(path: str, modified: float) -> np.ndarray | None:
    del modified
    try:
        return np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError):
        return None


def _index(entry: discovery.RunEntry) -> pd.DataFrame:
    return artifacts.explain_index(entry.path)


def _row_input(entry: discovery.RunEntry, row: pd.Series) -> Path | None:
    relative = row.get("input_path")
    if isinstance(relative, str) and (entry.path / relative).is_file():
        return entry.path / relative
    return ui.source_image(entry.path, str(row["image"]))


def show_explained(entry: discovery.RunEntry, row: pd.Series, opacity: float) -> None:
    """The original and the map over it in its own framing, with label, probability and outcome."""
    label = "malignant" if int(row.get("label", 0)) == 1 else "benign"
    st.markdown(f"**{entry.label}**: {OUTCOME_NAMES.get(row['outcome'], row['outcome'])}, "
                f"true {label}, P(malignant) = {float(row.get('prob_malignant', float('nan'))):.3f}")
    map_value = row.get("map_path")
    map_path = entry.path / map_value if isinstance(map_value, str) else None
    activation = _map(str(map_path), map_path.stat().st_mtime) if map_path and map_path.is_file() else None
    source = ui.source_image(entry.path, str(row["image"]))
    original = ui.load_original(str(source), source.stat().st_mtime) if source and source.is_file() else None
    config = artifacts.run_config(entry.path)
    title = f"Where the model looked, opacity {opacity:.2f}"
    layer = f"{row.get('layer', '?')} ({row.get('method', 'gradcam')})"
    left, right = st.columns(2)
    with left:
        if original is not None:
            st.image(original, width="stretch", caption=f"{row['image']}, original")
        else:
            ui.show_image(_row_input(entry, row), "the model's input (the original is not on this machine)")
    with right:
        if original is not None and activation is not None and activation.ndim == 2 and config is not None:
            ui.show_heatmap(original, activation, config.data.resize, config.data.image_size, opacity, title,
                            layer=layer)
        else:
            input_path = _row_input(entry, row)
            image = ui.load_rgb(str(input_path), input_path.stat().st_mtime) if input_path else None
            if image is not None and activation is not None and activation.ndim == 2:
                st.image(overlay_module.overlay(image, activation, opacity=opacity), width="stretch",
                         caption=f"{title}, on the model's input (the original is not on this machine)")
                st.caption(overlay_module.HEATMAP_CAPTION)
            else:
                overlay_value = row.get("overlay_path")
                ui.show_image(entry.path / overlay_value if isinstance(overlay_value, str) else None, "overlay")


def show_lesion_focus(entries: list[discovery.RunEntry]) -> None:
    """Each run's share of the map on the lesion, beside a uniform map's, per outcome."""
    for entry in entries:
        groups = artifacts.lesion_focus(entry.path)
        if isinstance(groups, str):
            st.warning(groups)
        elif groups:
            st.plotly_chart(charts.lesion_focus_figure(groups, f"Lesion focus: {entry.label}"),
                            key=f"lesion_focus_{entry.path}")
        else:
            st.caption(f"{entry.label}: no lesion-focus summary (run `melanet explain` again to make one).")
    st.caption("How much of each map falls on the lesion (an Otsu mask of the darker region, the padding left out) "
               "against what a map that looked everywhere alike would put there, i.e. the lesion's share of the "
               "image. Bars well above grey: the model looks at the lesion; at grey: it looks no more at the lesion "
               "than at the skin around it.")


def _view_row(name: str, figures: dict) -> dict:
    if figures.get("auc") is None:
        return {"images": name, "AUC [95 % CI]": "n/a (too few usable lesion masks)", "change from full": "", "p": ""}
    row = {"images": name, "AUC [95 % CI]": f"{figures['auc']:.3f} [{figures['ci_low']:.3f}, {figures['ci_high']:.3f}]",
           "change from full": "", "p": ""}
    if "delta" in figures:
        row.update({"change from full": f"{figures['delta']:+.3f}", "p": formatting.p_value(figures["p"])})
        if figures.get("p_holm") is not None:  # Holm over the shortcut family of the runs audited together
            row["p, Holm over the family"] = f"{figures['p_holm']:.3f}"
    return row


def show_shortcut_audit(entries: list[discovery.RunEntry]) -> None:
    """Each run's AUC with the lesion hidden and alone, and how far perturbations move its scores."""
    for entry in entries:
        summary = artifacts.shortcut_audit(entry.path)
        if summary is None:
            st.caption(f"{entry.label}: no shortcut audit yet (`melanet audit-shortcuts --run {entry.path}`).")
            continue
        if isinstance(summary, str):
            st.warning(summary)
            continue
        st.markdown(f"**{entry.label}**: {shortcuts.summary_sentence(summary)}")
        views = [("full image", summary["full"]), ("lesion only (the rest mid grey)", summary["lesion_only"]),
                 ("background only (the lesion in skin colour)", summary["background_only"])]
        st.dataframe(pd.DataFrame([_view_row(name, figures) for name, figures in views]), hide_index=True,
                     key=f"shortcut_views_{entry.path}")
        failures = summary["mask_failures"]
        st.caption(f"{summary['n']} test images ({summary['n_malignant']} malignant); lesion mask: "
                   f"{summary['mask_method']}; {len(failures)} mask failure(s), left out of the masked views"
                   + (f": {', '.join(failures)}" if failures else "") + ".")
        perturbations = pd.DataFrame([
            {"perturbation": name, "AUC": f"{figures['auc']:.3f}",
             "mean change of P(malignant)": f"{figures['mean_abs_change']:.3f}",
             "largest change": f"{figures['max_abs_change']:.3f}"}
            for name, figures in summary["perturbations"].items()])
        st.dataframe(perturbations, hide_index=True, key=f"shortcut_perturbations_{entry.path}")
    st.caption("A model that keeps its AUC with the lesion painted over reads the skin, rulers, hairs and vignette "
               "around it (or the patch's outline and size), not only the lesion. Perturbations: JPEG quality 75, a "
               "10-degree rotation, a left-right flip, brightness +-10 %; a careful model's probabilities barely move.")


entry = ui.pick_run(explained, "Run", key="gradcam_run")
index = _index(entry)
if index.empty:
    st.warning(f"{entry.label}: explain/index.csv is empty or malformed.")
    st.stop()
present = [outcome for outcome in choices.OUTCOMES if outcome in set(index["outcome"])]
outcomes = st.multiselect("Outcome", list(choices.OUTCOMES), default=present[:2] or present,
                          format_func=OUTCOME_NAMES.get, key="gradcam_outcomes")
filtered = index[index["outcome"].isin(outcomes)]
if filtered.empty:
    st.info("No image with these outcomes in this run.")
    st.stop()
image_id = st.selectbox(f"Image ({len(filtered)} of {len(index)})", list(filtered["image"]),
                        format_func=lambda value: f"{value} ({filtered.set_index('image').loc[value, 'outcome']})",
                        key="gradcam_image")
opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="gradcam_opacity")
others = [other for other in explained if other.path != entry.path]
second = None
if others:
    second_label = st.selectbox("Side by side with", ["(none)"] + [other.label for other in others],
                                index=1, key="gradcam_second")
    second = next((other for other in others if other.label == second_label), None)

columns = st.columns(2 if second else 1)
with columns[0]:
    show_explained(entry, filtered[filtered["image"] == image_id].iloc[0], opacity)
if second is not None:
    with columns[1]:
        second_index = _index(second)
        match = second_index[second_index["image"] == image_id] if not second_index.empty else second_index
        if match.empty:
            st.info(f"{second.label} has no map for {image_id} (its `melanet explain --which` chose other images).")
        else:
            show_explained(second, match.iloc[0], opacity)

if similar_view.has_index(entry.path) and st.toggle("Show the most similar training cases", key="gradcam_similar"):
    input_path = _row_input(entry, filtered[filtered["image"] == image_id].iloc[0])
    case = ui.load_rgb(str(input_path), input_path.stat().st_mtime) if input_path else None
    config = artifacts.run_config(entry.path)
    if case is None or config is None or case.shape[:2] != (config.data.image_size,) * 2:
        st.caption(f"{image_id}: the model's input image is not in the run (re-run `melanet explain`).")
    else:
        similar_view.show(entry.path, case)

st.subheader("Lesion focus")
show_lesion_focus([entry] + ([second] if second is not None else []))
st.subheader("What the model reads: the shortcut audit")
show_shortcut_audit([entry] + ([second] if second is not None else []))
