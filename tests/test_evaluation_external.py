"""External validation: `melanet evaluate --data DIR` on miniature ISIC 2018-2020 folders, filed in RUN/external/.

A real (tiny, hand-weighted) Keras model scores real JPEGs; the background-job test launches the real CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from challenge_layouts import build_isic2018, build_isic2019, build_isic2020
from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.cli import main
from melanet.data.errors import DataError
from melanet.evaluation import external
from melanet.reports import evaluate_stage
from test_evaluation_evaluate import TEST_LEVELS, brightness_model, write_folder_dataset

REPO = Path(__file__).resolve().parents[1]


def make_run(tmp_path: Path, data_root: Path, *extra: str) -> Path:
    """A finished train-classifier run on ``data_root`` holding the brightness model (32 px)."""
    config = config_module.load_config(overrides=[
        f"data.root={data_root}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1", "evaluation.bootstrap_samples=50", *extra])
    run = runs.Run.create(tmp_path / "runs" / "classifier", config, "train-classifier")
    run.update_status(state="done")
    brightness_model(32).save(run.file(layout.MODEL_FILE))
    run.file(layout.VALIDATION_PREDICTIONS_FILE).write_text(
        "image,label,prob_malignant\nv0,0,0.20\nv1,0,0.45\nv2,1,0.40\nv3,1,0.90\n")
    return run.path


@pytest.fixture
def classifier_run(tmp_path: Path) -> Path:
    write_folder_dataset(tmp_path / "own", TEST_LEVELS, seed=0)
    return make_run(tmp_path, tmp_path / "own")


def test_single_labelled_split_scores_all_images_beside_the_own_metrics(classifier_run: Path, tmp_path: Path) -> None:
    evaluate_stage.evaluate_run(classifier_run)
    own = (classifier_run / layout.METRICS_FILE).read_bytes()
    data = build_isic2020(tmp_path / "isic2020")
    report = evaluate_stage.evaluate_run(classifier_run, data_root=data)
    folder = classifier_run / layout.EXTERNAL_FOLDER / "isic2020"
    assert json.loads((folder / layout.METRICS_FILE).read_text()) == report
    assert (classifier_run / layout.METRICS_FILE).read_bytes() == own  # never over the run's own metrics
    assert report["data"]["split"] == "train" and report["data"]["all_labelled_images"] is True
    assert report["n"] == 24 and report["n_malignant"] == 4 and report["data"]["prevalence"] == pytest.approx(4 / 24)
    predictions = pd.read_csv(folder / layout.PREDICTIONS_FILE)
    assert len(predictions) == 24 and predictions["label"].sum() == 4


def test_folder_with_a_test_split_scores_only_that_split(classifier_run: Path, tmp_path: Path) -> None:
    data = build_isic2018(tmp_path / "isic2018")
    report = evaluate_stage.evaluate_run(classifier_run, data_root=data)
    assert report["data"]["split"] == "test" and report["data"]["all_labelled_images"] is False
    assert (report["n"], report["n_malignant"]) == (4, 2)
    assert (classifier_run / layout.EXTERNAL_FOLDER / "isic2018" / layout.METRICS_FILE).is_file()


def test_two_folders_of_the_same_name_get_two_results_folders(classifier_run: Path, tmp_path: Path) -> None:
    first = build_isic2020(tmp_path / "a" / "isic2020")
    second = build_isic2020(tmp_path / "b" / "isic2020")
    evaluate_stage.evaluate_run(classifier_run, data_root=first)
    evaluate_stage.evaluate_run(classifier_run, data_root=second)
    names = sorted(path.name for path in (classifier_run / layout.EXTERNAL_FOLDER).iterdir())
    assert names[0] == "isic2020" and names[1].startswith("isic2020-") and len(names) == 2
    assert external.results_folder(classifier_run, first).name == "isic2020"  # each keeps its own folder


def test_cli_says_where_and_what_it_scored(classifier_run: Path, tmp_path: Path, capsys) -> None:
    data = build_isic2019(tmp_path / "isic2019")
    assert main(["-q", "evaluate", "--run", str(classifier_run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "all labelled images (no labelled test split): 24 (8 malignant)" in out
    assert f"results written to {classifier_run / layout.EXTERNAL_FOLDER / 'isic2019'}" in out
    assert not (classifier_run / layout.METRICS_FILE).exists()


def test_own_data_without_a_test_split_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, build_isic2019(tmp_path / "isic2019"))
    with pytest.raises(DataError, match="has no labelled test split, and the run was trained on it"):
        evaluate_stage.evaluate_run(run)


def test_external_data_is_labelled_melanoma_whatever_the_runs_convention(tmp_path: Path) -> None:
    run = make_run(tmp_path, build_isic2018(tmp_path / "isic2018"), "data.malignant_classes=MEL,BCC,AKIEC")
    assert evaluate_stage.evaluate_run(run)["n_malignant"] == 2  # the own test split: no BCC/AKIEC there
    report = evaluate_stage.evaluate_run(run, data_root=build_isic2019(tmp_path / "isic2019"))  # AKIEC is no 2019 class
    assert report["n_malignant"] == 8


def test_launch_refuses_the_runs_own_data_and_a_non_data_folder(classifier_run: Path, tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match="the data this run was trained on"):
        external.launch(classifier_run, tmp_path / "own")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a data folder"):
        external.launch(classifier_run, tmp_path / "empty")
    assert not (classifier_run / layout.EXTERNAL_FOLDER).exists()


@pytest.mark.slow
def test_launch_runs_evaluate_as_a_background_job(classifier_run: Path, tmp_path: Path) -> None:
    data = build_isic2020(tmp_path / "isic2020")
    folder, pid = external.launch(classifier_run, data, cwd=REPO)
    assert pid > 0 and folder == classifier_run / layout.EXTERNAL_FOLDER / "isic2020"
    assert external.result(folder).state == "running"
    deadline = time.monotonic() + 180
    while external.result(folder).state == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    result = external.result(folder)
    assert result.state == "done", result.log
    assert result.metrics["n"] == 24 and result.metrics["data"]["all_labelled_images"] is True
    assert (folder / layout.JOB_FILE).is_file() and not (classifier_run / layout.JOB_FILE).exists()
    assert [item.name for item in external.results(classifier_run)] == ["isic2020"]
