"""The translation measure (melanet.audits.translation) with a real judge on real images' pixel features.

The features are the audit's hand-made pixel features of the bundled sample's real training JPEGs at 64 px;
the judge is the module's own logistic regression, fitted on them. Nothing is stubbed.
"""

from __future__ import annotations

import numpy as np
import pytest

from melanet.data import preprocess
from melanet.audits import pixel_features, translation

SIZE = 64


@pytest.fixture(scope="module")
def sample_features(sample_root) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features (N, C), labels (N,), ids) of every real training image of data/sample at 64 px."""
    from conftest import TRAINING_CSV, TRAINING_FOLDER

    rows = [line.split(",") for line in (sample_root / TRAINING_CSV).read_text().splitlines() if line.strip()]
    ids = [image_id for image_id, _ in rows]
    labels = np.array([1 if label.strip() in ("malignant", "1.0") else 0 for _, label in rows])
    images = np.stack([preprocess.preprocess_image(sample_root / TRAINING_FOLDER / f"{image_id}.jpg", SIZE)
                       for image_id in ids])
    return pixel_features.pixel_features(images), labels, ids


def test_an_identity_generator_translates_nothing(sample_features) -> None:
    features, labels, ids = sample_features
    benign = [image_id for image_id, label in zip(ids, labels) if label == 0]
    synthetic = features[[ids.index(image_id) for image_id in benign]]  # synthetic == its source, exactly
    result = translation.judge_translation(features, labels, ids, synthetic, benign, seed=3, resamples=200)
    assert result["share"] == pytest.approx(0.0, abs=1e-6)
    assert result["mean_synthetic"] == pytest.approx(result["mean_source"], abs=1e-12)
    assert result["above_source"] == 0.0
    assert result["judge_auc"] > 0.55  # the judge does tell real melanomas from benign lesions
    assert result["share_low"] == pytest.approx(0.0, abs=1e-6) and result["share_high"] == pytest.approx(0.0, abs=1e-6)


def test_real_melanomas_as_synthetic_images_translate_all_the_way(sample_features) -> None:
    """Half the real melanomas play the synthetic images (each paired with a benign source); the judge trains
    on the benign images and the other half: the share's interval contains 1."""
    features, labels, ids = sample_features
    malignant = np.flatnonzero(labels == 1)
    rng = np.random.default_rng(0)
    rng.shuffle(malignant)
    played, reference = malignant[: len(malignant) // 2], malignant[len(malignant) // 2:]
    real = np.r_[np.flatnonzero(labels == 0), reference]
    real_ids = [ids[index] for index in real]
    benign_ids = [ids[index] for index in np.flatnonzero(labels == 0)]
    sources = [benign_ids[position % len(benign_ids)] for position in range(len(played))]
    result = translation.judge_translation(features[real], labels[real], real_ids, features[played], sources, seed=5)
    assert result["share_low"] <= 1.0 <= result["share_high"]
    assert result["share_low"] > 0.0  # and it is not an interval that contains everything
    assert result["above_source"] > 0.5


def test_each_image_is_scored_by_the_judge_that_held_its_source_out(sample_features) -> None:
    """A slow reference: refit each fold's judge on the other folds by hand and score its images."""
    features, labels, ids = sample_features
    benign = [image_id for image_id, label in zip(ids, labels) if label == 0][:60]
    rng = np.random.default_rng(1)
    synthetic = features[[ids.index(image_id) for image_id in benign]] + rng.normal(0, 0.01, (60, features.shape[1]))
    real_scores, synthetic_scores, fold = translation.out_of_fold_scores(features, labels, ids, synthetic, benign,
                                                                        seed=7)
    assert sorted(set(fold.tolist())) == list(range(translation.FOLDS))
    for index in range(translation.FOLDS):
        judge = translation._judge().fit(features[fold != index], labels[fold != index])
        held = fold == index
        np.testing.assert_allclose(real_scores[held], judge.predict_proba(features[held])[:, 1], atol=1e-9)
        mine = np.array([fold[ids.index(source)] == index for source in benign])
        np.testing.assert_allclose(synthetic_scores[mine], judge.predict_proba(synthetic[mine])[:, 1], atol=1e-9)


def test_a_judge_never_scores_an_image_it_was_fitted_on(sample_features) -> None:
    """With labels that carry no signal an out-of-fold judge sits near chance; one that saw the images it
    scores (fitted on all of them) would find the noise it memorised."""
    features, _, ids = sample_features
    labels = np.random.default_rng(11).permutation(np.r_[np.ones(90, dtype=int), np.zeros(len(ids) - 90, dtype=int)])
    benign = [image_id for image_id, label in zip(ids, labels) if label == 0]
    result = translation.judge_translation(features, labels, ids, features[[ids.index(i) for i in benign]], benign,
                                           seed=2, resamples=50)
    assert abs(result["judge_auc"] - 0.5) < 0.12, result["judge_auc"]


def test_the_share_is_hand_computable_and_bad_input_is_named() -> None:
    assert translation.share_of_translation(np.array([0.2, 0.4]), np.array([0.5, 0.5]), np.array([0.7, 0.9])) \
        == pytest.approx((0.5 - 0.3) / (0.8 - 0.3))
    assert translation.share_of_translation(np.array([0.5]), np.array([0.6]), np.array([0.4])) is None
    real, labels = np.zeros((6, 2)), np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="not among the real images"):
        translation.out_of_fold_scores(real, labels, list("abcdef"), np.zeros((1, 2)), ["z"], seed=0)
    with pytest.raises(ValueError, match="at least 2 real images of each class"):
        translation.out_of_fold_scores(real, np.array([0, 0, 0, 0, 0, 1]), list("abcdef"), np.zeros((1, 2)), ["a"],
                                       seed=0)
