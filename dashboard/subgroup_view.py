"""Performance by subgroup (``subgroups.json`` of ``melanet evaluate``) as a forest plot and a table.

Each group of each variable (sex, age band, anatomic site) is one row: its AUC with the 95 % DeLong
interval; a group with fewer than 10 images of either class is drawn hollow and labelled "small", a
one-class group has no point and says why. The caption of each variable gives the chi-square test of
whether its groups' AUCs differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from melanet.runs import layout
from melanet.evaluation import subgroups

VARIABLE_NAMES = {"sex": "Sex", "age": "Age (years)", "site": "Anatomic site"}


def read(folder: Path) -> dict[str, Any] | str | None:
    """The folder's ``subgroups.json`` (None when there is none, a problem line when it is unreadable)."""
    return subgroups.read(Path(folder) / layout.SUBGROUPS_FILE)


def _label(variable: str, group: dict[str, Any]) -> str:
    small = ", small" if group.get("small") else ""
    return f"{VARIABLE_NAMES.get(variable, variable)}: {group['name']} (n {group['n']}, {group['n_malignant']} mal.{small})"


def forest_figure(summary: dict[str, Any], overall_auc: float | None = None, title: str = "") -> go.Figure:
    """AUC and 95 % interval of every group, one row each, variables in order, top to bottom."""
    rows = [(variable, group) for variable, block in summary["variables"].items() for group in block["groups"]]
    labels = [_label(variable, group) for variable, group in rows]
    figure = go.Figure()
    for small, name, symbol in ((False, "AUC (95 % CI)", "square"), (True, "small group (< 10 of a class)", "square-open")):
        chosen = [(label, group) for label, (_, group) in zip(labels, rows) if group.get("auc") is not None
                  and bool(group.get("small")) == small]
        if not chosen:
            continue
        figure.add_trace(go.Scatter(
            x=[group["auc"] for _, group in chosen], y=[label for label, _ in chosen], mode="markers", name=name,
            marker={"symbol": symbol, "size": 10, "color": "#1f77b4"},
            error_x={"type": "data", "symmetric": False,
                     "array": [group["ci_high"] - group["auc"] for _, group in chosen],
                     "arrayminus": [group["auc"] - group["ci_low"] for _, group in chosen]},
            hovertemplate="%{y}<br>AUC %{x:.3f}<extra></extra>"))
    for label, (_, group) in zip(labels, rows):
        if group.get("auc") is None:
            figure.add_annotation(x=0.5, y=label, text=group.get("auc_reason", "no AUC"), showarrow=False,
                                  font={"color": "#777"})
    if overall_auc is not None:
        figure.add_vline(x=overall_auc, line_dash="dash", line_color="#d62728",
                         annotation_text=f"all images {overall_auc:.3f}", annotation_position="top")
    figure.add_vline(x=0.5, line_dash="dot", line_color="#999")
    figure.update_layout(title=title, xaxis={"title": "AUC", "range": [0, 1.02]},
                         yaxis={"categoryorder": "array", "categoryarray": labels[::-1], "type": "category"},
                         height=120 + 32 * len(labels), margin={"l": 10, "r": 10, "t": 50, "b": 40},
                         legend={"orientation": "h", "y": -0.15})
    return figure


def _proportion(block: dict[str, Any]) -> str:
    if block.get("value") is None:
        return "-"
    return f"{100 * block['value']:.1f} [{100 * block['ci_low']:.1f}, {100 * block['ci_high']:.1f}]"


def table(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per group: counts, AUC with its interval, sensitivity and specificity (Wilson) at the threshold."""
    rows = []
    for variable, block in summary["variables"].items():
        for group in block["groups"]:
            auc = "-" if group.get("auc") is None else \
                f"{100 * group['auc']:.1f} [{100 * group['ci_low']:.1f}, {100 * group['ci_high']:.1f}]"
            rows.append({"variable": VARIABLE_NAMES.get(variable, variable), "group": group["name"], "n": group["n"],
                         "malignant": group["n_malignant"], "AUC %": auc,
                         "sensitivity %": _proportion(group["sensitivity"]),
                         "specificity %": _proportion(group["specificity"]),
                         "note": group.get("auc_reason") or ("small: < 10 of a class" if group.get("small") else "")})
    return pd.DataFrame(rows)


def test_lines(summary: dict[str, Any]) -> list[str]:
    """One plain line per variable: does the AUC differ across its groups?"""
    lines = []
    for variable, block in summary["variables"].items():
        test = block["test"]
        name = VARIABLE_NAMES.get(variable, variable)
        if test.get("p") is None:
            lines.append(f"{name}: no test ({test.get('reason', 'not enough groups')}).")
        else:
            lines.append(f"{name}: chi-square {test['chi_square']:.2f} on {test['df']} df, p = {test['p']:.3g} "
                         f"(groups {', '.join(test['groups'])}" + (f"; left out: {', '.join(test['left_out'])}"
                                                                   if test["left_out"] else "") + ").")
    return lines


def show(sources: list[tuple[str, Path, float | None]]) -> None:
    """Streamlit: a forest plot, test lines and table for each (title, folder, overall AUC) with a
    ``subgroups.json``; one caption when none has one."""
    import streamlit as st

    shown = 0
    for title, folder, overall in sources:
        summary = read(folder)
        if summary is None:
            continue
        shown += 1
        if isinstance(summary, str):
            st.error(summary)
            continue
        st.plotly_chart(forest_figure(summary, overall, f"{title}: AUC by subgroup"), key=f"subgroups_{folder}")
        st.caption(f"Threshold {summary['threshold']:g} for sensitivity and specificity; 95 % intervals (AUC: DeLong, "
                   f"proportions: Wilson); {summary['n_with_metadata']} of {summary['n']} images have metadata. "
                   + " ".join(test_lines(summary)))
        st.dataframe(table(summary), hide_index=True)
    if not shown:
        st.caption("No subgroup figures: none of these data folders records age, sex or anatomic site "
                   "(ISIC 2017, 2019 and 2020 do; ISIC-2016 and the bundled sample hold labels only).")
