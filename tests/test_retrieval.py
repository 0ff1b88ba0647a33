"""Similar cases: nearest training images by cosine of GAP features, the vote's AUC with k chosen on
validation, and `melanet similar` on a real classifier run folder of real JPEGs."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import model as model_module
from melanet.cli import main
from melanet.data import prepare, splits
from melanet.explain import similar_cases
from melanet.explain import retrieval, retrieval_stage

TRAINING_FOLDER = "ISBI2016_ISIC_Part3_Training_Data"
TEST_FOLDER = "ISBI2016_ISIC_Part3_Test_Data"


def _brute_votes(training: np.ndarray, training_labels: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Share of malignant among the k nearest by cosine, one query and one training image at a time."""
    shares = []
    for query in queries:
        cosines = [float(np.dot(query, row) / (np.linalg.norm(query) * np.linalg.norm(row))) for row in training]
        order = sorted(range(len(training)), key=lambda index: (-cosines[index], index))[:k]
        shares.append(sum(int(training_labels[index]) for index in order) / k)
    return np.array(shares)


def _brute_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a malignant image outscores a benign one (ties one half), over every pair."""
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


@pytest.fixture
def hand_made() -> dict[str, np.ndarray]:
    """Training, validation and test features in 6-D: malignant images lean towards one direction."""
    rng = np.random.default_rng(3)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.array([index % 3 == 0 for index in range(count)], dtype=np.int64)
        features = rng.normal(size=(count, 6)) + np.outer(labels, [1.2, 0, 0, 0, 0, 0]) + 0.5
        return features, labels

    training, training_labels = draw(40)
    validation, validation_labels = draw(24)
    test, test_labels = draw(30)
    return {"training": training, "training_labels": training_labels, "validation": validation,
            "validation_labels": validation_labels, "test": test, "test_labels": test_labels}


def test_a_training_image_finds_itself_first() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 16)) * np.linspace(0.1, 5, 30)[:, None]  # norms differ: cosine ignores them
    index = retrieval.Index.build(features, [f"img{number}" for number in range(30)], rng.integers(0, 2, 30))
    rows, similarities = retrieval.nearest(index, features, 3)
    assert list(rows[:, 0]) == list(range(30))
    assert similarities[:, 0] == pytest.approx(1.0, abs=2e-3)
    assert (np.diff(similarities, axis=1) <= 1e-6).all()  # most similar first
    assert index.features.dtype == np.float16
    assert np.linalg.norm(index.features.astype(np.float32), axis=1) == pytest.approx(1.0, abs=2e-3)
    scaled = retrieval.nearest(index, features[:1] * 7.0, 30)[0]  # cosine: the query's norm changes nothing
    assert list(scaled[0]) == list(retrieval.nearest(index, features[:1], 30)[0][0])


def test_the_index_round_trips_and_a_missing_one_names_its_file(tmp_path: Path) -> None:
    index = retrieval.Index.build(np.eye(3), ["a", "b", "c"], [0, 1, 0], ["nevus", "melanoma", ""])
    index.save(tmp_path / "retrieval" / "index.npz")
    again = retrieval.Index.load(tmp_path / "retrieval" / "index.npz")
    assert again.ids == ["a", "b", "c"] and list(again.labels) == [0, 1, 0]
    assert again.diagnoses == ["nevus", "melanoma", ""]
    np.testing.assert_array_equal(again.features, index.features)
    with pytest.raises(runs.RunError, match="other/retrieval/index.npz: no retrieval index"):
        retrieval.Index.load(tmp_path / "other" / "retrieval" / "index.npz")


def test_votes_match_a_brute_force_neighbour_count(hand_made: dict[str, np.ndarray]) -> None:
    index = retrieval.Index.build(hand_made["training"], [str(i) for i in range(40)], hand_made["training_labels"])
    found = retrieval.votes(index, hand_made["test"], 15)
    assert found.shape == (30, 15)
    for k in (1, 4, 15):
        np.testing.assert_allclose(found[:, k - 1], _brute_votes(index.features.astype(np.float64), hand_made["training_labels"],
                                                                 hand_made["test"], k), atol=1e-12)


def test_the_vote_auc_against_a_brute_force_computation(hand_made: dict[str, np.ndarray]) -> None:
    index = retrieval.Index.build(hand_made["training"], [str(i) for i in range(40)], hand_made["training_labels"])
    validation_votes = retrieval.votes(index, hand_made["validation"])
    test_votes = retrieval.votes(index, hand_made["test"])
    classifier = hand_made["test"][:, 0]  # a "classifier" that reads the malignant direction
    block = similar_cases.vote_report(hand_made["validation_labels"], validation_votes, hand_made["test_labels"],
                                      test_votes, classifier_probabilities=classifier)

    # the neighbours of the features as stored (float16 rounding can swap two near-equal cosines)
    training, training_labels = index.features.astype(np.float64), hand_made["training_labels"]
    validation_aucs = [_brute_auc(hand_made["validation_labels"],
                                  _brute_votes(training, training_labels, hand_made["validation"], k))
                       for k in range(1, 16)]
    expected_k = 1 + max(range(15), key=lambda index: (validation_aucs[index], -index))
    assert block["k"] == expected_k
    assert block["validation_auc_by_k"] == pytest.approx(validation_aucs, abs=1e-12)
    expected_test = _brute_auc(hand_made["test_labels"],
                               _brute_votes(training, training_labels, hand_made["test"], expected_k))
    assert block["test_auc"] == pytest.approx(expected_test, abs=1e-12)
    assert block["ci_low"] < block["test_auc"] < block["ci_high"]
    assert block["versus_classifier"]["classifier_auc"] == pytest.approx(
        _brute_auc(hand_made["test_labels"], classifier), abs=1e-12)
    assert block["versus_classifier"]["delta_auc"] == pytest.approx(expected_test - block["versus_classifier"]["classifier_auc"])


def test_k_is_chosen_on_validation_never_on_test(hand_made: dict[str, np.ndarray]) -> None:
    index = retrieval.Index.build(hand_made["training"], [str(i) for i in range(40)], hand_made["training_labels"])
    validation_votes = retrieval.votes(index, hand_made["validation"])
    test_votes = retrieval.votes(index, hand_made["test"])
    first = similar_cases.vote_report(hand_made["validation_labels"], validation_votes, hand_made["test_labels"], test_votes)
    chosen = {first["k"]}
    rng = np.random.default_rng(1)
    for _ in range(5):  # any test labels (and votes) leave k as it was
        labels = rng.permutation(hand_made["test_labels"])
        other = similar_cases.vote_report(hand_made["validation_labels"], validation_votes, labels, test_votes[::-1])
        chosen.add(other["k"])
        assert other["validation_auc"] == first["validation_auc"]
    assert chosen == {first["k"]}
    # ... while the validation labels do choose it: the best k for reversed validation labels differs here
    reversed_labels = 1 - hand_made["validation_labels"]
    assert similar_cases.vote_report(reversed_labels, validation_votes, hand_made["test_labels"], test_votes)["k"] != first["k"]


def test_ties_choose_the_smallest_k() -> None:
    labels = np.array([0, 0, 1, 1])
    votes = np.tile(np.array([[0.0], [0.0], [1.0], [1.0]]), (1, 15))  # every k separates perfectly
    assert similar_cases.choose_k(labels, votes)[0] == 1


# -- the command on a real run folder ---------------------------------------------------------------------

@pytest.fixture
def classifier_run(tmp_path: Path, tiny_isic: Path) -> Path:
    """A finished stage-2 run (narrow VGG-GAP, random weights, 32 px) on real JPEGs."""
    config = config_module.load_config(overrides=[
        f"data.root={tiny_isic}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}", "data.workers=1",
        "classifier.backbone=vgg16-narrow", "classifier.width=0.0625", "classifier.weights=none",
    ])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none").save(run.file("model.keras"))
    return run.path


def _table(output: str) -> list[list[str]]:
    lines = output.splitlines()
    start = next(number for number, line in enumerate(lines) if line.split()[:2] == ["rank", "image"])
    return [line.split() for line in lines[start + 1:] if line.strip()]


@pytest.mark.slow
def test_similar_builds_an_index_of_training_images_only(classifier_run: Path, tiny_isic: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "evaluate", "--run", str(classifier_run)]) == 0
    assert main(["-q", "similar", "--run", str(classifier_run), "--build"]) == 0
    output = capsys.readouterr().out
    assert "similar-cases vote: k = " in output

    config = runs.Run(classifier_run).config()
    training, validation = splits.training_and_validation(config.data, config.seed)
    test = prepare.load_split(config.data, "test")
    index = retrieval.Index.load(classifier_run / "retrieval" / "index.npz")
    assert index.ids == training.ids and list(index.labels) == list(training.labels)
    assert not set(index.ids) & (set(validation.ids) | set(test.ids))
    with (classifier_run / "retrieval" / "votes.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["image"] for row in rows if row["split"] == "validation"] == validation.ids
    assert [row["image"] for row in rows if row["split"] == "test"] == test.ids

    metrics = json.loads((classifier_run / "metrics.json").read_text())
    block = metrics["similar_cases"]
    assert 1 <= block["k"] <= len(training.ids)
    assert block["versus_classifier"]["classifier_auc"] == pytest.approx(metrics["auc"])
    assert "Similar-cases vote" in (classifier_run / "model_card.md").read_text()
    assert runs.Run(classifier_run).status()["retrieval"]["state"] == "done"
    # a re-evaluation keeps the block
    assert main(["-q", "evaluate", "--run", str(classifier_run)]) == 0
    assert json.loads((classifier_run / "metrics.json").read_text())["similar_cases"] == block
    capsys.readouterr()

    # the dashboard's one call: the K cases most like an image, each with its original file
    cases = retrieval_stage.most_similar(classifier_run, training.images[0], 3)
    assert [case.rank for case in cases] == [1, 2, 3]
    assert cases[0].image == training.ids[0] and cases[0].similarity == pytest.approx(1.0, abs=2e-3)
    assert all(first.similarity >= second.similarity for first, second in zip(cases, cases[1:]))
    labels = dict(zip(training.ids, training.labels))
    for case in cases:
        assert case.file == tiny_isic / TRAINING_FOLDER / f"{case.image}.jpg" and case.file.is_file()
        assert case.label == labels[case.image] and case.label_name == ("malignant" if case.label else "benign")

    first = training.ids[0]
    assert main(["-q", "similar", "--run", str(classifier_run), str(tiny_isic / TRAINING_FOLDER / f"{first}.jpg"),
                 "--k", "3"]) == 0
    table = _table(capsys.readouterr().out)
    assert len(table) == 3 and table[0][1] == first and float(table[0][-1]) == pytest.approx(1.0, abs=2e-3)
    assert table[0][2] == ("malignant" if training.labels[0] == 1 else "benign")

    test_file = tiny_isic / TEST_FOLDER / f"{test.ids[0]}.jpg"
    assert main(["-q", "similar", "--run", str(classifier_run), str(test_file), "--k", "50"]) == 0
    table = _table(capsys.readouterr().out)
    assert {row[1] for row in table} == set(training.ids)  # every training image, and nothing else


def test_similar_errors_are_one_line_naming_the_file(classifier_run: Path, tiny_isic: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    image = next((tiny_isic / TRAINING_FOLDER).glob("*.jpg"))
    assert main(["-q", "similar", "--run", str(classifier_run), str(image)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(classifier_run / "retrieval" / "index.npz") in error

    missing = tiny_isic / "no_such_image.jpg"
    assert main(["-q", "similar", "--run", str(classifier_run), str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(missing) in error and "Traceback" not in error

    assert main(["-q", "similar", "--run", str(classifier_run)]) == 2
    assert "--build" in capsys.readouterr().err

