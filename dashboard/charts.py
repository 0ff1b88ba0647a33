"""Plotly figures of the dashboard (pure functions of plain values)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

TAG_COLOURS = {"benign": "#2c7fb8", "malignant": "#d7301f", "synthetic": "#fd8d3c"}


def roc_figure(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float], float]],
    marker: tuple[str, float, float] | None = None,
) -> go.Figure:
    """ROC curves ``(name, fpr, tpr, auc)`` overlaid, AUC in the legend; ``marker`` = (text, fpr, tpr)."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="chance", hoverinfo="skip"))
    for name, fpr, tpr, area in curves:
        label = f"{name} (AUC {area:.3f})" if area is not None and not math.isnan(area) else name
        figure.add_trace(go.Scatter(x=list(fpr), y=list(tpr), mode="lines", name=label, line=dict(shape="hv")))
    if marker is not None:
        text, fpr, tpr = marker
        figure.add_trace(go.Scatter(x=[fpr], y=[tpr], mode="markers", name=text,
                                    marker=dict(size=13, color="black", symbol="x")))
    figure.update_layout(xaxis_title="1 - specificity (false positive rate)",
                         yaxis_title="sensitivity (true positive rate)", height=460,
                         xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]),
                         legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom"),
                         margin=dict(l=10, r=10, t=30, b=10))
    return figure


def confusion_figure(counts: dict[str, int], title: str) -> go.Figure:
    """A 2x2 confusion matrix: rows = true class, columns = predicted class."""
    values = [[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]]
    text = [[f"TN {counts['tn']}", f"FP {counts['fp']}"], [f"FN {counts['fn']}", f"TP {counts['tp']}"]]
    figure = go.Figure(go.Heatmap(z=values, x=["benign", "malignant"], y=["benign", "malignant"], text=text,
                                  texttemplate="%{text}", colorscale="Blues", showscale=False))
    figure.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", height=300,
                         yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=40, b=10))
    return figure


def history_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """One line per numeric history column (epoch on x); time and learning-rate columns left out."""
    figure = go.Figure()
    skip = {"epoch", "seconds", "learning_rate"}
    for column in frame.columns:
        if column not in skip:
            figure.add_trace(go.Scatter(x=frame["epoch"], y=frame[column], mode="lines+markers", name=column))
    figure.update_layout(title=title, xaxis_title="epoch", height=340, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def class_histogram(counts: pd.DataFrame) -> go.Figure:
    """Figure 4: benign and malignant image counts per split."""
    figure = go.Figure()
    for label in ("benign", "malignant"):
        figure.add_trace(go.Bar(x=counts["split"], y=counts[label], name=label, text=counts[label],
                                marker_color=TAG_COLOURS[label]))
    figure.update_layout(barmode="group", yaxis_title="images", height=320, margin=dict(l=10, r=10, t=30, b=10))
    return figure


def umap_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """UMAP scatter of one panel, one trace per tag; ``customdata`` carries the image id."""
    figure = go.Figure()
    for tag in ("benign", "malignant", "synthetic"):
        part = frame[frame["tag"] == tag]
        if part.empty:
            continue
        figure.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=f"{tag} ({len(part)})",
                                    customdata=part["image"], hovertemplate="%{customdata}<extra></extra>",
                                    marker=dict(size=6, color=TAG_COLOURS[tag], opacity=0.75)))
    figure.update_layout(title=title, height=430, xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False),
                         margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return figure


def distance_histogram(groups: dict[str, Sequence[float]], title: str) -> go.Figure:
    """Overlaid histograms of nearest-neighbour distances, one per group (e.g. synthetic -> real, real -> real)."""
    figure = go.Figure()
    colours = {"synthetic": TAG_COLOURS["synthetic"], "real": TAG_COLOURS["malignant"]}
    for name, values in groups.items():
        figure.add_trace(go.Histogram(x=list(values), name=name, opacity=0.6, histnorm="probability",
                                      marker_color=colours.get(name.split()[0])))
    figure.update_layout(barmode="overlay", title=title, xaxis_title="distance to the nearest real malignant image",
                         yaxis_title="share of images", height=320, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def lesion_focus_figure(groups: dict[str, dict], title: str) -> go.Figure:
    """Share of the Grad-CAM mass on the lesion per outcome, beside a uniform map's share (the lesion's area)."""
    names = [name for name in ("TP", "FN", "FP", "TN", "all") if name in groups]
    labels = [f"{name} (n={int(groups[name]['n'])})" for name in names]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=labels, y=[groups[name]["mass_share"] for name in names], name="Grad-CAM map",
                            marker_color="#d7301f"))
    figure.add_trace(go.Bar(x=labels, y=[groups[name]["area_fraction"] for name in names],
                            name="uniform map (the lesion's share of the image)", marker_color="#969696"))
    figure.update_layout(barmode="group", title=title, yaxis_title="share of the map on the lesion",
                         yaxis_range=[0, 1], height=340, margin=dict(l=10, r=10, t=50, b=10),
                         legend=dict(orientation="h", y=-0.2))
    return figure
