"""The Train page in AppTest: run names, refusal of a busy run, checks of the form before a launch (the
reason under its field), and a watched job's Stop/Resume panel.

The launches that really train are in the browser test; here the busy run is held by this process's
own ``Run.lock()``, so the refusal happens before anything starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from melanet import config as config_module
from melanet.runs import runs

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture()
def train_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("pages/train.py")
    app.run()
    assert not app.exception
    return app


def submit_gan(app: AppTest, name: str) -> AppTest:
    app.text_input(key="gan_name").set_value(name)
    next(button for button in app.button if button.label == "Launch GAN training").click()
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def test_a_run_name_outside_the_runs_folder_is_refused(train_page: AppTest, tmp_path: Path) -> None:
    submit_gan(train_page, "../escape")
    assert "not allowed" in train_page.error[0].value
    assert not (tmp_path / "escape").exists()


def test_a_launch_on_a_busy_run_is_refused_with_a_clear_message(train_page: AppTest, tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "runs" / "busy", config_module.Config(), "train-gan")
    with run.lock("a test"):
        submit_gan(train_page, "busy")
    assert train_page.error and train_page.error[0].value.startswith("Refused:")
    assert "already in use" in train_page.error[0].value
    assert not (run.path / "job.json").exists()  # nothing was launched


def test_the_progress_panel_of_a_stopped_run_offers_resume(train_page: AppTest, tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "runs" / "halted", config_module.Config(), "train-gan")
    run.update_status(stage="train-gan", state="stopped", epoch=3, epochs=10, progress=0.3, message="stopped")
    run.append_history({"epoch": 1, "cycle": 2.0, "identity": 1.0, "seconds": 1.0})
    train_page.run()
    labels = {metric.label: metric.value for metric in train_page.metric}
    assert labels["State"] == "stopped" and labels["Epoch"] == "3/10"
    buttons = {button.label: button for button in train_page.button}
    assert buttons["Stop"].disabled and not buttons["Resume"].disabled
    assert train_page.get("plotly_chart")  # the loss history


def test_a_300_character_run_name_is_a_clear_message(train_page: AppTest, tmp_path: Path) -> None:
    submit_gan(train_page, "a" * 300)
    assert train_page.error and "300 characters" in train_page.error[0].value
    assert "Traceback" not in train_page.error[0].value
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def gan_form_fields(app: AppTest) -> list[tuple[str, str]]:
    """(kind, label or text) of the GAN form's elements in page order: an error follows its field."""
    found = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            kind = getattr(child, "type", "")
            if kind in ("text_input", "number_input", "selectbox"):
                found.append((kind, child.label))
            elif kind == "alert" or type(child).__name__ == "Error":
                found.append(("error", str(child.value)))
            walk(child)

    walk(next(block for block in _forms(app) if block.proto.form.form_id == "gan_form"))
    return found


def _forms(app: AppTest) -> list:
    found = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", "") == "form":
                found.append(child)
            walk(child)

    walk(app._tree)
    return found


def submit_gan_form(app: AppTest, *, name: str = "gan-ok", epochs: int | None = None, root: str | None = None) -> AppTest:
    app.text_input(key="gan_name").set_value(name)
    if epochs is not None:
        next(field for field in app.number_input if field.label == "GAN epochs").set_value(epochs)
    if root is not None:
        next(field for field in app.text_input if field.label == "Data folder").set_value(root)
    next(button for button in app.button if button.label == "Launch GAN training").click()
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def nothing_launched(runs_dir: Path) -> bool:
    return not runs_dir.exists() or not any(runs_dir.rglob("job.json"))


@pytest.mark.parametrize("epochs", [0, 99999])
def test_an_out_of_range_epoch_count_is_refused_under_its_field(train_page: AppTest, tmp_path: Path, epochs: int) -> None:
    submit_gan_form(train_page, epochs=epochs)
    fields = gan_form_fields(train_page)
    position = fields.index(("number_input", "GAN epochs"))
    assert fields[position + 1][0] == "error" and "between 1 and 5000" in fields[position + 1][1], fields
    assert [kind for kind, _ in fields].count("error") == 1
    assert nothing_launched(tmp_path / "runs")


def test_a_missing_data_folder_is_refused_under_its_field(train_page: AppTest, tmp_path: Path) -> None:
    submit_gan_form(train_page, root=str(tmp_path / "no-such-data"))
    fields = gan_form_fields(train_page)
    position = fields.index(("text_input", "Data folder"))
    assert fields[position + 1][0] == "error" and "not found" in fields[position + 1][1], fields
    assert nothing_launched(tmp_path / "runs")


def test_a_bad_run_name_is_refused_under_its_field(train_page: AppTest, tmp_path: Path) -> None:
    submit_gan_form(train_page, name="my run!")
    fields = gan_form_fields(train_page)
    position = fields.index(("text_input", "GAN run name"))
    assert fields[position + 1][0] == "error" and "letters, digits" in fields[position + 1][1], fields
    assert nothing_launched(tmp_path / "runs")


def test_a_corrected_form_leaves_no_stale_error(train_page: AppTest, tmp_path: Path) -> None:
    submit_gan_form(train_page, epochs=0)
    assert any("between 1 and 5000" in element.value for element in train_page.error)
    run = runs.Run.create(tmp_path / "runs" / "busy", config_module.Config(), "train-gan")
    with run.lock("a test"):  # the corrected form passes every check and reaches the launcher, which refuses
        submit_gan_form(train_page, name="busy", epochs=3)
    messages = [element.value for element in train_page.error]
    assert len(messages) == 1 and messages[0].startswith("Refused:"), messages
    assert nothing_launched(tmp_path / "runs")
