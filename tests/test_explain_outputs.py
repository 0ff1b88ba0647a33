"""Explain and embed outputs on in-memory images: index rows, files, ordering, UMAP rows and seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from melanet.explain import embedding, features, embed_stage, explain_stage
from melanet.audits import separability


def tiny_classifier(size: int = 32) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block5_conv3")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(hidden)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    return keras.Model(inputs, outputs)


def test_outcomes_use_a_strict_threshold_and_review_order_puts_mistakes_first() -> None:
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    probabilities = np.array([0.9, 0.2, 0.7, 0.1, 0.5, 0.95, 0.05, 0.3])
    outcome = explain_stage.outcomes(labels, probabilities, threshold=0.5)
    assert list(outcome) == ["TP", "FN", "FP", "TN", "FN", "FP", "FN", "TN"]
    order = explain_stage.order_for_review(outcome, probabilities, explain_stage.OUTCOMES)
    # FN most confident first (lowest probability), FP highest first, TP highest, TN lowest.
    assert order == [6, 1, 4, 5, 2, 0, 3, 7]
    assert explain_stage.order_for_review(outcome, probabilities, ("FP",)) == [5, 2]


def test_parse_which() -> None:
    assert explain_stage.parse_which("all") == ("FN", "FP", "TP", "TN")
    assert explain_stage.parse_which("tp, fn") == ("FN", "TP")
    with pytest.raises(ValueError, match="xx"):
        explain_stage.parse_which("fn,xx")


def test_explain_images_writes_index_and_files(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 0, 1])
    ids = [f"ISIC_{index:07d}" for index in range(6)]
    probabilities = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])  # TN FN FP TP TN TP
    output_dir = tmp_path / "explain"
    model = tiny_classifier()
    options = explain_stage.ExplainOptions(outcomes=("FN", "FP", "TP"), limit=3, batch_size=2)
    rows = explain_stage.explain_images(
        model, images, labels, ids, probabilities, run_path=tmp_path, output_dir=output_dir, options=options
    )
    assert [(row["image"], row["outcome"]) for row in rows] == [
        ("ISIC_0000001", "FN"), ("ISIC_0000002", "FP"), ("ISIC_0000003", "TP")
    ]
    with (output_dir / "index.csv").open(newline="") as stream:
        index = list(csv.DictReader(stream))
    assert list(index[0]) == list(explain_stage.INDEX_COLUMNS)
    assert index == rows
    for row in index:
        activation_map = np.load(tmp_path / row["map_path"])
        assert activation_map.shape == (32, 32) and 0.0 <= activation_map.min() <= activation_map.max() <= 1.0
        assert Image.open(tmp_path / row["overlay_path"]).size == (32, 32)
        saved_input = np.asarray(Image.open(tmp_path / row["input_path"]))
        assert np.array_equal(saved_input, images[ids.index(row["image"])])
        assert not Path(row["map_path"]).is_absolute() and row["map_path"].startswith("explain/maps/")

    # A second method adds rows; the same method again replaces its own rows.
    more = dict(run_path=tmp_path, output_dir=output_dir)
    explain_stage.explain_images(model, images, labels, ids, probabilities, **more,
                               options=explain_stage.ExplainOptions(method="gradcam++", outcomes=("FN",)))
    explain_stage.explain_images(model, images, labels, ids, probabilities, **more,
                               options=explain_stage.ExplainOptions(outcomes=("FN",)))
    index = explain_stage.read_index(output_dir / "index.csv")
    assert sorted((row["method"], row["image"]) for row in index) == [
        ("gradcam", "ISIC_0000001"), ("gradcam", "ISIC_0000002"), ("gradcam", "ISIC_0000003"),
        ("gradcam++", "ISIC_0000001"),
    ]
    assert (output_dir / "maps" / "ISIC_0000001_gradcampp_block5_conv3.npy").is_file()


def test_gap_features_are_the_pooled_activations() -> None:
    model = tiny_classifier()
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    extracted = features.extract_features(model, images, batch_size=2)
    convolution = keras.Model(model.input, model.get_layer("block5_conv3").output)
    expected = np.asarray(convolution(images.astype(np.float32) / 255.0)).mean(axis=(1, 2))
    assert extracted.shape == (5, 4)
    np.testing.assert_allclose(extracted, expected, rtol=1e-5, atol=1e-6)


def test_gap_features_need_a_pooling_layer() -> None:
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        features.feature_model(model)


def _clustered_features(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    centres = rng.normal(0.0, 3.0, (2, 16))
    return (centres[labels] + rng.normal(0.0, 1.0, (count, 16))).astype(np.float32), labels


@pytest.mark.slow
def test_umap_rows_tags_and_seed_reproducibility(tmp_path: Path) -> None:
    original, labels = _clustered_features(30, seed=0)
    synthetic = _clustered_features(12, seed=1)[0] + 1.0
    ids = [f"ISIC_{index:07d}" for index in range(30)]
    synthetic_ids = [f"syn_{image_id}" for image_id in ids[:12]]
    arguments = dict(seed=7, n_neighbors=10, min_dist=0.1)
    rows = embed_stage.embed_panels(original, ids, labels, synthetic, synthetic_ids, **arguments)
    again = embed_stage.embed_panels(original, ids, labels, synthetic, synthetic_ids, **arguments)

    original_rows = [row for row in rows if row["panel"] == "original"]
    balanced_rows = [row for row in rows if row["panel"] == "balanced"]
    assert [row["image"] for row in original_rows] == ids
    assert [row["image"] for row in balanced_rows] == ids + synthetic_ids
    assert [row["tag"] for row in original_rows] == ["benign" if label == 0 else "malignant" for label in labels]
    assert [row["tag"] for row in balanced_rows].count("synthetic") == 12
    assert all(np.isfinite([row["x"], row["y"]]).all() for row in rows)
    assert [(row["x"], row["y"]) for row in rows] == [(row["x"], row["y"]) for row in again]

    different = embedding.umap_embedding(original, seed=8, n_neighbors=10)
    first = np.array([[row["x"], row["y"]] for row in original_rows])
    assert not np.allclose(first, different)

    picture = embed_stage.render_rows(rows)
    assert picture.size[0] == 2 * picture.size[1] - 80  # two panels side by side

    only_original = embed_stage.embed_panels(original, ids, labels, None, **arguments)
    assert {row["panel"] for row in only_original} == {"original"}
    assert embed_stage.render_rows(only_original).size[0] == 520


def test_domain_gap_reads_half_for_one_distribution_and_one_for_two() -> None:
    rng = np.random.default_rng(3)
    same = separability.held_out_auc(rng.normal(0, 1, (60, 16)), rng.normal(0, 1, (60, 16)), seed=0)
    first, second = rng.normal(1.5, 1, (60, 16)), rng.normal(0, 1, (60, 16))
    apart = separability.held_out_auc(first, second, seed=0)
    assert same is not None and apart is not None
    assert abs(same["auc"] - 0.5) < 0.15
    assert apart["auc"] > 0.97
    assert (apart["n_first"], apart["n_second"], apart["folds"]) == (60, 60, 5)
    assert separability.held_out_auc(first, second, seed=0) == apart  # same input and seed, same figure


def test_domain_gap_held_out_scores_are_not_training_scores() -> None:
    # pure noise with more dimensions than images: a model scored on its own training data would
    # separate the groups perfectly; held-out scores must not
    rng = np.random.default_rng(4)
    result = separability.held_out_auc(rng.normal(0, 1, (20, 200)), rng.normal(0, 1, (20, 200)), seed=1)
    assert result is not None and result["auc"] < 0.8


def test_domain_gap_small_or_mismatched_groups() -> None:
    assert separability.held_out_auc(np.zeros((1, 4)), np.ones((9, 4)), seed=0) is None
    assert separability.held_out_auc(np.zeros((3, 4)), np.ones((9, 4)), seed=0)["folds"] == 3
    with pytest.raises(ValueError, match="same C"):
        separability.held_out_auc(np.zeros((5, 4)), np.zeros((5, 3)), seed=0)
    with pytest.raises(ValueError, match="synthetic"):
        separability.domain_gap({"benign": np.zeros((5, 4)), "malignant": np.zeros((5, 4))}, seed=0)


def test_no_function_in_melanet_explain_or_audits_is_longer_than_60_lines() -> None:
    import ast

    root = Path(__file__).resolve().parents[1] / "melanet"
    long = []
    for path in sorted([*(root / "explain").glob("*.py"), *(root / "audits").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
