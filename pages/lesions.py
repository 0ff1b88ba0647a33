"""Synthesized lesions: benign input | synthetic malignant | cycle reconstruction (Figure 10), and the
synthesis audit (``melanet audit-synthesis``): KID, nearest real images, per-image realism."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import artifacts, charts, discovery, glossary, ui
from melanet.runs import audit_files

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


EXPLANATION = (
    "**What you are looking at.** Each row starts from a real *benign* training image (left). The benign-to-malignant "
    "generator turns it into a **synthetic malignant** lesion (second), which joins the training set "
    "labelled malignant. The **cycle reconstruction** (third) is that synthetic lesion sent back through the "
    "malignant-to-benign generator: the closer it is to the input, the more of the lesion's structure the "
    "translation kept (the cycle loss trains for this). The **nearest real melanoma** (right) is the real "
    "malignant training image closest to the synthetic one in the audit's features: a near-copy would show up here.\n\n"
    "**Realism** (0 to 1) is how likely a probe trained to tell synthetic lesions from real melanomas thinks this "
    "one is real, scored by a probe that never saw it or its source (grouped cross-validation): near 0, the probe "
    "tells it is synthetic; around 0.5 or above, it passes for real. **Manifest order** is the order the "
    "synthesis wrote them in, the training images' own order, neither best nor worst first."
)
EXTREMES = 3


def composite_note(manifest: pd.DataFrame) -> str:
    """One sentence when the run synthesized with ``gan.composite: lesion`` (its manifest's ``composite``
    column), else ""."""
    if "composite" not in manifest.columns:
        return ""
    kinds = manifest["composite"].astype(str)
    lesion, failed = int((kinds == "lesion").sum()), int((kinds == "whole (mask failed)").sum())
    if not lesion and not failed:
        return ""
    return (f"**Lesion-only synthesis** (`gan.composite: lesion`): in {lesion} of {len(manifest)} images only the "
            "lesion and a narrow rim come from the generator; the skin, hair and vignette around it are the benign "
            "source's own pixels, so they cannot give the synthetic lesion away."
            + (f" For {failed} the lesion mask failed and the whole translation was kept." if failed else ""))


def nearest_lookup(nearest: pd.DataFrame, summary: dict | None) -> dict[str, tuple[str, float]]:
    """synthetic id -> (nearest real malignant id, distance) in the realism probe's feature space
    (else the first space listed)."""
    if nearest.empty:
        return {}
    spaces = list(nearest["features"].unique())
    wanted = (summary or {}).get("realism", {}).get("features")
    space = wanted if wanted in spaces else spaces[0]
    rows = nearest[(nearest["features"] == space) & (nearest["kind"] == "synthetic")]
    return {str(row["image"]): (str(row["nearest_id"]), float(row["distance"])) for _, row in rows.iterrows()}


def show_row(entry, row: pd.Series, realism: dict[str, float], nearest: dict[str, tuple[str, float]]) -> None:
    """One synthetic lesion: benign input | synthetic | reconstruction | nearest real melanoma."""
    score = realism.get(str(row["synthetic_id"]))
    suffix = f" (realism {score:.2f})" if score is not None else ""
    st.markdown(f"**{row['source_id']}** -> `{row['synthetic_id']}`{suffix}")
    columns = st.columns(4 if nearest else 3)
    with columns[0]:
        ui.show_image(ui.source_image(entry.path, str(row["source_id"])), "benign input")
    with columns[1]:
        ui.show_image(entry.path / str(row["path"]), "synthetic malignant")
    with columns[2]:
        reconstruction = row.get("reconstruction_path")
        ui.show_image(entry.path / str(reconstruction) if isinstance(reconstruction, str) else None,
                      "cycle reconstruction")
    if nearest:
        with columns[3]:
            match = nearest.get(str(row["synthetic_id"]))
            if match is None:
                st.caption("no nearest real melanoma recorded")
            else:
                ui.show_image(ui.source_image(entry.path, match[0]),
                              f"nearest real melanoma {match[0]}, distance {match[1]:.3f}")


def show_extremes(entry, manifest: pd.DataFrame, realism: dict[str, float],
                  nearest: dict[str, tuple[str, float]]) -> None:
    """The most and the least realistic synthetic lesions, by the audit's realism score."""
    scored = manifest.assign(realism=manifest["synthetic_id"].astype(str).map(realism)).dropna(subset=["realism"])
    if scored.empty:
        return
    ordered = scored.sort_values("realism", ascending=False, kind="stable")
    with st.expander(f"The {EXTREMES} most and {EXTREMES} least realistic synthetic lesions", expanded=True):
        st.markdown("**Most realistic** (the probe most often took them for real melanomas)")
        for _, row in ordered.head(EXTREMES).iterrows():
            show_row(entry, row, realism, nearest)
        st.markdown("**Least realistic** (the probe told them from real melanomas most easily)")
        for _, row in ordered.tail(EXTREMES).iloc[::-1].iterrows():
            show_row(entry, row, realism, nearest)


def show_lesions(entry, manifest: pd.DataFrame, realism: dict[str, float],
                 nearest: dict[str, tuple[str, float]]) -> None:
    """The triplets (and nearest real melanoma), a page at a time, in the chosen order."""
    st.markdown(EXPLANATION)
    note = composite_note(manifest)
    if note:
        st.info(note)
    show_extremes(entry, manifest, realism, nearest)
    order = st.radio("Order", ORDERS if realism else ORDERS[:1], horizontal=True, key="lesions_order",
                     help="Realism: held-out probability of 'real malignant' from the synthesis audit's probe.")
    if order != ORDERS[0]:
        manifest = manifest.assign(realism=manifest["synthetic_id"].map(realism))
        manifest = manifest.sort_values("realism", ascending=order == ORDERS[2], na_position="last", kind="stable")
    pages = max(1, math.ceil(len(manifest) / PER_PAGE))
    page = st.number_input(f"Page (of {pages}; {len(manifest)} synthetic lesions)", 1, pages, 1, key="lesions_page")
    for _, row in manifest.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].iterrows():
        show_row(entry, row, realism, nearest)


def kid_table(summary: dict) -> pd.DataFrame:
    rows = []
    for space, values in summary.get("feature_spaces", {}).items():
        for pair, kid in values.get("kid", {}).items():
            rows.append({"features": space, "pair": pair.replace("_", " "), "KID": round(kid["kid"], 5),
                         f"{kid['confidence']:.0%} subset interval": f"{kid['low']:.5f} to {kid['high']:.5f}",
                         "images": f"{kid['n_first']} vs {kid['n_second']}"})
    return pd.DataFrame(rows)


def show_audit(entry, summary: dict, nearest: pd.DataFrame, manifest: pd.DataFrame) -> None:
    realism = summary["realism"]
    probe = realism["probe"]
    yardstick = realism.get("yardstick")
    left, right = st.columns(2)
    left.metric("Realism probe: held-out AUC, synthetic vs real malignant (0.5 = indistinguishable)",
                f"{probe['auc']:.3f}",
                help=f"{realism['features']} features, {probe['folds']} grouped folds"
                     + (f"; the same probe tells real benign from real malignant at {yardstick['auc']:.3f}"
                        if yardstick else ""))
    if "pixel_probe" in realism:  # audits written before the pixel probe lack it
        right.metric("Pixel probe: the same, on hand-made colour, sharpness and spectrum features (no network)",
                     f"{realism['pixel_probe']['auc']:.3f}",
                     help=f"Real benign vs real malignant on these features: {realism['pixel_yardstick']['auc']:.3f}")
        st.caption("Yardsticks, real benign vs real malignant: "
                   + (f"{yardstick['auc']:.3f} in the realism probe's features, " if yardstick else "")
                   + f"{realism['pixel_yardstick']['auc']:.3f} in pixel features. Synthetic lesions that pass for "
                   "real should be no easier to tell from real melanomas than benign lesions are.")
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


st.title("Synthesized lesions", help=glossary.help_for("CycleGAN", "synthetic", "KID", "realism"))
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
        show_lesions(entry, manifest, realism, nearest_lookup(nearest, summary))
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
