"""Performance by subgroup: figures against a hand computation on a small table with metadata (missing ages,
a one-class group), the metadata of the ISIC 2017/2019/2020 layouts, and `evaluate --data` writing
subgroups.json for a folder with metadata (and none without)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import model as model_module
from melanet.cli import main
from melanet.data import metadata
from melanet.evaluation import subgroups

import challenge_layouts

Meta = metadata.ImageMetadata


def _wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return centre - half, centre + half


def _auc_and_variance(labels: list[int], scores: list[float]) -> tuple[float, float]:
    """Mann-Whitney AUC and DeLong's variance from structural components, pair by pair."""
    positive = [s for s, label in zip(scores, labels) if label == 1]
    negative = [s for s, label in zip(scores, labels) if label == 0]

    def psi(p: float, n: float) -> float:
        return 1.0 if p > n else 0.5 if p == n else 0.0

    v10 = [sum(psi(p, n) for n in negative) / len(negative) for p in positive]
    v01 = [sum(psi(p, n) for p in positive) / len(positive) for n in negative]
    auc = sum(v10) / len(v10)
    # a class of one image adds no variance term (its sample variance is undefined)
    s10 = sum((v - auc) ** 2 for v in v10) / (len(v10) - 1) if len(v10) > 1 else 0.0
    s01 = sum((v - auc) ** 2 for v in v01) / (len(v01) - 1) if len(v01) > 1 else 0.0
    return auc, s10 / len(v10) + s01 / len(v01)


# 16 images: (label, probability, age, sex, site)
TABLE = [
    (1, 0.90, 25.0, "female", "torso"), (0, 0.20, 20.0, "female", "torso"), (1, 0.40, 15.0, "male", "torso"),
    (0, 0.60, 25.0, "male", "head/neck"), (0, 0.10, 10.0, "female", "torso"),
    (1, 0.80, 45.0, "female", "torso"), (1, 0.30, 50.0, "male", "lower extremity"), (0, 0.35, 40.0, "female", "torso"),
    (0, 0.70, 55.0, "male", "head/neck"), (0, 0.05, 35.0, None, "torso"), (1, 0.65, 30.0, "female", None),
    (1, 0.75, 60.0, "male", "lower extremity"), (1, 0.55, 70.0, "female", "lower extremity"),  # >= 60: malignant only
    (0, 0.45, None, "male", "torso"), (1, 0.85, None, "female", "torso"), (0, 0.50, None, None, "torso"),
]
IDS = [f"ISIC_{number:07d}" for number in range(len(TABLE))]


def _report(threshold: float = 0.5) -> dict:
    labels = np.array([row[0] for row in TABLE])
    probabilities = np.array([row[1] for row in TABLE])
    found = {image_id: Meta(age=row[2], sex=row[3], site=row[4]) for image_id, row in zip(IDS, TABLE)}
    return subgroups.subgroup_report(IDS, labels, probabilities, found, ("sex", "age", "site"), threshold=threshold)


def _members(variable: str, name: str) -> list[tuple]:
    def band(age):
        return "unknown" if age is None else "< 30" if age < 30 else "30-59" if age < 60 else ">= 60"

    pick = {"sex": lambda row: row[3] or "unknown", "age": lambda row: band(row[2]),
            "site": lambda row: row[4] or "unknown"}[variable]
    return [row for row in TABLE if pick(row) == name]


def test_age_bands_and_groups_in_order() -> None:
    report = _report()
    assert [group["name"] for group in report["age"]["groups"]] == ["< 30", "30-59", ">= 60", "unknown"]
    assert [group["name"] for group in report["sex"]["groups"]] == ["female", "male", "unknown"]
    assert [group["name"] for group in report["site"]["groups"]] == ["head/neck", "lower extremity", "torso", "unknown"]
    assert [group["n"] for group in report["age"]["groups"]] == [5, 6, 2, 3]
    assert subgroups.age_band(29.9) == "< 30" and subgroups.age_band(30) == "30-59"
    assert subgroups.age_band(59) == "30-59" and subgroups.age_band(60) == ">= 60" and subgroups.age_band(None) == "unknown"


@pytest.mark.parametrize("variable", ["sex", "age", "site"])
def test_group_figures_match_a_hand_computation(variable: str) -> None:
    threshold = 0.5
    for group in _report(threshold)[variable]["groups"]:
        rows = _members(variable, group["name"])
        labels = [row[0] for row in rows]
        scores = [row[1] for row in rows]
        assert (group["n"], group["n_malignant"], group["n_benign"]) == (len(rows), sum(labels), len(rows) - sum(labels))
        tp = sum(1 for label, score in zip(labels, scores) if label == 1 and score > threshold)
        tn = sum(1 for label, score in zip(labels, scores) if label == 0 and score <= threshold)
        if sum(labels):
            assert group["sensitivity"]["value"] == pytest.approx(tp / sum(labels))
            assert (group["sensitivity"]["ci_low"], group["sensitivity"]["ci_high"]) == pytest.approx(_wilson(tp, sum(labels)))
        if len(labels) - sum(labels):
            benign = len(labels) - sum(labels)
            assert group["specificity"]["value"] == pytest.approx(tn / benign)
            assert (group["specificity"]["ci_low"], group["specificity"]["ci_high"]) == pytest.approx(_wilson(tn, benign))
        assert group["small"] is True  # every group here has fewer than 10 of a class
        if 0 < sum(labels) < len(labels):
            auc, variance = _auc_and_variance(labels, scores)
            assert group["auc"] == pytest.approx(auc) and group["variance"] == pytest.approx(variance)
            half = 1.959963984540054 * math.sqrt(variance)
            assert group["ci_low"] == pytest.approx(max(0.0, auc - half))
            assert group["ci_high"] == pytest.approx(min(1.0, auc + half))
        else:
            assert group["auc"] is None and "only" in group["auc_reason"]


def test_a_one_class_group_has_no_auc_and_says_why() -> None:
    over_sixty = next(group for group in _report()["age"]["groups"] if group["name"] == ">= 60")
    assert (over_sixty["n"], over_sixty["n_malignant"]) == (2, 2)
    assert over_sixty["auc"] is None and over_sixty["auc_reason"] == "only malignant images: no AUC"
    assert over_sixty["specificity"]["value"] is None and over_sixty["sensitivity"]["value"] == 1.0


def test_the_heterogeneity_test_by_hand() -> None:
    test = _report()["age"]["test"]
    used = {}
    for name in ("< 30", "30-59"):  # '>= 60' holds one class, 'unknown' is not a group to compare
        rows = _members("age", name)
        used[name] = _auc_and_variance([row[0] for row in rows], [row[1] for row in rows])
    weights = {name: 1 / variance for name, (_, variance) in used.items()}
    pooled = sum(weights[name] * used[name][0] for name in used) / sum(weights.values())
    chi_square = sum(weights[name] * (used[name][0] - pooled) ** 2 for name in used)
    assert test["groups"] == ["< 30", "30-59"] and test["left_out"] == [">= 60", "unknown"]
    assert test["df"] == 1 and test["chi_square"] == pytest.approx(chi_square)
    assert test["p"] == pytest.approx(stats.chi2.sf(chi_square, 1)) and test["pooled_auc"] == pytest.approx(pooled)
    # with two equal AUCs there is nothing to find
    same = subgroups.heterogeneity({"a": {"auc": 0.7, "variance": 0.01}, "b": {"auc": 0.7, "variance": 0.04}})
    assert same["chi_square"] == pytest.approx(0.0) and same["p"] == pytest.approx(1.0)
    one = subgroups.heterogeneity({"a": {"auc": 0.7, "variance": 0.01}, "unknown": {"auc": 0.5, "variance": 0.01}})
    assert one["p"] is None and "needs 2" in one["reason"]


def test_the_small_flag_counts_each_class() -> None:
    labels = np.array([1] * 10 + [0] * 10 + [1] * 10 + [0] * 9)
    probabilities = np.linspace(0.01, 0.99, len(labels))
    ids = [f"i{n}" for n in range(len(labels))]
    found = {image_id: Meta(sex="female" if n < 20 else "male") for n, image_id in enumerate(ids)}
    groups = subgroups.subgroup_report(ids, labels, probabilities, found, ("sex",), threshold=0.5)["sex"]["groups"]
    assert [(group["name"], group["small"]) for group in groups] == [("female", False), ("male", True)]


def test_metadata_of_the_challenge_layouts(tmp_path: Path) -> None:
    root = challenge_layouts.build_isic2019(tmp_path / "isic2019")
    layout, found = metadata.read_metadata(root, "train")
    assert layout == "isic2019" and metadata.variables_of(layout) == ("sex", "age", "site")
    rows = challenge_layouts.ISIC2019_ROWS
    ids = sorted(found)
    assert len(ids) == len(rows)
    for index, image_id in enumerate(ids):  # built in this order: ages '' every 5th, sex '' on even rows
        entry = found[image_id]
        assert entry.age == (None if index % 5 == 4 else 45.0)
        assert entry.sex == ("male" if index % 2 else None) and entry.site == "anterior torso"
        assert entry.diagnosis == metadata.DIAGNOSIS_NAMES[rows[index][0]]

    root = challenge_layouts.build_isic2020(tmp_path / "isic2020")
    layout, found = metadata.read_metadata(root, "train")
    assert metadata.variables_of(layout) == ("sex", "age", "site")
    assert {entry.site for entry in found.values()} == {"torso"} and len({e.patient for e in found.values()}) == 8
    assert {entry.diagnosis for entry in found.values()} == {"melanoma", "nevus"}

    root = challenge_layouts.build_isic2017(tmp_path / "isic2017")
    metadata_file = root / "ISIC-2017_Test_v2_Data" / "ISIC-2017_Test_v2_Data_metadata.csv"
    lines = metadata_file.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",unknown,unknown"
    metadata_file.write_text("\r\n".join(lines) + "\r\n")
    layout, found = metadata.read_metadata(root, "test")
    assert metadata.variables_of(layout) == ("sex", "age")
    first = lines[1].split(",")[0]
    assert found[first].age is None and found[first].sex is None
    assert all(found[other].age == 55.0 and found[other].sex == "female" for other in found if other != first)
    assert sorted(entry.diagnosis for entry in found.values()) == sorted(
        ["melanoma"] * 2 + ["seborrheic keratosis"] + ["nevus"] * 2)


def test_no_metadata_no_variables(tiny_isic: Path) -> None:
    layout, found = metadata.read_metadata(tiny_isic, "test")
    assert layout == "isic2016" and found == {} and metadata.variables_of(layout) == ()


@pytest.fixture
def classifier_run(tmp_path: Path, tiny_isic: Path) -> Path:
    config = config_module.load_config(overrides=[
        f"data.root={tiny_isic}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}", "data.workers=1",
        "classifier.backbone=vgg16-narrow", "classifier.width=0.0625", "classifier.weights=none",
    ])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none").save(run.file("model.keras"))
    return run.path


@pytest.mark.slow
def test_evaluate_writes_subgroups_for_data_with_metadata(classifier_run: Path, tmp_path: Path) -> None:
    assert main(["-q", "evaluate", "--run", str(classifier_run)]) == 0
    assert not (classifier_run / "subgroups.json").exists()  # ISIC-2016: labels only

    root = challenge_layouts.build_isic2019(tmp_path / "isic2019")
    assert main(["-q", "evaluate", "--run", str(classifier_run), "--data", str(root)]) == 0
    folder = next((classifier_run / "external").iterdir())
    summary = json.loads((folder / "subgroups.json").read_text())
    predictions = {line.split(",")[0]: line.split(",") for line in (folder / "predictions.csv").read_text().splitlines()[1:]}
    assert summary["n"] == len(predictions) == len(challenge_layouts.ISIC2019_ROWS)
    assert summary["threshold"] == json.loads((folder / "metrics.json").read_text())["threshold"]
    assert set(summary["variables"]) == {"sex", "age", "site"}
    ages = {group["name"]: group for group in summary["variables"]["age"]["groups"]}
    assert set(ages) == {"30-59", "unknown"} and ages["unknown"]["n"] == sum(
        1 for index in range(len(challenge_layouts.ISIC2019_ROWS)) if index % 5 == 4)
    sexes = {group["name"]: group["n"] for group in summary["variables"]["sex"]["groups"]}
    assert sexes == {"male": 12, "unknown": 12}  # sex is left empty on every other row
    assert all(group["small"] for variable in summary["variables"].values() for group in variable["groups"])
    # a one-class group has no AUC; every malignant count adds up to the labelled melanomas
    malignant = sum(int(row[1]) for row in predictions.values())
    for variable in summary["variables"].values():
        assert sum(group["n_malignant"] for group in variable["groups"]) == malignant
        for group in variable["groups"]:
            assert (group["auc"] is None) == (group["n_malignant"] in (0, group["n"]))
