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
from melanet.evaluation import rescore, seeds

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
    seeds.summarize_folder(repeated)
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
    assert sorted(heatmaps[0]["x"]) == ["MelaNet", "VGG-GAP", "VGG-GAP + Augment-10x", "VGG-GAP + Augment-5x"]
    assert all("p " in text and "Holm" in text for row in heatmaps[0]["text"] for text in row if text)
    paired_table = next(frame.value for frame in app.dataframe if "p (Holm)" in frame.value.columns)
    # MelaNet shown: one family, MelaNet against each of the 3 other runs (not all 6 pairs)
    assert len(paired_table) == 3 and set(paired_table["A"]) == {"MelaNet"}
    assert set(paired_table["B"]) == {"VGG-GAP", "VGG-GAP + Augment-10x", "VGG-GAP + Augment-5x"}
    calibration_table = next(frame.value for frame in app.dataframe if "Brier (raw)" in frame.value.columns)
    assert len(calibration_table) == 4 and (calibration_table["Calibration"] == "temperature").all()
    reliability = next(figure for figure in figures if "perfect calibration" in [trace.get("name") for trace in figure["data"]])
    assert len([trace for trace in reliability["data"] if "(raw)" in trace["name"]]) == 4
    seeds_chart = next(figure for figure in figures if any(trace.get("name") == "seed 43" for trace in figure["data"]))
    assert any(trace["type"] == "bar" for trace in seeds_chart["data"])
    assert any("Repeated reproduction: 2 seed(s)" in markdown.value for markdown in app.markdown)
    assert any("Not a medical device" in markdown.value and "Model card" in markdown.value for markdown in app.markdown)


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
