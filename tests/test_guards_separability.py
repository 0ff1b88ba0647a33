"""The domain-gap folds really are grouped when they say so (issue 21 item 15).

Expected values come from what cross-validation must give, not from the function: when every
synthetic image has exactly the features of its benign source, grouped folds hold each pair out
together, both get the same held-out score, and the pooled AUC is exactly 0.5 (every comparison
of a synthetic image with a benign one is mirrored by the reverse comparison). Folds that split a
pair train on the source labelled benign and score its twin low: the AUC falls far below 0.5.
Features of pure noise give a held-out AUC near 0.5, and a model scored on its own training
images would give nearly 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from melanet.audits import separability


def _twins(count: int, seed: int) -> tuple[np.ndarray, list[str], list[str]]:
    features = np.random.default_rng(seed).normal(size=(count, 6))
    sources = [f"ISIC_{index:07d}" for index in range(count)]
    return features, sources, [f"syn_{image_id}" for image_id in sources]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_twins_in_grouped_folds_give_exactly_one_half(seed: int) -> None:
    benign, sources, synthetic = _twins(24, seed)
    groups = ([separability.source_group(image_id) for image_id in synthetic], sources)
    result = separability.held_out_auc(benign.copy(), benign, seed=seed, groups=groups)
    assert result["grouped"] is True and result["folds"] == 5
    assert result["auc"] == pytest.approx(0.5, abs=1e-12)
    # the same features in folds that ignore the pairs: the leak shows (far below one half)
    ungrouped = separability.held_out_auc(benign.copy(), benign, seed=seed)
    assert ungrouped["grouped"] is False and ungrouped["auc"] < 0.35


def test_domain_gap_groups_each_synthetic_image_with_its_source() -> None:
    benign, sources, synthetic = _twins(30, 3)
    malignant = np.random.default_rng(4).normal(loc=3.0, size=(15, 6))
    malignant_ids = [f"ISIC_{index:07d}" for index in range(500, 515)]
    gap = separability.domain_gap({"benign": benign, "malignant": malignant, "synthetic": benign.copy()}, seed=0,
                                  ids={"benign": sources, "malignant": malignant_ids, "synthetic": synthetic})
    benign_pair = gap["synthetic_vs_real_benign"]
    assert benign_pair["grouped"] is True
    assert benign_pair["auc"] == pytest.approx(0.5, abs=1e-12)
    assert (benign_pair["n_first"], benign_pair["n_second"]) == (30, 30)
    # synthetic (= benign features) against malignant ones three SD away: fully separable
    assert gap["synthetic_vs_real_malignant"]["auc"] > 0.97
    assert (gap["synthetic_vs_real_malignant"]["n_first"], gap["synthetic_vs_real_malignant"]["n_second"]) == (30, 15)
    assert gap["real_malignant_vs_real_benign"]["auc"] > 0.97


def test_noise_features_score_near_one_half_on_held_out_images() -> None:
    generator = np.random.default_rng(5)
    first, second = generator.normal(size=(40, 64)), generator.normal(size=(40, 64))
    values = [separability.held_out_auc(first, second, seed=seed)["auc"] for seed in range(3)]
    assert 0.3 < float(np.mean(values)) < 0.7  # a model scored on its training images gives about 1.0


def test_the_fold_count_follows_the_smaller_side() -> None:
    """Folds = min(5, images (or groups) of either side); under 2 there is nothing to hold out."""
    generator = np.random.default_rng(6)
    result = separability.held_out_auc(generator.normal(size=(3, 4)), generator.normal(size=(10, 4)), seed=0)
    assert result["folds"] == 3 and (result["n_first"], result["n_second"]) == (3, 10)
    assert separability.held_out_auc(generator.normal(size=(1, 4)), generator.normal(size=(10, 4)), seed=0) is None
    # two synthetic images of one source count as one group
    names = (["ISIC_0000001", "ISIC_0000001", "ISIC_0000002"], [f"ISIC_{index:07d}" for index in range(10, 20)])
    grouped = separability.held_out_auc(generator.normal(size=(3, 4)), generator.normal(size=(10, 4)), seed=0,
                                        groups=names)
    assert grouped["folds"] == 2


def test_source_group_strips_the_synthetic_prefix_only() -> None:
    assert separability.source_group("syn_ISIC_0000123") == "ISIC_0000123"
    assert separability.source_group("ISIC_0000123") == "ISIC_0000123"
    assert separability.source_group("ISIC_syn_0000123") == "ISIC_syn_0000123"
