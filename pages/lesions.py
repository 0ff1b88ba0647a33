"""Synthesized lesions: benign input | synthetic malignant | cycle reconstruction (Figure 10)."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import artifacts, discovery, ui

PER_PAGE = 6

st.title("Synthesized lesions")
st.caption("Each benign training image through the benign -> malignant generator, and back through the "
           "malignant -> benign generator (the cycle). Synthetic images are added to the training set as malignant.")

gans = discovery.of_kind(ui.all_runs(), "gan")
if not gans:
    ui.no_runs("GAN runs", ui.how_to_get_runs("Train a CycleGAN and synthesize"))
    st.stop()

entry = ui.pick_run(gans, "GAN run", key="lesions_run")
manifest = artifacts.synthetic_manifest(entry.path)
grids = artifacts.sample_grids(entry.path)

tab_pairs, tab_grids = st.tabs(["Synthetic lesions", "Per-epoch sample grids"])
with tab_pairs:
    if manifest.empty:
        st.info(f"{entry.label} has no synthetic lesions yet: run **Train** > Synthesis "
                f"(`melanet synthesize --run {entry.path}`).")
    else:
        pages = max(1, math.ceil(len(manifest) / PER_PAGE))
        page = st.number_input(f"Page (of {pages}; {len(manifest)} synthetic lesions)", 1, pages, 1,
                               key="lesions_page")
        for _, row in manifest.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].iterrows():
            st.markdown(f"**{row['source_id']}** -> `{row['synthetic_id']}`")
            left, middle, right = st.columns(3)
            with left:
                ui.show_image(ui.source_image(entry.path, str(row["source_id"])), "benign input")
            with middle:
                ui.show_image(entry.path / str(row["path"]), "synthetic malignant")
            with right:
                reconstruction = row.get("reconstruction_path")
                ui.show_image(entry.path / str(reconstruction) if isinstance(reconstruction, str) else None,
                              "cycle reconstruction")
with tab_grids:
    if not grids:
        st.info(f"{entry.label} has no sample grids (figures/samples_epoch_NNN.png) yet.")
    else:
        epochs = [epoch for epoch, _ in grids]
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key="grid_epoch") if len(epochs) > 1 else epochs[0]
        ui.show_image(dict(grids)[epoch], f"epoch {epoch}: rows = fixed benign inputs; "
                      "columns = input | translation | reconstruction")
