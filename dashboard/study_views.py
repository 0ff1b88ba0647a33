"""Reader studies on the dashboard: where they are found, and their results as a figure and tables.

Studies are read from the user's studies folder (``MELANET_STUDIES_DIR``, default ``<repo>/studies``)
and from shipped ones under the models folder (``models/demo/studies/NAME``). A shipped study is
read-only: the first reader's answer goes to a copy in the user's folder, which then replaces it in
the list. No Streamlit here: plain values in, plain values out.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from melanet.common import formatting
from melanet.studies import study as study_module

from dashboard import charts, discovery

PHASE_SYMBOLS = {"unaided": "circle", "aided": "diamond"}
PHASE_COLOURS = {"unaided": "#2c7fb8", "aided": "#d7301f"}


def studies_dir() -> Path:
    """Where readers' answers are written (``MELANET_STUDIES_DIR``, default ``<repo>/studies``)."""
    return Path(os.environ.get("MELANET_STUDIES_DIR") or discovery.ROOT / study_module.DEFAULT_STUDIES_DIR)


@dataclasses.dataclass(frozen=True)
class StudyEntry:
    """One study as the page lists it: ``label`` what people pick, ``shipped`` read-only."""

    path: Path
    label: str
    name: str
    shipped: bool


def discover() -> list[StudyEntry]:
    """The user's studies, then shipped ones that have no copy among them."""
    entries: list[StudyEntry] = []
    names: set[str] = set()
    user_root = studies_dir()
    for path in study_module.list_studies(user_root):
        name = path.relative_to(user_root).as_posix()
        names.add(name)
        entries.append(StudyEntry(path, f"studies/{name}", name, shipped=False))
    models = discovery.models_dir()
    for path in study_module.list_studies(models):
        if path.parent.name == study_module.DEFAULT_STUDIES_DIR.name and path.name not in names:
            entries.append(StudyEntry(path, f"models/{path.relative_to(models).as_posix()}", path.name, shipped=True))
    return entries


def with_interval(value: float | None, interval: list[float | None] | None) -> str:
    """``83.3% [43.6, 97.0]``: a proportion and its CI, in percent."""
    if value is None:
        return "n/a"
    if not interval:
        return formatting.percent(value)
    return formatting.percent(value) + formatting.percent_bounds(interval[0], interval[1])


def number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def readers_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per reader and phase, then the model on all cases; every cell a string."""
    rows = []
    for entry in results["readers"]:
        test = entry["delong"]
        rows.append({
            "reader": entry["reader"], "phase": entry["phase"], "cases": f"{entry['n']} of {results['n_cases']}",
            "sensitivity": with_interval(entry["sensitivity"], entry["sensitivity_ci"]),
            "specificity": with_interval(entry["specificity"], entry["specificity_ci"]),
            "rating AUC": number(entry["auc"]), "kappa vs model": number(entry["kappa_vs_model"]),
            "model AUC (same cases)": number(entry["model"]["auc"]),
            "model sens. at reader spec.": formatting.percent(entry["model_sensitivity_at_reader_specificity"]),
            "model spec. at reader sens.": formatting.percent(entry["model_specificity_at_reader_sensitivity"]),
            "DeLong reader - model": (f"{number(test['delta_auc'])} ({formatting.p_value(test['p'])})"
                                      if test.get("available") else "n/a"),
        })
    model = results["model"]
    rows.append({"reader": "model", "phase": f"threshold {results['threshold']['value']:.4g}",
                 "cases": f"{model['n']} of {results['n_cases']}",
                 "sensitivity": with_interval(model["sensitivity"], model["sensitivity_ci"]),
                 "specificity": with_interval(model["specificity"], model["specificity_ci"]),
                 "rating AUC": number(model["auc"]), "kappa vs model": "", "model AUC (same cases)": "",
                 "model sens. at reader spec.": "", "model spec. at reader sens.": "", "DeLong reader - model": ""})
    return pd.DataFrame(rows)


def sample_size_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``melanet.studies.sample_size`` rows as text: readers, cases needed, the power they give."""
    return pd.DataFrame([{
        "readers": str(row["readers"]),
        "cases needed": "not reachable" if row["cases"] is None else str(row["cases"]),
        "power": (f"at most {row['power_limit']:.2f} with unlimited cases" if row["cases"] is None
                  else f"{row['power']:.3f}"),
    } for row in rows])


def changes_table(results: dict[str, Any]) -> pd.DataFrame:
    """Aided vs unaided per reader; every cell a string."""
    rows = [{"reader": change["reader"], "cases in both": str(change["n"]), "changed": str(change["changed"]),
             "right -> wrong": str(change["right_to_wrong"]), "wrong -> right": str(change["wrong_to_right"]),
             "towards the model": str(change["changed_towards_model"]),
             "change in sensitivity": _signed_percent(change["delta_sensitivity"]),
             "change in specificity": _signed_percent(change["delta_specificity"]),
             "change in rating AUC": number(change["delta_auc"])}
            for change in results["aided_vs_unaided"]]
    return pd.DataFrame(rows)


def _signed_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f} pts"


def results_figure(results: dict[str, Any]) -> go.Figure:
    """The model's ROC on the study's cases; each reader a point with Wilson CIs as bars, the mean
    reader per phase, and an arrow from each reader's unaided point to the aided one."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="chance", hoverinfo="skip"))
    model = results["model"]
    figure.add_trace(go.Scatter(x=model["roc"]["fpr"], y=model["roc"]["tpr"], mode="lines", line=dict(shape="hv"),
                                name=f"model ROC (AUC {number(model['auc'])})"))
    if model["specificity"] is not None and model["sensitivity"] is not None:
        figure.add_trace(go.Scatter(x=[1 - model["specificity"]], y=[model["sensitivity"]], mode="markers",
                                    marker=dict(symbol="x", size=13, color="black"), name="model at its threshold"))
    points: dict[tuple[str, str], tuple[float, float]] = {}
    for phase in results["phases"]:
        entries = [entry for entry in results["readers"] if entry["phase"] == phase
                   and entry["sensitivity"] is not None and entry["specificity"] is not None]
        if entries:
            figure.add_trace(_reader_points(entries, phase))
        for entry in entries:
            points[(entry["reader"], phase)] = (1 - entry["specificity"], entry["sensitivity"])
        mean = results["mean_reader"].get(phase) or {}
        if mean.get("sensitivity") is not None and mean.get("specificity") is not None:
            figure.add_trace(go.Scatter(x=[1 - mean["specificity"]], y=[mean["sensitivity"]], mode="markers",
                                        marker=dict(symbol="star", size=18, color=PHASE_COLOURS[phase],
                                                    line=dict(color="black", width=1)),
                                        name=f"mean reader, {phase} ({len(mean['readers'])})"))
    for (reader, phase), (x, y) in points.items():
        if phase == "aided" and (reader, "unaided") in points:
            start_x, start_y = points[(reader, "unaided")]
            figure.add_annotation(x=x, y=y, ax=start_x, ay=start_y, xref="x", yref="y", axref="x", ayref="y",
                                  showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor="#555", text="")
    figure.update_layout(xaxis_title="1 - specificity", yaxis_title="sensitivity", height=560,
                         xaxis=dict(range=[-0.02, 1.02]), yaxis=dict(range=[-0.02, 1.04]),
                         legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom"),
                         margin=dict(l=10, r=10, t=30, b=10))
    return figure


def _reader_points(entries: list[dict[str, Any]], phase: str) -> go.Scatter:
    x = [1 - entry["specificity"] for entry in entries]
    y = [entry["sensitivity"] for entry in entries]
    # 1 - specificity's interval is the mirror of specificity's: [1 - high, 1 - low]
    x_plus = [(1 - entry["specificity_ci"][0]) - value for entry, value in zip(entries, x)]
    x_minus = [value - (1 - entry["specificity_ci"][1]) for entry, value in zip(entries, x)]
    y_plus = [entry["sensitivity_ci"][1] - value for entry, value in zip(entries, y)]
    y_minus = [value - entry["sensitivity_ci"][0] for entry, value in zip(entries, y)]
    return go.Scatter(
        x=x, y=y, mode="markers+text", text=[charts.plain(entry["reader"]) for entry in entries],
        textposition="top right",
        marker=dict(symbol=PHASE_SYMBOLS[phase], size=11, color=PHASE_COLOURS[phase]), name=f"readers, {phase}",
        error_x=dict(type="data", symmetric=False, array=x_plus, arrayminus=x_minus, thickness=1, width=3),
        error_y=dict(type="data", symmetric=False, array=y_plus, arrayminus=y_minus, thickness=1, width=3),
    )
