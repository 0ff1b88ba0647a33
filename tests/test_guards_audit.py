"""The synthesis audit's figures in one feature space, against computations written out here
(issue 21 item 15): the scale, both KID pairs, every nearest neighbour, the memorisation share, and
the realism table's grouping by benign source and its ranking.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from melanet.audits import synthesis_measures, synthesis_stage


def slow_mmd2(first: np.ndarray, second: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x . y / d + 1)^3, one pair of rows at a time."""
    dimension = first.shape[1]

    def kernel(x: np.ndarray, y: np.ndarray) -> float:
        return (float(np.dot(x, y)) / dimension + 1.0) ** 3

    m, n = len(first), len(second)
    within_first = sum(kernel(first[i], first[j]) for i, j in itertools.permutations(range(m), 2))
    within_second = sum(kernel(second[i], second[j]) for i, j in itertools.permutations(range(n), 2))
    across = sum(kernel(x, y) for x in first for y in second)
    return within_first / (m * (m - 1)) + within_second / (n * (n - 1)) - 2.0 * across / (m * n)


def slow_nearest(query: np.ndarray, references: np.ndarray, skip: int | None = None) -> tuple[int, float]:
    distances = [(float(np.sqrt(np.sum((query - row) ** 2))), index) for index, row in enumerate(references)
                 if index != skip]
    distance, index = min(distances)
    return index, distance


@pytest.fixture(scope="module")
def space() -> tuple[tuple[np.ndarray, ...], list[str], list[str]]:
    generator = np.random.default_rng(12)
    # three groups of different sizes and places (and a scale far from 1), so that a swapped group shows
    benign = generator.normal(0.0, 3.0, (9, 4))
    malignant = generator.normal(2.0, 3.0, (7, 4))
    synthetic = generator.normal(4.0, 3.0, (8, 4))
    synthetic[3] = malignant[5] + 0.01  # one near-copy of a real melanoma
    return (benign, malignant, synthetic), [f"ISIC_m{index}" for index in range(7)], [f"syn_b{index}" for index in range(8)]


def test_the_scale_is_the_rms_of_the_real_images(space) -> None:
    groups, malignant_ids, synthetic_ids = space
    summary, _ = synthesis_stage.audit_space(groups, malignant_ids, synthetic_ids, seed=0)
    real = np.concatenate([groups[0], groups[1]])
    assert summary["feature_scale"] == pytest.approx(np.sqrt(np.mean(real ** 2)), rel=1e-12)


def test_both_kid_pairs_are_the_sets_they_name(space) -> None:
    groups, malignant_ids, synthetic_ids = space
    summary, _ = synthesis_stage.audit_space(groups, malignant_ids, synthetic_ids, seed=0)
    real = np.concatenate([groups[0], groups[1]])
    benign, malignant, synthetic = (group / np.sqrt(np.mean(real ** 2)) for group in groups)
    pairs = summary["kid"]
    assert pairs["synthetic_vs_real_malignant"]["kid"] == pytest.approx(slow_mmd2(synthetic, malignant), rel=1e-9)
    assert pairs["real_benign_vs_real_malignant"]["kid"] == pytest.approx(slow_mmd2(benign, malignant), rel=1e-9)
    assert (pairs["synthetic_vs_real_malignant"]["n_first"], pairs["synthetic_vs_real_malignant"]["n_second"]) == (8, 7)
    assert (pairs["real_benign_vs_real_malignant"]["n_first"], pairs["real_benign_vs_real_malignant"]["n_second"]) == (9, 7)
    for pair in pairs.values():
        assert pair["low"] <= pair["subset_mean"] <= pair["high"] and pair["subset_size"] == 3  # half the smaller set


def test_every_nearest_neighbour_and_the_memorisation_share(space) -> None:
    groups, malignant_ids, synthetic_ids = space
    summary, rows = synthesis_stage.audit_space(groups, malignant_ids, synthetic_ids, seed=0)
    scale = summary["feature_scale"]
    _, malignant, synthetic = (group / scale for group in groups)
    synthetic_rows = [row for row in rows if row["kind"] == "synthetic"]
    real_rows = [row for row in rows if row["kind"] == "real"]
    assert [row["image"] for row in synthetic_rows] == synthetic_ids and [row["image"] for row in real_rows] == malignant_ids
    synthetic_distances, real_distances = [], []
    for row, features in zip(synthetic_rows, synthetic):
        index, distance = slow_nearest(features, malignant)
        assert (row["nearest_id"], row["distance"]) == (malignant_ids[index], pytest.approx(distance, rel=1e-9))
        synthetic_distances.append(distance)
    for position, (row, features) in enumerate(zip(real_rows, malignant)):
        index, distance = slow_nearest(features, malignant, skip=position)
        assert (row["nearest_id"], row["distance"]) == (malignant_ids[index], pytest.approx(distance, rel=1e-9))
        real_distances.append(distance)
    assert synthetic_rows[3]["nearest_id"] == "ISIC_m5"  # the near-copy
    memorisation = summary["memorisation"]
    real_q05 = np.sort(real_distances)[0] + 0.05 * (len(real_distances) - 1) * (
        np.sort(real_distances)[1] - np.sort(real_distances)[0])  # linear interpolation, written out
    assert memorisation["real_to_real"]["q05"] == pytest.approx(real_q05)
    expected_share = sum(distance < real_q05 for distance in synthetic_distances) / len(synthetic_distances)
    assert expected_share > 0 and memorisation["share_closer_than_real_q05"] == pytest.approx(expected_share)
    assert memorisation["synthetic_to_real"]["min"] == pytest.approx(min(synthetic_distances))
    assert memorisation["synthetic_to_real"]["mean"] == pytest.approx(np.mean(synthetic_distances))
    assert memorisation["synthetic_to_real"]["n"] == 8 and memorisation["real_to_real"]["n"] == 7
    assert memorisation["dimensions"] == 4


def test_the_realism_table_groups_by_source_and_ranks_the_most_real_first() -> None:
    generator = np.random.default_rng(13)
    real = generator.normal(0.0, 1.0, (14, 3))
    synthetic = generator.normal(1.5, 1.0, (14, 3))
    synthetic[1:8:2] = synthetic[0:8:2]  # pairs of images of one benign source: held out together, scored alike
    synthetic_ids = [f"syn_{index}" for index in range(14)]
    sources = [f"ISIC_b{index // 2}" for index in range(8)] + [f"ISIC_b{index}" for index in range(8, 14)]
    manifest = {image: {"synthetic_id": image, "source_id": source, "path": f"synthetic/{image}.png"}
                for image, source in zip(synthetic_ids, sources)}
    rows, probe = synthesis_stage.realism_table(synthetic, real, synthetic_ids, [f"ISIC_m{index}" for index in range(14)],
                                          manifest, seed=0)
    by_id = {row["synthetic_id"]: row for row in rows}
    for first in range(0, 8, 2):
        assert by_id[f"syn_{first}"]["realism"] == pytest.approx(by_id[f"syn_{first + 1}"]["realism"], abs=1e-12), first
    assert [row["rank"] for row in rows] == list(range(1, 15))
    realism = [row["realism"] for row in rows]
    assert realism == sorted(realism, reverse=True)  # rank 1 = the most realistic
    for row in rows:
        assert row["source_id"] == manifest[row["synthetic_id"]]["source_id"]
        assert row["path"] == manifest[row["synthetic_id"]]["path"]
    # the synthetic images nearest the real cloud are ranked the most real
    distance_to_real = {image: float(np.linalg.norm(features - real.mean(axis=0)))
                        for image, features in zip(synthetic_ids, synthetic)}
    closest = sorted(synthetic_ids, key=distance_to_real.get)[:3]
    assert {row["synthetic_id"] for row in rows[:5]} >= set(closest[:2])
    assert probe["n_synthetic"] == 14 and probe["n_real"] == 14 and probe["folds"] == 5
