"""The Synthesized lesions page shows the synthesis audit and sorts the lesions by realism (AppTest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_fixture
from melanet.runs import layout, runs
from melanet.runs import audit_files
from melanet.gan import synthesis

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _kid(value: float) -> dict:
    return {"kid": value, "low": value / 2, "high": value * 2, "subset_mean": value, "subset_size": 2,
            "subsets": 10, "n_first": 5, "n_second": 4, "confidence": 0.95}


def write_audit(gan: Path) -> list[str]:
    """A complete audit of the fixture's GAN run; returns the synthetic ids from most to least realistic."""
    manifest = synthesis.read_manifest(gan)
    ranked = [row["synthetic_id"] for row in reversed(manifest)]  # the last one is the most realistic
    realism = [{"synthetic_id": image, "source_id": image[len(layout.SYNTHETIC_PREFIX):], "path": "",
                "realism": 0.9 - 0.1 * rank, "rank": rank + 1} for rank, image in enumerate(ranked)]
    nearest = [{"features": "backbone", "kind": "synthetic", "image": row["synthetic_id"],
                "nearest_id": row["source_id"], "distance": 1.0 + index} for index, row in enumerate(manifest)]
    nearest += [{"features": "backbone", "kind": "real", "image": row["source_id"], "nearest_id": row["source_id"],
                 "distance": 2.5} for row in manifest]
    space = {"description": "GAP features of the frozen vgg16 backbone", "kid": {
        "synthetic_vs_real_malignant": _kid(0.0123), "real_benign_vs_real_malignant": _kid(0.0045)},
        "memorisation": {"share_closer_than_real_q05": 0.25}}
    summary = {"counts": {"synthetic": len(manifest)}, "feature_spaces": {"backbone": space},
               "realism": {"features": "backbone", "probe": {"auc": 0.777, "folds": 3}}, "probe_real_ids": []}
    audit_files.write_audit(gan, summary, realism, nearest)
    return ranked


@pytest.fixture()
def audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    models = tmp_path / "models"
    app_fixture.write_results(models / "demo")
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    return write_audit(models / "demo" / "gan")


def render() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=90)
    app.run()
    app.switch_page("pages/lesions.py")
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    return app


def test_the_audit_tab_shows_kid_the_probe_and_the_closest_pairs(audited: list[str]) -> None:
    app = render()
    assert any(metric.value == "0.777" for metric in app.metric)
    table = app.dataframe[0].value
    assert list(table["KID"]) == [0.0123, 0.0045] and "real benign vs real malignant" in list(table["pair"])
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert {trace["name"] for trace in chart["data"]} == {"synthetic -> nearest real", "real -> nearest other real"}
    assert "25%" in chart["layout"]["title"]["text"]
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    pairs = [caption for caption in captions if "(distance " in caption]
    # the closest pairs, nearest first, each beside the real image it is nearest to
    assert pairs == [f"{audited[-1 - index]} (distance {1.0 + index:.3f})" for index in range(4)]
    first = captions.index(pairs[0])
    assert captions[first + 1] == f"real {audited[-1][len(layout.SYNTHETIC_PREFIX):]}"


def _page_lines(app: AppTest) -> list[str]:
    """The lesion rows of the paged list (the extremes' expander left out)."""
    extremes = [markdown for expander in app.expander for markdown in expander.markdown if "->" in markdown.value]
    lines = [markdown.value for markdown in app.markdown if "->" in markdown.value]
    return lines[len(extremes):]  # the expander comes before the paged list


def test_lesions_sort_from_most_to_least_realistic(audited: list[str]) -> None:
    app = render()
    app.radio(key="lesions_order").set_value("most realistic first").run()
    assert not app.exception
    lines = _page_lines(app)
    assert audited[0] in lines[0] and "(realism 0.90)" in lines[0]
    app.radio(key="lesions_order").set_value("least realistic first").run()
    lines = _page_lines(app)
    assert audited[-1] in lines[0]


def test_the_page_explains_itself_and_shows_the_extremes_with_their_nearest_real_melanoma(audited: list[str]) -> None:
    app = render()
    text = "\n".join(markdown.value for markdown in app.markdown)
    for words in ("cycle reconstruction", "Realism", "Manifest order", "nearest real melanoma"):
        assert words in text, words
    extremes = [markdown.value for markdown in app.expander[0].markdown if "->" in markdown.value]
    assert len(extremes) == 6
    assert audited[0] in extremes[0] and audited[1] in extremes[1] and audited[2] in extremes[2]
    assert audited[-1] in extremes[3] and audited[-2] in extremes[4]  # least realistic first
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    distances = {row_id: 1.0 + index for index, row_id in enumerate(reversed(audited))}  # manifest order
    source = audited[0][len(layout.SYNTHETIC_PREFIX):]
    assert f"nearest real melanoma {source}, distance {distances[audited[0]]:.3f}" in captions


def test_without_an_audit_the_tab_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    app_fixture.write_results(models / "demo")
    monkeypatch.setenv("MELANET_MODELS_DIR", str(models))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    app = render()
    assert any("melanet audit-synthesis --run" in info.value for info in app.info)
    assert [radio.options for radio in app.radio if radio.key == "lesions_order"] == [["manifest order"]]


def test_the_pixel_probe_its_yardsticks_and_a_lesion_composite_are_shown(audited: list[str]) -> None:
    models = Path(os.environ["MELANET_MODELS_DIR"]) / "demo" / "gan"
    summary = audit_files.read_summary(models)
    summary["realism"].update(yardstick={"auc": 0.612, "folds": 3}, pixel_probe={"auc": 0.845, "folds": 3},
                              pixel_yardstick={"auc": 0.634, "folds": 3})
    (models / layout.AUDIT_FILE).write_text(json.dumps(summary))
    rows = synthesis.read_manifest(models)
    kinds = ["whole (mask failed)"] + ["lesion"] * (len(rows) - 1)
    runs.atomic_write_csv(models / synthesis.MANIFEST_FILE,
                          [{**row, "composite": kind} for row, kind in zip(rows, kinds)],
                          (*synthesis.MANIFEST_COLUMNS, synthesis.COMPOSITE_COLUMN))
    app = render()
    assert {metric.value for metric in app.metric} >= {"0.777", "0.845"}
    assert any("0.612 in the realism probe's features, 0.634 in pixel features" in caption.value
               for caption in app.caption)
    notes = [info.value for info in app.info if "Lesion-only synthesis" in info.value]
    assert len(notes) == 1 and f"in {len(rows) - 1} of {len(rows)} images" in notes[0]
    assert "For 1 the lesion mask failed" in notes[0]
