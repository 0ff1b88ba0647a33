"""The Predict page's one decision (melanet.evaluation.decision) and the likeness check it uses
(melanet.explain.retrieval.nearest_other_similarities): expected values worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from melanet.evaluation import decision, operating_points
from melanet.explain import retrieval

# the shipped MelaNet's validation figures: 53 images, 12 melanomas
POINTS = {
    "rule_out": {"available": True, "threshold": 0.147,
                 "validation": {"n": 53, "n_malignant": 12, "sensitivity": 1.0, "specificity": 0.2439}},
    "balanced": {"available": True, "threshold": 0.387,
                 "validation": {"n": 53, "n_malignant": 12, "sensitivity": 8 / 12, "specificity": 35 / 41}},
    "rule_in": {"available": True, "threshold": 0.469,
                "validation": {"n": 53, "n_malignant": 12, "sensitivity": 0.5, "specificity": 39 / 41}},
}


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval written out from its formula (Wilson 1927), independent of the package."""
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return centre - half, centre + half


def test_wilson_by_hand_matches_the_figures_written_below() -> None:
    # 12 of 12: the lower bound is n / (n + z^2) = 12 / 15.84 = 0.7575
    assert wilson(12, 12)[0] == pytest.approx(12 / (12 + 1.959963984540054 ** 2))
    low, high = wilson(39, 41)
    assert (round(100 * low), round(100 * high)) == (84, 99)


def test_below_the_rule_out_threshold_and_stable_is_ruled_out_with_its_count() -> None:
    made = decision.decide(0.093, POINTS, uncertain=False)
    assert made.kind == "rule_out" and made.headline.startswith("Rule-out:")
    assert made.evidence == ["rule-out: of 12 melanomas in the validation data, 12 (100 % [76 %, 100 %]) scored above "
                             "this threshold (0.147)."]
    count = decision.evidence_count(POINTS["rule_out"], "rule_out")
    assert (count["successes"], count["trials"]) == (12, 12)
    assert (count["low"], count["high"]) == pytest.approx(wilson(12, 12))


def test_an_uncertain_image_is_never_ruled_out() -> None:
    made = decision.decide(0.093, POINTS, uncertain=True, spread_sentence="Over the 8 views P runs 0.05-0.26.")
    assert made.kind == "cannot_rule_out"
    assert made.headline == "Cannot be ruled out: the answer changes when the image is turned."
    assert "Rule-out:" not in made.headline and made.evidence[0] == "Over the 8 views P runs 0.05-0.26."


def test_the_bands_follow_the_one_rule_malignant_when_p_is_above_the_threshold() -> None:
    # at a threshold is not above it
    assert decision.decide(0.147, POINTS, uncertain=False).kind == "rule_out"
    assert decision.decide(0.1471, POINTS, uncertain=False).kind == "between"
    assert decision.decide(0.469, POINTS, uncertain=False).kind == "between"
    made = decision.decide(0.5, POINTS, uncertain=True, spread_sentence="spread 0.3")
    assert made.kind == "rule_in"  # uncertain does not lower a rule-in: it is said beside it
    assert made.evidence == ["rule-in: of 41 benign lesions in the validation data, 39 (95 % [84 %, 99 %]) scored at "
                             "or below this threshold (0.469).", "spread 0.3"]
    between = decision.decide(0.3, POINTS, uncertain=False)
    assert between.kind == "between" and len(between.evidence) == 2
    assert "ruled out" not in between.headline and "rule out" in between.headline


def test_unlike_the_training_images_comes_first_and_its_edge() -> None:
    unlike = decision.Typicality(nearest=0.50, threshold=0.558, n_training=300)
    made = decision.decide(0.093, POINTS, uncertain=False, typicality=unlike)
    assert made.kind == "unlike_training"
    assert made.headline == "Unlike the images this model learnt from: the result is not meaningful."
    assert "0.500" in made.evidence[0] and "99 % of the 300 training images" in made.evidence[0]
    at_edge = decision.Typicality(nearest=0.558, threshold=0.558, n_training=300)
    assert decision.decide(0.093, POINTS, uncertain=False, typicality=at_edge).kind == "rule_out"


def test_a_run_without_bands_says_so() -> None:
    assert decision.decide(0.2, None, uncertain=False).kind == "no_bands"
    points = dict(POINTS, rule_in={"available": False, "reason": "one class"})
    assert decision.decide(0.2, points, uncertain=False).kind == "no_bands"


def test_out_of_fold_points_are_named_so() -> None:
    points = {name: dict(entry, chosen_on="out-of-fold predictions of the training part") for name, entry in POINTS.items()}
    assert "of 12 melanomas in the out-of-fold predictions of the training images" in \
        decision.decide(0.1, points, uncertain=False).evidence[0]


def test_other_thresholds_say_where_p_lies() -> None:
    lines = decision.other_thresholds(0.45, POINTS, 0.2)
    assert len(lines) == 3
    assert "0.387" in lines[0] and "P is above it" in lines[0]
    assert "0.200" in lines[1] and "P is above it" in lines[1]
    assert "0.5" in lines[2] and "at or below" in lines[2]


def test_nearest_other_similarity_leaves_each_image_out() -> None:
    # unit vectors at 0, 45, 90 and 180 degrees: cosines cos(45) = 0.7071 between neighbours, 0 from 90 to 180
    index = retrieval.Index.build(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]), list("abcd"),
                                  [0, 0, 1, 1])
    expected = [math.sqrt(0.5), math.sqrt(0.5), math.sqrt(0.5), 0.0]
    for chunk in (1, 3, 1024):  # the chunked product gives the same answer
        assert retrieval.nearest_other_similarities(index, chunk=chunk) == pytest.approx(expected, abs=1e-3)
    # percentile 1 by linear interpolation over the sorted [0, .7071, .7071, .7071]: 0.03 of the first step
    assert retrieval.unlike_training_threshold(index) == pytest.approx(0.03 * math.sqrt(0.5), abs=1e-3)


def test_an_exact_copy_in_the_index_counts_as_the_nearest_other() -> None:
    index = retrieval.Index.build(np.array([[1.0, 2.0], [1.0, 2.0], [2.0, -1.0]]), list("abc"), [0, 0, 1])
    assert retrieval.nearest_other_similarities(index) == pytest.approx([1.0, 1.0, 0.0], abs=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        retrieval.nearest_other_similarities(retrieval.Index.build(np.ones((1, 2)), ["a"], [0]))


def test_the_decision_on_points_the_package_chose() -> None:
    # 20 validation melanomas: the rule-out threshold keeps 19 of them (95 %) above it
    validation_labels = np.array([1] * 20 + [0] * 20)
    validation_scores = np.concatenate([np.linspace(0.30, 0.99, 20), np.linspace(0.01, 0.60, 20)]).round(4)
    block = operating_points.report(validation_labels, validation_scores, validation_labels, validation_scores)
    low, high = block["rule_out"]["threshold"], block["rule_in"]["threshold"]
    below = decision.decide(low - 0.001, block, uncertain=False)
    lower, upper = wilson(19, 20)
    assert below.kind == "rule_out" and below.evidence == [
        f"rule-out: of 20 melanomas in the validation data, 19 (95 % [{100 * lower:.0f} %, {100 * upper:.0f} %]) scored "
        f"above this threshold ({low:.3f})."]
    assert decision.decide(low, block, uncertain=False).kind == "rule_out"  # at the threshold: not called malignant
    assert decision.decide(high + 0.001, block, uncertain=False).kind == "rule_in"
    assert decision.decide((low + high) / 2, block, uncertain=False).kind == "between"
    without = operating_points.report(validation_labels, validation_scores, None, None)
    assert decision.decide(0.5, without, uncertain=False).kind == "no_bands"
