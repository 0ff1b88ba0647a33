"""Spread of the malignant probability over the 8 flips and 90-degree rotations, its flag and the
risk-coverage curve; the predictions.csv columns and the official ISIC file beside them."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest

from melanet import config as config_module
from melanet.classifier import predict
from melanet.data.errors import DataError
from melanet.evaluation import evaluate, predictions, uncertainty

SIZE = 16


def _images(count: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def _pixel_average_model() -> keras.Model:
    """Mean of every pixel -> softmax: blind to where a pixel is, so to every flip and rotation."""
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[-4.0, 4.0]] * 3, np.float32), np.array([6.0, -6.0], np.float32)])
    return model


def _top_rows_model() -> keras.Model:
    """Reads the top-left quarter only: turning the image changes its answer."""
    inputs = keras.Input((SIZE, SIZE, 3))
    corner = keras.layers.Cropping2D(((0, SIZE // 2), (0, SIZE // 2)))(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(corner))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[-8.0, 8.0]] * 3, np.float32), np.array([12.0, -12.0], np.float32)])
    return model


def _by_hand(images: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of the square, written with numpy: identity, the flips, and the rotations."""
    return [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1],
            images.transpose(0, 2, 1, 3), images.transpose(0, 2, 1, 3)[:, :, ::-1],
            images.transpose(0, 2, 1, 3)[:, ::-1], images.transpose(0, 2, 1, 3)[:, ::-1, ::-1]]


def test_the_eight_views_are_the_whole_dihedral_group_in_the_documented_order() -> None:
    images = _images(1)
    views = _by_hand(images)
    assert len({view.tobytes() for view in views}) == 8  # all distinct on a random image
    for turns in (1, 2, 3):  # every 90-degree rotation is among them
        assert any(np.array_equal(np.rot90(images, turns, axes=(1, 2)), view) for view in views)
    model = _top_rows_model()
    probabilities, columns = predict.predict_with_views(model, images, 4)
    expected = [float(model(view.astype(np.float32) / 255.0)[0, 1]) for view in views]
    np.testing.assert_allclose(columns[0], expected, rtol=1e-5)
    assert probabilities[0] == pytest.approx(expected[0], rel=1e-5)


def test_spread_is_exactly_zero_for_a_model_that_ignores_flips_and_rotations() -> None:
    # pixels 0 or 255 (0.0 or 1.0 after scaling): every sum is exact in float32, so summing the same pixels
    # in another order cannot differ by a rounding (on general images such a model's spread is ~1e-6)
    images = (_images(6) > 127).astype(np.uint8) * 255
    probabilities, views = predict.predict_with_views(_pixel_average_model(), images, 4)
    values = uncertainty.spread(views)
    assert views.shape == (6, 8) and len(set(np.round(probabilities, 3))) > 1  # the images differ, the views not
    assert np.all(values["range"] == 0.0) and np.all(values["sd"] == 0.0)
    assert not uncertainty.columns(views, 0.0)[uncertainty.FLAG_COLUMN].any()


def test_spread_is_positive_for_a_model_that_does_not() -> None:
    images = _images(6)
    _, views = predict.predict_with_views(_top_rows_model(), images, 4)
    values = uncertainty.spread(views)
    assert np.all(values["range"] > 1e-3)
    np.testing.assert_allclose(values["sd"], np.std(views, axis=1))  # population SD (ddof 0)
    np.testing.assert_allclose(values["range"], views.max(axis=1) - views.min(axis=1))


def test_the_tta_probability_is_the_mean_of_its_views_and_matches_predict_probabilities() -> None:
    images = _images(5, seed=3)
    model = _top_rows_model()
    for tta, count in (("none", 1), ("flips", 4)):
        probabilities, views = predict.predict_with_views(model, images, 2, tta=tta)
        np.testing.assert_allclose(probabilities, views[:, :count].mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(probabilities, predict.predict_probabilities(model, images, 2, tta=tta), rtol=1e-6)


def test_the_flag_rule_and_a_bad_spread_setting() -> None:
    views = np.array([[0.1] * 8, [0.1] * 7 + [0.3], [0.1] * 7 + [0.35]])
    flags = uncertainty.columns(views, 0.2)[uncertainty.FLAG_COLUMN]
    assert flags.tolist() == [False, False, True]  # 0.2 is not above 0.2 (in floating point 0.3 - 0.1 < 0.2)
    assert uncertainty.is_uncertain(0.25, 0.2) is True and uncertainty.is_uncertain(0.05, 0.2) is False
    for bad in ("evaluation.uncertain_spread=-0.1", "evaluation.uncertain_spread=1.5"):
        with pytest.raises(config_module.ConfigError, match="evaluation.uncertain_spread"):
            config_module.load_config(overrides=[bad])
    with pytest.raises(ValueError, match="views"):
        uncertainty.spread(np.zeros(5))


def _pairs_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if not len(positives) or not len(negatives):
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def test_risk_coverage_scores_the_most_confident_images_first() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 40)
    scores = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, 40), 0, 1)
    spreads = rng.random(40).round(2)  # ties among the spreads: kept in file order
    curve = uncertainty.risk_coverage(labels, scores, spreads)
    assert [point["coverage"] for point in curve] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    ranked = sorted(range(40), key=lambda index: (spreads[index], index))
    for point in curve:
        kept = ranked[:int(np.ceil(round(point["coverage"] * 40, 6)))]
        assert point["n"] == len(kept) and point["max_spread"] == spreads[kept].max()
        expected = _pairs_auc(labels[kept], scores[kept])
        assert (point["auc"] is None) == (expected is None)
        if expected is not None:
            assert point["auc"] == pytest.approx(expected)
    block = uncertainty.summary(labels, scores, spreads, spreads / 3, 0.5)
    flagged = spreads > 0.5
    assert block["n_uncertain"] == int(flagged.sum())
    assert block["auc_confident"] == pytest.approx(_pairs_auc(labels[~flagged], scores[~flagged]))
    assert block["risk_coverage"][-1]["auc"] == pytest.approx(_pairs_auc(labels, scores))


def test_predictions_csv_carries_the_columns_and_the_isic_file_stays_official(tmp_path: Path) -> None:
    ids, labels, scores = ["a", "b", "c"], np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4])
    views = np.array([[0.2] * 8, [0.6] * 4 + [0.8] * 4, [0.1] * 4 + [0.7] * 4])
    predictions.write_predictions(tmp_path, ids, labels, scores, uncertainty.columns(views, 0.3))
    with (tmp_path / "predictions.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["image", "label", "prob_malignant", "prob_sd", "prob_range", "uncertain"]
    assert [row["uncertain"] for row in rows] == ["0", "0", "1"]
    assert float(rows[2]["prob_range"]) == pytest.approx(0.6) and float(rows[1]["prob_sd"]) == pytest.approx(0.1)
    assert (tmp_path / "predictions_isic.csv").read_text().splitlines()[0] == "image,benign,malignant"
    read_ids, read_labels, read_scores = predictions.read_predictions(tmp_path / "predictions.csv")  # readers unchanged
    assert read_ids == ids and read_labels.tolist() == [0, 1, 1] and read_scores.tolist() == pytest.approx([0.2, 0.7, 0.4])
    columns = uncertainty.read_columns(tmp_path / "predictions.csv")
    assert columns["prob_range"].tolist() == pytest.approx([0.0, 0.2, 0.6])

    assert uncertainty.refresh_flags(tmp_path / "predictions.csv", 0.1) is True  # --set evaluation.uncertain_spread=0.1
    with (tmp_path / "predictions.csv").open() as stream:
        refreshed = list(csv.DictReader(stream))
    assert [row["uncertain"] for row in refreshed] == ["0", "1", "1"]
    assert [row["prob_malignant"] for row in refreshed] == [row["prob_malignant"] for row in rows]
    assert uncertainty.refresh_flags(tmp_path / "predictions.csv", 0.1) is False

    predictions.write_predictions(tmp_path / "old", ids, labels, scores)  # without the views: no columns, no block
    assert uncertainty.read_columns(tmp_path / "old" / "predictions.csv") is None
    settings = config_module.EvaluationConfig(bootstrap_samples=20)
    report = evaluate.report_for_predictions(labels, scores, settings, 0, None)
    assert report["uncertainty"]["available"] is False and "prob_range" in report["uncertainty"]["reason"]


def test_a_bad_spread_value_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("image,label,prob_malignant,prob_sd,prob_range,uncertain\na,0,0.1,0.0,0.0,0\nb,1,0.9,0.1,oops,0\n")
    with pytest.raises(DataError, match=r"predictions.csv: line 3: prob_range"):
        uncertainty.read_columns(path)


def test_unflagged_minus_flagged_is_the_difference_of_two_independent_aucs_by_hand() -> None:
    """"Are the unflagged images the easier ones?": the AUC of the unflagged minus that of the flagged images,
    two disjoint sets, with a z interval on the sum of their DeLong variances (computed here by counting pairs)."""
    import math

    from scipy import stats

    def auc_and_variance(labels, scores):  # DeLong (1988) by hand: placement values of each class
        positives = [s for s, label in zip(scores, labels) if label == 1]
        negatives = [s for s, label in zip(scores, labels) if label == 0]
        psi = lambda a, b: 1.0 if a > b else 0.5 if a == b else 0.0  # noqa: E731
        v10 = [sum(psi(p, n) for n in negatives) / len(negatives) for p in positives]
        v01 = [sum(psi(p, n) for p in positives) / len(positives) for n in negatives]
        auc = sum(v10) / len(v10)
        s10 = sum((v - auc) ** 2 for v in v10) / (len(v10) - 1)
        s01 = sum((v - auc) ** 2 for v in v01) / (len(v01) - 1)
        return auc, s10 / len(v10) + s01 / len(v01)

    generator = np.random.default_rng(5)
    labels = np.array([0, 1] * 20)
    probabilities = np.clip(labels * 0.3 + generator.uniform(0, 0.7, 40), 0, 1)
    spreads = generator.uniform(0, 0.4, 40)
    block = uncertainty.summary(labels, probabilities, spreads, spreads / 3, threshold=0.2)
    flagged = spreads > 0.2
    kept, dropped = auc_and_variance(labels[~flagged], probabilities[~flagged]), auc_and_variance(labels[flagged], probabilities[flagged])
    difference = block["unflagged_minus_flagged"]
    assert difference["delta"] == pytest.approx(kept[0] - dropped[0])
    se = math.sqrt(kept[1] + dropped[1])
    assert difference["ci_low"] == pytest.approx(kept[0] - dropped[0] - 1.959963984540054 * se)
    assert difference["ci_high"] == pytest.approx(kept[0] - dropped[0] + 1.959963984540054 * se)
    assert difference["p"] == pytest.approx(2 * stats.norm.sf(abs(kept[0] - dropped[0]) / se))
    low, high = block["auc_confident_ci"]
    assert low < block["auc_confident"] < high


def _reference_bootstrap(labels, scores, ranges, threshold, coverages, resamples, seed):
    """A slow reference of the documented procedure: loops, scikit-learn's AUC, numpy percentiles."""
    import math as math_module

    from sklearn.metrics import roc_auc_score

    def auc_or_nan(y, s):
        return roc_auc_score(y, s) if 0 < sum(y) < len(y) else float("nan")

    def figures(y, s, r):
        order = sorted(range(len(r)), key=lambda position: r[position])  # Python's sort is stable
        curve = []
        for coverage in coverages:
            kept = order[:max(1, math_module.ceil(coverage * len(order) - 1e-9))]
            curve.append(auc_or_nan([y[i] for i in kept], [s[i] for i in kept]))
        flagged = [i for i in range(len(r)) if r[i] > threshold]
        others = [i for i in range(len(r)) if r[i] <= threshold]
        return curve, (auc_or_nan([y[i] for i in flagged], [s[i] for i in flagged])
                       - auc_or_nan([y[i] for i in others], [s[i] for i in others]))

    rng = np.random.default_rng(seed)
    positives = [i for i in range(len(labels)) if labels[i] == 1]
    negatives = [i for i in range(len(labels)) if labels[i] == 0]
    columns = [[] for _ in range(len(coverages) + 1)]
    for _ in range(resamples):
        rows = list(rng.choice(positives, len(positives), replace=True)) + list(rng.choice(negatives, len(negatives), replace=True))
        curve, difference = figures([labels[i] for i in rows], [scores[i] for i in rows], [ranges[i] for i in rows])
        for column, value in enumerate([*curve, difference]):
            if value == value:  # not nan
                columns[column].append(value)
    return [(np.percentile(column, 2.5), np.percentile(column, 97.5)) for column in columns], figures(labels, scores, ranges)


def test_bootstrap_risk_coverage_matches_a_slow_reference() -> None:
    rng = np.random.default_rng(3)
    labels = np.array([1] * 14 + [0] * 26)
    scores = np.clip(0.5 + 0.25 * (labels - 0.5) + rng.normal(0, 0.2, 40), 0, 1).round(3)
    ranges = rng.uniform(0, 0.4, 40).round(2)  # rounded: equal spreads exercise the tie order
    coverages = (0.3, 0.5, 1.0)
    result = uncertainty.bootstrap_risk_coverage(labels, scores, ranges, 0.2, coverages=coverages, resamples=200, seed=5)
    intervals, (curve, difference) = _reference_bootstrap(list(labels), list(scores), list(ranges), 0.2, coverages, 200, 5)
    for row, expected_curve, (low, high) in zip(result["coverage"], curve, intervals):
        assert row["auc"] == pytest.approx(expected_curve)
        assert (row["low"], row["high"]) == pytest.approx((low, high))
    block = result["flagged_minus_unflagged"]
    assert block["estimate"] == pytest.approx(difference)
    assert (block["low"], block["high"]) == pytest.approx(intervals[-1])
    assert result["verdict"].startswith("AUC(flagged) - AUC(unflagged) = ")
    said = ("as the flag means" if intervals[-1][1] < 0 else "does not pick out harder" if intervals[-1][0] > 0
            else "the interval holds 0")
    assert said in result["verdict"], (intervals[-1], result["verdict"])


def test_bootstrap_verdict_names_the_direction() -> None:
    # the flagged half (spread 0.3) is scored at random, the others perfectly: the flagged are the harder ones
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 40)
    ranges = np.array([0.3] * 40 + [0.05] * 40)
    scores = np.concatenate([rng.uniform(0, 1, 40), np.where(labels[40:] == 1, 0.9, 0.1)])
    result = uncertainty.bootstrap_risk_coverage(labels, scores, ranges, 0.2, resamples=300, seed=1)
    assert result["flagged_minus_unflagged"]["high"] < 0
    assert "the flagged images are the harder ones" in result["verdict"]
    assert result["coverage"][4]["auc"] == 1.0  # the most confident half is the perfectly scored one
