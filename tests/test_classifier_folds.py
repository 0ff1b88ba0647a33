"""Cross-validated stage 2 (classifier.folds > 1): grouped stratified folds, out-of-fold predictions from the
model that did not see the image, synthetic translations dropped with their source, the fold ensemble's mean,
choices made on the out-of-fold predictions, and kill-and-resume inside fold 3 of 5."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import cross_validation, predict, train, training_sets
from melanet.data import folds, prepare
from melanet.data.prepare import ImageSet

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = REPOSITORY / "data" / "sample"
TRAINING_FOLDER, TRAINING_CSV = "ISBI2016_ISIC_Part3_Training_Data", "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
TEST_FOLDER, TEST_CSV = "ISBI2016_ISIC_Part3_Test_Data", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
DUPLICATE_ID = "ISIC_9900001"  # a byte copy of the first benign training image under another name
TINY = ["data.image_size=32", "classifier.backbone=vgg16-narrow", "classifier.width=0.0625",
        "classifier.weights=none", "classifier.optimizer=adam", "classifier.learning_rate=0.003",
        "classifier.batch_size=8", "evaluation.bootstrap_samples=50"]


def _rows(csv_name: str) -> list[tuple[str, str]]:
    return [tuple(line.split(",")[:2]) for line in (SAMPLE_ROOT / csv_name).read_text().split()]


def _make_isic(root: Path, train_counts: tuple[int, int], test_counts: tuple[int, int]) -> Path:
    """An ISIC-2016 folder of real sample JPEGs, plus one exact duplicate of the first benign training image."""
    for folder, csv_name, (benign, malignant) in ((TRAINING_FOLDER, TRAINING_CSV, train_counts),
                                                  (TEST_FOLDER, TEST_CSV, test_counts)):
        (root / folder).mkdir(parents=True)
        rows = _rows(csv_name)
        is_malignant = {"malignant", "1.0", "1"}
        chosen = [row for row in rows if row[1] not in is_malignant][:benign] + \
                 [row for row in rows if row[1] in is_malignant][:malignant]
        for image_id, _ in chosen:
            shutil.copy2(SAMPLE_ROOT / folder / f"{image_id}.jpg", root / folder / f"{image_id}.jpg")
        if folder == TRAINING_FOLDER:
            shutil.copy2(SAMPLE_ROOT / folder / f"{chosen[0][0]}.jpg", root / folder / f"{DUPLICATE_ID}.jpg")
            chosen.append((DUPLICATE_ID, chosen[0][1]))
        (root / csv_name).write_bytes("".join(f"{image_id},{label}\r\n" for image_id, label in chosen).encode())
    return root


def _config(root: Path, *extra: str) -> config_module.Config:
    return config_module.load_config(overrides=[*TINY, f"data.root={root}", f"data.cache_dir={root / 'cache'}", *extra])


# ------------------------------------------------------------------------------------------------
# folds


def test_folds_are_stratified_and_never_split_a_group() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.25).astype(np.int64)
    groups = [f"g{rng.integers(0, 40)}" if rng.random() < 0.4 else None for _ in range(300)]
    assignment = folds.assign_folds(labels, groups, 5, seed=3)
    assert sorted(set(assignment.tolist())) == [1, 2, 3, 4, 5]
    for group in {group for group in groups if group is not None}:
        assert len({assignment[index] for index, name in enumerate(groups) if name == group}) == 1, group
    # stratified: every fold holds about a fifth of each class (groups of up to ~8 images move the counts)
    for label in (0, 1):
        per_fold = np.bincount(assignment[labels == label], minlength=6)[1:]
        assert np.all(np.abs(per_fold - np.sum(labels == label) / 5) <= 10), per_fold
    assert np.array_equal(assignment, folds.assign_folds(labels, groups, 5, seed=3))  # the seed decides


def test_a_duplicate_pair_of_real_images_lands_in_one_fold(tmp_path: Path) -> None:
    root = _make_isic(tmp_path / "isic", (12, 6), (2, 2))
    config = _config(root)
    whole, groups = folds.whole_training_part(config.data)
    first_benign = whole.ids[[index for index, image_id in enumerate(whole.ids) if image_id != DUPLICATE_ID][0]]
    pair = [whole.ids.index(DUPLICATE_ID), whole.ids.index(first_benign)]
    assert groups[pair[0]] is not None and groups[pair[0]] == groups[pair[1]]
    for seed in range(6):
        assignment = folds.assign_folds(whole.labels, groups, 3, seed)
        assert assignment[pair[0]] == assignment[pair[1]]


def test_too_few_malignant_images_for_the_folds_is_a_clear_error() -> None:
    from melanet.data.errors import DataError

    with pytest.raises(DataError, match="5 stratified folds of 10 benign and 3 malignant"):
        folds.assign_folds(np.array([0] * 10 + [1] * 3), [None] * 13, 5, 0)


def test_source_id_maps_synthetic_and_augmented_rows_to_their_image() -> None:
    originals = {"ISIC_1", "ISIC_2"}
    assert training_sets.source_id("ISIC_1", originals) == "ISIC_1"
    assert training_sets.source_id("syn_ISIC_2", originals) == "ISIC_2"
    assert training_sets.source_id("ISIC_2_aug10", originals) == "ISIC_2"
    with pytest.raises(ValueError, match="syn_ISIC_3"):
        training_sets.source_id("syn_ISIC_3", originals)


# ------------------------------------------------------------------------------------------------
# one cross-validated run (3 folds, frozen prefix cached per view, dihedral augmentation and test views),
# trained once for the tests below


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("cv")
    root = _make_isic(base / "isic", (21, 9), (5, 5))
    config = _config(root, "classifier.folds=3", "classifier.epochs=3", "classifier.trainable_from=block5_conv1",
                     "classifier.augment=dihedral", "evaluation.tta=dihedral")
    run = runs.Run.create(base / "run", config, train.STAGE)
    summary = train.train_classifier(run, config)
    from melanet.reports import evaluate_stage

    report = evaluate_stage.evaluate_run(run.path)
    return {"root": root, "run": run, "config": config, "summary": summary, "report": report}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_every_training_image_gets_one_out_of_fold_prediction_from_the_model_that_did_not_see_it(cv_run) -> None:
    run, config = cv_run["run"], cv_run["config"]
    whole, _ = folds.whole_training_part(config.data)
    fold_of = folds.read_folds(run.file(folds.FOLDS_FILE))
    rows = _csv(run.file(train.VALIDATION_PREDICTIONS_FILE))
    assert sorted(row["image"] for row in rows) == sorted(whole.ids)  # each exactly once
    members = predict.load_model(run.path).members
    images = dict(zip(whole.ids, np.asarray(whole.images)))
    for fold, member in enumerate(members, start=1):
        held = [row for row in rows if fold_of[row["image"]] == fold]
        seen = [row for row in rows if fold_of[row["image"]] != fold]
        assert held and seen
        trained_on = set(run.path.joinpath("folds", f"fold-{fold}", cross_validation.TRAINING_IMAGES_FILE)
                         .read_text().split())
        assert not {row["image"] for row in held} & trained_on
        assert {row["image"] for row in seen} <= trained_on
        # the out-of-fold probability is this member's own (dihedral views), not another member's
        own = predict.predict_probabilities(member, np.stack([images[row["image"]] for row in held]), tta="dihedral")
        written = np.array([float(row["prob_malignant"]) for row in held])
        np.testing.assert_allclose(written, own, atol=2e-6)
        other = members[fold % len(members)]
        assert np.max(np.abs(predict.predict_probabilities(
            other, np.stack([images[row["image"]] for row in held]), tta="dihedral") - written)) > 1e-4


def test_one_epoch_for_all_folds_is_the_best_fold_averaged_held_out_auc(cv_run) -> None:
    from sklearn.metrics import roc_auc_score

    run = cv_run["run"]
    per_fold = []
    for fold in (1, 2, 3):
        rows = _csv(run.path / "folds" / f"fold-{fold}" / cross_validation.HELDOUT_FILE)
        assert sorted({int(row["epoch"]) for row in rows}) == [1, 2, 3]  # every epoch, no early stop
        per_fold.append([roc_auc_score([int(r["label"]) for r in rows if int(r["epoch"]) == epoch],
                                       [float(r["prob_malignant"]) for r in rows if int(r["epoch"]) == epoch])
                         for epoch in (1, 2, 3)])
    expected = int(np.argmax(np.mean(per_fold, axis=0))) + 1
    summary = runs.read_json(run.file(cross_validation.CROSS_VALIDATION_FILE))
    assert summary["epoch"] == expected == cv_run["summary"]["best_epoch"]
    assert summary["selection"] == "out_of_fold" and summary["folds"] == 3
    assert (summary["n_benign"], summary["n_malignant"]) == (22, 9)
    assert not (run.path / "folds" / "fold-1" / cross_validation.SNAPSHOTS_FOLDER).exists()


def test_the_test_prediction_is_the_mean_of_the_members(cv_run) -> None:
    run, config = cv_run["run"], cv_run["config"]
    test = prepare.load_split(config.data, "test")
    members = [predict._load_keras_file(run.path / "folds" / f"fold-{fold}" / predict.MODEL_FILE) for fold in (1, 2, 3)]
    own = np.stack([predict.predict_probabilities(member, np.asarray(test.images), tta="dihedral") for member in members])
    written = {row["image"]: float(row["prob_malignant"]) for row in _csv(run.path / "predictions.csv")}
    np.testing.assert_allclose([written[image_id] for image_id in test.ids], own.mean(axis=0), atol=2e-6)
    assert np.max(np.abs(own[0] - own.mean(axis=0))) > 1e-4  # the members differ: the mean is not one of them
    report = cv_run["report"]
    assert report["model"]["ensemble"]["members"] == 3
    assert report["test_time_augmentation"]["views"] == [predict.view_name(view) for view in predict.DIHEDRAL_VIEWS]


def _highest_threshold_reaching(labels: np.ndarray, scores: np.ndarray, sensitivity: float) -> float:
    """Brute force: the highest score s whose sensitivity (scores >= s called malignant) reaches ``sensitivity``,
    moved halfway down to the next lower distinct score (or 0), so no image sits on the threshold."""
    distinct = sorted(set(scores.tolist()))
    best = max(score for score in distinct if np.mean(scores[labels == 1] >= score) >= sensitivity)
    lower = max([score for score in distinct if score < best], default=0.0)
    return (best + lower) / 2


def test_thresholds_and_operating_points_come_from_the_out_of_fold_predictions(cv_run) -> None:
    run, report, config = cv_run["run"], cv_run["report"], cv_run["config"]
    oof = _csv(run.file(train.VALIDATION_PREDICTIONS_FILE))
    labels = np.array([int(row["label"]) for row in oof])
    scores = np.round(np.array([float(row["prob_malignant"]) for row in oof]), 6)
    point = report["operating_point"]
    assert point["validation"]["n"] == len(oof) == 31 and point["validation"]["n_malignant"] == 9
    assert point["threshold"] == pytest.approx(
        _highest_threshold_reaching(labels, scores, config.evaluation.target_sensitivity), abs=1e-6)
    assert "out-of-fold" in point["chosen_on"] and "3 folds, 22 benign / 9 malignant" in point["chosen_on"]
    rule_out = report["operating_points"]["rule_out"]
    assert rule_out["validation"]["sensitivity"] >= config.evaluation.rule_out_sensitivity
    oof_sensitivity = np.mean(scores[labels == 1] >= rule_out["threshold"] - 1e-9)
    assert rule_out["validation"]["sensitivity"] == pytest.approx(oof_sensitivity)
    # the out-of-fold AUC with its interval stands beside the test AUC
    from sklearn.metrics import roc_auc_score

    assert report["selection"]["kind"] == "out_of_fold"
    assert report["selection"]["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-5)
    assert report["selection"]["auc_ci"]["low"] <= report["selection"]["auc"] <= report["selection"]["auc_ci"]["high"]
    # the test predictions would have given another threshold: the check above can tell them apart
    test_rows = _csv(run.path / "predictions.csv")
    test_labels = np.array([int(row["label"]) for row in test_rows])
    test_scores = np.array([float(row["prob_malignant"]) for row in test_rows])
    assert point["threshold"] != pytest.approx(
        _highest_threshold_reaching(test_labels, test_scores, config.evaluation.target_sensitivity), abs=1e-6)


def test_the_ensemble_grad_cam_is_the_mean_of_the_members_maps(cv_run) -> None:
    from melanet.explain import gradcam

    run, config = cv_run["run"], cv_run["config"]
    ensemble = predict.load_model(run.path)
    image = np.asarray(prepare.load_split(config.data, "test").images[:2])
    maps = gradcam.compute_maps(ensemble, image, layer="block5_conv3")
    members = [gradcam.compute_maps(member, image, layer="block5_conv3") for member in ensemble.members]
    np.testing.assert_allclose(maps, np.mean(members, axis=0), atol=1e-6)
    from melanet.explain import features

    assert features.extract_features(ensemble, image).shape == (2, 3 * features.extract_features(
        ensemble.members[0], image).shape[1])


# ------------------------------------------------------------------------------------------------
# synthetic images follow their source


def test_a_held_out_benign_images_synthetic_translation_is_not_in_that_folds_training(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    root = _make_isic(tmp_path / "isic", (15, 6), (2, 2))
    config = _config(root, "classifier.folds=3", "classifier.epochs=1", "classifier.training_set=synthetic")

    def translations(originals: ImageSet, gan_run: str, **_) -> ImageSet:
        benign = [index for index, label in enumerate(originals.labels) if label == 0]
        return ImageSet(np.asarray(originals.images)[benign][:, ::-1], np.ones(len(benign), dtype=np.int64),
                        [f"syn_{originals.ids[index]}" for index in benign])

    monkeypatch.setattr(training_sets, "synthetic_images", translations)  # stands in for a stage-1 run
    drawn: list[np.ndarray] = []
    from melanet.classifier import fitting

    real_make_dataset = fitting.make_dataset

    def spy(images, labels, batch_size, **options):
        if options.get("orders") is not None:
            drawn.append(np.asarray(options["orders"]))
        return real_make_dataset(images, labels, batch_size, **options)

    monkeypatch.setattr(fitting, "make_dataset", spy)
    run = runs.Run.create(tmp_path / "run", config, train.STAGE)
    train.train_classifier(run, config)
    fold_of = folds.read_folds(run.file(folds.FOLDS_FILE))
    whole_ids = list(fold_of)
    row_ids = whole_ids + [f"syn_{image_id}" for image_id in whole_ids
                           if int(_csv(run.file(folds.FOLDS_FILE))[whole_ids.index(image_id)]["label"]) == 0]
    assert len(drawn) == 3
    for fold, orders in enumerate(drawn, start=1):
        used = {row_ids[index % len(row_ids)] for index in orders.ravel()}
        held_benign = [image_id for image_id in whole_ids
                       if fold_of[image_id] == fold and f"syn_{image_id}" in row_ids]
        assert held_benign
        assert not {f"syn_{image_id}" for image_id in held_benign} & used
        assert not {image_id for image_id in whole_ids if fold_of[image_id] == fold} & used
        others = {f"syn_{image_id}" for image_id in whole_ids if fold_of[image_id] != fold} & set(row_ids)
        assert others <= used  # the other folds' translations are trained on
        listed = set((run.path / "folds" / f"fold-{fold}" / cross_validation.TRAINING_IMAGES_FILE).read_text().split())
        assert listed == used


# ------------------------------------------------------------------------------------------------
# kill and resume


@pytest.mark.slow
def test_kill_in_fold_3_of_5_resumes_fold_3_and_keeps_folds_1_and_2(tmp_path: Path) -> None:
    root = _make_isic(tmp_path / "isic", (20, 10), (2, 2))
    run_dir = tmp_path / "run"
    settings = [*TINY, f"data.root={root}", f"data.cache_dir={root / 'cache'}", "classifier.folds=5",
                "classifier.epochs=6"]
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "melanet", "-q", "train-classifier"]
    process = subprocess.Popen([*command, "--run", str(run_dir), *arguments], cwd=REPOSITORY, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fold_3 = runs.Run(cross_validation.fold_folder(run_dir, 3))
    deadline = time.monotonic() + 300
    while (not fold_3.path.is_dir() or len(fold_3.history()) < 2) and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not fold_3.file(cross_validation.DONE_FILE).is_file(), "fold 3 finished before the kill"
    from melanet.runs import lifecycle

    killed_after = lifecycle.latest_checkpoint(fold_3)["epoch"]
    assert 1 <= killed_after < 6
    kept = {path: path.read_bytes() for fold in (1, 2)
            for path in sorted(cross_validation.fold_folder(run_dir, fold).rglob("*")) if path.is_file()}
    assert any(path.name == cross_validation.DONE_FILE for path in kept)
    fold_3_rows = fold_3.history()[:killed_after]
    assert not cross_validation.fold_folder(run_dir, 4).exists()

    finished = subprocess.run([*command, "--resume", str(run_dir)], cwd=REPOSITORY, env=environment,
                              capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stderr[-2000:]
    for path, content in kept.items():  # folds 1-2 untouched (done.json carries its finishing time)
        if path.suffix == ".npz" or path.parent.name == "checkpoints" or path.parent.parent.name == "checkpoints":
            continue  # snapshots and checkpoints are removed once the epoch is chosen
        assert path.read_bytes() == content, path
    assert fold_3.history()[:killed_after] == fold_3_rows  # fold 3's epochs before the kill kept
    assert [int(row["epoch"]) for row in fold_3.history()] == list(range(1, 7))
    heldout_epochs = {int(row["epoch"]) for row in _csv(fold_3.file(cross_validation.HELDOUT_FILE))}
    assert heldout_epochs == set(range(1, 7))
    for fold in (4, 5):
        assert cross_validation.fold_folder(run_dir, fold).joinpath(cross_validation.DONE_FILE).is_file()
    assert len(predict.load_model(run_dir).members) == 5
    assert runs.Run(run_dir).status()["state"] == "done"


def test_frozen_features_are_cached_per_view_and_read_back_by_the_next_run(tmp_path: Path) -> None:
    from melanet.classifier import model as model_module

    keras_model = model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none", trainable_from="block4_conv1")
    prefix, _ = model_module.split_at(keras_model, "block4_conv1")
    data = config_module.load_config(overrides=[*TINY, f"data.root={SAMPLE_ROOT}", f"data.cache_dir={tmp_path / 'data-cache'}"]).data
    images = np.asarray(prepare.load_split(data, "test").images[:6])  # the split's cache in tmp_path, not in the repository
    view = predict.DIHEDRAL_VIEWS[6]
    first = train.cached_frozen_features(prefix, images, 4, view, tmp_path)
    files = sorted(tmp_path.glob("features-*.npy"))
    assert len(files) == 1
    # independent: the prefix applied to the viewed images directly
    expected = np.asarray(prefix(predict.apply_view(images, view).astype(np.float32) / 255.0))
    np.testing.assert_allclose(first, expected, atol=1e-5)
    files[0].write_bytes(files[0].read_bytes())  # same bytes; the next call must read, not recompute
    modified = files[0].stat().st_mtime_ns
    again = train.cached_frozen_features(prefix, images, 4, view, tmp_path)
    assert isinstance(again, np.memmap) and files[0].stat().st_mtime_ns == modified
    np.testing.assert_array_equal(np.asarray(again), first)
    train.cached_frozen_features(prefix, images, 4, predict.DIHEDRAL_VIEWS[0], tmp_path)  # another view
    train.cached_frozen_features(prefix, images[::-1].copy(), 4, view, tmp_path)  # other images
    assert len(list(tmp_path.glob("features-*.npy"))) == 3
