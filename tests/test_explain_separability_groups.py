"""Domain-gap folds: a synthetic image and its benign source are always held out together."""

from __future__ import annotations

import numpy as np
import pytest

from melanet.audits import separability


def pair_ids(count: int) -> tuple[list[str], list[str]]:
    sources = [f"ISIC_{index:07d}" for index in range(count)]
    return sources, [f"syn_{image_id}" for image_id in sources]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_folds_never_split_a_synthetic_image_from_its_source(seed: int) -> None:
    sources, synthetic = pair_ids(23)
    # not every source has a synthetic twin, and a few images have none at all
    synthetic = synthetic[:17]
    names = synthetic + sources
    labels = np.r_[np.ones(len(synthetic), dtype=int), np.zeros(len(sources), dtype=int)]
    groups = [separability.source_group(name) for name in names]
    held_out_count = np.zeros(len(names), dtype=int)
    for train_index, test_index in separability.fold_indices(labels, groups, 5, seed):
        held_out = {names[index] for index in test_index}
        trained = {names[index] for index in train_index}
        for twin, source in zip(synthetic, sources):
            assert (twin in held_out) == (source in held_out), f"{twin} and {source} split across a fold"
            assert (twin in trained) == (source in trained)
        held_out_count[test_index] += 1
    assert (held_out_count == 1).all()  # every image is scored exactly once


def test_domain_gap_groups_the_benign_and_synthetic_pair() -> None:
    generator = np.random.default_rng(0)
    sources, synthetic = pair_ids(30)
    benign = generator.normal(size=(30, 8))
    twins = benign + 0.05 * generator.normal(size=(30, 8)) + 0.3  # near copies, slightly shifted
    malignant = generator.normal(loc=0.5, size=(12, 8))
    malignant_ids = [f"ISIC_{index:07d}" for index in range(100, 112)]
    gap = separability.domain_gap({"benign": benign, "malignant": malignant, "synthetic": twins}, seed=0,
                                  ids={"benign": sources, "malignant": malignant_ids, "synthetic": synthetic})
    assert all(result["grouped"] for result in gap.values())
    assert gap["synthetic_vs_real_benign"]["folds"] == 5
    ungrouped = separability.domain_gap({"benign": benign, "malignant": malignant, "synthetic": twins}, seed=0)
    assert not ungrouped["synthetic_vs_real_benign"]["grouped"]
    with pytest.raises(ValueError, match="groups must name every row"):
        separability.held_out_auc(benign, twins, seed=0, groups=(sources, synthetic[:-1]))
