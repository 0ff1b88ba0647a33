"""Synthesized lesions: benign source | synthetic malignant | their difference at the synthetic image's own
size, the cycle reconstruction (Figure 10), and the synthesis audit (``melanet audit-synthesis``): the
translation share, KID, nearest real images, each image's probe score; and the real-or-synthetic reader
studies made from the run (``melanet.studies.synthetic_study``), their figures behind the studies' guard."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import (artifacts, charts, discovery, glossary, lesion_pairs, navigation, study_reading, study_views,
                       synthetic_view, ui)
from melanet.audits import translation
from melanet.runs import audit_files
from melanet.studies import access, synthetic_study
from melanet.studies import results as study_results
from melanet.studies import study as study_module

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

PER_PAGE = 6
CLOSEST_PAIRS = 4
ORDERS = ("manifest order", "highest P(real melanoma) first", "lowest P(real melanoma) first")
SCORE_NAME = "realism probe's P(real melanoma)"  # what audit/realism.csv holds, per synthetic image


def read_audit(run_path) -> tuple[dict | None, dict[str, float], pd.DataFrame, dict, str]:
    """(summary or None, realism by synthetic id, nearest rows, translation scores by judge, a problem or "")."""
    try:
        summary = audit_files.read_summary(run_path)
        realism = audit_files.read_realism(run_path)
        nearest = pd.DataFrame(audit_files.read_nearest(run_path))
        judged = audit_files.read_translation(run_path)
    except FileNotFoundError:
        return None, {}, pd.DataFrame(), {}, ""
    except (OSError, ValueError) as error:
        return None, {}, pd.DataFrame(), {}, str(error)
    if not nearest.empty:
        nearest["distance"] = pd.to_numeric(nearest["distance"], errors="coerce")
    return summary, realism, nearest, judged, ""


def score_text(synthetic_id: str, realism: dict[str, float], judged: dict) -> str:
    """The per-image scores of one synthetic lesion, each named, with its scale."""
    parts = []
    score = realism.get(synthetic_id)
    if score is not None:
        parts.append(f"{SCORE_NAME} {score:.2f} (0 = told apart as synthetic, 1 = taken for real)")
    for judge, scores in judged.items():
        pair = scores.get(synthetic_id)
        if pair is not None:
            parts.append(f"{judge} judge's P(malignant), 0 to 1: source {pair[0]:.2f} -> synthetic {pair[1]:.2f}")
    return "; ".join(parts)


EXPLANATION = (
    "**What you are looking at.** Each lesion starts from a real *benign* training image, shown first as synthesis "
    "saw it (resized, colour-corrected). The benign-to-malignant generator turns it into a **synthetic malignant** "
    "lesion (beside it), which joins the training set labelled malignant; the **difference** (third: |synthetic - "
    "source| times 4, black = unchanged) shows what the generator changed. These three are at the synthetic "
    "image's own size in pixels. Below them: the original file, the **cycle reconstruction** (the synthetic "
    "lesion sent back through the malignant-to-benign generator: the closer it is to the input, the more of the "
    "lesion's structure the translation kept) and the **nearest real melanoma** (the real malignant training "
    "image closest to the synthetic one in the audit's features: a near-copy would show up here).\n\n"
    "**The realism probe's P(real melanoma)** (0 to 1; the file calls it *realism*) is how likely a probe "
    "trained to tell synthetic lesions from real melanomas thinks this one is real, scored by a probe that never "
    "saw it or its source (grouped cross-validation): near 0, the probe tells it is synthetic; around 0.5 or "
    "above, it passes for real. **A judge's P(malignant)** (0 to 1) is how malignant a judge trained on real "
    "images only thinks the source and the synthetic lesion are: a translation should raise it. "
    "**Manifest order** is the order the synthesis wrote them in, the training images' own order, neither "
    "best nor worst first."
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


def show_row(entry, row: pd.Series, realism: dict[str, float], nearest: dict[str, tuple[str, float]],
             judged: dict | None = None) -> None:
    """One synthetic lesion: source | synthetic | difference at its own size; then the cycle reconstruction
    and the nearest real melanoma."""
    scores = score_text(str(row["synthetic_id"]), realism, judged or {})
    st.markdown(f"**{row['source_id']}** -> `{row['synthetic_id']}`" + (f" ({scores})" if scores else ""))
    lesion_pairs.show(entry.path, str(row["source_id"]), entry.path / str(row["path"]))
    columns = st.columns(3 if nearest else 2)
    with columns[0]:
        ui.show_image(ui.source_image(entry.path, str(row["source_id"])), "benign input (original file)")
    with columns[1]:
        reconstruction = row.get("reconstruction_path")
        ui.show_image(entry.path / str(reconstruction) if isinstance(reconstruction, str) else None,
                      "cycle reconstruction")
    if nearest:
        with columns[2]:
            match = nearest.get(str(row["synthetic_id"]))
            if match is None:
                st.caption("no nearest real melanoma recorded")
            else:
                ui.show_image(ui.source_image(entry.path, match[0]),
                              f"nearest real melanoma {match[0]}, distance {match[1]:.3f}")


def show_extremes(entry, manifest: pd.DataFrame, realism: dict[str, float],
                  nearest: dict[str, tuple[str, float]], judged: dict) -> None:
    """The synthetic lesions the realism probe most and least often took for real melanomas."""
    scored = manifest.assign(realism=manifest["synthetic_id"].astype(str).map(realism)).dropna(subset=["realism"])
    if scored.empty:
        return
    ordered = scored.sort_values("realism", ascending=False, kind="stable")
    with st.expander(f"The {EXTREMES} synthetic lesions with the highest and the {EXTREMES} with the lowest "
                     f"{SCORE_NAME}", expanded=True):
        st.markdown("**Highest** (the probe most often took them for real melanomas)")
        for _, row in ordered.head(EXTREMES).iterrows():
            show_row(entry, row, realism, nearest, judged)
        st.markdown("**Lowest** (the probe told them from real melanomas most easily)")
        for _, row in ordered.tail(EXTREMES).iloc[::-1].iterrows():
            show_row(entry, row, realism, nearest, judged)


def show_lesions(entry, manifest: pd.DataFrame, realism: dict[str, float],
                 nearest: dict[str, tuple[str, float]], judged: dict) -> None:
    """The triplets (and nearest real melanoma), a page at a time, in the chosen order."""
    st.markdown(EXPLANATION)
    note = composite_note(manifest)
    if note:
        st.info(note)
    show_extremes(entry, manifest, realism, nearest, judged)
    order = st.radio("Order", ORDERS if realism else ORDERS[:1], horizontal=True, key="lesions_order",
                     help=f"The {SCORE_NAME}: held-out probability (0 to 1) that the synthesis audit's probe takes "
                          "the synthetic lesion for a real melanoma.")
    if order != ORDERS[0]:
        manifest = manifest.assign(realism=manifest["synthetic_id"].map(realism))
        manifest = manifest.sort_values("realism", ascending=order == ORDERS[2], na_position="last", kind="stable")
    pages = max(1, math.ceil(len(manifest) / PER_PAGE))
    page = st.number_input(f"Page (of {pages}; {len(manifest)} synthetic lesions)", 1, pages, 1, key="lesions_page")
    for _, row in manifest.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].iterrows():
        show_row(entry, row, realism, nearest, judged)


def kid_table(summary: dict) -> pd.DataFrame:
    rows = []
    for space, values in summary.get("feature_spaces", {}).items():
        for pair, kid in values.get("kid", {}).items():
            rows.append({"features": space, "pair": pair.replace("_", " "), "KID": round(kid["kid"], 5),
                         f"{kid['confidence']:.0%} subset interval": f"{kid['low']:.5f} to {kid['high']:.5f}",
                         "images": f"{kid['n_first']} vs {kid['n_second']}"})
        difference = values.get("kid_difference")
        if difference:  # overlapping intervals do not show two distances are close; their difference does
            rows.append({"features": space, "pair": "synthetic minus the real-vs-real yardstick",
                         "KID": round(difference["difference"], 5),
                         f"{difference['confidence']:.0%} subset interval": f"{difference['low']:.5f} to {difference['high']:.5f}",
                         "images": "paired subsets"})
    return pd.DataFrame(rows)


def translation_table(summary: dict) -> pd.DataFrame:
    """One row per judge: mean P(malignant) of sources, synthetic images and real melanomas, and the share."""
    rows = []
    for judge, figures in (summary.get("translation") or {}).get("judges", {}).items():
        share = figures.get("share")
        interval = (f"{figures['share_low']:.2f} to {figures['share_high']:.2f}"
                    if figures.get("share_low") is not None else "undefined")
        rows.append({"judge": judge, "features": figures.get("features", ""),
                     "sources": round(figures["mean_source"], 3), "synthetic": round(figures["mean_synthetic"], 3),
                     "real melanomas": round(figures["mean_malignant"], 3),
                     "translation share": "undefined" if share is None else round(share, 3),
                     f"{figures['confidence']:.0%} interval": interval,
                     "above own source": f"{figures['above_source']:.0%}",
                     "judge AUC (real)": round(figures["judge_auc"], 3)})
    return pd.DataFrame(rows)


def show_translation(summary: dict) -> None:
    if not summary.get("translation"):
        st.info("This audit predates the translation measure: rerun `melanet audit-synthesis` to see how far the "
                "synthetic lesions moved towards melanoma.")
        return
    st.markdown("**Translation** (mean P(malignant) out of fold, judges trained on real training images only; "
                "share 0 = the synthetic images score like their benign sources, 1 = like real melanomas)")
    st.dataframe(translation_table(summary), hide_index=True)
    for figures in summary["translation"]["judges"].values():
        st.caption(figures["sentence"])


def show_audit(entry, summary: dict, nearest: pd.DataFrame, manifest: pd.DataFrame) -> None:
    show_translation(summary)
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
                "yardstick: synthetic lesions should sit no farther from real melanomas than that.",
                help=glossary.help_for("KID"))
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


IDENTITIES = "lesions_study_identities"  # study name -> access.Identity signed in on this page (this session only)


def studies_of(run_path) -> list[study_module.Study]:
    """The real-or-synthetic reader studies made from this GAN run (user's and shipped ones)."""
    found = []
    for study_entry in study_views.discover():
        try:
            study = study_module.open_study(study_entry.path)
        except study_module.StudyError:
            continue
        if synthetic_study.made_from(study, run_path, discovery.ROOT):
            found.append(study)
    return found


def _code_form(study: study_module.Study) -> None:
    """The organiser's (or a finished reader's) code: figures for this session only; the code is not kept."""
    with st.form(f"lesions_code_{study.name}", clear_on_submit=True):
        code = st.text_input("Organiser or reader code", type="password", key=f"lesions_code_{study.name}",
                             max_chars=40)
        submitted = st.form_submit_button("Show the figures")
    if submitted and code.strip():
        try:
            identity = access.sign_in(study, code, study_reading.client_of(st.context.ip_address))
        except access.AccessError as error:
            st.error(f"Not signed in: {error}.")
        else:
            st.session_state.setdefault(IDENTITIES, {})[study.name] = identity
            st.rerun()


def show_reader_studies(entry, studies: list[study_module.Study]) -> None:
    """Each real-or-synthetic study of this run: its figures when ``results.shown_results`` allows (the organiser
    code, a finished reader's code for their own, or anyone once every reader has finished), else why not."""
    if not studies:
        st.info("No reader study of this run yet. Let dermatologists judge the synthetic lesions: `melanet "
                f"reader-study create --synthetic-from {entry.path} --name NAME --readers A,B --codes-out FILE` "
                "makes a blinded real-or-synthetic study of its real training melanomas and its synthetic ones.")
        return
    signed_in = st.session_state.setdefault(IDENTITIES, {})
    for study in studies:
        st.markdown(f"**Study {study.name}**: {len(study.cases)} cases, {study.info.get('n_real', '?')} real and "
                    f"{study.info.get('n_synthetic', '?')} synthetic, the reader asked \"real or synthetic?\"")
        identity = signed_in.get(study.name)
        if identity is not None and not access.still_valid(study, identity):
            signed_in.pop(study.name)  # revoked since: signed out
            identity = None
        try:
            results = study_results.shown_results(study, identity)
        except access.AccessError as error:
            st.caption(f"No figures: {error}. They are shown to the organiser code, to a reader who has finished "
                       "(their own), and to everyone once every reader has finished.")
            if identity is None and access.has_codes(study):
                _code_form(study)
            continue
        except study_module.StudyError as error:
            st.error(str(error))
            continue
        synthetic_view.show(results, identity is not None and identity.role == access.ORGANISER)


st.title("Synthesized lesions", help=glossary.help_for("CycleGAN", "synthetic", "KID", "realism", "translation share"))
st.caption("Each benign training image through the benign -> malignant generator, and back through the "
           "malignant -> benign generator (the cycle). Synthetic images are added to the training set as malignant.")

gans = discovery.of_kind(ui.all_runs(), "gan")
if not gans:
    ui.no_runs("GAN runs", ui.how_to_get_runs("Train a CycleGAN and synthesize"))
    st.stop()

entry = ui.pick_run(gans, "GAN run", key="lesions_run")
manifest = artifacts.synthetic_manifest(entry.path)
grids = artifacts.sample_grids(entry.path)
summary, realism, nearest, judged, problem = read_audit(entry.path)
verdict = translation.verdict(summary) if summary else ""
if verdict:
    st.info(verdict)

tab_pairs, tab_audit, tab_readers, tab_grids = st.tabs(["Synthetic lesions", "Synthesis audit",
                                                        "Readers: real or synthetic?", "Per-epoch sample grids"])
with tab_pairs:
    if manifest.empty:
        st.info(f"{entry.label} has no synthetic lesions yet: run **Train** > Synthesis "
                f"(`melanet synthesize --run {entry.path}`).")
    else:
        show_lesions(entry, manifest, realism, nearest_lookup(nearest, summary), judged)
with tab_audit:
    if problem:
        st.error(f"The synthesis audit of {entry.label} cannot be read: {problem}")
    elif summary is None:
        st.info(f"{entry.label} has no synthesis audit yet: `melanet audit-synthesis --run {entry.path}` "
                "(add `--classifier RUN` to audit in a trained classifier's features too).")
    else:
        show_audit(entry, summary, nearest, manifest)
with tab_readers:
    show_reader_studies(entry, studies_of(entry.path))
with tab_grids:
    if not grids:
        st.info(f"{entry.label} has no sample grids (figures/samples_epoch_NNN.png) yet.")
    else:
        epochs = [epoch for epoch, _ in grids]
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key="grid_epoch") if len(epochs) > 1 else epochs[0]
        ui.show_image(dict(grids)[epoch], f"epoch {epoch}: rows = fixed benign inputs; "
                      "columns = input | translation | reconstruction")
