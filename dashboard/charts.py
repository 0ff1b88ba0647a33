"""Plotly figures of the dashboard (pure functions of plain values).

Plotly reads a subset of HTML in every label (legend names, titles, axis ticks, hover and point text), so
a name a person typed ("<b>Dr A</b>", a run folder called "a<br>b") passes through :func:`plain` first
and shows as typed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

# Okabe & Ito's colour-blind-safe palette: blue, vermillion, bluish green stay apart under protanopia and
# deuteranopia (the earlier red/orange pair of malignant/synthetic did not); each tag has its marker shape too
TAG_COLOURS = {"benign": "#0072B2", "malignant": "#D55E00", "synthetic": "#009E73"}
TAG_SYMBOLS = {"benign": "circle", "malignant": "diamond", "synthetic": "triangle-up"}


# one colour per run on every figure of a page (ROC, calibration, seeds): Okabe & Ito's eight, in order
RUN_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")


def run_colours(names: Sequence[str]) -> dict[str, str]:
    """``{name: colour}`` in the order given (the palette repeats after eight names)."""
    return {name: RUN_PALETTE[index % len(RUN_PALETTE)] for index, name in enumerate(dict.fromkeys(names))}


def plain(text: object) -> str:
    """``text`` for a plotly label, shown as typed: '<', '>' and '&' escaped (plotly draws them back)."""
    return html.escape(str(text), quote=False)


def roc_figure(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float], float]],
    marker: tuple[str, float, float] | None = None,
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """ROC curves ``(name, fpr, tpr, auc)`` overlaid, AUC in the legend; ``marker`` = (text, fpr, tpr);
    ``colours``: name -> line colour (:func:`run_colours`), plotly's own cycle for names it lacks."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                name="chance", hoverinfo="skip"))
    for name, fpr, tpr, area in curves:
        label = f"{plain(name)} (AUC {area:.3f})" if area is not None and not math.isnan(area) else plain(name)
        figure.add_trace(go.Scatter(x=list(fpr), y=list(tpr), mode="lines", name=label,
                                    line=dict(shape="hv", color=(colours or {}).get(name))))
    if marker is not None:
        text, fpr, tpr = marker
        figure.add_trace(go.Scatter(x=[fpr], y=[tpr], mode="markers", name=plain(text),
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
    figure.update_layout(title=plain(title), xaxis_title="predicted", yaxis_title="true", height=300,
                         yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=40, b=10))
    return figure


def history_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """One line per numeric history column (epoch on x); time and learning-rate columns left out."""
    figure = go.Figure()
    skip = {"epoch", "seconds", "learning_rate"}
    for column in frame.columns:
        if column not in skip:
            figure.add_trace(go.Scatter(x=frame["epoch"], y=frame[column], mode="lines+markers", name=plain(column)))
    figure.update_layout(title=plain(title), xaxis_title="epoch", height=340, margin=dict(l=10, r=10, t=40, b=10))
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
                                    customdata=part["image"], text=[plain(image) for image in part["image"]],
                                    hovertemplate="%{text}<extra></extra>",
                                    marker=dict(size=7, color=TAG_COLOURS[tag], symbol=TAG_SYMBOLS[tag], opacity=0.8)))
    figure.update_layout(title=plain(title), height=430, xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False),
                         margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return figure


def distance_histogram(groups: dict[str, Sequence[float]], title: str) -> go.Figure:
    """Overlaid histograms of nearest-neighbour distances, one per group (e.g. synthetic -> real, real -> real)."""
    figure = go.Figure()
    colours = {"synthetic": TAG_COLOURS["synthetic"], "real": TAG_COLOURS["malignant"]}
    for name, values in groups.items():
        figure.add_trace(go.Histogram(x=list(values), name=name, opacity=0.6, histnorm="probability",
                                      marker_color=colours.get(name.split()[0])))
    figure.update_layout(barmode="overlay", title=plain(title), xaxis_title="distance to the nearest real malignant image",
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
    figure.update_layout(barmode="group", title=plain(title), yaxis_title="share of the map on the lesion",
                         yaxis_range=[0, 1], height=340, margin=dict(l=10, r=10, t=50, b=10),
                         legend=dict(orientation="h", y=-0.2))
    return figure


def risk_coverage_figure(curves: Sequence[tuple[str, Sequence[dict]]], colours: dict[str, str] | None = None) -> go.Figure:
    """AUC on the most confident share of the test images against that share (the risk-coverage curve).

    ``curves``: (run name, ``metrics.json`` ``uncertainty.risk_coverage`` points: {coverage, n, auc,
    max_spread}); confidence = a low spread of the probability over the 8 flips and rotations. A point
    whose subset holds one class only has no AUC and is left out. Points with ``low`` and ``high`` (a 95 %
    interval) get error bars.
    """
    figure = go.Figure()
    for name, points in curves:
        scored = [point for point in points if point.get("auc") is not None]
        shown = plain(name)
        bounded = all(point.get("low") is not None and point.get("high") is not None for point in scored)
        error = dict(type="data", symmetric=False, array=[point["high"] - point["auc"] for point in scored],
                     arrayminus=[point["auc"] - point["low"] for point in scored], thickness=1, width=3) if bounded else None
        figure.add_trace(go.Scatter(
            x=[100 * point["coverage"] for point in scored], y=[point["auc"] for point in scored], error_y=error,
            mode="lines+markers", name=shown, line=dict(color=(colours or {}).get(name)),
            customdata=[[point["n"], point["max_spread"]] for point in scored],
            hovertemplate="most confident %{x:.0f} % (%{customdata[0]} images, spread up to %{customdata[1]:.3f}): "
                          "AUC %{y:.3f}<extra>" + shown.replace("%", "%%") + "</extra>"))
    figure.update_layout(xaxis_title="coverage: the most confident % of the test images (lowest spread first)",
                         yaxis_title="AUC on those images", height=420, xaxis=dict(range=[0, 102]),
                         yaxis=dict(range=[0, 1.02]), margin=dict(l=10, r=10, t=30, b=10))
    return figure
