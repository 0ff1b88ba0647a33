"""Reader study: dermatologists read a study's cases one at a time, blind, then (optionally) with the
model's output; the results view puts them on the model's ROC curve; a form creates a new study.

Who is reading: the person whose code was typed in this browser session. ``access.sign_in`` turns the
code into an identity (a reader, or the organiser) kept in the server's session state; the code itself
is never kept, put in the URL or logged, and the URL carries only the study's name. A reload or another
browser starts signed out: the code again. Ten wrong codes from one browser make it wait a minute
(``melanet.studies.access``).

Blinding: in the unaided phase nothing about the case's label or the model's output is ever rendered,
so it is absent from what the browser receives (not hidden). Every answer is written to the study's
``responses.csv`` the moment it is saved; the reader's place is recomputed from that file on every
rerun, so a reload, a closed tab or a server restart resumes at the first unanswered case once the
reader gives their code again.

A real-or-synthetic study (``melanet.studies.synthetic_study``) is read on the same screen: the question is
"real or synthetic?" with a confidence, in one phase, with no model output and no heat map.

Results: the page asks ``results.results_for`` on every run: the organiser sees everything, a reader who
has answered every case of every phase sees their own figures and the model's, anyone else nothing.
With ``MELANET_READING_ONLY=1`` (app.py) this page is the whole dashboard and has no New study view.
"""

from __future__ import annotations

import datetime
import os
import time

import streamlit as st

from melanet.studies import access, mrmc, responses, sample_size
from melanet.studies import results as results_module
from melanet.studies import study as study_module
from melanet.studies import synthetic_study

from dashboard import (discovery, glossary, navigation, study_admin, study_reading, study_viewer, study_views,
                       synthetic_view, ui)

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

IDENTITY = "study_identity"  # access.Identity once a code was accepted in this session
READING_ONLY = os.environ.get("MELANET_READING_ONLY") == "1"
VIEWS = ("Read", "Results") if READING_ONLY else ("Read", "Results", "New study")
# The reading screen: the viewer fills the window's height beside the answer column (1400x900: the
# whole image shows, about 690 px wide), under a trimmed top padding; the sidebar (the other pages,
# which list labelled test images) is gone while a reader reads.
READING_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 3.75rem; padding-bottom: 1rem; }
.st-key-reader_viewer iframe { height: calc(100vh - 5rem) !important; min-height: 360px; }
.st-key-reader_answers { max-height: calc(100vh - 5rem); overflow-y: auto; padding-right: .25rem; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"] {
  display: none !important; }
</style>"""


def _identity() -> access.Identity | None:
    return st.session_state.get(IDENTITY)


def _find(entries: list[study_views.StudyEntry], name: str) -> study_views.StudyEntry | None:
    return next((entry for entry in entries if entry.name == name), None)


def _pick_study(entries: list[study_views.StudyEntry]) -> study_views.StudyEntry:
    """The study select box; remembers the study's name in the URL so a reload keeps it."""
    labels = [entry.label for entry in entries]
    names = [entry.name for entry in entries]
    created = st.session_state.pop("study_created", None)
    if created in names:
        st.session_state["study_pick"] = labels[names.index(created)]
        st.success(f"Study {created} created; the codes are in {st.session_state.pop('study_codes_at', 'the file')}.")
    chosen = st.session_state.get("study_pick")
    if chosen not in labels:
        wanted = st.query_params.get("study")
        st.session_state["study_pick"] = labels[names.index(wanted)] if wanted in names else labels[0]
    label = st.selectbox("Study", labels, key="study_pick")
    entry = entries[labels.index(label)]
    st.query_params["study"] = entry.name
    return entry


# -- signing in ------------------------------------------------------------------------------------


def _sign_in(entry: study_views.StudyEntry) -> None:
    """The code box: a reader's code starts (or resumes) the reading, the organiser's opens the controls."""
    study = study_module.open_study(entry.path)
    if not access.has_codes(study):
        st.info(f"Study {study.name} is read-only: {access.NO_CODES} (a study shipped under models/ is copied to "
                "the studies folder with its codes; this one stays as it is).")
        return
    identity = _identity()
    if identity is not None and identity.study == study.name and identity.role == access.READER:
        st.success(f"Thank you, {identity.reader}: you have answered every case of this study. The Results view "
                   "shows your own figures" + ("." if study.real_or_synthetic else " beside the model's."))
        return
    if identity is not None and identity.study == study.name and identity.role == access.ORGANISER:
        st.success("Signed in with the organiser code.")
        study_admin.organiser_panel(study)
        return
    client = study_reading.client_of(st.context.ip_address)
    waiting = access.wait_seconds(study, client)
    with st.form("sign_in", clear_on_submit=True):
        code = st.text_input("Your code", type="password", key="reader_code", max_chars=40,
                             help="The code the study's organiser gave you (letters and digits, e.g. ABCDE-FGH23).")
        submitted = st.form_submit_button("Start reading", type="primary")
    if submitted and code.strip():
        try:
            st.session_state[IDENTITY] = access.sign_in(study, code, client)
        except access.AccessError as error:
            st.error(f"Not signed in: {error}.")
        else:
            st.rerun()
    elif waiting > 0:
        st.error(f"Not signed in: {access.RateLimited(waiting)}.")
    st.info("Type your code and press Start to begin, or to resume where you stopped: every answer is saved at "
            "once. The image then fills the screen beside the answer form.")


# -- reading ---------------------------------------------------------------------------------------


def _show_viewer(study: study_module.Study, case: study_module.Case, aided: bool) -> None:
    """The case's original file at full resolution in the zoom/pan viewer; aided: its heat map, hidden
    until the reader ticks the box."""
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
        st.caption("Grad-CAM over the image you read (tick 'heat map' on the image to see it): where the "
                   "model looked for 'malignant'.")
        ui.show_colour_scale()  # the scale's ends in page text of 14 px
    else:
        st.caption("No Grad-CAM overlay for this case.")


def _experience_form(study: study_module.Study, reader: str) -> None:
    """Asked once, before the first case: kept with the reader's answers and reported per reader."""
    st.subheader(f"Before you start, {reader}")
    with st.form("experience"):
        years = st.number_input("Years in dermatology", min_value=0.0, max_value=80.0, value=None, step=1.0,
                                key="experience_years")
        specialty = st.text_input("Specialty (e.g. dermatologist, resident, general practitioner)",
                                  key="experience_specialty", max_chars=120)
        weekly = st.number_input("Dermoscopy images you read in a week", min_value=0, value=None, step=1,
                                 key="experience_weekly")
        submitted = st.form_submit_button("Save and start", type="primary")
    if not submitted:
        return
    if years is None or weekly is None or not specialty.strip():
        st.error("Give all three: years, specialty and images a week.")
        return
    try:
        access.set_experience(study, reader, float(years), specialty, int(weekly))
    except study_module.StudyError as error:
        st.error(f"Not saved: {error}")
        return
    st.rerun()


def _answer_form(study: study_module.Study, identity: access.Identity, progress: responses.Progress,
                 case_id: str) -> None:
    key = f"{study.name}-{progress.phase}-{progress.done}"
    shown_at = st.session_state.setdefault(f"shown-{key}-{case_id}", time.time())
    with st.form(key=f"answer-{key}"):
        decision = st.radio("Real or synthetic?" if study.real_or_synthetic else "Your decision", study.decisions,
                            index=None, horizontal=True, key=f"decision-{key}")
        confidence = st.radio("Confidence (1 = unsure ... 5 = certain)", study_module.CONFIDENCE_LEVELS,
                              index=None, horizontal=True, key=f"confidence-{key}")
        note = st.text_input("Note (optional)", key=f"note-{key}", max_chars=responses.MAX_NOTE_LENGTH)
        submitted = st.form_submit_button("Save and next", type="primary")
    if not submitted:
        return
    if decision is None or confidence is None:
        st.error(f"Choose {' or '.join(study.decisions)} and a confidence from 1 to 5, then save.")
        return
    try:
        study_reading.save_answer(study, identity, phase=progress.phase, case=case_id, decision=decision,
                                  confidence=int(confidence), seconds=time.time() - shown_at, note=note)
    except study_module.StudyError as error:
        st.error(f"Not saved: {error}")
        return
    st.rerun()


def _reading_screen(entry: study_views.StudyEntry, identity: access.Identity) -> bool:
    """The reading screen for this session's reader; False when the reader has finished the study."""
    try:
        study = study_module.open_study(entry.path)
        answers = responses.read_responses(study)
        progress = responses.reader_progress(study, answers, identity.reader or "")
    except study_module.StudyError as error:
        st.error(str(error))
        return True
    if progress.finished:
        return False
    st.html(READING_CSS)
    if access.is_closed(study):
        st.info("The organiser has closed this study: no more answers for now. Your answers so far are saved.")
        return True
    if not access.reader_record(study, identity.reader or "").get("experience"):
        _experience_form(study, identity.reader or "")
        return True
    aided = progress.phase == study_module.PHASES[1]
    opens = responses.aided_opens_at(study, answers, identity.reader or "") if aided else None
    if opens is not None and datetime.datetime.now(datetime.timezone.utc) < opens:
        st.info(f"You have read every case unaided. The aided reading opens on {opens:%Y-%m-%d %H:%M} UTC (the "
                f"organiser's washout of {access.washout_days(study):g} days); come back then with your code.")
        return True
    case = study.case(progress.next_case)
    image_column, answer_column = st.columns([7, 3], gap="medium")
    with image_column:
        _show_viewer(study, case, aided)
    with answer_column, st.container(key="reader_answers"):
        if study.real_or_synthetic:  # one phase: no phase name; the question instead
            st.subheader(f"Case {progress.done + 1} of {progress.total}")
            st.markdown(synthetic_study.READING_PROMPT)
        else:
            st.subheader(f"Case {progress.done + 1} of {progress.total} ({progress.phase})")
        st.progress(progress.done / progress.total, text=f"{progress.done} of {progress.total} answered")
        if aided and progress.done == 0:
            st.info("Unaided reading finished. Now the same cases again, in a new order, with the model's "
                    "output. Your unaided answers stay as they were.")
        if aided:
            _show_model_output(study, case)
        _answer_form(study, identity, progress, case.case)
        if aided:
            _show_heatmap_key(study, case)
        with st.expander("Study and reader"):
            st.markdown(f"Study **{study.name}**; reading as **{identity.reader}**.")
            st.caption("Wheel or +/- to zoom, drag to pan, double click to zoom in or back to the whole image; "
                       "1:1 shows one image pixel per CSS pixel. Every answer is saved at once. To stop, close the "
                       f"page: your code resumes here. {ui.NOT_A_DEVICE}")
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
    if pilot.caveat():
        st.warning(f"Caution: {pilot.caveat()}.", icon=":material/warning:")
    st.table(study_views.sample_size_table(rows).set_index("readers"))
    st.caption(f"Power {sample_size.DEFAULT_POWER:.0%} at alpha {sample_size.DEFAULT_ALPHA} (two-sided), random "
               f"readers and random cases (Hillis, Obuchowski & Berbaum 2011), from this study's OR variance components "
               f"({pilot.n_readers} readers and {pilot.n_cases} cases); the next study keeps this study's mix of "
               f"malignant and benign cases. Command line: `melanet reader-study mrmc FILE.csv --power-for DELTA`.",
               help=glossary.help_for("OR variance components", "Hillis ddf"))


def _results(entry: study_views.StudyEntry) -> None:
    """The results ``results.results_for`` gives this session's identity (asked on every run), or why not."""
    try:
        study = study_module.open_study(entry.path)
        results = results_module.results_for(study, _identity())
    except access.AccessError as error:
        st.info(f"No results: {error}.")
        return
    except study_module.StudyError as error:
        st.error(str(error))
        return
    organiser = _identity().role == access.ORGANISER
    if study.real_or_synthetic:
        synthetic_view.show(results, organiser)
        _downloads(study, results, organiser)
        return
    st.caption(f"{results['n_cases']} cases ({results['n_malignant']} malignant); model decisions at threshold "
               f"{study.threshold:.4g} ({study.info['threshold']['source']}). Readers' points with 95 % Wilson "
               f"intervals; rating AUC: {results['rating']}. "
               + ("Organiser view: every reader." if organiser else
                  "Your own figures and the model's; the other readers' are for the organiser."))
    if results.get("voided"):
        st.caption("Left out of the analysis by the organiser: " + "; ".join(
            f"{item['reader']} ({item['reason']}, {item['answers']} answers kept on disk)" for item in results["voided"]))
    if not results["readers"]:
        st.info("No answers yet: the model alone is shown.")
    st.plotly_chart(study_views.results_figure(results), key="reader_study_roc")
    st.subheader("Readers and the model")
    st.table(study_views.readers_table(results).set_index("reader"))
    st.caption("The model's sensitivity at a reader's specificity (and the other way round) is read off the "
               "model's ROC on these study cases themselves (post hoc), not at the model's validation threshold.")
    if not organiser:
        if results["aided_vs_unaided"]:
            st.subheader("Aided vs unaided")
            st.table(study_views.changes_table(results).set_index("reader"))
        _downloads(study, results, organiser)
        return
    st.subheader("Multi-reader multi-case (Obuchowski-Rockette, Hillis ddf)",
                 help=glossary.help_for("MRMC", "Hillis ddf", "OR variance components"))
    if results.get("incomplete_readers"):
        st.caption(f"Incomplete readers, left out of the pooled tests: {', '.join(results['incomplete_readers'])}")
    for name, section in results.get("mrmc", {}).items():
        label = name.replace("_", " ")
        if section["available"]:
            st.markdown(f"**{label}**: {mrmc.difference_sentence(section)}; {len(section['readers'])} readers")
        else:
            st.markdown(f"**{label}**: {section['reason']} ({len(section['complete_readers'])} complete readers; "
                        f"needs {section['minimum']['readers']} and {section['minimum']['cases_per_class']} cases "
                        f"of each class)")
    _sample_size(results)
    if results["aided_vs_unaided"]:
        st.subheader("Aided vs unaided")
        st.table(study_views.changes_table(results).set_index("reader"))
    _downloads(study, results, organiser)


def _downloads(study: study_module.Study, results: dict, organiser: bool) -> None:
    """results.json as this identity may see it; responses.csv (every reader's answers) for the organiser."""
    left, right = st.columns(2)
    if organiser and study.responses_path.is_file():
        left.download_button(f"Download {study_module.RESPONSES_FILE}", study.responses_path.read_bytes(),
                             file_name=study_module.RESPONSES_FILE, mime="text/csv", key="download_responses")
    right.download_button(f"Download {study_module.RESULTS_FILE}", results_module.results_bytes(results),
                          file_name=study_module.RESULTS_FILE, mime="application/json", key="download_results")



# -- the page --------------------------------------------------------------------------------------

entries = study_views.discover()
identity = _identity()
signed_in = _find(entries, identity.study) if identity else None
if identity is not None and (signed_in is None
                             or not access.still_valid(study_module.open_study(signed_in.path), identity)):
    st.session_state.pop(IDENTITY, None)  # revoked since, or the study is gone: signed out
    identity, signed_in = None, None
if identity is not None and identity.role == access.READER and _reading_screen(signed_in, identity):
    st.stop()

st.title("Reader study", help=glossary.help_for("kappa", "rating AUC", "MRMC"))
st.caption(f"Readers against the model on the same test cases. {ui.NOT_A_DEVICE}")
if st.session_state.get("study_view") not in VIEWS or "study_created" in st.session_state:
    st.session_state["study_view"] = VIEWS[0]
view = st.segmented_control("View", VIEWS, key="study_view") or VIEWS[0]
if view == "New study":
    study_admin.new_study()
    st.stop()
if not entries:
    ui.no_runs("reader studies", "Create one with the New study view, or from the command line: `melanet "
               "reader-study create --run models/demo/melanet --name demo --cases 40 --readers NAME,NAME "
               "--codes-out FILE`.")
    st.stop()
if signed_in is not None:  # signed in: this session's study, no picker
    selected = signed_in
    st.caption(f"Study **{selected.name}**" + (" (organiser)" if identity.role == access.ORGANISER else
                                              f", reader **{identity.reader}**"))
    if st.button("Sign out", key="sign_out"):
        st.session_state.pop(IDENTITY, None)
        st.rerun()
else:
    selected = _pick_study(entries)
if view == VIEWS[0]:
    _sign_in(selected)
else:
    _results(selected)
