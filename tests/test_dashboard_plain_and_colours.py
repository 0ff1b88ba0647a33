"""Dashboard figures show what people typed as text, and UMAP's classes stay apart for colour-blind readers.

Plotly reads HTML tags in labels: a reader called "<b>Dr A</b>" rendered bold. The colour check simulates
protanopia and deuteranopia (Machado, Oliveira & Fernandes 2009, severity 1) and measures CIE76 colour
differences in CIELAB, independently of the dashboard's code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from dashboard import charts, evidence_views, study_views

TYPED = "<b>Dr A</b> & <i>co</i>"
SHOWN = "&lt;b&gt;Dr A&lt;/b&gt; &amp; &lt;i&gt;co&lt;/i&gt;"

PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]])
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]])
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def lab_as_seen(colour: str, simulation: np.ndarray) -> np.ndarray:
    rgb = np.array([int(colour[index:index + 2], 16) for index in (1, 3, 5)]) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_TO_XYZ @ np.clip(simulation @ linear, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_a_typed_name_is_text_in_roc_legends_titles_and_reader_labels() -> None:
    figure = charts.roc_figure([(TYPED, [0, 1], [0, 1], 0.5)], marker=(TYPED, 0.5, 0.5))
    names = [trace.name for trace in figure.data]
    assert f"{SHOWN} (AUC 0.500)" in names and SHOWN in names
    assert not any("<b>" in name for name in names)
    assert charts.confusion_figure({"tp": 1, "fp": 0, "tn": 1, "fn": 0}, TYPED).layout.title.text == SHOWN
    reader = {"reader": TYPED, "specificity": 0.8, "sensitivity": 0.7, "specificity_ci": [0.6, 0.9],
              "sensitivity_ci": [0.5, 0.85]}
    points = study_views._reader_points([reader], "unaided")
    assert list(points.text) == [SHOWN]


def test_run_labels_are_text_in_the_calibration_and_matrix_figures() -> None:
    bins = [{"mean_probability": 0.2, "observed": 0.1, "count": 5}]
    figure = evidence_views.reliability_figure([(TYPED, bins)])
    assert SHOWN in [trace.name for trace in figure.data] and "<b>" not in str(figure.data[-1].hovertemplate)


def test_umap_classes_differ_in_shape_and_in_colour_for_colour_blind_readers() -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0], "tag": ["benign", "malignant", "synthetic"],
                          "image": ["ISIC_1", "ISIC_2", TYPED]})
    figure = charts.umap_figure(frame, "panel")
    traces = {trace.name.split(" ")[0]: trace for trace in figure.data}
    symbols = {tag: trace.marker.symbol for tag, trace in traces.items()}
    assert len(set(symbols.values())) == 3, symbols
    assert list(traces["synthetic"].customdata) == [TYPED]  # the id a click selects stays the real id
    assert SHOWN in list(traces["synthetic"].text)
    colours = {tag: trace.marker.color for tag, trace in traces.items()}
    for simulation in (np.eye(3), PROTANOPIA, DEUTERANOPIA):
        for first, second in itertools.combinations(colours, 2):
            difference = np.linalg.norm(lab_as_seen(colours[first], simulation) - lab_as_seen(colours[second], simulation))
            assert difference >= 35, (first, second, round(float(difference), 1))


@pytest.mark.parametrize("old", [{"benign": "#2c7fb8", "malignant": "#d7301f", "synthetic": "#fd8d3c"}])
def test_the_colour_check_refuses_the_old_red_and_orange(old: dict[str, str]) -> None:
    difference = np.linalg.norm(lab_as_seen(old["malignant"], DEUTERANOPIA) - lab_as_seen(old["synthetic"], DEUTERANOPIA))
    assert difference < 35
