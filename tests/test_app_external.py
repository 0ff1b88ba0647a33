"""The External validation page in AppTest: rows and ROC curves from real result files, refusals, and a
real background `melanet evaluate` launched from the button (slow)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from challenge_layouts import build_isic2018, build_isic2019, build_isic2020
from melanet.runs import layout
from melanet.evaluation import external
from melanet.reports import evaluate_stage
from test_evaluation_evaluate import TEST_LEVELS, write_folder_dataset
from test_evaluation_external import make_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture()
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def open_page(data_text: str = "") -> AppTest:
    app = AppTest.from_file(APP, default_timeout=90)
    app.run()
    app.switch_page("pages/external.py")
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    if data_text:
        app.text_input(key="external_data").set_value(data_text)
        app.run()
        assert not app.exception, [item.value for item in app.exception]
    return app


def evaluated_run(tmp_path: Path) -> Path:
    write_folder_dataset(tmp_path / "own", TEST_LEVELS, seed=0)
    run = make_run(tmp_path, tmp_path / "own")
    evaluate_stage.evaluate_run(run)
    return run


def _texts(app: AppTest, kind: str) -> str:
    return "\n".join(str(element.value) for element in getattr(app, kind))


def test_no_evaluated_run_says_what_to_do(environment: Path) -> None:
    app = open_page()
    assert "No evaluated classifier runs yet" in _texts(app, "info")


def test_rows_and_roc_curves_of_the_own_and_external_evaluations(environment: Path) -> None:
    run = evaluated_run(environment)
    evaluate_stage.evaluate_run(run, data_root=build_isic2020(environment / "isic2020"))
    app = open_page(str(environment / "isic2018-not-yet"))
    assert "not a data folder" in _texts(app, "error") or "not found" in _texts(app, "error")
    assert app.button(key="external_launch").disabled
    frame = app.table[0].value
    assert list(frame.index) == ["own (the run's own test split)", "isic2020"]
    assert list(frame["n"]) == [9, 24]
    assert list(frame["images"]) == ["test split", "all labelled images (no labelled test split)"]
    assert list(frame["prevalence %"]) == [f"{100 * 4 / 9:.1f}", f"{100 * 4 / 24:.1f}"]
    figure = app.get("plotly_chart")[0].proto.spec
    assert figure.count('"name":"own test split') == 1 and figure.count('"name":"isic2020') == 1
    # a folder of a known layout: the page says what will be scored and enables the button
    build_isic2018(environment / "isic2018")
    app.text_input(key="external_data").set_value(str(environment / "isic2018"))
    app.run()
    assert "ISIC 2018 Task 3 layout (train, validation, test): the test split will be scored" in _texts(app, "caption")
    assert not app.button(key="external_launch").disabled


def test_subgroups_show_as_a_forest_plot(environment: Path) -> None:
    run = evaluated_run(environment)
    app = open_page()
    assert "No subgroup figures" in _texts(app, "caption")  # plain folders hold labels only
    evaluate_stage.evaluate_run(run, data_root=build_isic2019(environment / "isic2019"))
    summary = json.loads((run / "external" / "isic2019" / layout.SUBGROUPS_FILE).read_text())
    app = open_page()
    charts = [chart.proto.spec for chart in app.get("plotly_chart")]
    forest = next(spec for spec in charts if "AUC by subgroup" in spec)
    for variable, block in summary["variables"].items():
        for group in block["groups"]:
            assert f": {group['name']} (n {group['n']}, {group['n_malignant']} mal." in forest
    assert "square-open" in forest  # the small groups are drawn hollow
    frame = next(frame.value for frame in app.dataframe if "sensitivity %" in frame.value.columns)
    assert list(frame["group"]) == [group["name"] for block in summary["variables"].values() for group in block["groups"]]
    assert "chi-square" in _texts(app, "caption") or "no test" in _texts(app, "caption")


def shipped_run(environment: Path) -> Path:
    """An evaluated run in the shipped (read-only) models folder: ``models/classifier``."""
    run = evaluated_run(environment)
    shutil.move(str(run.parent), str(environment / "models"))
    return environment / "models" / "classifier"


def folder_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {path.relative_to(folder).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*")}


def test_a_shipped_run_can_be_validated_and_its_results_go_under_runs(environment: Path) -> None:
    run = shipped_run(environment)
    app = open_page(str(build_isic2020(environment / "isic2020")))
    assert not app.button(key="external_launch").disabled
    assert "its external results go to" in _texts(app, "caption") and "external/models-classifier" in _texts(app, "caption")
    # a result filed under runs/ shows as the shipped run's row; an overlap with its own images is red
    folder = environment / "runs" / layout.EXTERNAL_FOLDER / "models-classifier" / "isic2020"
    folder.mkdir(parents=True)
    values = json.loads((run / layout.METRICS_FILE).read_text())
    values["overlap"] = {"train": 0, "validation": 0, "test": 9, "gan_train": 0}
    (folder / layout.METRICS_FILE).write_text(json.dumps(values))
    app.run()
    assert list(app.table[0].value.index) == ["own (the run's own test split)", "isic2020"]
    assert "isic2020: the 9 external images overlap the run's own images" in _texts(app, "error")
    assert "this is not an external result" in _texts(app, "error")


@pytest.mark.slow
def test_launching_on_a_shipped_run_leaves_it_untouched(environment: Path) -> None:
    run = shipped_run(environment)
    before = folder_snapshot(run)
    app = open_page(str(build_isic2020(environment / "isic2020")))
    app.button(key="external_launch").click()
    app.run()
    folder = environment / "runs" / layout.EXTERNAL_FOLDER / "models-classifier" / "isic2020"
    assert f"results go to `{folder.as_posix()}/`" in _texts(app, "success")
    deadline = time.monotonic() + 180
    while external.result(folder).state == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    app.run()
    frame = app.table[0].value
    assert list(frame.index) == ["own (the run's own test split)", "isic2020"], external.result(folder).log
    assert list(frame["state"]) == ["done", "done"] and list(frame["n"]) == [9, 24]
    assert (folder / layout.METRICS_FILE).is_file() and (folder / layout.JOB_FILE).is_file()
    assert folder_snapshot(run) == before  # not one file of the shipped run written, nothing added


@pytest.mark.slow
def test_the_button_launches_evaluate_and_the_row_appears(environment: Path) -> None:
    run = evaluated_run(environment)
    data = build_isic2020(environment / "isic2020")
    app = open_page(str(data))
    app.button(key="external_launch").click()
    app.run()
    assert "results go to `external/isic2020/`" in _texts(app, "success")
    folder = run / layout.EXTERNAL_FOLDER / "isic2020"
    assert (folder / layout.JOB_FILE).is_file()
    deadline = time.monotonic() + 180
    while external.result(folder).state == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    app.run()
    frame = app.table[0].value
    assert list(frame.index) == ["own (the run's own test split)", "isic2020"], external.result(folder).log
    assert list(frame["state"]) == ["done", "done"] and list(frame["n"]) == [9, 24]


def test_results_folders_are_not_listed_as_runs(environment: Path) -> None:
    from dashboard import discovery

    run = evaluated_run(environment)
    folder = run / layout.EXTERNAL_FOLDER / "isic2020"
    folder.mkdir(parents=True)
    (folder / layout.JOB_FILE).write_text('{"pid": 0, "stage": "evaluate", "command": []}')
    (folder / layout.METRICS_FILE).write_bytes((run / layout.METRICS_FILE).read_bytes())
    assert [entry.label for entry in discovery.discover()] == ["runs/classifier"]
