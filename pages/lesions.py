"""Synthesized lesions: benign input | synthetic malignant | cycle reconstruction (Figure 10), and the
synthesis audit (``melanet audit-synthesis``): KID, nearest real images, per-image realism."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import artifacts, charts, discovery, ui
from melanet.explain import audit_files

PER_PAGE = 6
CLOSEST_PAIRS = 4
ORDERS = ("manifest order", "most realistic first", "least realistic first")


def read_audit(run_path) -> tuple[dict | None, dict[str, float], pd.DataFrame, str]:
    """(summary or None, realism by synthetic id, nearest rows, a problem to show or "")."""
    try:
        summary = audit_files.read_summary(run_path)
        realism = audit_files.read_realism(run_path)
        nearest = pd.DataFrame(audit_files.read_nearest(run_path))
    except FileNotFoundError:
        return None, {}, pd.DataFrame(), ""
    except (OSError, ValueError) as error:
        return None, {}, pd.DataFrame(), str(error)
    if not nearest.empty:
        nearest["distance"] = pd.to_numeric(nearest["distance"], errors="coerce")
    return summary, realism, nearest, ""


def show_lesions(entry, manifest: pd.DataFrame, realism: dict[str, float]) -> None:
    """The triplets, a page at a time, in the chosen order."""
    order = st.radio("Order", ORDERS if realism else ORDERS[:1], horizontal=True, key="lesions_order",
                     help="Realism: held-out probability of 'real malignant' from the synthesis audit's probe.")
    if order != ORDERS[0]:
        manifest = manifest.assign(realism=manifest["synthetic_id"].map(realism))
        manifest = manifest.sort_values("realism", ascending=order == ORDERS[2], na_position="last", kind="stable")
    pages = max(1, math.ceil(len(manifest) / PER_PAGE))
    page = st.number_input(f"Page (of {pages}; {len(manifest)} synthetic lesions)", 1, pages, 1, key="lesions_page")
    for _, row in manifest.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].iterrows():
        score = realism.get(str(row["synthetic_id"]))
        suffix = f" (realism {score:.2f})" if score is not None else ""
        st.markdown(f"**{row['source_id']}** -> `{row['synthetic_id']}`{suffix}")
        left, middle, right = st.columns(3)
        with left:
            ui.show_image(ui.source_image(entry.path, str(row["source_id"])), "benign input")
        with middle:
            ui.show_image(entry.path / str(row["path"]), "synthetic malignant")
        with right:
            reconstruction = row.get("reconstruction_path")
            ui.show_image(entry.path / str(reconstruction) if isinstance(reconstruction, str) else None,
                          "cycle reconstruction")


def kid_table(summary: dict) -> pd.DataFrame:
    rows = []
    for space, values in summary.get("feature_spaces", {}).items():
        for pair, kid in values.get("kid", {}).items():
            rows.append({"features": space, "pair": pair.replace("_", " "), "KID": round(kid["kid"], 5),
                         f"{kid['confidence']:.0%} subset interval": f"{kid['low']:.5f} to {kid['high']:.5f}",
                         "images": f"{kid['n_first']} vs {kid['n_second']}"})
    return pd.DataFrame(rows)


def show_audit(entry, summary: dict, nearest: pd.DataFrame, manifest: pd.DataFrame) -> None:
    probe = summary["realism"]["probe"]
    st.metric("Realism probe: held-out AUC, synthetic vs real malignant (0.5 = indistinguishable)",
              f"{probe['auc']:.3f}", help=f"{summary['realism']['features']} features, {probe['folds']} grouped folds")
    st.markdown("**KID** (Binkowski et al. 2018; 0 = same distribution). Real benign vs real malignant is the "
                "yardstick: synthetic lesions should sit no farther from real melanomas than that.")
    st.dataframe(kid_table(summary), hide_index=True)
    for space, values in summary.get("feature_spaces", {}).items():
        st.caption(f"{space}: {values.get('description', '')}")
    if nearest.empty:
        return
    space = st.selectbox("Feature space", sorted(nearest["features"].unique()), key="audit_space")
    rows = nearest[nearest["features"] == space]
    memorisation = summary["feature_spaces"].get(space, {}).get("memorisation", {})
    st.plotly_chart(charts.distance_histogram(
        {"synthetic -> nearest real": rows.loc[rows["kind"] == "synthetic", "distance"],
         "real -> nearest other real": rows.loc[rows["kind"] == "real", "distance"]},
        f"Memorisation check ({space} features): "
        f"{memorisation.get('share_closer_than_real_q05', float('nan')):.0%} of synthetic lesions lie closer to a "
        "real one than the closest 5 % of real pairs"), key="audit_distances")
    st.markdown("**Closest pairs**: the synthetic lesions nearest to a real training melanoma")
    paths = dict(zip(manifest["synthetic_id"].astype(str), manifest["path"].astype(str)))
    for _, pair in rows[rows["kind"] == "synthetic"].nsmallest(CLOSEST_PAIRS, "distance").iterrows():
        left, right = st.columns(2)
        with left:
            path = paths.get(str(pair["image"]))
            ui.show_image(entry.path / path if path else None, f"{pair['image']} (distance {pair['distance']:.3f})")
        with right:
            ui.show_image(ui.source_image(entry.path, str(pair["nearest_id"])), f"real {pair['nearest_id']}")


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
summary, realism, nearest, problem = read_audit(entry.path)

tab_pairs, tab_audit, tab_grids = st.tabs(["Synthetic lesions", "Synthesis audit", "Per-epoch sample grids"])
with tab_pairs:
    if manifest.empty:
        st.info(f"{entry.label} has no synthetic lesions yet: run **Train** > Synthesis "
                f"(`melanet synthesize --run {entry.path}`).")
    else:
        show_lesions(entry, manifest, realism)
with tab_audit:
    if problem:
        st.error(f"The synthesis audit of {entry.label} cannot be read: {problem}")
    elif summary is None:
        st.info(f"{entry.label} has no synthesis audit yet: `melanet audit-synthesis --run {entry.path}` "
                "(add `--classifier RUN` to audit in a trained classifier's features too).")
    else:
        show_audit(entry, summary, nearest, manifest)
with tab_grids:
    if not grids:
        st.info(f"{entry.label} has no sample grids (figures/samples_epoch_NNN.png) yet.")
    else:
        epochs = [epoch for epoch, _ in grids]
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key="grid_epoch") if len(epochs) > 1 else epochs[0]
        ui.show_image(dict(grids)[epoch], f"epoch {epoch}: rows = fixed benign inputs; "
                      "columns = input | translation | reconstruction")
