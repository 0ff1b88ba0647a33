"""The shortcut audit (`melanet audit-shortcuts`): hand-made images whose lesion and skin we know, and
"classifiers" whose answers we can compute by hand; then the CLI on a real run folder of real JPEGs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import model as model_module
from melanet.cli import main
from melanet.evaluation import delong
from melanet.audits import shortcuts

SIZE = 48
SKIN = np.array([200, 150, 130])
LESION = np.array([70, 45, 35])
RADIUS = 12


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC as the share of (malignant, benign) pairs ranked right, ties counted half: the slow definition."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _disc() -> np.ndarray:
    rows, columns = np.mgrid[:SIZE, :SIZE]
    return (rows - SIZE / 2) ** 2 + (columns - SIZE / 2) ** 2 <= RADIUS ** 2


def _image_set(count: int = 40, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Skin with a dark central disc; the top-left pixel's red channel carries the label (noisily), and
    the lesion's darkness carries it too (independently)."""
    rng = np.random.default_rng(seed)
    labels = np.array([index % 2 for index in range(count)])
    images = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    disc = _disc()
    for index, label in enumerate(labels):
        image = np.tile(SKIN, (SIZE, SIZE, 1)) + rng.integers(-6, 7, (SIZE, SIZE, 3))
        lesion_shade = LESION - 25 * label + rng.integers(-20, 21)
        image[disc] = np.clip(lesion_shade + rng.integers(-4, 5, (int(disc.sum()), 3)), 0, 255)
        image[0, 0, 0] = int(np.clip(170 + 30 * label + rng.integers(-40, 41), 0, 255))
        images[index] = np.clip(image, 0, 255)
    return [f"ISIC_{index:07d}" for index in range(count)], images, labels


def _corner(images: np.ndarray) -> np.ndarray:
    """A "classifier" that reads only the top-left pixel."""
    return images[:, 0, 0, 0].astype(np.float64) / 255.0


def _lesion_darkness(images: np.ndarray) -> np.ndarray:
    """A "classifier" that reads only how dark the centre (inside the disc) is."""
    return 1.0 - images[:, _disc()].astype(np.float64).mean(axis=(1, 2)) / 255.0


def test_a_corner_pixel_classifier_keeps_its_auc_without_the_lesion_and_loses_it_on_the_lesion_alone() -> None:
    ids, images, labels = _image_set()
    summary = shortcuts.audit_images(ids, images, labels, _corner)
    full = _pairwise_auc(labels, _corner(images))
    assert 0.6 < full < 1.0  # informative but imperfect, so the equalities below are not both 1.0
    assert summary["full"]["auc"] == pytest.approx(full, abs=1e-12)
    assert summary["mask_failures"] == [] and summary["n_masked"] == summary["n"] == 40
    assert summary["background_only"]["auc"] == pytest.approx(full, abs=1e-12)
    assert summary["background_only"]["delta"] == pytest.approx(0.0, abs=1e-12)
    assert summary["lesion_only"]["auc"] == pytest.approx(0.5, abs=1e-12)  # every corner became the same grey
    assert summary["lesion_only"]["delta"] == pytest.approx(0.5 - full, abs=1e-12)
    assert "also reads the surroundings" in shortcuts.summary_sentence(summary)


def test_a_lesion_reading_classifier_falls_to_chance_without_the_lesion() -> None:
    ids, images, labels = _image_set(seed=1)
    summary = shortcuts.audit_images(ids, images, labels, _lesion_darkness)
    assert summary["full"]["auc"] == pytest.approx(_pairwise_auc(labels, _lesion_darkness(images)), abs=1e-12)
    assert summary["lesion_only"]["auc"] == pytest.approx(summary["full"]["auc"], abs=1e-12)
    assert summary["background_only"]["auc"] == pytest.approx(0.5, abs=0.15)
    assert "it reads the lesion" in shortcuts.summary_sentence(summary)


def test_the_sentence_says_whole_image_when_both_masked_views_sit_at_chance() -> None:
    def view(auc: float, low: float, high: float) -> dict:
        return {"auc": auc, "ci_low": low, "ci_high": high, "delta": auc - 0.69, "p": 0.1}

    # the shipped lesion-only MelaNet's figures: both intervals hold 0.5
    both = {"background_only": view(0.465, 0.33, 0.61), "lesion_only": view(0.566, 0.43, 0.70)}
    sentence = shortcuts.summary_sentence(both)
    assert "0.47 [0.33, 0.61]" in sentence and "only the whole image" in sentence
    assert "it reads the lesion." not in sentence
    lesion_informative = {"background_only": view(0.465, 0.33, 0.61), "lesion_only": view(0.80, 0.70, 0.90)}
    assert "it reads the lesion." in shortcuts.summary_sentence(lesion_informative)


def test_masked_views_and_their_delong_figures_match_a_hand_built_view_and_evaluation_delong() -> None:
    ids, images, labels = _image_set(seed=2)
    uniform = np.full((SIZE, SIZE, 3), 160, dtype=np.uint8)  # no lesion: the Otsu mask covers everything
    ids, images, labels = ids + ["ISIC_uniform"], np.concatenate([images, uniform[None]]), np.append(labels, 1)

    def mean_colour(batch: np.ndarray) -> np.ndarray:  # reads lesion and skin alike
        return 1.0 - batch.astype(np.float64).mean(axis=(1, 2, 3)) / 255.0

    summary = shortcuts.audit_images(ids, images, labels, mean_colour)
    assert summary["mask_failures"] == ["ISIC_uniform"]
    assert summary["n"] == 41 and summary["n_masked"] == 40
    assert summary["full"]["auc"] == pytest.approx(_pairwise_auc(labels, mean_colour(images)), abs=1e-12)

    kept_images, kept_labels = images[:40], labels[:40]
    disc = _disc()
    by_hand_lesion = kept_images.copy()
    by_hand_lesion[:, ~disc] = shortcuts.NEUTRAL_FILL
    by_hand_background = kept_images.copy()
    for image in by_hand_background:
        image[disc] = np.rint(np.median(image[~disc], axis=0)).astype(np.uint8)
    full_kept = mean_colour(kept_images)
    for name, view in (("lesion_only", by_hand_lesion), ("background_only", by_hand_background)):
        scores = mean_colour(view)
        expected = delong.delong_test(kept_labels, scores, full_kept)
        assert summary[name]["auc"] == pytest.approx(_pairwise_auc(kept_labels, scores), abs=1e-12), name
        assert summary[name]["delta"] == pytest.approx(expected["delta_auc"], abs=1e-12), name
        assert summary[name]["p"] == pytest.approx(expected["p"], abs=1e-12), name
        assert summary[name]["ci_low"] <= summary[name]["auc"] <= summary[name]["ci_high"]


def test_perturbation_changes_are_each_images_probability_change() -> None:
    ids, images, labels = _image_set(seed=3)
    images[:, 0, -1, 0] = np.arange(len(images), dtype=np.uint8) * 5 + 10  # the pixel a flip brings to the corner
    summary = shortcuts.audit_images(ids, images, labels, _corner)
    corner = images[:, 0, 0, 0].astype(np.float64)
    flipped_change = np.abs(images[:, 0, -1, 0].astype(np.float64) - corner) / 255.0
    assert summary["perturbations"]["hflip"]["mean_abs_change"] == pytest.approx(flipped_change.mean(), abs=1e-12)
    assert summary["perturbations"]["hflip"]["max_abs_change"] == pytest.approx(flipped_change.max(), abs=1e-12)
    brighter = np.clip(np.floor(corner * 1.1 + 0.5), 0, 255)
    assert summary["perturbations"]["brightness+10"]["max_abs_change"] == pytest.approx(
        np.abs(brighter - corner).max() / 255.0, abs=1e-12)
    assert set(summary["perturbations"]) == {"jpeg75", "rotate10", "hflip", "brightness+10", "brightness-10"}
    rotated = summary["perturbations"]["rotate10"]  # the corner leaves the rotated frame: it turns black
    assert rotated["auc"] == pytest.approx(0.5, abs=1e-12)
    assert rotated["max_abs_change"] == pytest.approx(corner.max() / 255.0, abs=1e-12)


def test_one_class_input_and_a_bad_summary_file_are_refused_with_a_reason(tmp_path: Path) -> None:
    ids, images, labels = _image_set(count=6)
    with pytest.raises(ValueError, match="benign and malignant"):
        shortcuts.audit_images(ids, images, np.zeros(6, dtype=int), _corner)
    with pytest.raises(ValueError, match="uint8"):
        shortcuts.audit_images(ids, images.astype(np.float32), labels, _corner)
    broken = tmp_path / "shortcuts.json"
    broken.write_text(json.dumps({"full": {}}))
    message = shortcuts.read_summary(broken)
    assert isinstance(message, str) and str(broken) in message and "lesion_only" in message
    assert "no shortcut audit yet" in shortcuts.read_summary(tmp_path / "missing.json")


@pytest.fixture
def classifier_run(tmp_path: Path, tiny_isic: Path) -> Path:
    """A finished stage-2 run (narrow VGG, random weights, 32 px) on the tiny folder of real JPEGs."""
    config = config_module.load_config(overrides=[
        f"data.root={tiny_isic}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}", "data.workers=1",
        "classifier.backbone=vgg16-narrow", "classifier.width=0.0625", "classifier.weights=none",
    ])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none").save(run.file("model.keras"))
    return run.path


@pytest.mark.slow
def test_audit_shortcuts_cli_on_a_run_folder_of_real_jpegs(classifier_run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from melanet.classifier import predict
    from melanet.data import prepare

    assert main(["-q", "audit-shortcuts", "--run", str(classifier_run)]) == 0
    out = capsys.readouterr().out
    path = classifier_run / "shortcuts" / "shortcuts.json"
    assert f"shortcut audit: {path}" in out and "lesion only" in out
    summary = json.loads(path.read_text())
    config = runs.Run(classifier_run).config()
    test = prepare.load_split(config.data, "test")
    scores = predict.predict_probabilities(predict.load_model(classifier_run), test.images)
    assert summary["n"] == len(test.ids) and summary["n_malignant"] == int(test.labels.sum())
    assert summary["full"]["auc"] == pytest.approx(_pairwise_auc(test.labels, scores), abs=1e-9)
    assert summary["n_masked"] + len(summary["mask_failures"]) == summary["n"]
    assert set(summary["perturbations"]) == set(shortcuts.PERTURBATIONS)
    assert summary["sentence"] == shortcuts.summary_sentence(summary)
    assert runs.Run(classifier_run).status()["shortcuts"]["state"] == "done"

    other = tmp_path / "other-data"
    shutil.copytree(config.data.root, other)
    assert main(["-q", "audit-shortcuts", "--run", str(classifier_run), "--data", str(other)]) == 0
    external = json.loads((classifier_run / "external" / "other-data" / "shortcuts.json").read_text())
    assert external["data_root"] == str(other) and external["n"] == summary["n"]


def test_audit_shortcuts_refuses_a_run_without_a_model(tmp_path: Path, tiny_isic: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = config_module.load_config(overrides=[f"data.root={tiny_isic}"])
    run = runs.Run.create(tmp_path / "untrained", config, "train-classifier")
    assert main(["-q", "audit-shortcuts", "--run", str(run.path)]) == 2
    error = capsys.readouterr().err
    assert str(run.path) in error and "no trained model" in error
    assert not (run.path / "shortcuts").exists()


DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


@pytest.mark.parametrize("run", ["vgg_gap", "augment5x", "augment10x", "melanet"])
def test_each_shipped_model_card_quotes_its_own_shortcut_audit_and_domain_gap_files(run: str) -> None:
    card = (DEMO / run / "model_card.md").read_text()
    summary = json.loads((DEMO / run / "shortcuts" / "shortcuts.json").read_text())
    background = summary["background_only"]
    # the wording depends on the figures ("keeps AUC ..." / "its AUC falls to ..."); the figure is always there
    assert f"{background['auc']:.2f} [{background['ci_low']:.2f}, {background['ci_high']:.2f}]" in card
    assert f"Full images: AUC {summary['full']['auc']:.2f}" in card
    separability = DEMO / run / "embedding" / "separability.json"
    if separability.is_file() and json.loads(separability.read_text()).get("synthetic_vs_real_malignant"):
        figures = json.loads(separability.read_text())["synthetic_vs_real_malignant"]
        assert f"Domain gap, synthetic vs real malignant: AUC {figures['auc']:.3f}" in card
        assert "Domain gap: not measured" not in card
