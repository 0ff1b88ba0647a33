"""UMAP of the classifier's GAP features: original vs balanced training set (Figure 9)."""

from __future__ import annotations

import streamlit as st

from melanet.runs import layout

from dashboard import artifacts, charts, discovery, glossary, navigation, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

PANELS = {"original": "Original training set", "balanced": "Balanced (originals + synthetic malignant)"}

st.title("UMAP embeddings", help=glossary.help_for("UMAP", "GAP", "domain gap"))
st.caption("2-D UMAP of the global-average-pooled features of a trained classifier. Select a point "
           "(click, or box/lasso) to see its image.")

embedded = discovery.with_file(ui.all_runs(), layout.UMAP_CSV_FILE)
if not embedded:
    ui.no_runs("UMAP embeddings", ui.how_to_get_runs("Train a classifier and run Evaluation > UMAP embedding"))
    st.stop()

# open on a run with both panels (one trained on synthetic images) when there is one
with_synthetic = [number for number, candidate in enumerate(embedded)
                  if "balanced" in set(artifacts.umap_points(candidate.path).get("panel", []))]
entry = ui.pick_run(embedded, "Run", key="umap_run", index=with_synthetic[0] if with_synthetic else 0)
points = artifacts.umap_points(entry.path)
if points.empty:
    st.warning(f"{entry.label}: embedding/umap.csv is empty or malformed.")
    st.stop()
gan_run = artifacts.linked_gan_run(entry.path)


def image_of(image_id: str, tag: str):
    if tag == "synthetic" and gan_run is not None:
        manifest = artifacts.synthetic_manifest(gan_run)
        match = manifest[manifest["synthetic_id"] == image_id] if not manifest.empty else manifest
        if not match.empty:
            return gan_run / str(match.iloc[0]["path"])
    return ui.source_image(entry.path, image_id)


selected: list[tuple[str, str]] = []
panels = [panel for panel in PANELS if panel in set(points["panel"])] or list(dict.fromkeys(points["panel"]))
columns = st.columns(len(panels))
for column, panel in zip(columns, panels):
    with column:
        part = points[points["panel"] == panel]
        event = st.plotly_chart(charts.umap_figure(part, PANELS.get(panel, panel)), key=f"umap_{panel}",
                                on_select="rerun", selection_mode=("points", "box", "lasso"))
        for point in (event.selection.points if event else [])[:6]:
            image_id = point.get("customdata")
            if image_id is not None:
                tag = part.loc[part["image"] == image_id, "tag"]
                selected.append((str(image_id), str(tag.iloc[0]) if not tag.empty else ""))

gap = artifacts.domain_gap(entry.path)
if isinstance(gap, str):
    st.warning(f"Domain gap not shown: {gap}")
elif gap:
    st.subheader("Domain gap: can the classifier tell synthetic lesions from real ones?")
    labels = {"synthetic_vs_real_malignant": "synthetic vs real malignant",
              "synthetic_vs_real_benign": "synthetic vs real benign",
              "real_malignant_vs_real_benign": "real malignant vs real benign (the task)"}
    columns = st.columns(len(labels))
    for column, (name, label) in zip(columns, labels.items()):
        if name in gap:
            column.metric(label, f"{gap[name]['auc']:.3f}",
                          help=f"{gap[name]['n_first']} vs {gap[name]['n_second']} images, "
                               f"{gap[name]['folds']}-fold cross-validated")
    st.caption("ROC AUC of a cross-validated logistic regression on the same features as the plot: 0.5 = the "
               "two groups cannot be told apart, 1.0 = fully separable. Synthetic images help only when the first "
               "figure is near 0.5; when it is above the task's own figure, the classifier can learn the GAN's "
               "artefacts as the mark of melanoma.")

if selected:
    st.subheader("Selected")
    columns = st.columns(6)  # thumbnails: a single selection should not fill the page
    for column, (image_id, tag) in zip(columns, selected):
        with column:
            ui.show_image(image_of(image_id, tag), f"{image_id} ({tag})")
else:
    st.caption("No point selected.")
