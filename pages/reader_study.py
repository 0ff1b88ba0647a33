"""Reader study: dermatologists read a study's cases one at a time, blind, then (optionally) with the
model's output; the results view puts them on the model's ROC curve; a form creates a new study.

Blinding: in the unaided phase nothing about the case's label or the model's output is ever rendered,
so it is absent from what the browser receives (not hidden). Every answer is written to the study's
``responses.csv`` the moment it is saved; the reader's place is recomputed from that file on every
rerun, so a reload, a closed tab or a server restart resumes at the first unanswered case once the
reader gives their name again.

Who is reading: the name typed at the start of this browser session (``st.session_state``; the study
folder keeps that reader's answers), never a value in the URL, so a shared link starts a new reader.
Results are for the study's owner: a session in which a reader has started reading shows no Results
view until that reader has answered every case.
"""

from __future__ import annotations

import subprocess
import time

import streamlit as st

from melanet.common import formatting
from melanet.runs import jobs
from melanet.explain import overlay as overlay_module
from melanet.studies import create, responses, results as results_module, sample_size
from melanet.studies import study as study_module

from dashboard import discovery, glossary, study_viewer, study_views, ui

READER_SESSION = "reader_session"  # {"study": name, "reader": name} once a reader has started in this session
VIEWS = ("Read", "Results", "New study")
# The reading screen: the viewer fills the window's height beside the answer column (1400x900: the
# whole image shows, about 690 px wide), under a trimmed top padding.
READING_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 3.75rem; padding-bottom: 1rem; }
.st-key-reader_viewer iframe { height: calc(100vh - 5rem) !important; min-height: 360px; }
.st-key-reader_answers { max-height: calc(100vh - 5rem); overflow-y: auto; padding-right: .25rem; }
</style>"""


def _reader_session() -> dict[str, str] | None:
    return st.session_state.get(READER_SESSION)


def _find(entries: list[study_views.StudyEntry], name: str) -> study_views.StudyEntry | None:
    return next((entry for entry in entries if entry.name == name), None)


def _open_for_reading(entry: study_views.StudyEntry) -> study_module.Study:
    study = study_module.open_study(entry.path)
    if entry.shipped:  # shipped studies stay untouched: readers answer a copy in studies/
        study = create.copy_study(study, study_views.studies_dir())
    return study


def _pick_study(entries: list[study_views.StudyEntry]) -> study_views.StudyEntry:
    """The study select box; remembers the study's name in the URL so a reload keeps it."""
    labels = [entry.label for entry in entries]
    names = [entry.name for entry in entries]
    created = st.session_state.pop("study_created", None)
    if created in names:
        st.session_state["study_pick"] = labels[names.index(created)]
        st.success(f"Study {created} created.")
    chosen = st.session_state.get("study_pick")
    if chosen not in labels:  # first visit, or a shipped study was just copied to studies/
        wanted = st.query_params.get("study")
        st.session_state["study_pick"] = labels[names.index(wanted)] if wanted in names else labels[0]
    label = st.selectbox("Study", labels, key="study_pick")
    entry = entries[labels.index(label)]
    st.query_params["study"] = entry.name
    return entry


# -- reading ---------------------------------------------------------------------------------------


def _start_reading(entry: study_views.StudyEntry) -> None:
    """The name box's callback: the typed name becomes this session's reader (and nobody else's)."""
    name = st.session_state.get("reader_name", "")
    if not name.strip():
        return
    try:
        reader = responses.normalise_reader(name)
        study = _open_for_reading(entry)
    except study_module.StudyError as error:
        st.session_state["reader_error"] = str(error)
        return
    st.session_state[READER_SESSION] = {"study": study.name, "reader": reader}


def _sign_in(entry: study_views.StudyEntry) -> None:
    session = _reader_session()
    if session and session["study"] == entry.name:
        st.success(f"Thank you, {session['reader']}: you have answered every case of this study. The "
                   f"Results view is open to you now.")
        return
    st.text_input("Your name (as the results will show it)", key="reader_name", max_chars=80,
                  on_change=_start_reading, args=(entry,))
    if "reader_error" in st.session_state:
        st.error(st.session_state.pop("reader_error"))
    st.info("Type your name and press Enter to start, or to resume where you stopped: every answer is saved at "
            "once. The image then fills the screen beside the answer form.")


def _show_viewer(study: study_module.Study, case: study_module.Case, aided: bool) -> None:
    """The case's original file at full resolution in the zoom/pan viewer; aided: its heat map on top."""
    path = study.image_path(case, discovery.ROOT)
    try:
        image = path.read_bytes()
    except OSError as error:
        st.error(f"Cannot read the image {path}: {error.strerror or error}")
        return
    heatmap, suffix = None, ".jpg"
    overlay = study.overlay_path(case) if aided else None
    if overlay is not None and overlay.is_file():
        heatmap, suffix = overlay.read_bytes(), overlay.suffix
    with st.container(key="reader_viewer"):
        st.iframe(study_viewer.viewer_html(case.case, image, path.suffix, heatmap, suffix), height=700)


def _show_model_output(study: study_module.Study, case: study_module.Case) -> None:
    """Aided phase only: the model's probability and its decision at the study's threshold."""
    st.markdown(f"**Model:** P(malignant) = **{case.prob_malignant:.3f}**; at the study's operating threshold "
                f"{study.threshold:.3g} it says **{case.model_decision}**.")


def _show_heatmap_key(study: study_module.Study, case: study_module.Case) -> None:
    """Aided phase only: what the heat map over the image is, and its colour scale."""
    overlay = study.overlay_path(case)
    if overlay is not None and overlay.is_file():
        st.caption("Grad-CAM over the image you read (untick 'heat map' to see the image alone): where the "
                   "model looked for 'malignant'.")
        st.image(overlay_module.colour_scale(width=320), width="stretch")
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


def _reading_screen(entry: study_views.StudyEntry, reader: str) -> bool:
    """The reading screen for this session's reader; False when the reader has finished the study."""
    try:
        study = _open_for_reading(entry)
        progress = responses.reader_progress(study, responses.read_responses(study), reader)
    except study_module.StudyError as error:
        st.error(str(error))
        return True
    if progress.finished:
        return False
    st.html(READING_CSS)
    case = study.case(progress.next_case)
    aided = progress.phase == study_module.PHASES[1]
    image_column, answer_column = st.columns([7, 3], gap="medium")
    with image_column:
        _show_viewer(study, case, aided)
    with answer_column, st.container(key="reader_answers"):
        st.subheader(f"Case {progress.done + 1} of {progress.total} ({progress.phase})")
        st.progress(progress.done / progress.total, text=f"{progress.done} of {progress.total} answered; "
                                                         f"this is case {case.case}")
        if aided and progress.done == 0:
            st.info("Unaided reading finished. Now the same cases again, in a new order, with the model's "
                    "output. Your unaided answers stay as they were.")
        if aided:
            _show_model_output(study, case)
        _answer_form(study, reader, progress, case.case)
        if aided:
            _show_heatmap_key(study, case)
        with st.expander("Study and reader"):
            st.markdown(f"Study **{study.name}** ({entry.label}); reading as **{reader}**.")
            st.caption("Wheel or +/- to zoom, drag to pan, double click to zoom in or back to the whole image. "
                       "Every answer is saved at once. To read as someone else, reload the page and type "
                       f"their name. {ui.NOT_A_DEVICE}")
    return True


# -- results ---------------------------------------------------------------------------------------


def _sample_size(results: dict) -> None:
    st.subheader("Sample size for the next study")
    available = {name: section for name, section in results.get("mrmc", {}).items() if section["available"]}
    if not available:
        st.caption("Needs an MRMC analysis above (this study has not enough readings yet): its variance "
                   "components are the pilot.")
        return
    names = list(available)
    default = names.index("aided_vs_unaided") if "aided_vs_unaided" in names else 0
    left, right = st.columns(2)
    pilot_name = left.selectbox("Pilot comparison", names, index=default, format_func=lambda n: n.replace("_", " "),
                                key="sample_size_pilot")
    delta = right.number_input("AUC difference to detect", min_value=0.005, max_value=0.5, value=0.05, step=0.005,
                               format="%.3f", key="sample_size_delta")
    pilot = sample_size.Pilot.from_analysis(available[pilot_name])
    try:
        rows = sample_size.sample_size_table(pilot, float(delta))
    except sample_size.SampleSizeError as error:
        st.caption(f"No sample size from this pilot: {error}")
        return
    st.table(study_views.sample_size_table(rows).set_index("readers"))
    st.caption(f"Power {sample_size.DEFAULT_POWER:.0%} at alpha {sample_size.DEFAULT_ALPHA} (two-sided), random "
               f"readers and random cases (Hillis & Obuchowski 2011), from this study's OR variance components "
               f"({pilot.n_cases} cases); the next study keeps this study's mix of malignant and benign cases. "
               f"Command line: `melanet reader-study mrmc FILE.csv --power-for DELTA`.")


def _results(entry: study_views.StudyEntry) -> None:
    try:
        study = study_module.open_study(entry.path)
        results = results_module.compute_results(study)
    except study_module.StudyError as error:
        st.error(str(error))
        return
    st.caption(f"{results['n_cases']} cases ({results['n_malignant']} malignant); model decisions at threshold "
               f"{study.threshold:.4g} ({study.info['threshold']['source']}). Readers' points with 95 % Wilson "
               f"intervals; rating AUC: {results['rating']}. For the study's owner: a reader sees this view "
               f"only after answering every case.")
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
                        f"{section['ddf']:.1f} df, {formatting.p_value(section['p'])}; {len(section['readers'])} readers")
        else:
            st.markdown(f"**{label}**: {section['reason']} ({len(section['complete_readers'])} complete readers; "
                        f"needs {section['minimum']['readers']} and {section['minimum']['cases_per_class']} cases "
                        f"of each class)")
    _sample_size(results)
    if results["aided_vs_unaided"]:
        st.subheader("Aided vs unaided")
        st.table(study_views.changes_table(results).set_index("reader"))
    left, right = st.columns(2)
    if study.responses_path.is_file():
        left.download_button(f"Download {study_module.RESPONSES_FILE}", study.responses_path.read_bytes(),
                             file_name=study_module.RESPONSES_FILE, mime="text/csv", key="download_responses")
    right.download_button(f"Download {study_module.RESULTS_FILE}", results_module.results_bytes(results),
                          file_name=study_module.RESULTS_FILE, mime="application/json", key="download_results")


# -- a new study -----------------------------------------------------------------------------------


def _classifier_runs() -> list[discovery.RunEntry]:
    return discovery.of_kind(discovery.discover(), "classifier")


def _check_new_study() -> None:
    """The form's callback: the command line's checks (``create.check_request``), errors kept per field."""
    state = st.session_state
    runs_by_label = {entry.label: entry for entry in _classifier_runs()}
    run = runs_by_label.get(state.get("create_run"))
    options = create.CreateOptions(cases=int(state.get("create_cases") or 0), seed=int(state.get("create_seed") or 0),
                                   aided=bool(state.get("create_aided")))
    state["create_errors"] = {}
    if run is None:
        state["create_errors"]["run"] = "Pick an evaluated classifier run."
        return
    try:
        create.check_request(run.path, state.get("create_name", ""), root=study_views.studies_dir(), options=options)
    except create.CreateError as error:
        state["create_errors"][error.field] = str(error)
        return
    state["create_request"] = {"run": str(run.path), "name": state["create_name"].strip(), "options": options}


def _field_error(field: str) -> None:
    message = st.session_state.get("create_errors", {}).get(field)
    if message:
        st.error(message, icon=":material/error:")


def _new_study() -> None:
    st.caption("A study of an evaluated classifier run's test cases, as `melanet reader-study create` makes it "
               "(the same checks). It is written to the studies folder; the run is only read.")
    labels = [entry.label for entry in _classifier_runs()]
    if not labels:
        st.info("No classifier runs yet: train and evaluate one on the Train page.")
        return
    with st.form("create_study"):
        st.selectbox("Classifier run (evaluated)", labels, key="create_run")
        _field_error("run")
        _field_error("data")
        st.text_input("Study name (letters, digits, - _ . /)", key="create_name", max_chars=120)
        _field_error("name")
        st.number_input("Number of cases (a stratified random subset; 0 = every test image)", value=40, step=1,
                        key="create_cases")
        _field_error("cases")
        st.number_input("Seed (of the subset and of every reader's case order)", value=0, step=1, key="create_seed")
        _field_error("seed")
        st.checkbox("Aided phase: after the unaided reading, the same cases with the model's output", value=True,
                    key="create_aided")
        st.form_submit_button("Create study", type="primary", on_click=_check_new_study)
    request = st.session_state.pop("create_request", None)
    if request is None:
        return
    options = request["options"]
    command = [*jobs.melanet_program(), "-q", "reader-study", "create", "--run", request["run"], "--name",
               request["name"], "--cases", str(options.cases), "--seed", str(options.seed), "--root",
               str(study_views.studies_dir()), *([] if options.aided else ["--no-aided"])]
    with st.spinner(f"Creating study {request['name']} ..."):
        finished = subprocess.run(command, cwd=discovery.ROOT, capture_output=True, text=True, timeout=3600)
    if finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        st.error(f"Not created: {lines[-1] if lines else 'the command failed without a message'}")
        return
    st.session_state["study_created"] = request["name"]  # the next run opens it in the Read view
    st.rerun()


# -- the page --------------------------------------------------------------------------------------

entries = study_views.discover()
session = _reader_session()
reading = _find(entries, session["study"]) if session else None
if reading is not None and _reading_screen(reading, session["reader"]):
    st.stop()

st.title("Reader study", help=glossary.help_for("kappa", "rating AUC", "MRMC"))
st.caption(f"Readers against the model on the same test cases. {ui.NOT_A_DEVICE}")
if st.session_state.get("study_view") not in VIEWS or "study_created" in st.session_state:
    st.session_state["study_view"] = VIEWS[0]
view = st.segmented_control("View", VIEWS, key="study_view") or VIEWS[0]
if view == VIEWS[2]:
    _new_study()
    st.stop()
if not entries:
    ui.no_runs("reader studies", "Create one with the New study view, or from the command line: `melanet "
               "reader-study create --run models/demo/melanet --name demo --cases 40`.")
    st.stop()
selected = _pick_study(entries)
if view == VIEWS[0]:
    _sign_in(selected)
else:
    _results(selected)
