"""The Reader study page's organiser parts: the New study form and, for the organiser code, the readers'
codes (add, revoke, void), closing the study and the washout. Streamlit widgets; the rules live in
``melanet.studies.create`` and ``melanet.studies.access``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import streamlit as st

from melanet.runs import jobs
from melanet.studies import access, create
from melanet.studies import study as study_module

from dashboard import discovery, study_views

# -- a new study -----------------------------------------------------------------------------------


def _classifier_runs() -> list[discovery.RunEntry]:
    return discovery.of_kind(discovery.discover(), "classifier")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _check_new_study() -> None:
    """The form's callback: the command line's checks (``create.check_request``), errors kept per field, and
    the design warnings, which need a second click ("Create anyway") before the study is made."""
    state = st.session_state
    runs_by_label = {entry.label: entry for entry in _classifier_runs()}
    run = runs_by_label.get(state.get("create_run"))
    options = create.CreateOptions(cases=int(state.get("create_cases") or 0), seed=int(state.get("create_seed") or 0),
                                   aided=bool(state.get("create_aided")), readers=_names(state.get("create_readers")),
                                   washout_days=float(state.get("create_washout") or 0))
    state["create_errors"] = {}
    state.pop("create_warnings", None)
    if run is None:
        state["create_errors"]["run"] = "Pick an evaluated classifier run."
        return
    codes_out = str(state.get("create_codes_out") or "").strip()
    try:
        checked = create.check_request(run.path, state.get("create_name", ""), root=study_views.studies_dir(),
                                       options=options)
        if not options.readers:
            raise create.CreateError("readers", "Name the readers (comma-separated): each gets a code.")
        if not codes_out:
            raise create.CreateError("codes_out", "Give a new file, outside the studies folder, for the codes.")
        access.check_codes_path(codes_out, checked.target)
    except create.CreateError as error:
        state["create_errors"][error.field] = str(error)
        return
    except study_module.StudyError as error:
        state["create_errors"]["codes_out"] = str(error)
        return
    request = {"run": str(run.path), "name": state["create_name"].strip(), "options": options,
               "codes_out": codes_out}
    warnings = create.request_warnings(checked, options)
    confirmed = state.pop("create_confirmed", None)
    if warnings and confirmed != (request["run"], request["name"], options):
        state["create_warnings"] = {"lines": warnings, "request": request}
        return
    state["create_request"] = request


def _confirm() -> None:
    pending = st.session_state.get("create_warnings") or {}
    request = pending.get("request")
    if request:
        st.session_state["create_confirmed"] = (request["run"], request["name"], request["options"])
        _check_new_study()


def _field_error(field: str) -> None:
    message = st.session_state.get("create_errors", {}).get(field)
    if message:
        st.error(message, icon=":material/error:")


def new_study() -> None:
    """The New study view: the command line's options, its checks and warnings, then the command itself."""
    st.caption("A study of an evaluated classifier run's test cases, as `melanet reader-study create` makes it "
               "(the same checks and warnings). It is written to the studies folder; the run is only read. Each "
               "reader gets a code, and you an organiser code, written once to the codes file (mode 600): the page "
               "never shows them.")
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
        st.number_input("Washout before the aided phase (days)", value=0.0, min_value=0.0, step=1.0,
                        key="create_washout")
        st.text_input("Readers (names, comma-separated)", key="create_readers", max_chars=2000)
        _field_error("readers")
        st.text_input("Codes file (a new file outside the studies folder)", key="create_codes_out",
                      value=str(Path.home() / "melanet-codes" / "study-codes.txt"))
        _field_error("codes_out")
        st.form_submit_button("Create study", type="primary", on_click=_check_new_study)
    pending = st.session_state.get("create_warnings")
    if pending:
        for line in pending["lines"]:
            st.warning(line, icon=":material/warning:")
        st.button("Create anyway", on_click=_confirm, key="create_anyway")
    request = st.session_state.pop("create_request", None)
    if request is None:
        return
    st.session_state.pop("create_warnings", None)
    options = request["options"]
    command = [*jobs.melanet_program(), "-q", "reader-study", "create", "--run", request["run"], "--name",
               request["name"], "--cases", str(options.cases), "--seed", str(options.seed), "--root",
               str(study_views.studies_dir()), "--readers", ",".join(options.readers), "--codes-out",
               request["codes_out"], "--washout-days", str(options.washout_days),
               *([] if options.aided else ["--no-aided"])]
    with st.spinner(f"Creating study {request['name']} ..."):
        finished = subprocess.run(command, cwd=discovery.ROOT, capture_output=True, text=True, timeout=3600)
    if finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        st.error(f"Not created: {lines[-1] if lines else 'the command failed without a message'}")
        return
    st.session_state["study_created"] = request["name"]  # the next run opens it in the Read view
    st.session_state["study_codes_at"] = str(Path(request["codes_out"]).expanduser().resolve())
    st.rerun()


# -- the organiser's controls ------------------------------------------------------------------------


def _readers_frame(study: study_module.Study) -> pd.DataFrame:
    rows = []
    for record in access.public_readers(study):
        experience = record.get("experience") or {}
        rows.append({"reader": record["reader"], "added": str(record.get("added") or ""),
                     "code": "revoked" if record.get("revoked") else "live",
                     "analysis": f"left out: {record['voided']['reason']}" if record.get("voided") else "included",
                     "experience": (f"{experience['years_in_dermatology']:g} years, {experience['specialty']}, "
                                    f"{experience['dermoscopy_images_per_week']} images/week") if experience else ""})
    return pd.DataFrame(rows, columns=["reader", "added", "code", "analysis", "experience"])


def organiser_panel(study: study_module.Study) -> None:
    """Readers and their codes (never a code itself, except a new one once), close/reopen, washout."""
    st.subheader("Readers")
    frame = _readers_frame(study)
    if len(frame):
        st.table(frame.set_index("reader"))
    names = list(frame["reader"]) if len(frame) else []
    shown = st.session_state.pop("new_reader_code", None)
    if shown:
        st.success(f"Code of {shown[0]} (shown once, now only): {shown[1]}")
    left, middle, right = st.columns(3)
    with left.form("add_reader", clear_on_submit=True):
        name = st.text_input("New reader's name", key="organiser_new_reader")
        if st.form_submit_button("Add reader") and name.strip():
            try:
                codes = access.add_readers(study, [name])
            except study_module.StudyError as error:
                st.error(str(error))
            else:
                reader, code = next((key, value) for key, value in codes.items() if key != access.ORGANISER)
                st.session_state["new_reader_code"] = (reader, code)
                st.rerun()
    with middle.form("revoke_reader"):
        chosen = st.selectbox("Revoke the code of", names, key="organiser_revoke")
        if st.form_submit_button("Revoke") and chosen:
            access.revoke_reader(study, chosen)
            st.rerun()
    with right.form("void_reader"):
        chosen = st.selectbox("Leave out of the analysis", names, key="organiser_void")
        reason = st.text_input("Reason", key="organiser_void_reason")
        if st.form_submit_button("Void answers") and chosen:
            try:
                access.void_reader(study, chosen, reason)
            except study_module.StudyError as error:
                st.error(str(error))
            else:
                st.rerun()
    closed = access.is_closed(study)
    left, right = st.columns(2)
    left.markdown(f"The study is **{'closed: no more answers' if closed else 'open'}**.")
    if left.button("Reopen the study" if closed else "Close the study", key="organiser_close"):
        access.set_closed(study, not closed)
        st.rerun()
    with right.form("washout"):
        days = st.number_input("Washout before the aided phase (days)", min_value=0.0,
                               value=access.washout_days(study), step=1.0, key="organiser_washout")
        if st.form_submit_button("Set washout"):
            access.set_washout(study, float(days))
            st.rerun()
