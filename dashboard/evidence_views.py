"""Compare page sections that settle a comparison: paired tests, calibration, repeated seeds, model cards.

Everything is read from run folders (``predictions.csv``, ``metrics.json``, ``seeds.json``,
``model_card.md``) and computed by ``melanet.evaluation``; the figures are plain plotly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from melanet.common import formatting
from melanet.runs import layout, runs
from melanet.evaluation import paired, uncertainty
from melanet.reproduce import seeds_summary as seeds_module

from dashboard import charts, discovery, glossary, ui

SIGNIFICANT = 0.05  # Holm-adjusted p below this is marked in the matrix's cell


def short_names(comparison: dict[str, Any], entries: Sequence[discovery.RunEntry]) -> list[str]:
    """Method names for the matrix axes; the run's label where two runs share a method."""
    methods = [item["method"] for item in comparison["runs"]]
    return [method if methods.count(method) == 1 else entry.label for method, entry in zip(methods, entries)]


def _axis_label(name: str) -> str:
    """A matrix axis label in full, broken before ' + ' and ' (' so it fits beside the cells."""
    return charts.plain(name).replace(" + ", "<br>+ ").replace(" (", "<br>(")


def comparison_of(entries: Sequence[discovery.RunEntry]) -> dict[str, Any] | str:
    """The paired comparison of the runs, or why there is none (a sentence).

    The family of the Holm correction is the one ``melanet compare --reference melanet`` writes into
    ``comparison.json`` (and the README and model cards quote): MelaNet against each other run when a
    MelaNet run is among ``entries``; every pair otherwise.
    """
    if len(entries) < 2:
        return "Choose two or more runs for paired tests."
    missing = [entry.label for entry in entries if not (entry.path / layout.PREDICTIONS_FILE).is_file()]
    if missing:
        return f"No paired tests: {', '.join(missing)} has no {layout.PREDICTIONS_FILE}."
    try:
        scored = [paired.load_scored_run(entry.path) for entry in entries]
        references = [index for index, item in enumerate(scored) if item.method == "MelaNet"]
        return paired.compare_scored(scored, reference=references[0] if len(references) == 1 else None)
    except (runs.RunError, ValueError) as error:
        return f"No paired tests: {error}"


def delta_matrix_figure(comparison: dict[str, Any], names: Sequence[str]) -> go.Figure:
    """Cell (row, column) = AUC(row) - AUC(column) with DeLong p and Holm-adjusted p in its text (13 px);
    a pair that differs after Holm (p < 0.05) is bold with a '*'; pairs outside the family stay blank."""
    count = len(names)
    deltas: list[list[float | None]] = [[None] * count for _ in range(count)]
    texts = [["" for _ in range(count)] for _ in range(count)]
    index = {item["run"]: position for position, item in enumerate(comparison["runs"])}
    for pair in comparison["pairs"]:
        first, second = index[pair["a"]], index[pair["b"]]
        significant = pair["p_holm"] < SIGNIFICANT
        for row, column, sign in ((first, second, 1), (second, first, -1)):
            deltas[row][column] = sign * pair["delta_auc"]
            text = (f"Δ {sign * pair['delta_auc']:+.3f}{' *' if significant else ''}<br>p {formatting.p_cell(pair['p'])}"
                    f"<br>Holm {formatting.p_cell(pair['p_holm'])}")
            texts[row][column] = f"<b>{text}</b>" if significant else text
    values = [abs(value) for row in deltas for value in row if value is not None]
    limit = max([0.05, *values])
    labels = [_axis_label(name) for name in names]
    figure = go.Figure(go.Heatmap(
        z=deltas, x=labels, y=labels, text=texts, texttemplate="%{text}", textfont=dict(size=13),
        zmin=-limit, zmax=limit, colorscale="RdBu", colorbar=dict(title="ΔAUC"), hoverongaps=False,
        hovertemplate="%{y} − %{x}<br>%{text}<extra></extra>"))
    figure.update_layout(height=max(420, 130 * count + 120), margin=dict(l=10, r=10, t=40, b=10),
                         yaxis=dict(autorange="reversed", automargin=True, tickfont=dict(size=13)),
                         xaxis=dict(automargin=True, tickfont=dict(size=13), tickangle=0),
                         title="AUC of row − AUC of column (DeLong); * bold: differs after Holm, p < 0.05")
    return figure


def render_paired(entries: Sequence[discovery.RunEntry]) -> None:
    """The matrix of AUC differences and p-values, or the reason there is none."""
    comparison = comparison_of(entries)
    if isinstance(comparison, str):
        st.info(comparison)
        return
    names = short_names(comparison, entries)
    st.plotly_chart(delta_matrix_figure(comparison, names), key="paired_matrix")
    st.caption(" ".join(glossary.line(term) for term in ("DeLong", "Holm", "McNemar")))
    significant = [pair for pair in comparison["pairs"] if pair["p_holm"] < 0.05]
    st.caption(f"{comparison['n_images']} test images ({comparison['n_malignant']} malignant), the same for every run. "
               f"Two-sided DeLong test; {paired.family_text(comparison)} (as in comparison.json). "
               + ("No difference survives the Holm correction." if not significant else
                  f"{len(significant)} pair(s) differ at Holm p < 0.05."))
    rows = [{"A": names[[item["run"] for item in comparison["runs"]].index(pair["a"])],
             "B": names[[item["run"] for item in comparison["runs"]].index(pair["b"])],
             "ΔAUC (A−B) [95% CI]": f"{pair['delta_auc']:+.3f} [{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}]",
             "p (DeLong)": formatting.p_cell(pair["p"]), "p (Holm)": formatting.p_cell(pair["p_holm"]),
             "McNemar p, sensitivity": formatting.p_cell(pair["mcnemar"]["sensitivity"]["p"]),
             "melanomas: who was right": paired.discordant_text(pair, "sensitivity"),
             "McNemar p, specificity": formatting.p_cell(pair["mcnemar"]["specificity"]["p"]),
             "benign: who was right": paired.discordant_text(pair, "specificity")} for pair in comparison["pairs"]]
    # st.table wraps long cells ("melanomas: who was right") within the page; a grid would cut them off at 1280 px
    with st.container(key="paired_table"):
        st.table(pd.DataFrame(rows).set_index("A"))


def reliability_figure(curves: Sequence[tuple[str, list[dict[str, Any]]]],
                       colours: dict[str, str] | None = None) -> go.Figure:
    """Observed fraction malignant against mean predicted probability per bin; marker size ~ count;
    ``colours``: curve name -> colour (the run's colour on the ROC figure)."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="perfect calibration", hoverinfo="skip"))
    for name, bins in curves:
        filled = [entry for entry in bins if entry["count"]]
        shown = charts.plain(name)
        colour = (colours or {}).get(name)
        figure.add_trace(go.Scatter(
            x=[entry["mean_probability"] for entry in filled], y=[entry["observed"] for entry in filled],
            mode="lines+markers", name=shown, customdata=[entry["count"] for entry in filled],
            marker=dict(size=[6 + min(18, entry["count"]) for entry in filled], color=colour),
            line=dict(color=colour),
            hovertemplate="mean p %{x:.2f}, observed %{y:.2f}, %{customdata} images<extra>"
                          + shown.replace("%", "%%") + "</extra>"))
    figure.update_layout(xaxis_title="mean predicted probability of melanoma (bin of 0.1)",
                         yaxis_title="observed fraction malignant", height=420,
                         xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]), margin=dict(l=10, r=10, t=30, b=10))
    return figure


def _interval(block: dict[str, Any], key: str) -> str:
    value = block.get(key)
    bounds = (block.get("confidence_intervals") or {}).get(key) or {}
    if value is None:
        return "n/a"
    if bounds.get("low") is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{bounds['low']:.3f}, {bounds['high']:.3f}]"


def _ece_reference(figures: dict[str, Any]) -> str:
    """"0.104 (95th pct 0.152): observed within" or "not computed" for older metrics.json."""
    reference = figures.get("ece_if_calibrated")
    if not reference:
        return "not computed (re-run evaluate --from-predictions)"
    verdict = "observed within: no evidence of miscalibration" if reference.get("ece_within") else "observed above"
    return f"{reference['mean']:.3f} (95th pct {reference['p95']:.3f}): {verdict}"


CALIBRATION_VIEWS = ("raw", "calibrated")


def render_calibration(entries: Sequence[discovery.RunEntry], metrics_of, colours: dict[str, str] | None = None) -> None:
    """Brier and ECE (raw and calibrated, with intervals) and the reliability diagram of each run: one
    line per run, raw or calibrated probabilities as the toggle says, in the run's colour."""
    view = st.radio("Probabilities", CALIBRATION_VIEWS, horizontal=True, key="calibration_view",
                    format_func={"raw": "raw (as the model outputs them)",
                                 "calibrated": "calibrated (re-mapped on validation)"}.get,
                    help=glossary.help_for("calibration"))
    rows, curves, missing = [], [], []
    for entry in entries:
        block = (metrics_of(entry.path) or {}).get("calibration")
        if not block:
            missing.append(entry.label)
            continue
        calibrated = block.get("calibrated") or {}
        rows.append({"Run": entry.label, "Brier (raw)": _interval(block["raw"], "brier"),
                     "ECE (raw)": _interval(block["raw"], "ece"),
                     "ECE a perfectly calibrated model gets here": _ece_reference(block["raw"]),
                     "Calibration": block["method"],
                     "Brier (calibrated)": _interval(calibrated, "brier") if calibrated else "-",
                     "ECE (calibrated)": _interval(calibrated, "ece") if calibrated else "-"})
        if view == "raw":
            curves.append((entry.label, block["raw"]["reliability"]))
        elif calibrated:
            curves.append((entry.label, calibrated["reliability"]))
    if rows:
        with st.container(key="calibration_table"):  # a wrapping table: a grid would cut its right columns off
            st.table(pd.DataFrame(rows).set_index("Run"))
        st.plotly_chart(reliability_figure(curves, colours), key="reliability_chart")
        if view == "calibrated" and len(curves) < len(rows):
            st.caption("Runs without a calibration map have no calibrated line.")
        st.caption("Brier: mean squared error of the probability; ECE: count-weighted gap between the "
                   "observed fraction and the mean probability over 10 bins; 95 % bootstrap intervals. "
                   "The calibration map is fitted on the validation predictions only and leaves the AUC unchanged.")
    if missing:
        st.caption(f"No calibration figures yet for {', '.join(missing)}: run "
                   "`melanet evaluate --run RUN --from-predictions` (no model weights needed).")


def seeds_folders(entries: Sequence[discovery.RunEntry]) -> list[discovery.RunEntry]:
    """Folders holding a repeated reproduction's ``seeds.json``: a listed run, or the folder two levels
    above one (``DIR/seed-<S>/<classifier>``, for a summary written without a status file)."""
    found: dict[Path, discovery.RunEntry] = {}
    for entry in entries:
        label_parts = entry.label.split("/")
        for up in range(3):
            if up >= len(label_parts):
                break
            folder = entry.path.parents[up - 1] if up else entry.path
            if folder not in found and (folder / layout.SEEDS_JSON_FILE).is_file():
                label = "/".join(label_parts[:len(label_parts) - up])
                found[folder] = discovery.RunEntry(folder, label, entry.source, "results", "reproduce-seeds", "done")
    return sorted(found.values(), key=lambda entry: entry.label)


SEED_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")


SEEDS_AXIS_MARGIN = 0.05  # AUC below the lowest and above the highest value drawn


def seeds_axis_range(summary: dict[str, Any], margin: float = SEEDS_AXIS_MARGIN) -> list[float]:
    """[low, high] of the seeds chart's AUC axis: every seed's AUC and each mean +- SD, with ``margin``
    on both sides, within [0, 1]."""
    values = [entry["methods"][method["folder"]]["auc"] for entry in summary["per_seed"] for method in summary["methods"]]
    for method in summary["methods"]:
        sd = method["auc"]["sd"] or 0
        values += [method["auc"]["mean"] - sd, method["auc"]["mean"] + sd]
    values = [value for value in values if value is not None]
    if not values:
        return [0.0, 1.0]
    return [max(0.0, min(values) - margin), min(1.0, max(values) + margin)]


def seeds_figure(summary: dict[str, Any], method_colours: dict[str, str] | None = None) -> go.Figure:
    """Mean AUC per method (a wide mark, +- SD, in the colour of that method's run elsewhere on the page) with
    each seed's AUC as a dark point beside it (one marker shape per seed). Marks, not bars: the axis fits the
    data (:func:`seeds_axis_range`), and a bar would read as a length from an axis that does not start at 0."""
    methods = summary["methods"]
    names = [_axis_label(method["method"]) for method in methods]
    colours = [(method_colours or {}).get(method["method"], "#999999") for method in methods]
    figure = go.Figure(go.Scatter(
        x=names, y=[method["auc"]["mean"] for method in methods], name="mean over seeds (+- SD)", mode="markers",
        marker=dict(symbol="line-ew-open", size=44, line=dict(width=4, color=colours), color=colours),
        error_y=dict(type="data", array=[method["auc"]["sd"] or 0 for method in methods], thickness=2, width=10)))
    for number, entry in enumerate(summary["per_seed"]):
        figure.add_trace(go.Scatter(
            x=names, y=[entry["methods"][method["folder"]]["auc"] for method in methods],
            mode="markers", name=f"seed {entry['seed']}",
            marker=dict(size=10, color="#333333", symbol=SEED_SYMBOLS[number % len(SEED_SYMBOLS)])))
    figure.update_layout(yaxis_title="test AUC", yaxis=dict(range=seeds_axis_range(summary)), height=420,
                         margin=dict(l=10, r=10, t=30, b=10))
    return figure


def render_seeds(entries: Sequence[discovery.RunEntry], method_colours: dict[str, str] | None = None) -> None:
    """A repeated reproduction: per-seed points over the mean bars, and its summary table."""
    folders = seeds_folders(entries)
    if not folders:
        st.caption("No repeated reproduction found: `melanet reproduce --config C --seeds 3 --out DIR` makes one.")
        return
    folder = ui.pick_run(folders, "Repeated reproduction", key="seeds_folder")
    try:
        summary = json.loads((folder.path / layout.SEEDS_JSON_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        st.warning(f"{folder.path / layout.SEEDS_JSON_FILE}: unreadable ({error})")
        return
    st.plotly_chart(seeds_figure(summary, method_colours), key="seeds_chart")
    low, high = seeds_axis_range(summary)
    st.caption(f"The AUC axis runs from {low:.2f} to {high:.2f}: {SEEDS_AXIS_MARGIN:g} below the lowest and above "
               "the highest value drawn (each seed's AUC, each mean +- SD), within [0, 1].")
    st.markdown(seeds_module.to_markdown(summary))


def render_model_card(entries: Sequence[discovery.RunEntry]) -> None:
    """The chosen run's ``model_card.md``, as generated from its files."""
    entries = list(entries)
    comparison = comparison_of(entries)
    reference = discovery.resolve_path(comparison["reference"]) if isinstance(comparison, dict) and \
        comparison.get("reference") else None
    first = next((number for number, entry in enumerate(entries) if reference is not None and
                  Path(entry.path).resolve() == reference.resolve()),
                 next((number for number, entry in enumerate(entries) if Path(entry.path).name == "melanet"), 0))
    entry = ui.pick_run(entries, "Model card of", key="model_card_run", index=first)
    path = Path(entry.path) / layout.MODEL_CARD_FILE
    if not path.is_file():
        st.info(f"{entry.label} has no model card yet: `melanet evaluate --run {entry.label} --from-predictions` "
                "writes one from the run's files.")
        return
    st.markdown(path.read_text(encoding="utf-8"))


@st.cache_data(show_spinner="Bootstrapping the risk-coverage intervals (once per run)...", max_entries=32)
def _risk_intervals(path: str, modified: float, threshold: float) -> dict[str, Any] | None:
    del modified  # part of the cache key only
    frame = pd.read_csv(path)
    if not {"label", "prob_malignant", uncertainty.RANGE_COLUMN} <= set(frame.columns) or frame.empty:
        return None
    return uncertainty.bootstrap_risk_coverage(frame["label"], frame["prob_malignant"], frame[uncertainty.RANGE_COLUMN],
                                               threshold)


def _signed(block: dict[str, Any]) -> str:
    if block.get("estimate") is None:
        return "-"
    interval = "" if block.get("low") is None else f" [{block['low']:+.3f}, {block['high']:+.3f}]"
    return f"{block['estimate']:+.3f}{interval}"


def render_risk_coverage(entries: Sequence[discovery.RunEntry], metrics_of, colours: dict[str, str] | None = None) -> None:
    """The risk-coverage curve of each run with 95 % bootstrap intervals, and the verdict on its flag: the
    bootstrap interval of AUC(flagged) - AUC(unflagged) (``uncertainty.bootstrap_risk_coverage``)."""
    curves, rows, verdicts, missing, thresholds, method = [], [], [], [], set(), ""
    for entry in entries:
        block = (metrics_of(entry.path) or {}).get("uncertainty") or {}
        if not block.get("available"):
            missing.append(entry.label)
            continue
        points = block["risk_coverage"]
        predictions_file = layout.RunLayout(entry.path).predictions
        intervals = (_risk_intervals(str(predictions_file), predictions_file.stat().st_mtime, float(block["threshold"]))
                     if predictions_file.is_file() else None)
        if intervals is not None:
            method = intervals["method"]
            bounds = {row["coverage"]: row for row in intervals["coverage"]}
            points = [dict(point, low=bounds.get(point["coverage"], {}).get("low"),
                           high=bounds.get(point["coverage"], {}).get("high")) for point in points]
            verdicts.append(f"- **{entry.label}**: {intervals['verdict']} AUC on all images minus on the most "
                            f"confident half: {_signed(intervals.get('all_minus_half') or {})}.")
        curves.append((entry.label, points))
        thresholds.add(block["threshold"])
        rows.append({"Run": entry.label, "Uncertain images": f"{block['n_uncertain']} of {block['n']}",
                     "AUC, uncertain": "-" if block.get("auc_uncertain") is None else f"{block['auc_uncertain']:.3f}",
                     "AUC, the others": "-" if block.get("auc_confident") is None else f"{block['auc_confident']:.3f}",
                     "Difference [95 % CI]": "-" if intervals is None else _signed(intervals["flagged_minus_unflagged"])})
    if curves:
        st.plotly_chart(charts.risk_coverage_figure(curves, colours), key="risk_coverage_chart")
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="uncertainty_table")
        if verdicts:
            st.markdown("**Does the flag pick out the harder images?** A useful flag gives the flagged images a lower "
                        "AUC than the others (difference below 0) and a curve that rises as coverage falls.",
                        help=glossary.help_for("uncertain", "risk-coverage", "bootstrap"))
            st.markdown("\n".join(verdicts))
        st.caption(f"Uncertain: the probability moves by more than {' / '.join(f'{value:g}' for value in sorted(thresholds))} (evaluation."
                   "uncertain_spread) over the 8 flips and 90-degree rotations of the image. "
                   + glossary.line("risk-coverage")
                   + (f" Bars and intervals: 95 %, {method} of the test images (each class resampled apart)." if method else ""))
    if missing:
        st.caption(f"No uncertainty figures for {', '.join(missing)}: its predictions.csv has no spread over the 8 "
                   "views; re-evaluate it with `melanet evaluate --run RUN` (the model predicts the test images again).")
