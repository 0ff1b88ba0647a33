"""Train: launch a stage as a separate process, watch it live, stop it, resume it.

Nothing trains inside Streamlit: ``melanet.runs.jobs`` starts ``python -m melanet <stage>`` detached,
and this page only polls the run folder, so a job survives a refresh and shows in every tab.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from melanet.common import training_sets
from melanet import config as config_module
from melanet.runs import jobs, layout, runs, stages

from dashboard import artifacts, charts, discovery, form_checks, glossary, navigation, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

POLL_SECONDS = 2.0

st.title("Train")
st.caption(f"Runs are written to `{discovery.runs_dir()}`; each stage runs as its own process "
           "(the same `melanet` command you would type).")

entries = ui.all_runs()
user_runs = [entry for entry in entries if not entry.read_only]


def _default_name(stage: str) -> str:
    return f"{stage}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def _preset_select(key: str) -> Path:
    presets = discovery.presets()
    names = [path.name for path in presets]
    chosen = st.selectbox("Preset", names, key=key, help="configs/*.yaml; the fields below override it")
    return presets[names.index(chosen)]


def _launch(stage: str, run_path: Path, **arguments) -> None:
    """Start a stage and remember its run as the one to watch; errors become one clear message."""
    try:
        pid = jobs.start(stage, run_path, cwd=discovery.ROOT, **arguments)
    except runs.RunBusyError as error:
        st.error(f"Refused: {error}")
        return
    except (runs.RunError, ValueError) as error:
        st.error(str(error))
        return
    st.session_state["watched_run"] = str(run_path)
    st.success(f"Launched `{stage}` on `{run_path.name}` (process {pid}). Progress is shown below.")


def _refuse(slots: dict[str, object], reasons: dict[str, str | None]) -> bool:
    """Show each reason under its field (``slots``: the ``st.empty()`` below each); True when any refuses."""
    refused = False
    for field, reason in reasons.items():
        if reason:
            slots[field].error(reason)
            refused = True
    return refused


def _number(column, label: str, key_name: str, value: int, key: str) -> int:
    """An integer field the browser never blocks (out-of-range values reach ``form_checks.number``)."""
    low, high = form_checks.LIMITS[key_name]
    return column.number_input(label, value=int(value), step=1, key=key, help=f"{low} to {high}")


def gan_form() -> None:
    st.markdown("**Stage 1: CycleGAN benign -> malignant** (`melanet train-gan`)", help=glossary.help_for("CycleGAN"))
    preset = _preset_select("gan_preset")
    defaults = config_module.load_config(preset)
    sizes = sorted({32, 64, 128, 256, defaults.data.image_size})
    with st.form("gan_form"):
        slots = {}
        name = st.text_input("GAN run name", value=_default_name("gan"), key="gan_name",
                             help="a folder under the runs folder: letters, digits, '-', '_', '.'")
        slots["name"] = st.empty()
        left, middle, right = st.columns(3)
        # widget keys carry the preset, so choosing another preset shows its defaults
        epochs = _number(left, "GAN epochs", "gan.epochs", defaults.gan.epochs, f"gan_epochs_{preset.stem}")
        slots["epochs"] = left.empty()
        size = middle.selectbox("Image size", sizes, index=sizes.index(defaults.data.image_size),
                                key=f"gan_size_{preset.stem}")
        batch = _number(right, "Batch size", "gan.batch_size", defaults.gan.batch_size, f"gan_batch_{preset.stem}")
        slots["batch"] = right.empty()
        root = st.text_input("Data folder", value=defaults.data.root, key=f"gan_root_{preset.stem}")
        slots["root"] = st.empty()
        slots["config"] = st.empty()
        if st.form_submit_button("Launch GAN training", type="primary"):
            overrides = [f"gan.epochs={epochs}", f"data.image_size={size}", f"gan.batch_size={batch}",
                         f"data.root={root.strip()}"]
            reasons = {"name": form_checks.run_name(discovery.runs_dir(), name),
                       "epochs": form_checks.number("gan.epochs", epochs),
                       "batch": form_checks.number("gan.batch_size", batch),
                       "root": form_checks.data_folder(discovery.resolve_path(root.strip()), root)}
            if not any(reasons.values()):
                reasons["config"] = form_checks.config(preset, overrides)
            if not _refuse(slots, reasons):
                _launch("train-gan", runs.resolve_run_name(discovery.runs_dir(), name), config=preset,
                        overrides=overrides)


def synthesis_form() -> None:
    gans = [entry for entry in discovery.of_kind(user_runs, "gan")
            if layout.RunLayout(entry.path).generator(layout.GENERATOR_NAMES[0]).is_file() or entry.state == "done"]
    st.markdown("**Synthesis: every benign training image through the generator** (`melanet synthesize`)")
    if not gans:
        ui.no_runs("finished GAN runs in your runs folder", "Train a CycleGAN first (form above).")
        return
    with st.form("synthesis_form"):
        entry = ui.pick_run(gans, "GAN run", key="synthesis_run")
        if st.form_submit_button("Launch synthesis"):
            _launch("synthesize", entry.path)


def classifier_form() -> None:
    st.markdown("**Stage 2: VGG-GAP focal-loss classifier** (`melanet train-classifier`)",
                help=glossary.help_for("VGG-GAP", "GAP", "focal loss"))
    preset = _preset_select("classifier_preset")
    defaults = config_module.load_config(preset)
    with st.form("classifier_form"):
        slots = {}
        name = st.text_input("Classifier run name", value=_default_name("classifier"), key="classifier_name",
                             help="a folder under the runs folder: letters, digits, '-', '_', '.'")
        slots["name"] = st.empty()
        training_set = st.radio("Training set", list(training_sets.KEYS),
                                format_func=lambda key: training_sets.get(key).holds, key="classifier_training_set")
        sources = discovery.with_file(entries, layout.SYNTHETIC_MANIFEST_FILE)
        gan_labels = ["(none)"] + [entry.label for entry in sources]
        gan_label = st.selectbox("GAN run with synthetic lesions (for the MelaNet training set)", gan_labels,
                                 key="classifier_gan_run")
        slots["gan"] = st.empty()
        left, right = st.columns(2)
        epochs = _number(left, "Classifier epochs", "classifier.epochs", defaults.classifier.epochs,
                         f"classifier_epochs_{preset.stem}")
        slots["epochs"] = left.empty()
        batch = _number(right, "Batch size", "classifier.batch_size", defaults.classifier.batch_size,
                        f"classifier_batch_{preset.stem}")
        slots["batch"] = right.empty()
        slots["root"] = st.empty()
        slots["config"] = st.empty()
        if st.form_submit_button("Launch classifier training", type="primary"):
            overrides = [f"classifier.training_set={training_set}", f"classifier.epochs={epochs}",
                         f"classifier.batch_size={batch}"]
            needs_gan = training_set == training_sets.SYNTHETIC
            if needs_gan and gan_label != "(none)":
                overrides.append(f"classifier.gan_run={sources[gan_labels.index(gan_label) - 1].path}")
            reasons = {"name": form_checks.run_name(discovery.runs_dir(), name),
                       "gan": ("The MelaNet training set needs a GAN run with synthetic lesions: synthesize first."
                               if needs_gan and gan_label == "(none)" else None),
                       "epochs": form_checks.number("classifier.epochs", epochs),
                       "batch": form_checks.number("classifier.batch_size", batch),
                       "root": form_checks.data_folder(discovery.resolve_path(defaults.data.root), defaults.data.root)}
            if reasons["root"]:
                reasons["root"] = f"the preset's data folder: {reasons['root']}"
            if not any(reasons.values()):
                reasons["config"] = form_checks.config(preset, overrides)
            if not _refuse(slots, reasons):
                _launch("train-classifier", runs.resolve_run_name(discovery.runs_dir(), name), config=preset,
                        overrides=overrides)


def evaluation_form() -> None:
    classifiers = discovery.with_model(discovery.of_kind(user_runs, "classifier"))
    st.markdown("**Evaluation and explanation** (`melanet evaluate`, `explain`, `embed`)")
    if not classifiers:
        ui.no_runs("trained classifiers in your runs folder", "Train a classifier first (form above).")
        return
    with st.form("evaluation_form"):
        entry = ui.pick_run(classifiers, "Classifier run", key="evaluation_run")
        choices = [name for name in stages.STEP_STATUS_KEYS if stages.STAGES[name].launchable]
        stage = st.radio("Step", choices, horizontal=True, key="evaluation_stage",
                         format_func=lambda name: stages.STAGES[name].summary)
        if st.form_submit_button("Launch"):
            _launch(stage, entry.path)


def _watch_choices() -> list[str]:
    labels = [entry.label for entry in user_runs]
    watched = st.session_state.get("watched_run")
    if watched:
        for entry in user_runs:
            if str(entry.path) == watched and entry.label in labels:
                labels.remove(entry.label)
                labels.insert(0, entry.label)
    return labels


@st.fragment(run_every=POLL_SECONDS)
def progress_panel(run_path: Path) -> None:
    """Polls the run folder: state, epoch, ETA, losses, latest sample grid, log; Stop and Resume."""
    status = jobs.read_status(run_path)
    step = jobs.step_state(status)  # evaluate / explain / embed launched on a trained run
    state = jobs.display_state(status)
    columns = st.columns(4)
    columns[0].metric("State", state)
    columns[1].metric("Stage", status.get("job_stage") if step is not None else status.get("stage", "-"))
    columns[2].metric("Epoch", f"{status.get('epoch', '-')}/{status.get('epochs', '-')}")
    eta = status.get("eta_seconds")
    columns[3].metric("ETA", "-" if eta is None or state != "running" or step is not None
                      else str(dt.timedelta(seconds=int(eta))))
    if step is not None:
        entry = step[1]
        total = entry.get("total") or 0
        fraction = 1.0 if state == "done" else (float(entry.get("done", 0)) / total if total else 0.0)
        st.progress(min(1.0, fraction), text=str(entry.get("message") or f"{status.get('job_stage')}: {state}"))
    else:
        st.progress(float(status.get("progress") or 0.0), text=str(status.get("message", "")))

    stop_column, resume_column, _ = st.columns([1, 1, 4])
    if stop_column.button("Stop", disabled=not status.get("alive"), key="stop_button"):
        try:
            jobs.stop(run_path)
            st.toast("Stop sent: the stage saves its checkpoint and ends as 'stopped'.")
        except runs.RunError as error:
            st.error(str(error))
    if resume_column.button("Resume", disabled=not jobs.can_resume(status), key="resume_button"):
        try:
            jobs.resume(run_path, cwd=discovery.ROOT)
            st.toast("Resumed from the last checkpoint.")
        except runs.RunError as error:
            st.error(f"Refused: {error}")

    frame = artifacts.history(run_path)
    grids = artifacts.sample_grids(run_path)
    left, right = st.columns([3, 2])
    with left:
        if frame.empty:
            st.caption("No finished epoch yet.")
        else:
            st.plotly_chart(charts.history_figure(frame, "Per-epoch history"), key="history_chart")
    with right:
        if grids:
            epoch, path = grids[-1]
            ui.show_image(path, f"epoch {epoch}: benign input | synthetic malignant | reconstruction")
    log = jobs.log_tail(run_path, 12)
    if log:
        with st.expander("Log (job.log)"):
            st.code(log, language=None)


tabs = st.tabs(["GAN training", "Synthesis", "Classifier", "Evaluation"])
with tabs[0]:
    gan_form()
with tabs[1]:
    synthesis_form()
with tabs[2]:
    classifier_form()
with tabs[3]:
    evaluation_form()

st.subheader("Progress")
entries = ui.all_runs()  # a launch above may have made a new run folder
user_runs = [entry for entry in entries if not entry.read_only]
choices = _watch_choices()
if not choices:
    ui.no_runs("runs in your runs folder", "Launch a stage above; its progress appears here.")
else:
    watched_label = st.selectbox("Run to watch", choices, key=f"watch_{choices[0]}")
    progress_panel(next(entry.path for entry in user_runs if entry.label == watched_label))
