"""Synthesis audit: KID against a direct unbiased MMD^2, nearest neighbours against brute force, the
realism probe, the refusal of a run without synthesis, and the audit end to end on a real tiny run."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.classifier import training_sets
from melanet.cli import main
from melanet.audits import synthesis_measures
from melanet.runs import audit_files
from melanet.gan import masking


def direct_unbiased_mmd2(first: np.ndarray, second: np.ndarray) -> float:
    """The textbook estimator, one pair at a time, with k(x, y) = (x.y / d + 1)^3."""
    dimension = first.shape[1]

    def kernel(x, y):
        return (float(np.dot(x, y)) / dimension + 1.0) ** 3

    m, n = len(first), len(second)
    within_first = sum(kernel(first[i], first[j]) for i, j in itertools.permutations(range(m), 2))
    within_second = sum(kernel(second[i], second[j]) for i, j in itertools.permutations(range(n), 2))
    across = sum(kernel(x, y) for x in first for y in second)
    return within_first / (m * (m - 1)) + within_second / (n * (n - 1)) - 2.0 * across / (m * n)


def test_kid_equals_a_direct_unbiased_mmd_with_the_cubic_kernel():
    generator = np.random.default_rng(0)
    first, second = generator.normal(size=(6, 4)), generator.normal(0.5, 1.2, size=(5, 4))
    assert synthesis_measures.unbiased_mmd2(first, second) == pytest.approx(direct_unbiased_mmd2(first, second), rel=1e-12)
    result = synthesis_measures.kernel_inception_distance(first, second, seed=1, subsets=20)
    assert result["kid"] == pytest.approx(direct_unbiased_mmd2(first, second), rel=1e-12)
    assert result["subset_size"] == 2 and result["n_first"] == 6 and result["n_second"] == 5
    # the interval is the percentile range of direct estimates on the same subsets
    rng = np.random.default_rng(1)
    estimates = [direct_unbiased_mmd2(first[rng.choice(6, 2, replace=False)], second[rng.choice(5, 2, replace=False)])
                 for _ in range(20)]
    assert result["low"] == pytest.approx(np.quantile(estimates, 0.025))
    assert result["high"] == pytest.approx(np.quantile(estimates, 0.975))


def test_kid_subsets_from_the_cached_kernels_equal_those_computed_afresh(monkeypatch):
    generator = np.random.default_rng(6)
    first, second = generator.normal(size=(9, 3)), generator.normal(0.3, 1, size=(7, 3))
    cached = synthesis_measures.kernel_inception_distance(first, second, seed=2, subsets=15, subset_size=3)
    monkeypatch.setattr(synthesis_measures, "KERNEL_CACHE_LIMIT", 0)
    afresh = synthesis_measures.kernel_inception_distance(first, second, seed=2, subsets=15, subset_size=3)
    assert cached == pytest.approx(afresh, rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    generator = np.random.default_rng(2)
    same = synthesis_measures.kernel_inception_distance(generator.normal(size=(200, 8)), generator.normal(size=(200, 8)), seed=0)
    shifted = synthesis_measures.kernel_inception_distance(generator.normal(size=(200, 8)), generator.normal(1, 1, (200, 8)), seed=0)
    assert abs(same["kid"]) < 0.05 < shifted["kid"] and shifted["low"] > 0


def test_an_audit_does_not_depend_on_the_scale_of_the_features():
    from melanet.audits import synthesis_stage

    generator = np.random.default_rng(7)
    groups = (generator.normal(0, 1, (8, 4)), generator.normal(0.5, 1, (6, 4)), generator.normal(1, 1, (7, 4)))
    malignant_ids, synthetic_ids = [f"m{index}" for index in range(6)], [f"s{index}" for index in range(7)]
    small, rows = synthesis_stage.audit_space(groups, malignant_ids, synthetic_ids, seed=0)
    large, large_rows = synthesis_stage.audit_space(tuple(group * 1000 for group in groups), malignant_ids, synthetic_ids,
                                              seed=0)
    assert large["feature_scale"] == pytest.approx(1000 * small["feature_scale"])
    for pair, kid in small["kid"].items():
        assert large["kid"][pair]["kid"] == pytest.approx(kid["kid"], rel=1e-9)
    assert [row["nearest_id"] for row in rows] == [row["nearest_id"] for row in large_rows]
    scaled = tuple(group / small["feature_scale"] for group in groups)
    direct = synthesis_measures.unbiased_mmd2(scaled[2], scaled[1])
    assert small["kid"]["synthetic_vs_real_malignant"]["kid"] == pytest.approx(direct)


def test_nearest_neighbours_match_brute_force(monkeypatch):
    monkeypatch.setattr(synthesis_measures, "NEIGHBOUR_CHUNK", 7)  # several blocks, one partial
    generator = np.random.default_rng(3)
    queries, references = generator.normal(size=(30, 5)), generator.normal(size=(11, 5))
    distances = np.linalg.norm(queries[:, None, :] - references[None, :, :], axis=-1)
    indices, found = synthesis_measures.nearest_neighbours(queries, references)
    np.testing.assert_array_equal(indices, distances.argmin(axis=1))
    np.testing.assert_allclose(found, distances.min(axis=1), rtol=1e-9)
    # leave-one-out on one set: never the row itself
    within = np.linalg.norm(queries[:, None, :] - queries[None, :, :], axis=-1)
    np.fill_diagonal(within, np.inf)
    indices, found = synthesis_measures.nearest_neighbours(queries, queries, exclude_self=True)
    np.testing.assert_array_equal(indices, within.argmin(axis=1))
    np.testing.assert_allclose(found, within.min(axis=1), rtol=1e-9)


def test_realism_scores_rank_the_synthetic_images_that_look_real_first():
    generator = np.random.default_rng(4)
    real = generator.normal(0, 1, (30, 6))
    synthetic = generator.normal(3, 1, (30, 6))
    synthetic[:5] = generator.normal(0, 1, (5, 6))  # five that look like the real ones
    scores, probe = synthesis_measures.realism_scores(synthetic, real, [f"b{index}" for index in range(30)],
                                         [f"m{index}" for index in range(30)], seed=0)
    assert scores.shape == (30,) and np.all((scores >= 0) & (scores <= 1))
    assert set(np.argsort(-scores)[:5]) == set(range(5))
    assert probe["auc"] > 0.8 and probe["folds"] == 5


def test_realism_folds_hold_a_group_out_together():
    """Two synthetic images of one source are scored by a probe that saw neither of them."""
    generator = np.random.default_rng(5)
    real = generator.normal(0, 1, (12, 3))
    synthetic = generator.normal(2, 1, (12, 3))
    synthetic[1] = synthetic[0]  # the same source twice: a memorising probe would score them alike
    groups = ["a", "a"] + [f"s{index}" for index in range(10)]
    scores, _ = synthesis_measures.realism_scores(synthetic, real, groups, [f"m{index}" for index in range(12)], seed=0)
    assert scores[0] == pytest.approx(scores[1])


def test_top_fraction_keeps_the_most_realistic_images():
    ids = ["syn_a", "syn_b", "syn_c", "syn_d", "syn_e"]
    scores = {"syn_a": 0.1, "syn_b": 0.9, "syn_c": 0.5, "syn_d": 0.7, "syn_e": 0.5}
    assert training_sets.most_realistic(ids, scores, 0.4) == [1, 3]  # b, d in id order
    assert training_sets.most_realistic(ids, scores, 0.6) == [1, 2, 3]  # tie c/e: the earlier id
    assert training_sets.most_realistic(ids, scores, 1.0) == [0, 1, 2, 3, 4]
    assert training_sets.most_realistic(ids, scores, 0.01) == [1]  # at least one
    with pytest.raises(config_module.ConfigError, match="syn_e"):
        training_sets.most_realistic(ids, {key: value for key, value in scores.items() if key != "syn_e"}, 0.5)


def test_synthetic_keep_is_all_in_the_paper_preset_and_parsed_strictly():
    assert config_module.load_config("configs/paper.yaml").classifier.synthetic_keep == "all"
    assert config_module.synthetic_keep_fraction("top_fraction=0.25") == 0.25
    for bad in ("top_fraction=0", "top_fraction=1.5", "best=0.5", "top_fraction="):
        with pytest.raises(config_module.ConfigError, match="classifier.synthetic_keep"):
            config_module.load_config(None, [f"classifier.synthetic_keep={bad}"])


def _trained_gan(tmp_path, data_root, *, synthesize: bool):
    run_dir = tmp_path / "gan"
    arguments = ["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(run_dir),
                 "--set", f"data.root={data_root}", "--set", "gan.epochs=1", "--set", "gan.batch_size=2"]
    assert main(arguments) == 0
    if synthesize:
        assert main(["-q", "synthesize", "--run", str(run_dir)]) == 0
    return run_dir


@pytest.mark.slow
def test_the_audit_refuses_a_gan_run_without_synthesis_with_one_line(tmp_path, tiny_isic, capsys):
    run_dir = _trained_gan(tmp_path, tiny_isic, synthesize=False)
    capsys.readouterr()
    assert main(["-q", "audit-synthesis", "--run", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no synthetic images to audit" in error and "melanet synthesize" in error
    assert not (run_dir / layout.AUDIT_FILE).exists()


@pytest.mark.slow
def test_audit_end_to_end_then_synthetic_keep_uses_its_scores(tmp_path, tiny_isic, capsys):
    run_dir = _trained_gan(tmp_path, tiny_isic, synthesize=True)
    assert main(["-q", "audit-synthesis", "--run", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "realism probe (backbone features)" in printed and "pixel probe" in printed
    summary = audit_files.read_summary(run_dir)
    realism = summary["realism"]
    # the pixel probe and both yardsticks: held-out AUCs of the grouped probe, each over the right images
    assert realism["pixel_probe"]["n_synthetic"] == summary["counts"]["synthetic"]
    assert realism["pixel_probe"]["n_real"] == summary["counts"]["real_malignant"]
    for key in ("yardstick", "pixel_yardstick"):
        assert realism[key]["n_benign"] == summary["counts"]["real_benign"]
        assert realism[key]["n_malignant"] == summary["counts"]["real_malignant"]
    assert all(0.0 <= realism[key]["auc"] <= 1.0 for key in ("probe", "yardstick", "pixel_probe", "pixel_yardstick"))
    # the probe in each feature space; the realism probe's own space gives the same figures
    space = summary["feature_spaces"][realism["features"]]["probe"]
    assert space == {"synthetic_vs_real_malignant": realism["probe"]["auc"],
                     "real_benign_vs_real_malignant": realism["yardstick"]["auc"]}
    kid = summary["feature_spaces"]["backbone"]["kid"]
    assert set(kid) == {"synthetic_vs_real_malignant", "real_benign_vs_real_malignant"}
    assert all(entry["low"] <= entry["high"] for entry in kid.values())
    with (run_dir / layout.AUDIT_REALISM_FILE).open() as stream:
        realism = list(csv.DictReader(stream))
    counts = summary["counts"]
    assert len(realism) == counts["synthetic"]
    assert [int(row["rank"]) for row in realism] == list(range(1, len(realism) + 1))
    values = [float(row["realism"]) for row in realism]
    assert values == sorted(values, reverse=True)
    nearest = audit_files.read_nearest(run_dir)
    assert sum(row["kind"] == "synthetic" for row in nearest) == counts["synthetic"]
    assert sum(row["kind"] == "real" for row in nearest) == counts["real_malignant"]
    assert runs.Run(run_dir).status()["audit"]["state"] == "done"

    # synthetic_keep=top_fraction keeps the best-ranked share of this training part's synthetic images
    from melanet.data import splits

    config = runs.Run(run_dir).config()
    training_part, _ = splits.training_and_validation(config.data, config.seed)

    # gan.mask_padding (the default): every synthetic PNG on disk has exactly its source's bars
    assert config.gan.mask_padding
    synthetic = training_sets.synthetic_images(training_part, str(run_dir))
    sources = training_part.images[[training_part.ids.index(image[len(layout.SYNTHETIC_PREFIX):])
                                    for image in synthetic.ids]]
    bars = masking.padding_masks(sources).numpy()[..., 0] == 0
    assert bars.any(axis=(1, 2)).all()  # the sample's landscape lesions are padded at 32 px
    assert np.array_equal(synthetic.images[bars], sources[bars])
    kept = training_sets.synthetic_images(training_part, str(run_dir), keep="top_fraction=0.5")
    expected = max(1, int(np.floor(0.5 * len(realism) + 0.5)))
    assert len(kept.ids) == expected
    assert sorted(kept.ids) == sorted(row["synthetic_id"] for row in realism[:expected])
    # scores whose probe used a real image outside the classifier's training part are refused
    first_malignant = int(np.flatnonzero(training_part.labels == 1)[0])
    without = [index for index in range(len(training_part.ids)) if index != first_malignant]
    smaller = training_part.subset(without)
    with pytest.raises(config_module.ConfigError, match="outside this classifier's training part"):
        training_sets.synthetic_images(smaller, str(run_dir), keep="top_fraction=0.5")
