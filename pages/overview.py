"""Overview: the data set (Figure 4), every run with its state and key metrics, and what to do next."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from melanet import config as config_module
from melanet import jobs, layout
from melanet.data import errors as data_errors

from dashboard import artifacts, charts, discovery, ui

st.title("MelaNet dashboard")
st.caption("CycleGAN-synthesized malignant lesions balance the training set of a VGG-GAP focal-loss "
           "classifier (ISIC-2016). " + ui.NOT_A_DEVICE)

entries = ui.all_runs()


@st.cache_data(show_spinner=False, max_entries=8)
def _class_counts(root: str, modified: float):
    del modified
    return artifacts.class_counts(root)


def data_section() -> None:
    st.subheader("Data set")
    preset = discovery.CONFIGS_DIR / "demo.yaml"
    default_root = config_module.load_config(preset).data.root if preset.is_file() else "data/sample"
    root = st.text_input("Data folder (ISIC-2016 Part 3 layout or train|test/benign|malignant folders)",
                         value=default_root, key="overview_data_root")
    folder = discovery.resolve_path(root)
    if not folder.is_dir():
        st.warning(f"Data folder `{root}` not found. Download ISIC-2016 with "
                   "`melanet data download isic2016 --dest data/isic2016`, or use the bundled `data/sample`.")
        return
    try:
        counts, problems, layout = _class_counts(str(folder), folder.stat().st_mtime)
    except data_errors.DataError as error:
        st.error(f"Cannot read `{root}`: {error}")
        return
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.class_histogram(counts), key="class_histogram")
    with right:
        table = counts.assign(total=counts["benign"] + counts["malignant"])
        st.dataframe(table, hide_index=True)
        st.caption(f"Layout: {layout}. Malignant share of training: "
                   f"{table.loc[0, 'malignant'] / max(1, table.loc[0, 'total']):.0%} (the imbalance MelaNet fixes).")
        if problems:
            st.warning(f"{len(problems)} problem(s) found; `melanet data check {root}` lists them.")
    duplicates_line(root, folder, preset)


@st.cache_data(show_spinner=False, max_entries=8)
def _duplicates(root: str, preset: str, modified: float):
    del modified
    from melanet.data import duplicates

    data_config = config_module.load_config(preset if Path(preset).is_file() else None).data
    data_config = dataclasses.replace(data_config, root=root)
    return duplicates.scan(data_config).to_json()


def duplicates_line(root: str, folder, preset) -> None:
    """Duplicate pairs of the data folder (``melanet data check``); pairs with different labels in red."""
    try:
        with st.spinner("Looking for duplicate images"):
            found = _duplicates(str(folder), str(preset), folder.stat().st_mtime)
    except (data_errors.DataError, config_module.ConfigError, OSError) as error:
        st.caption(f"Duplicates: not checked ({error}).")
        return
    conflicts = [pair for pair in found["pairs"] if pair["different_labels"]]
    if conflicts:
        st.error(f"{len(conflicts)} duplicate pair(s) with different labels (one label of each is wrong): "
                 + "; ".join(f"{pair['first']['image_id']} / {pair['second']['image_id']}" for pair in conflicts[:5])
                 + f". `melanet data check {root}` lists them.")
    if found["threshold"] < 0:
        st.caption("Duplicates: not checked (data.duplicate_threshold = -1).")
    elif found["pairs"]:
        st.warning(f"{found['n_pairs']} duplicate pair(s) ({found['n_exact']} with identical pixels, "
                   f"{found['across_splits']} across splits): "
                   + "; ".join(f"{pair['first']['split']} {pair['first']['image_id']} = {pair['second']['split']} "
                               f"{pair['second']['image_id']}" for pair in found["pairs"][:5])
                   + f". Threshold {found['threshold']} of 128 bits (docs/duplicates.md).")
    else:
        st.caption(f"Duplicates: none within {found['threshold']} of 128 bits (docs/duplicates.md).")


def runs_section() -> pd.DataFrame:
    st.subheader("Runs")
    rows = []
    for entry in entries:
        status = jobs.read_status(entry.path)
        values = artifacts.key_metrics(entry.path)
        state = "interrupted" if status.get("interrupted") else entry.state
        epoch = f"{status.get('epoch')}/{status.get('epochs')}" if status.get("epochs") else ""
        rows.append({
            "run": entry.label, "kind": entry.kind, "stage": entry.stage, "state": state, "epoch": epoch,
            "AUC": values.get("auc"), "sensitivity": values.get("sensitivity"),
            "specificity": values.get("specificity"), "source": entry.source,
            "updated": status.get("updated_at", ""),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        ui.no_runs("runs", "Start with a GAN training on the **Train** page, or run "
                   "`melanet reproduce --config configs/demo.yaml --run runs/demo` in a terminal. "
                   f"Looked in `{discovery.models_dir()}` and `{discovery.runs_dir()}`.")
    else:
        st.dataframe(table, hide_index=True, key="runs_table",
                     column_config={name: st.column_config.NumberColumn(format="%.3f")
                                    for name in ("AUC", "sensitivity", "specificity")})
    for entry in discovery.of_kind(entries, "results"):
        table_file = layout.RunLayout(entry.path).table_markdown
        if table_file.is_file():
            with st.expander(f"Table 1 of {entry.label}", expanded=entry.source == "shipped"):
                st.markdown(table_file.read_text(encoding="utf-8"))
    return table


def next_steps(table: pd.DataFrame) -> None:
    st.subheader("What to do next")
    gans = discovery.of_kind(entries, "gan")
    classifiers = discovery.of_kind(entries, "classifier")
    steps = []
    if not gans:
        steps.append("Train a CycleGAN (stage 1) on the **Train** page.")
    elif not discovery.with_file(gans, layout.SYNTHETIC_MANIFEST_FILE):
        steps.append("Synthesize malignant lesions from a finished GAN run (**Train** > Synthesis).")
    else:
        steps.append("Browse the synthetic lesions on **Synthesized lesions**.")
    if not classifiers:
        steps.append("Train a classifier on one of the four training sets (**Train** > Classifier).")
    elif not discovery.with_file(classifiers, layout.METRICS_FILE):
        steps.append("Evaluate a trained classifier on the test split (**Train** > Evaluation).")
    else:
        steps.append("Compare ROC curves and Table 1 metrics on **Compare**; look at errors on **Grad-CAM**; "
                     "try your own image on **Predict**.")
    if not table.empty and (table["state"] == "interrupted").any():
        steps.append("Some runs were interrupted: resume them on **Train**.")
    st.markdown("\n".join(f"{number}. {text}" for number, text in enumerate(steps, 1)))


data_section()
next_steps(runs_section())
