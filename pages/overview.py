"""Overview: the data set (Figure 4), every run with its state and key metrics, and what to do next."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from melanet import config as config_module
from melanet.runs import jobs, layout
from melanet.data import errors as data_errors

from dashboard import artifacts, charts, demo_summary, discovery, glossary, navigation, ui

navigation.through_app()  # first: a page Streamlit started without app.py runs app.py

MISSING = "–"  # a figure a row does not have (a GAN run has no AUC): a dash, explained in the column's tooltip
KIND_LABELS = {"gan": "GAN (stage 1)", "classifier": "classifier (stage 2)",
               "results": "results only (tables, no model)", "other": "other"}

st.title("MelaNet dashboard")
st.markdown("**What this tool is for:** to rebuild, and check, a published research method that tells melanoma "
            "from benign skin lesions in dermoscopy images. The method makes artificial melanoma images to add "
            "to the few real ones, then trains an image classifier on both. Here you can train it, compare it "
            "with simpler classifiers on the same test images, see where it looks, and try it on an image.",
            help=glossary.help_for("CycleGAN", "VGG-GAP", "focal loss"))
st.error(f"**Not for clinical use.** {ui.NOT_A_DEVICE}", icon=":material/block:")

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
        st.caption(glossary.line("threshold of 128 bits"))
    else:
        st.caption(f"Duplicates: none within {found['threshold']} of 128 bits (docs/duplicates.md).",
                   help=glossary.help_for("threshold of 128 bits"))


def _figure(value) -> str:
    return MISSING if value is None else f"{value:.3f}"


def runs_rows() -> pd.DataFrame:
    """One row per run on disk: kind, state, epoch and key figures."""
    rows = []
    for entry in entries:
        status = jobs.read_status(entry.path)
        values = artifacts.key_metrics(entry.path)
        state = "interrupted" if status.get("interrupted") else entry.state
        epoch = artifacts.epochs_shown(entry.path, status) or MISSING
        rows.append({
            "run": entry.label, "kind": KIND_LABELS.get(entry.kind, entry.kind), "stage": entry.stage or MISSING,
            "state": state, "epoch": epoch, "AUC": _figure(values.get("auc")),
            "sensitivity": _figure(values.get("sensitivity")), "specificity": _figure(values.get("specificity")),
            "source": entry.source, "updated": status.get("updated_at") or MISSING,
        })
    return pd.DataFrame(rows)


def runs_section(table: pd.DataFrame) -> None:
    st.subheader("Runs")
    if table.empty:
        ui.no_runs("runs", "Start with a GAN training on the **Train** page, or run "
                   "`melanet reproduce --config configs/demo.yaml --run runs/demo` in a terminal. "
                   f"Looked in `{discovery.models_dir()}` and `{discovery.runs_dir()}`.")
    else:
        not_there = f"{MISSING}: not evaluated (a GAN or results-only row, or no metrics.json yet)"
        st.dataframe(table, hide_index=True, key="runs_table", column_config={
            "AUC": st.column_config.TextColumn(help=f"{glossary.TERMS['AUC']} {not_there}"),
            "sensitivity": st.column_config.TextColumn(help=f"{glossary.TERMS['sensitivity']} At threshold 0.5. {not_there}"),
            "specificity": st.column_config.TextColumn(help=f"{glossary.TERMS['specificity']} At threshold 0.5. {not_there}"),
            "epoch": st.column_config.TextColumn(help=f"epochs done / planned; {MISSING}: not a training run"),
            "kind": st.column_config.TextColumn(help="results only: a reproduction or comparison folder holding "
                                                     "Table 1 and paired tests; its classifiers are listed as their own rows"),
        })
    tables_section()


def tables_section() -> None:
    """Every Table 1 once (a copy of the same results, e.g. a seed folder of the shipped demo, is named
    beside it, not listed again), newest first; only the newest expanded."""
    found: dict[str, list] = {}
    for entry in discovery.of_kind(entries, "results"):
        table_file = layout.RunLayout(entry.path).table_markdown
        if table_file.is_file():
            text = table_file.read_text(encoding="utf-8")
            found.setdefault(hashlib.sha256(text.encode()).hexdigest(), []).append((table_file.stat().st_mtime, entry, text))
    groups = sorted(found.values(), key=lambda group: max(item[0] for item in group), reverse=True)
    for number, group in enumerate(groups):
        group.sort(key=lambda item: (item[1].source != "shipped", item[1].label))
        _, first, text = group[0]
        also = [item[1].label for item in group[1:]]
        with st.expander(f"Table 1 of {first.label}" + (f" (same results in {', '.join(also)})" if also else ""),
                         expanded=number == 0):
            st.markdown(text)


def next_steps(table: pd.DataFrame) -> None:
    """One step per page, worded for what is on disk now."""
    st.subheader("What to do next")
    gans = discovery.of_kind(entries, "gan")
    classifiers = discovery.of_kind(entries, "classifier")
    steps = []
    if not gans:
        steps.append("Train a CycleGAN (stage 1) on the **Train** page; its lesions then show on **Synthesized lesions**.")
    elif not discovery.with_file(gans, layout.SYNTHETIC_MANIFEST_FILE):
        steps.append("Synthesize malignant lesions from a finished GAN run (**Train** > Synthesis); they then show "
                     "on **Synthesized lesions**.")
    else:
        steps.append("Browse the synthetic lesions on **Synthesized lesions**.")
    if not classifiers:
        steps.append("Train a classifier on one of the four training sets (**Train** > Classifier), then compare "
                     "the four on **Compare**.")
    elif not discovery.with_file(classifiers, layout.METRICS_FILE):
        steps.append("Evaluate a trained classifier on the test split (**Train** > Evaluation), then compare on "
                     "**Compare**.")
    else:
        steps.append("Compare ROC curves, Table 1 metrics, paired tests and calibration on **Compare**.")
    evaluated = discovery.with_file(classifiers, layout.METRICS_FILE)
    steps.append("Test a trained classifier on another data set (ISIC 2017-2020) on **External validation**"
                 + ("." if evaluated else " once a classifier is evaluated."))
    steps.append("See where each classifier looks (heat maps of true and false calls) on **Grad-CAM**, and how it "
                 "groups real and synthetic lesions on **UMAP**.")
    steps.append("Score a dermoscopy image of your own on **Predict** (research only, not a diagnosis).")
    steps.append("Have dermatologists read the test cases blind, then with the model's help, on **Reader study**.")
    if not table.empty and (table["state"] == "interrupted").any():
        steps.append("Some runs were interrupted: resume them on **Train**.")
    if not any("**Train**" in step for step in steps):
        steps.append("Start runs of your own (other settings, your data) on **Train**; each stage runs as its own process.")
    st.markdown("\n".join(f"{number}. {text}" for number, text in enumerate(steps, 1)))


demo = demo_summary.sentence(discovery.of_kind(entries, "results"))
if demo:
    st.markdown(f"**What the shipped demo shows:** {demo}", help=glossary.help_for("AUC", "confidence interval"))
runs_table = runs_rows()
next_steps(runs_table)
data_section()
runs_section(runs_table)
