"""External validation: score an evaluated classifier run on another data folder.

The page launches ``melanet evaluate --run RUN --data DIR`` as a background job (``melanet.runs.jobs``); the
results land in ``RUN/external/<data set name>/`` (for a shipped, read-only run in
``runs/external/<run label>/<data set name>/``, the run left untouched) and show as their own row beside
the run's own test row, ROC curves overlaid. Nothing is computed inside Streamlit.
"""

from __future__ import annotations

import streamlit as st

from melanet.runs import layout, runs
from melanet.data.errors import DataError
from melanet.evaluation import external
from melanet.audits import leakage

from dashboard import artifacts, charts, discovery, external_view, glossary, navigation, subgroup_view, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

POLL_SECONDS = 2.0


def _shown(path) -> str:
    """A folder as people know it: relative to the repository when it lies inside, else absolute."""
    try:
        return path.resolve().relative_to(discovery.ROOT).as_posix()
    except ValueError:
        return path.as_posix()

st.title("External validation", help=glossary.help_for("external validation", "duplicates", "AUC"))
st.caption("Does a model trained on one data set hold on another? Pick an evaluated classifier run and any "
           "data folder (an ISIC 2016-2020 layout or train|test/benign|malignant/). Malignant = melanoma. "
           "A folder with no labelled test split (ISIC 2019, 2020) is scored on all its labelled images.")

evaluated = discovery.with_file(discovery.with_model(ui.all_runs()), layout.METRICS_FILE)
if not evaluated:
    ui.no_runs("evaluated classifier runs", ui.how_to_get_runs("Train and evaluate a classifier"))
    st.stop()

entry = ui.pick_run(evaluated, "Classifier run", key="external_run")
suggestions = external_view.data_folders()
data_text = st.text_input(
    "Data folder", key="external_data", placeholder="data/isic2019",
    help="absolute, or relative to the repository" + (f"; found here: {', '.join(suggestions)}" if suggestions else ""))

data_root = discovery.resolve_path(data_text.strip()) if data_text.strip() else None
ready = False
if data_root is not None:
    try:
        st.caption(external_view.describe_folder(data_root))
        ready = True
    except DataError as error:
        st.error(str(error))

results_base = external_view.results_base(entry)
if results_base is not None:
    st.caption(f"{entry.label} is a shipped run and stays untouched: its external results go to "
               f"`{_shown(results_base)}/<data set>/`.")
if st.button("Evaluate on this folder", disabled=not ready, key="external_launch"):
    try:
        folder, pid = external.launch(entry.path, data_root, base=results_base, cwd=discovery.ROOT)
        where = f"`{_shown(folder)}/`" if results_base is not None else \
            f"`{folder.relative_to(entry.path).as_posix()}/` in the run"
        st.success(f"Launched `melanet evaluate --run {entry.label} --data {data_text.strip()}` (process {pid}); "
                   f"results go to {where}.")
    except runs.RunBusyError as error:
        st.error(f"Refused: {error}")
    except (runs.RunError, DataError) as error:
        st.error(str(error))


@st.fragment(run_every=POLL_SECONDS)
def results_panel(run_path, base) -> None:
    """Polls the run's external/ folder (or ``base``): one row per data set, ROC curves overlaid, logs of failures."""
    frame = external_view.table(run_path, base)
    st.subheader("Results")
    if frame.empty:
        st.caption("No results yet.")
    else:
        st.table(frame.set_index("data set"))  # a plain table: a handful of rows, readable and selectable
    st.caption("Figures at threshold 0.5, 95 % intervals (AUC: bootstrap; proportions: Wilson). "
               "Prevalence = share of malignant images.")
    for result in external.results(run_path, base):
        warning = leakage.overlap_warning((result.metrics or {}).get("overlap") or {}, (result.metrics or {}).get("n") or 0)
        if warning:
            st.error(f"{result.name}: {warning}")
    st.plotly_chart(charts.roc_figure(external_view.curves(run_path, base)), key="external_roc")
    st.subheader("By subgroup", help="Where a data folder records sex, age or anatomic site (`subgroups.json`)")
    own = artifacts.metrics(run_path) or {}
    subgroup_view.show([("the run's own test split", run_path, own.get("auc"))]
                       + [(result.name, result.folder, (result.metrics or {}).get("auc"))
                          for result in external.results(run_path, base)])
    for result in external.results(run_path, base):
        if result.state == "failed" and result.log:
            with st.expander(f"{result.name}: failed (job.log)"):
                st.code(result.log, language=None)


results_panel(entry.path, results_base)
