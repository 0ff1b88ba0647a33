"""External validation: score an evaluated classifier run on another data folder.

The page launches ``melanet evaluate --run RUN --data DIR`` as a background job (``melanet.jobs``); the
results land in ``RUN/external/<data set name>/`` and show as their own row beside the run's own test
row, ROC curves overlaid. Nothing is computed inside Streamlit.
"""

from __future__ import annotations

import streamlit as st

from melanet import layout, runs
from melanet.data.errors import DataError
from melanet.evaluation import external, leakage

from dashboard import charts, discovery, external_view, ui

POLL_SECONDS = 2.0

st.title("External validation")
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

if entry.read_only:
    st.info(f"{entry.label} is a shipped run and stays read-only here; copy it under "
            f"`{discovery.runs_dir().name}/` to validate it, or run `melanet evaluate --run {entry.path} "
            "--data DIR` in a terminal.")
if st.button("Evaluate on this folder", disabled=not ready or entry.read_only, key="external_launch"):
    try:
        folder, pid = external.launch(entry.path, data_root, cwd=discovery.ROOT)
        st.success(f"Launched `melanet evaluate --run {entry.label} --data {data_text.strip()}` (process {pid}); "
                   f"results go to `{folder.relative_to(entry.path).as_posix()}/` in the run.")
    except runs.RunBusyError as error:
        st.error(f"Refused: {error}")
    except (runs.RunError, DataError) as error:
        st.error(str(error))


@st.fragment(run_every=POLL_SECONDS)
def results_panel(run_path) -> None:
    """Polls the run's external/ folder: one row per data set, ROC curves overlaid, logs of failures."""
    frame = external_view.table(run_path)
    st.subheader("Results")
    if frame.empty:
        st.caption("No results yet.")
    else:
        st.table(frame.set_index("data set"))  # a plain table: a handful of rows, readable and selectable
    st.caption("Figures at threshold 0.5, 95 % intervals (AUC: bootstrap; proportions: Wilson). "
               "Prevalence = share of malignant images.")
    for result in external.results(run_path):
        warning = leakage.overlap_warning((result.metrics or {}).get("overlap") or {}, (result.metrics or {}).get("n") or 0)
        if warning:
            st.error(f"{result.name}: {warning}")
    st.plotly_chart(charts.roc_figure(external_view.curves(run_path)), key="external_roc")
    for result in external.results(run_path):
        if result.state == "failed" and result.log:
            with st.expander(f"{result.name}: failed (job.log)"):
                st.code(result.log, language=None)


results_panel(entry.path)
