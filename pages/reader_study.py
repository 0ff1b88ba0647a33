"""Reader study: dermatologists read a study's cases one at a time, blind, then (optionally) with the
model's output; the results view puts them on the model's ROC curve.

Blinding: in the unaided phase nothing about the case's label or the model's output is ever rendered,
so it is absent from what the browser receives (not hidden). Every answer is written to the study's
``responses.csv`` the moment it is saved; the reader's place is recomputed from that file on every
rerun, so a reload, a closed tab or a server restart resumes at the first unanswered case.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import streamlit as st

from melanet.studies import create, responses, results as results_module, study as study_module
from melanet.explain import overlay as overlay_module
from melanet.studies import mrmc

from dashboard import discovery, study_views, ui

ZOOM_LEVELS = ("fit", "150%", "200%", "300%")
MIME_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}

st.title("Reader study")
st.caption(f"Readers against the model on the same test cases. {ui.NOT_A_DEVICE}")

entries = study_views.discover()
if not entries:
    ui.no_runs("reader studies", "Create one from an evaluated classifier run, e.g. `melanet reader-study create "
               "--run models/demo/melanet --name demo --cases 40`, then reload this page.")
    st.stop()


def _pick_study() -> study_views.StudyEntry:
    """The study select box; remembers the study's name in the URL so a reload keeps it."""
    labels = [entry.label for entry in entries]
    names = [entry.name for entry in entries]
    chosen = st.session_state.get("study_pick")
    if chosen not in labels:  # first visit, or a shipped study was just copied to studies/
        wanted = st.query_params.get("study")
        st.session_state["study_pick"] = labels[names.index(wanted)] if wanted in names else labels[0]
    label = st.selectbox("Study", labels, key="study_pick")
    entry = entries[labels.index(label)]
    st.query_params["study"] = entry.name
    return entry


def _show_original(path: Path, case_id: str) -> None:
    """The original image file, as large as the column allows; zoom enlarges it inside a scrolling frame."""
    try:
        data = path.read_bytes()
    except OSError as error:
        st.error(f"Cannot read the image {path}: {error.strerror or error}")
        return
    zoom = st.segmented_control("Zoom", ZOOM_LEVELS, default=ZOOM_LEVELS[0], key="zoom") or ZOOM_LEVELS[0]
    source = f"data:{MIME_TYPES.get(path.suffix.lower(), 'image/jpeg')};base64,{base64.b64encode(data).decode()}"
    if zoom == ZOOM_LEVELS[0]:
        style = "display:block;margin:auto;max-width:100%;max-height:82vh;width:100%;object-fit:contain"
    else:
        style = f"display:block;width:{zoom};max-width:none"
    st.html(f'<div class="reader-study-image" data-case="{case_id}" style="overflow:auto;max-height:82vh">'
            f'<img alt="lesion" src="{source}" style="{style}"></div>')
    st.caption("Zoom, then scroll inside the image to pan.")


def _show_model_output(study: study_module.Study, case: study_module.Case) -> None:
    """Aided phase only: the model's probability, its decision at the study's threshold, Grad-CAM."""
    st.markdown(f"**Model:** P(malignant) = **{case.prob_malignant:.3f}**; at the study's operating threshold "
                f"{study.threshold:.3g} it says **{case.model_decision}**.")
    overlay = study.overlay_path(case)
    if overlay is not None and overlay.is_file():
        st.image(str(overlay), caption="Grad-CAM over the image you read: where the model looked for 'malignant'",
                 width="stretch")
        st.image(overlay_module.colour_scale(width=320), width=320)
        st.caption(overlay_module.HEATMAP_CAPTION)
    else:
        st.caption("No Grad-CAM overlay for this case.")


def _answer_form(study: study_module.Study, reader: str, progress: responses.Progress, case_id: str) -> None:
    key = f"{study.name}-{reader}-{progress.phase}-{case_id}"
    shown_at = st.session_state.setdefault(f"shown-{key}", time.time())
    with st.form(key=f"answer-{key}"):
        decision = st.radio("Your decision", study_module.DECISIONS, index=None, horizontal=True,
                            key=f"decision-{key}")
        confidence = st.radio("Confidence (1 = unsure ... 5 = certain)", study_module.CONFIDENCE_LEVELS,
                              index=None, horizontal=True, key=f"confidence-{key}")
        note = st.text_input("Note (optional)", key=f"note-{key}", max_chars=responses.MAX_NOTE_LENGTH)
        submitted = st.form_submit_button("Save and next", type="primary")
    if not submitted:
        return
    if decision is None or confidence is None:
        st.error("Choose benign or malignant and a confidence from 1 to 5, then save.")
        return
    try:
        responses.record_answer(study, reader=reader, phase=progress.phase, case=case_id, decision=decision,
                                confidence=int(confidence), seconds=time.time() - shown_at, note=note)
    except study_module.StudyError as error:
        st.error(f"Not saved: {error}")
        return
    st.rerun()


def _read(entry: study_views.StudyEntry) -> None:
    if "reader_name" not in st.session_state:
        st.session_state["reader_name"] = st.query_params.get("reader", "")
    name = st.text_input("Your name (as the results will show it)", key="reader_name", max_chars=80)
    if not name.strip():
        st.info("Enter your name to start, or to resume where you stopped: every answer is saved at once.")
        return
    try:
        reader = responses.normalise_reader(name)
        study = study_module.open_study(entry.path)
        if entry.shipped:  # shipped studies stay untouched: readers answer a copy in studies/
            study = create.copy_study(study, study_views.studies_dir())
        progress = responses.reader_progress(study, responses.read_responses(study), reader)
    except study_module.StudyError as error:
        st.error(str(error))
        return
    st.query_params["reader"] = reader
    if progress.finished:
        st.success(f"Thank you, {reader}: you have answered all {progress.total} cases"
                   f"{' in both phases' if len(study.phases) > 1 else ''}. See the Results view.")
        return
    if progress.phase == study_module.PHASES[1] and progress.done == 0:
        st.info("Unaided reading finished. Now the same cases again, in a new order, with the model's output. "
                "Your unaided answers stay as they were.")
    case = study.case(progress.next_case)
    st.subheader(f"Case {progress.done + 1} of {progress.total} ({progress.phase})")
    st.progress(progress.done / progress.total, text=f"{progress.done} of {progress.total} answered; "
                                                     f"this is case {case.case}")
    image_column, answer_column = st.columns([3, 2])
    with image_column:
        _show_original(study.image_path(case, discovery.ROOT), case.case)
    with answer_column:
        if progress.phase == study_module.PHASES[1]:
            _show_model_output(study, case)
        _answer_form(study, reader, progress, case.case)


def _results(entry: study_views.StudyEntry) -> None:
    try:
        study = study_module.open_study(entry.path)
        results = results_module.compute_results(study)
    except study_module.StudyError as error:
        st.error(str(error))
        return
    st.caption(f"{results['n_cases']} cases ({results['n_malignant']} malignant); model decisions at threshold "
               f"{study.threshold:.4g} ({study.info['threshold']['source']}). Readers' points with 95 % Wilson "
               f"intervals; rating AUC: {results['rating']}. Readers still reading should not open this view.")
    if not results["readers"]:
        st.info("No answers yet: the model alone is shown.")
    st.plotly_chart(study_views.results_figure(results), key="reader_study_roc")
    st.subheader("Readers and the model")
    st.table(study_views.readers_table(results).set_index("reader"))
    st.caption("The model's sensitivity at a reader's specificity (and the other way round) is read off the "
               "model's ROC on these study cases themselves (post hoc), not at the model's validation threshold.")
    st.subheader("Multi-reader multi-case (Obuchowski-Rockette, Hillis ddf)")
    if results.get("incomplete_readers"):
        st.caption(f"Incomplete readers, left out of the pooled tests: {', '.join(results['incomplete_readers'])}")
    for name, section in results.get("mrmc", {}).items():
        label = name.replace("_", " ")
        if section["available"]:
            st.markdown(f"**{label}**: {section['difference_of']} = {section['difference']:.3f} (95 % CI "
                        f"{section['ci_low']:.3f} to {section['ci_high']:.3f}), F = {section['F']:.2f} on 1 and "
                        f"{section['ddf']:.1f} df, {mrmc.format_p(section['p'])}; {len(section['readers'])} readers")
        else:
            st.markdown(f"**{label}**: {section['reason']} ({len(section['complete_readers'])} complete readers; "
                        f"needs {section['minimum']['readers']} and {section['minimum']['cases_per_class']} cases "
                        f"of each class)")
    if results["aided_vs_unaided"]:
        st.subheader("Aided vs unaided")
        st.table(study_views.changes_table(results).set_index("reader"))
    left, right = st.columns(2)
    if study.responses_path.is_file():
        left.download_button(f"Download {study_module.RESPONSES_FILE}", study.responses_path.read_bytes(),
                             file_name=study_module.RESPONSES_FILE, mime="text/csv", key="download_responses")
    right.download_button(f"Download {study_module.RESULTS_FILE}", results_module.results_bytes(results),
                          file_name=study_module.RESULTS_FILE, mime="application/json", key="download_results")


selected = _pick_study()
view = st.segmented_control("View", ("Read", "Results"), default="Read", key="study_view") or "Read"
if view == "Read":
    _read(selected)
else:
    _results(selected)
