"""Every dashboard page rendered by Streamlit's AppTest, with a complete results folder and with nothing.

The results folder is built by ``app_fixture`` in the layout ``melanet reproduce`` writes (and that
``models/demo`` ships); ``MELANET_MODELS_DIR`` / ``MELANET_RUNS_DIR`` point the app at temporary folders.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app_fixture

REPOSITORY = Path(__file__).resolve().parents[1]
APP = str(REPOSITORY / "app.py")
PAGES = ["overview", "train", "compare", "lesions", "gradcam", "umap", "predict"]
TIMEOUT = 90


SHIPPED_MODELS = REPOSITORY / "models"


@pytest.fixture(scope="module", params=["fixture", "shipped"])
def results_folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder written by ``app_fixture`` and the demo run shipped in ``models/demo``."""
    if request.param == "shipped":
        assert (SHIPPED_MODELS / "demo" / "table.md").is_file(), "models/demo (the shipped demo run) is missing"
        return SHIPPED_MODELS
    models = tmp_path_factory.mktemp("models")
    app_fixture.write_results(models / "demo")
    return models


@pytest.fixture()
def demo_env(results_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(results_folder))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    return results_folder


@pytest.fixture()
def empty_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "no-runs"))
    return tmp_path


def render(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    if page != "overview":
        app.switch_page(f"pages/{page}.py")
        app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def texts(app: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title",
                                        "subheader") for element in getattr(app, kind)]
    return "\n".join(str(part) for part in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_runs_and_says_what_to_do(empty_env: Path, page: str) -> None:
    app = render(page)
    assert "No " in texts(app) and ("Train" in texts(app) or "reproduce" in texts(app))


def test_overview_lists_the_runs_with_state_and_metrics(demo_env: Path) -> None:
    app = render("overview")
    table = next(frame.value for frame in app.dataframe if "run" in frame.value.columns and "state" in frame.value.columns)
    assert {"models/demo/gan", "models/demo/vgg_gap", "models/demo/melanet"} <= set(table["run"])
    melanet = table.set_index("run").loc["models/demo/melanet"]
    assert melanet["state"] == "done" and 0 <= float(melanet["AUC"]) <= 1
    histogram = app.dataframe[0].value
    assert set(histogram["split"]) == {"train", "test"} and histogram["benign"].sum() > 0
    assert any(expander.label.startswith("Table 1 of models/demo") for expander in app.expander)


def test_compare_draws_one_roc_curve_per_chosen_run_and_moves_the_threshold(demo_env: Path) -> None:
    app = render("compare")
    chosen = app.multiselect(key="compare_runs").value
    assert len(chosen) == 4
    figure = app.get("plotly_chart")[0]

    traces = json.loads(figure.proto.spec)["data"]
    curve_names = [trace["name"] for trace in traces if trace["name"] != "chance" and trace.get("mode") == "lines"]
    assert len(curve_names) == 4 and all("AUC" in name for name in curve_names)
    assert len(next(table.value for table in app.table if "AUC %" in table.value.columns)) == 4

    def false_negatives() -> int:
        return int(next(metric.value for metric in app.metric if metric.label.startswith("Missed melanomas (FN)")))

    at_half = false_negatives()
    app.slider(key="threshold").set_value(0.95).run()
    assert not app.exception
    assert false_negatives() > at_half  # a stricter threshold misses more melanomas
    app.multiselect(key="compare_runs").set_value(chosen[:1]).run()
    traces = json.loads(app.get("plotly_chart")[0].proto.spec)["data"]
    assert len([trace for trace in traces if trace.get("mode") == "lines" and trace["name"] != "chance"]) == 1


def test_compare_draws_the_risk_coverage_curve_or_says_why(demo_env: Path) -> None:
    app = render("compare")
    assert "Uncertainty under flips and rotations" in [header.value for header in app.subheader]
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    curves = [figure for figure in figures if "coverage" in str(figure["layout"].get("xaxis", {}).get("title", ""))]
    shipped = (demo_env / "demo" / "melanet" / "predictions.csv").read_text().splitlines()[0].endswith("uncertain")
    if not shipped:  # the fixture's predictions.csv has no spread columns: said, no figure
        assert not curves and "No uncertainty figures for" in texts(app)
        return
    assert len(curves) == 1 and len(curves[0]["data"]) == 4
    expected = json.loads((demo_env / "demo" / "melanet" / "metrics.json").read_text())["uncertainty"]["risk_coverage"]
    trace = next(trace for trace in curves[0]["data"] if trace["name"].endswith("melanet"))
    assert trace["x"] == pytest.approx([100 * point["coverage"] for point in expected if point["auc"] is not None])
    assert trace["y"] == pytest.approx([point["auc"] for point in expected if point["auc"] is not None])
    # 95 % intervals drawn around every point, and a verdict with its interval for every run
    assert trace["error_y"]["array"] and trace["error_y"]["arrayminus"]
    assert all(up >= 0 for up in trace["error_y"]["array"]) and all(down >= 0 for down in trace["error_y"]["arrayminus"])
    assert texts(app).count("AUC(flagged) - AUC(unflagged) = ") == 4


def test_lesions_page_shows_triplets_with_source_ids(demo_env: Path) -> None:
    app = render("lesions")
    assert any("syn_ISIC_" in markdown.value for markdown in app.markdown)
    assert len(app.get("image")) >= 3 * 6 + 1  # a page of input | synthetic | reconstruction, and a grid
    assert not [caption.value for caption in app.caption if "not found" in caption.value]


def test_gradcam_filters_by_outcome_and_shows_two_runs(demo_env: Path) -> None:
    app = render("gradcam")
    outcomes = app.multiselect(key="gradcam_outcomes")
    assert set(outcomes.options) >= {"missed melanoma (FN)", "false alarm (FP)"}
    outcomes.set_value(["TN"]).run()
    assert not app.exception
    assert all("(TN)" in option for option in app.selectbox(key="gradcam_image").options)
    assert app.selectbox(key="gradcam_second").value != "(none)"
    app.slider(key="gradcam_opacity").set_value(0.8).run()
    assert not app.exception
    assert "opacity 0.80" in texts(app) or len(app.get("image")) >= 2


def test_umap_page_shows_both_panels_and_the_domain_gap(demo_env: Path) -> None:
    app = render("umap")
    assert len(app.get("plotly_chart")) == 2
    shown = {metric.label: float(metric.value) for metric in app.metric}
    assert set(shown) == {"synthetic vs real malignant", "synthetic vs real benign",
                          "real malignant vs real benign (the task)"}
    # the page shows the numbers of the run's own separability.json
    run = next(path.parent.parent for path in sorted(demo_env.rglob("embedding/separability.json"))
               if (path.parent / "umap.csv").read_text().count("synthetic") > 0)
    written = json.loads((run / "embedding" / "separability.json").read_text())
    assert shown["synthetic vs real malignant"] == pytest.approx(written["synthetic_vs_real_malignant"]["auc"], abs=5e-4)


def test_umap_page_names_an_unreadable_domain_gap_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    app_fixture.write_results(models / "demo")
    broken = sorted((models / "demo").rglob("embedding/separability.json"))[0]
    broken.write_text("{not json")
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = render("umap")
    if broken.parent.parent.name not in app.selectbox(key="umap_run").value:
        app.selectbox(key="umap_run").set_value(
            next(option for option in app.selectbox(key="umap_run").options if broken.parent.parent.name in option)).run()
    warnings = [warning.value for warning in app.warning]
    assert any(str(broken) in text and "invalid JSON at line 1" in text for text in warnings), warnings
    assert len(app.get("plotly_chart")) == 2  # the plots still show


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_predict_with_a_good_and_a_bad_upload(demo_env: Path) -> None:
    app = render("predict")
    assert any("not a medical device" in warning.value for warning in app.warning)
    app.file_uploader(key="predict_upload").set_value(("lesion.jpg", _jpeg(), "image/jpeg")).run(timeout=180)
    assert not app.exception, [item.value for item in app.exception]
    probability = float(next(metric.value for metric in app.metric if metric.label == "P(malignant)"))
    assert 0.0 <= probability <= 1.0
    assert len(_decisions(app)) == 1, _decisions(app)
    assert not [box for box in app.error if "Unlike the images" not in box.value]

    app.file_uploader(key="predict_upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not app.exception
    assert app.error and "Cannot use notes.png" in app.error[0].value

    truncated = _jpeg()[:200]
    app.file_uploader(key="predict_upload").set_value(("cut.jpg", truncated, "image/jpeg")).run()
    assert not app.exception and "Cannot use cut.jpg" in app.error[0].value


def test_overview_does_not_import_tensorflow() -> None:
    import subprocess

    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            f"app = AppTest.from_file({APP!r}, default_timeout=60); app.run(); "
            "assert not app.exception, app.exception; print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_shipped_streamlit_config_keeps_the_dashboard_local_and_quiet() -> None:
    import tomllib

    from streamlit import config as streamlit_config

    settings = tomllib.loads((REPOSITORY / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"  # no login, can start training: local only
    assert settings["client"]["showErrorDetails"] in ("type", "none")  # no tracebacks or server paths
    assert settings["client"]["toolbarMode"] in ("viewer", "minimal")  # no Deploy button
    assert settings["browser"]["gatherUsageStats"] is False
    for section, values in settings.items():  # every key is one this Streamlit knows
        for key in values:
            assert f"{section}.{key}" in streamlit_config._config_options_template, f"{section}.{key}"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few hundred bytes (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(app: AppTest, name: str, data: bytes, mime: str) -> AppTest:
    app.file_uploader(key="predict_upload").set_value((name, data, mime)).run(timeout=180)
    assert not app.exception, [item.value for item in app.exception]
    return app


DECISION_STARTS = ("Rule-out:", "Between:", "Rule-in:", "Cannot be ruled out:", "Unlike the images", "No triage")


def _decisions(app: AppTest) -> list[str]:
    """The decision headlines on the page (each in bold, in a coloured box)."""
    boxes = [*app.error, *app.warning, *app.info, *app.success]
    return [box.value for box in boxes if box.value.startswith("**") and box.value.strip("*").startswith(DECISION_STARTS)]


def _shown_probability(app: AppTest) -> float | None:
    return next((float(metric.value) for metric in app.metric if metric.label == "P(malignant)"), None)


def test_predict_shows_the_models_own_probability_for_the_preprocessed_image(demo_env: Path) -> None:
    from melanet.runs import runs
    from melanet.classifier import predict
    from melanet.data import preprocess

    app = _upload(render("predict"), "lesion.jpg", _jpeg(), "image/jpeg")
    run_path = demo_env / "demo" / "melanet"
    assert "melanet" in app.selectbox(key="predict_run").value
    settings = runs.Run(run_path).config().data
    image = preprocess.preprocess_image(_jpeg(), settings.image_size, settings.max_image_pixels, settings.resize,
                                        settings.color_constancy)
    expected = float(predict.predict_probabilities(predict.load_model(run_path), image[None])[0])
    assert _shown_probability(app) == pytest.approx(expected, abs=5e-4)
    assert not [metric for metric in app.metric if metric.label.startswith("Decision at")]  # one decision, no others


def test_predict_says_one_decision_from_the_band_the_spread_and_the_likeness(demo_env: Path) -> None:
    from melanet.runs import layout, runs
    from melanet.classifier import predict
    from melanet.data import preprocess
    from melanet.evaluation import metrics as metrics_module
    from melanet.explain import features, retrieval

    app = _upload(render("predict"), "lesion.jpg", _jpeg(), "image/jpeg")
    run_path = demo_env / "demo" / "melanet"
    points = json.loads((run_path / "metrics.json").read_text())["operating_points"]
    probability = _shown_probability(app)
    settings = runs.Run(run_path).config()
    image = preprocess.preprocess_image(_jpeg(), settings.data.image_size, settings.data.max_image_pixels,
                                        settings.data.resize, settings.data.color_constancy)
    model = predict.load_model(run_path)
    batch = image[None]
    views = [batch, batch[:, :, ::-1], batch[:, ::-1], batch[:, ::-1, ::-1]]  # the flips, then the same turned 90 degrees
    views += [np.rot90(view, 1, axes=(1, 2)) for view in views]
    turned = [float(predict.predict_probabilities(model, np.ascontiguousarray(view))[0]) for view in views]
    shown = texts(app)
    found = re.search(r"8 flips and 90-degree rotations of the image, P\(malignant\) ranges from ([0-9.]+) to ([0-9.]+)", shown)
    assert found, shown
    assert float(found[1]) == pytest.approx(min(turned), abs=6e-4) and float(found[2]) == pytest.approx(max(turned), abs=6e-4)
    spread = max(turned) - min(turned)
    if abs(spread - settings.evaluation.uncertain_spread) < 1e-3:
        pytest.skip("the spread sits on the flag's threshold: either answer is right")
    uncertain = spread > settings.evaluation.uncertain_spread
    # likeness: the upload's nearest training image against the training images' own nearest others (by hand)
    unlike = False
    index_path = layout.RunLayout(run_path).retrieval_index
    if index_path.is_file():
        index = retrieval.Index.load(index_path)
        unit = index.unit_features
        query = retrieval.normalise(features.extract_features(model, batch))
        others = unit @ unit.T
        np.fill_diagonal(others, -np.inf)
        unlike = float((query @ unit.T).max()) < float(np.percentile(others.max(axis=1), 1))
    low, high = points["rule_out"]["threshold"], points["rule_in"]["threshold"]
    decisions = _decisions(app)
    assert len(decisions) == 1, decisions
    if unlike:
        expected = "Unlike the images this model learnt from"
    elif not metrics_module.predicted_malignant(probability, low):
        expected = "Cannot be ruled out:" if uncertain else "Rule-out:"
    elif metrics_module.predicted_malignant(probability, high):
        expected = "Rule-in:"
    else:
        expected = "Between:"
    assert decisions[0].strip("*").startswith(expected), (decisions, probability, spread, unlike)
    if expected in ("Rule-out:", "Cannot be ruled out:"):
        n_malignant = points["rule_out"]["validation"]["n_malignant"]
        assert f"of {n_malignant} melanomas in the validation data" in shown


def test_predict_refuses_large_wrong_type_and_bomb_uploads_saying_what_is_accepted(demo_env: Path) -> None:
    app = render("predict")
    oversized = _jpeg() + b"\0" * (21 * 1024 * 1024)
    _upload(app, "huge.jpg", oversized, "image/jpeg")
    assert "the limit is 20 MB" in app.error[0].value and _shown_probability(app) is None

    # another extension never reaches the page (the uploader's own type filter); another type under an accepted one:
    _upload(app, "report.jpg", b"%PDF-1.7\n" + b"0" * 4000, "image/jpeg")
    message = app.error[0].value
    assert "Cannot use report.jpg: " in message and "not an image" in message and "JPEG or PNG" in message
    assert _shown_probability(app) is None

    bomb = _png_header_only(10_000, 10_000)  # 100 MP in a few hundred bytes: passes the pipeline's guard
    assert len(bomb) < 2000
    _upload(app, "bomb.png", bomb, "image/png")
    message = app.error[0].value
    assert "10000 x 10000" in message and "up to 25 megapixels" in message and _shown_probability(app) is None

    _upload(app, "bigger.png", _png_header_only(20_000, 20_000), "image/png")  # past PIL's own limit
    assert "Cannot use bigger.png" in app.error[0].value and "up to 25 megapixels" in app.error[0].value


def test_predict_warns_about_a_tiny_image_instead_of_answering(demo_env: Path) -> None:
    app = _upload(render("predict"), "dot.png", _png(1, 1), "image/png")
    assert _shown_probability(app) is None
    assert any("only 1 x 1 pixels" in warning.value and "at least 64 pixels" in warning.value for warning in app.warning)
    _upload(app, "lesion.png", _png(96, 80), "image/png")
    assert _shown_probability(app) is not None


def test_predict_names_a_corrupt_model_instead_of_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    models = tmp_path / "models"
    app_fixture.write_results(models / "demo")
    broken = models / "demo" / "melanet" / "model.keras"
    broken.write_bytes(broken.read_bytes()[:5000])  # cut short, as by a full disk or an interrupted copy
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = _upload(render("predict"), "lesion.jpg", _jpeg(), "image/jpeg")
    assert app.error and "cannot load the trained model" in app.error[0].value and str(broken) in app.error[0].value
    assert "Traceback" not in app.error[0].value and _shown_probability(app) is None
    shutil.rmtree(models)


def test_gradcam_page_quotes_each_shown_runs_shortcut_audit(demo_env: Path) -> None:
    app = render("gradcam")
    shown = texts(app)
    audited = sorted((demo_env / "demo").glob("*/shortcuts/shortcuts.json"))
    if not audited:  # the fixture's runs were never audited: the page says how to audit them
        assert "no shortcut audit yet" in shown and "melanet audit-shortcuts --run" in shown
        return
    sentences = [json.loads(path.read_text())["background_only"] for path in audited]
    figures = [f"AUC {view['auc']:.2f} [{view['ci_low']:.2f}, {view['ci_high']:.2f}]" for view in sentences]
    assert sum(figure in shown for figure in figures) >= 2, "both shown runs' background-only AUCs are quoted"
    tables = [frame.value for frame in app.dataframe]
    assert any("background only (the lesion in skin colour)" in set(table["images"]) for table in tables
               if "images" in table)


def test_gradcam_page_names_an_unreadable_shortcut_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    app_fixture.write_results(models / "demo", with_model=False)
    for run in ("vgg_gap", "augment5x", "augment10x", "melanet"):
        (models / "demo" / run / "shortcuts").mkdir(parents=True)
        (models / "demo" / run / "shortcuts" / "shortcuts.json").write_text('{"full": {"auc": 0.7}}')
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = render("gradcam")
    warnings = [warning.value for warning in app.warning]
    assert any("shortcuts.json" in warning and "not a shortcut audit" in warning for warning in warnings), warnings


def _fixture_index(run_path: Path, image_ids: list[str], files: dict[str, Path]) -> None:
    """A small retrieval index of ``image_ids`` in the fixture run's own features (built as `similar --build` does)."""
    from melanet.runs import runs
    from melanet.classifier import predict
    from melanet.data import preprocess
    from melanet.explain import features, retrieval

    settings = runs.Run(run_path).config().data
    images = np.stack([preprocess.preprocess_image(files[image_id], settings.image_size, settings.max_image_pixels,
                                                   settings.resize, settings.color_constancy) for image_id in image_ids])
    gap = features.extract_features(predict.load_model(run_path), images)
    (run_path / "retrieval").mkdir(exist_ok=True)
    retrieval.Index.build(gap, image_ids, [0] * len(image_ids)).save(run_path / "retrieval" / "index.npz")


def test_predict_shows_the_six_most_similar_training_cases(demo_env: Path) -> None:
    from melanet.runs import runs
    from melanet.data import sources
    from melanet.explain import retrieval

    run_path = demo_env / "demo" / "melanet"
    data_root = runs.Run(run_path).config().data.root
    index_path = run_path / "retrieval" / "index.npz"
    samples = {sample.image_id: sample.path for sample in sources.read_index(REPOSITORY / data_root).train}
    if demo_env != SHIPPED_MODELS and not index_path.exists():
        _fixture_index(run_path, sorted(samples)[:10], samples)
    index = retrieval.Index.load(index_path)
    query = index.ids[3]  # a training image: it must come back first, as itself
    app = _upload(render("predict"), f"{query}.jpg", samples[query].read_bytes(), "image/jpeg")
    assert "Similar training cases" in texts(app)
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    # in rank order (the grid's columns list their images one column at a time)
    similar = sorted((caption for caption in captions if "similarity" in caption), key=lambda text: int(text.split(".")[0]))
    assert len(similar) == 6 and [int(caption.split(".")[0]) for caption in similar] == [1, 2, 3, 4, 5, 6]
    assert similar[0].startswith(f"1. {query}: ") and float(similar[0].rsplit(" ", 1)[1]) == pytest.approx(1.0, abs=2e-3)
    shown = [caption.split(" ")[1].rstrip(":") for caption in similar]
    assert set(shown) <= set(index.ids)
    values = [float(caption.rsplit(" ", 1)[1]) for caption in similar]
    assert values == sorted(values, reverse=True)
    if demo_env == SHIPPED_MODELS:  # the shipped index holds the training split and its labels
        labels = dict(zip(index.ids, index.labels))
        assert all((" malignant" in caption) == (labels[image_id] == 1) for image_id, caption in zip(shown, similar))


def test_predict_says_how_to_build_a_missing_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    app_fixture.write_results(models / "demo")
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = _upload(render("predict"), "lesion.jpg", _jpeg(), "image/jpeg")
    assert "No similar-cases index in this run: build it with `melanet similar --run" in texts(app)
