"""Compare page, driven by Streamlit's AppTest: the matrix of AUC differences and p-values beside the
ROC overlay, calibration, a repeated reproduction and the selected run's model card.

The runs are a results folder from ``app_fixture`` (real prediction files on the sample's test ids),
brought up to date by `melanet evaluate --from-predictions`, and two copies of it as seed folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_fixture
from melanet.reports import rescore
from melanet.reproduce import seeds_summary

REPOSITORY = Path(__file__).resolve().parents[1]
TIMEOUT = 120


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    results = app_fixture.write_results(folder / "demo", with_model=False)
    for name in app_fixture.CLASSIFIERS:
        rescore.rescore_run(results / name)
    repeated = folder / "repeated"
    for seed in (42, 43):
        shutil.copytree(results, repeated / f"seed-{seed}")
    seeds_summary.summarize_folder(repeated)
    return folder


def charts(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def delta_matrices(app: AppTest) -> list[dict]:
    """Heatmaps of AUC differences (the confusion matrices are heatmaps too)."""
    return [trace for figure in charts(app) for trace in figure["data"]
            if trace["type"] == "heatmap" and (trace.get("colorbar") or {}).get("title", {}).get("text") == "ΔAUC"]


def test_compare_page_shows_paired_matrix_calibration_seeds_and_model_card(
    models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(str(REPOSITORY / "app.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/compare.py")
    app.run()
    assert not app.exception
    labels = [label for label in app.multiselect(key="compare_runs").options if "demo" in label]
    app.multiselect(key="compare_runs").set_value(labels).run()
    assert not app.exception
    figures = charts(app)
    heatmaps = delta_matrices(app)
    assert len(heatmaps) == 1
    # full names, broken onto lines, never truncated
    assert sorted(heatmaps[0]["x"]) == ["MelaNet", "VGG-GAP", "VGG-GAP<br>+ Augment-10x", "VGG-GAP<br>+ Augment-5x"]
    assert heatmaps[0]["textfont"]["size"] >= 12
    assert all("p " in text and "Holm" in text for row in heatmaps[0]["text"] for text in row if text)
    # an HTML table (wrapped cells, nothing cut off at the right), indexed by A
    paired_table = next(table.value for table in app.table if "p (Holm)" in table.value.columns)
    assert "melanomas: who was right" in paired_table.columns and "benign: who was right" in paired_table.columns
    # MelaNet shown: one family, MelaNet against each of the 3 other runs (not all 6 pairs)
    assert len(paired_table) == 3 and set(paired_table.index) == {"MelaNet"}
    assert set(paired_table["B"]) == {"VGG-GAP", "VGG-GAP + Augment-10x", "VGG-GAP + Augment-5x"}
    calibration_table = next(table.value for table in app.table if "Brier (raw)" in table.value.columns)
    assert len(calibration_table) == 4 and (calibration_table["Calibration"] == "temperature").all()
    reliability = next(figure for figure in figures if "perfect calibration" in [trace.get("name") for trace in figure["data"]])
    runs_on_reliability = {trace["name"]: trace["line"]["color"] for trace in reliability["data"]
                           if trace["name"] != "perfect calibration"}
    assert sorted(runs_on_reliability) == sorted(labels)  # raw: one line per run, not raw + calibrated
    # one colour per run: the ROC curve, the reliability line and the seeds bar of its method share it
    roc = next(figure for figure in figures if any("(AUC" in str(trace.get("name")) for trace in figure["data"]))
    roc_colours = {trace["name"].split(" (AUC")[0]: trace["line"]["color"] for trace in roc["data"]
                   if "(AUC" in str(trace.get("name"))}
    assert roc_colours == runs_on_reliability and len(set(roc_colours.values())) == 4
    seeds_chart = next(figure for figure in figures if any(trace.get("name") == "seed 43" for trace in figure["data"]))
    assert not [trace for trace in seeds_chart["data"] if trace["type"] == "bar"]  # marks: the axis need not start at 0
    means = next(trace for trace in seeds_chart["data"] if trace["name"].startswith("mean over seeds"))
    bar_colours = dict(zip(means["x"], means["marker"]["line"]["color"]))
    # the axis fits what is drawn, 0.05 beyond it each way (computed here from seeds.json)
    summary = json.loads((models / "repeated" / "seeds.json").read_text())
    drawn = [seed["methods"][method["folder"]]["auc"] for seed in summary["per_seed"] for method in summary["methods"]]
    drawn += [method["auc"]["mean"] + sign * (method["auc"]["sd"] or 0) for method in summary["methods"] for sign in (-1, 1)]
    assert seeds_chart["layout"]["yaxis"]["range"] == pytest.approx([max(0, min(drawn) - 0.05), min(1, max(drawn) + 0.05)])
    assert bar_colours["MelaNet"] == roc_colours["models/demo/melanet"]
    assert bar_colours["VGG-GAP"] == roc_colours["models/demo/vgg_gap"]
    # the toggle: these fixture runs have no calibration map (too few validation images), and say so
    app.radio(key="calibration_view").set_value("calibrated").run()
    assert not app.exception, [item.value for item in app.exception]
    assert any("no calibrated line" in caption.value for caption in app.caption)
    assert any("Repeated reproduction: 2 seed(s)" in markdown.value for markdown in app.markdown)
    assert any("Not a medical device" in markdown.value and "Model card" in markdown.value for markdown in app.markdown)
    assert app.selectbox(key="model_card_run").value == "models/demo/melanet"  # the reference's card first


def test_runs_scored_on_different_images_get_no_matrix(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "models"
    shutil.copytree(models / "demo", other / "demo")
    predictions = other / "demo" / "augment5x" / "predictions.csv"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(lines[:-3]) + "\n")  # three test images fewer
    monkeypatch.setenv("MELANET_MODELS_DIR", str(other))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(str(REPOSITORY / "app.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/compare.py")
    app.run()
    assert not app.exception
    assert not delta_matrices(app)
    assert any("scored on different images" in info.value for info in app.info)


def test_the_matrix_marks_the_pairs_that_differ_after_holm() -> None:
    from dashboard import evidence_views

    comparison = {"runs": [{"run": "a", "method": "MelaNet"}, {"run": "b", "method": "GAP baseline"},
                           {"run": "c", "method": "GAP baseline + Augment-5x"}],
                  "pairs": [{"a": "a", "b": "b", "delta_auc": 0.12, "p": 0.004, "p_holm": 0.008},
                            {"a": "a", "b": "c", "delta_auc": 0.02, "p": 0.40, "p_holm": 0.40}]}
    figure = evidence_views.delta_matrix_figure(comparison, ["MelaNet", "GAP baseline", "GAP baseline + Augment-5x"])
    texts = figure.data[0].text
    assert texts[0][1].startswith("<b>Δ +0.120 *") and texts[1][0].startswith("<b>Δ -0.120 *")
    assert "*" not in texts[0][2] and "<b>" not in texts[0][2] and texts[0][2].startswith("Δ +0.020")
    assert texts[1][2] == "" and figure.data[0].z[1][2] is None  # b vs c is not in the family: blank
    assert figure.data[0].textfont.size >= 12


def test_the_calibration_toggle_shows_one_line_per_run_in_its_roc_colour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(REPOSITORY / "models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(str(REPOSITORY / "app.py"), default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/compare.py")
    app.run()
    assert not app.exception

    def lines() -> dict[str, tuple[str, list[float]]]:
        figure = next(figure for figure in charts(app)
                      if "perfect calibration" in [trace.get("name") for trace in figure["data"]])
        return {trace["name"]: (trace["line"]["color"], trace["y"]) for trace in figure["data"]
                if trace["name"] != "perfect calibration"}

    raw = lines()
    app.radio(key="calibration_view").set_value("calibrated").run()
    calibrated = lines()
    roc = next(figure for figure in charts(app) if any("(AUC" in str(trace.get("name")) for trace in figure["data"]))
    roc_colours = {trace["name"].split(" (AUC")[0]: trace["line"]["color"] for trace in roc["data"]
                   if "(AUC" in str(trace.get("name"))}
    assert len(raw) == len(calibrated) == 4
    assert {name: colour for name, (colour, _) in calibrated.items()} == roc_colours
    assert {name: colour for name, (colour, _) in raw.items()} == roc_colours
    shipped = json.loads((REPOSITORY / "models" / "demo" / "melanet" / "metrics.json").read_text())["calibration"]
    assert calibrated["models/demo/melanet"][1] == [entry["observed"] for entry in shipped["calibrated"]["reliability"]
                                                    if entry["count"]]
    assert raw["models/demo/melanet"][1] == [entry["observed"] for entry in shipped["raw"]["reliability"] if entry["count"]]
