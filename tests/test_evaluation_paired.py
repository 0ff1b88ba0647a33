"""Paired comparison of evaluated runs, `compare --out`, and `evaluate --from-predictions` with a model card.

Run folders here are real ones (config, status, history, prediction files) of classifiers that were
never trained: the commands under test read only those files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.evaluation import delong, evaluate, paired, predictions

REPOSITORY = Path(__file__).resolve().parents[1]


def scored_run(folder: Path, training_set: str, labels: np.ndarray, probabilities: np.ndarray, *,
               ids: list[str] | None = None, seed: int = 42, data_root: str = "data/sample",
               gan_run: str = "") -> Path:
    """An evaluated classifier run: config, status, history, validation and test predictions, metrics.json."""
    overrides = [f"classifier.training_set={training_set}", f"seed={seed}", f"data.root={data_root}",
                 "classifier.weights=hed", "evaluation.bootstrap_samples=200", "data.image_size=64"]
    if gan_run:
        overrides.append(f"classifier.gan_run={gan_run}")
    config = config_module.load_config(None, overrides)
    run = runs.Run.create(folder, config, "train-classifier")
    for epoch, value in enumerate((0.61, 0.74, 0.69), start=1):
        run.append_history({"epoch": epoch, "loss": 0.3, "auc": 0.7, "val_loss": 0.2, "val_auc": value,
                            "learning_rate": 1e-4, "seconds": 1.0})
    run.update_status(state="done")
    validation_labels = np.array([0] * 12 + [1] * 8)
    validation_probabilities = np.clip(np.linspace(0.1, 0.6, 20) + 0.25 * validation_labels, 0, 1)
    runs.atomic_write_csv(folder / "validation_predictions.csv",
                          [{"image": f"val_{index}", "label": int(label), "prob_malignant": float(probability)}
                           for index, (label, probability) in enumerate(zip(validation_labels, validation_probabilities))],
                          ["image", "label", "prob_malignant"])
    ids = ids or [f"ISIC_{index:07d}" for index in range(labels.size)]
    predictions.write_predictions(folder, ids, labels, probabilities)
    report = evaluate.report_for_predictions(labels, probabilities, config.evaluation, seed,
                                             folder / "validation_predictions.csv")
    report["data"] = {"root": data_root, "split": "test"}
    runs.atomic_write_json(folder / "metrics.json", report)
    return folder


def four_scorers(size: int = 80) -> tuple[np.ndarray, list[np.ndarray]]:
    generator = np.random.default_rng(11)
    labels = np.array([0] * (size // 2) + [1] * (size - size // 2))
    shared = generator.normal(size=size)
    scores = [1 / (1 + np.exp(-(shared + strength * (labels - 0.5) * 2 + generator.normal(scale=0.6, size=size))))
              for strength in (0.4, 0.8, 0.6, 1.2)]
    return labels, scores


def test_compare_out_writes_every_pair_with_delong_and_holm(tmp_path: Path) -> None:
    labels, scores = four_scorers()
    names = ("vgg_gap", "augment5x", "augment10x", "melanet")
    training_sets = ("original", "augment5x", "augment10x", "synthetic")
    order = np.random.default_rng(0).permutation(labels.size)  # one run lists the images in another order
    for index, (name, training_set) in enumerate(zip(names, training_sets)):
        ids = [f"ISIC_{position:07d}" for position in range(labels.size)]
        if name == "augment10x":
            scored_run(tmp_path / "results" / name, training_set, labels[order], scores[index][order],
                       ids=[ids[position] for position in order])
        else:
            scored_run(tmp_path / "results" / name, training_set, labels, scores[index], ids=ids)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "melanet", "compare", str(tmp_path / "results"), "--out", str(out)],
                            capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert len(comparison["pairs"]) == 6 and comparison["n_images"] == labels.size
    pair = next(item for item in comparison["pairs"] if item["method_a"] == "VGG-GAP + Augment-10x"
                and item["method_b"] == "MelaNet")
    expected = delong.delong_test(labels, scores[2], scores[3])
    for key in ("auc_a", "auc_b", "delta_auc", "ci_low", "ci_high", "p"):
        assert pair[key] == pytest.approx(expected[key]), key
    assert pair["p_holm"] == pytest.approx(
        paired.holm([item["p"] for item in comparison["pairs"]])[comparison["pairs"].index(pair)])
    assert "| VGG-GAP + Augment-10x | MelaNet |" in result.stdout and (out / "table.md").is_file()
    reference = subprocess.run([sys.executable, "-m", "melanet", "compare", str(tmp_path / "results"), "--reference",
                                "melanet", "--out", str(tmp_path / "against")], capture_output=True, text=True, cwd=REPOSITORY)
    assert reference.returncode == 0, reference.stderr
    against = json.loads((tmp_path / "against" / "comparison.json").read_text())
    assert [item["method_a"] for item in against["pairs"]] == ["MelaNet"] * 3
    assert "over the 3 pair(s)" in against["holm"]


def test_runs_scored_on_different_images_are_refused(tmp_path: Path) -> None:
    labels, scores = four_scorers()
    first = scored_run(tmp_path / "first", "original", labels, scores[0])
    second = scored_run(tmp_path / "second", "synthetic", labels[:-1], scores[1][:-1])
    with pytest.raises(runs.RunError, match="scored on different images"):
        paired.compare_runs([first, second])
    flipped = labels.copy()
    flipped[0] = 1 - flipped[0]
    third = scored_run(tmp_path / "third", "augment5x", flipped, scores[2])
    with pytest.raises(runs.RunError, match="different labels to 1 test image"):
        paired.compare_runs([first, third])
    result = subprocess.run([sys.executable, "-m", "melanet", "compare", str(first), str(second)],
                            capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode == 2 and "scored on different images" in result.stderr
    unpaired = subprocess.run([sys.executable, "-m", "melanet", "compare", str(first), str(second), "--unpaired"],
                              capture_output=True, text=True, cwd=REPOSITORY)
    assert unpaired.returncode == 0 and "MelaNet" in unpaired.stdout


def test_mcnemar_in_the_comparison_uses_each_runs_decisions(tmp_path: Path) -> None:
    labels = np.array([1] * 6 + [0] * 6)
    first = np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.8])  # sens 4/6, spec 5/6
    second = np.array([0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # sens 1/6, spec 6/6
    comparison = paired.compare_runs([scored_run(tmp_path / "a", "original", labels, first),
                                      scored_run(tmp_path / "b", "synthetic", labels, second)])
    test = comparison["pairs"][0]["mcnemar"]
    assert (test["sensitivity"]["a_only"], test["sensitivity"]["b_only"]) == (3, 0)
    assert test["sensitivity"]["p"] == pytest.approx(0.25)  # 2 * (1/2)^3
    assert (test["specificity"]["a_only"], test["specificity"]["b_only"]) == (0, 1)


def test_from_predictions_writes_calibration_and_a_model_card_of_the_runs_real_figures(
    tmp_path: Path, tiny_isic: Path
) -> None:
    """A run without weights: `evaluate --from-predictions` rewrites metrics.json and model_card.md."""
    gan = runs.Run.create(tmp_path / "gan", config_module.load_config(None, ["seed=7"]), "train-gan")
    (gan.path / "synthetic").mkdir()
    (gan.path / "synthetic" / "manifest.csv").write_text(
        "synthetic_id,source_id,path,reconstruction_path\n" + "".join(f"syn_{k},{k},a,b\n" for k in range(5)))
    labels, scores = four_scorers(60)
    run_path = scored_run(tmp_path / "melanet", "synthetic", labels, scores[3], data_root=str(tiny_isic),
                          gan_run=str(gan.path))
    runs.atomic_write_csv(run_path / "validation_predictions.csv",
                          [{"image": "v1", "label": 0, "prob_malignant": 0.2}, {"image": "v2", "label": 0, "prob_malignant": 0.7},
                           {"image": "v3", "label": 1, "prob_malignant": 0.6}], ["image", "label", "prob_malignant"])
    runs.atomic_write_json(run_path / "embedding" / "separability.json",
                           {"synthetic_vs_real_malignant": {"auc": 0.9388, "n_first": 5, "n_second": 4, "folds": 5}})
    result = subprocess.run([sys.executable, "-m", "melanet", "evaluate", "--run", str(run_path), "--from-predictions",
                             "--set", "evaluation.prevalence=0.25"], capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr
    report = json.loads((run_path / "metrics.json").read_text())
    assert report["data"]["root"] == str(tiny_isic)  # what was scored is kept
    assert report["evaluation_settings"]["prevalence"] == 0.25 and "brier" in report and "ece" in report
    assert report["calibration"]["parameters"]["method"] == "temperature"
    assert runs.Run(run_path).status()["evaluation"]["state"] == "done"
    card = (run_path / "model_card.md").read_text()
    assert "Not a medical device" in card
    assert f"AUC: {100 * report['auc']:.1f} %" in card
    assert "Training: 9 (6 benign, 3 malignant; prevalence 33.3%)" in card  # 12 training images minus 3 validation
    assert "Validation: 3 (2 benign, 1 malignant" in card
    assert "Test: 60 (30 benign, 30 malignant; prevalence 50.0%)" in card
    assert "best epoch 2 of 3 run (val_auc = 0.7400)" in card
    assert "not ImageNet" in card and "seed 7" in card and "5 synthetic malignant images" in card
    assert f"Brier {report['brier']:.3f}" in card
    adjusted = report["prevalence_adjusted"]["at_threshold"]
    assert f"stated prevalence of 25.0%" in card and f"PPV {100 * adjusted['ppv']:.1f} %" in card
    assert "synthetic vs real malignant: AUC 0.939" in card
    refused = subprocess.run([sys.executable, "-m", "melanet", "evaluate", "--run", str(run_path), "--from-predictions",
                              "--set", "classifier.epochs=3"], capture_output=True, text=True, cwd=REPOSITORY)
    assert refused.returncode == 2 and "only evaluation.* settings" in refused.stderr


def test_the_family_and_mcnemars_direction_are_named_in_the_file_and_the_table() -> None:
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    ids = [f"ISIC_{index:07d}" for index in range(10)]
    # at threshold 0.5: A finds melanomas 0-3, B only 0; on benign images A is wrong on 5, B on 5 and 6
    first = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.7, 0.2, 0.2, 0.1, 0.1])
    second = np.array([0.9, 0.2, 0.3, 0.4, 0.1, 0.6, 0.6, 0.2, 0.1, 0.1])
    third = np.array([0.5, 0.4, 0.6, 0.4, 0.3, 0.2, 0.1, 0.4, 0.1, 0.1])
    runs_ = [paired.ScoredRun(name, method, ids, labels, values.astype(float), 0.5) for name, method, values in
             (("m", "MelaNet", first), ("g", "GAP", second), ("a", "Augment", third))]
    versus = paired.compare_scored(runs_, reference=0)
    everything = paired.compare_scored(runs_)
    assert (versus["family"], versus["tests"], everything["family"], everything["tests"]) == ("vs reference", 2, "all pairs", 3)
    pair = versus["pairs"][0]  # MelaNet vs GAP, counted by hand from the arrays above
    assert (pair["mcnemar"]["sensitivity"]["a_only"], pair["mcnemar"]["sensitivity"]["b_only"]) == (3, 0)
    assert (pair["mcnemar"]["specificity"]["a_only"], pair["mcnemar"]["specificity"]["b_only"]) == (1, 0)
    text = paired.to_markdown(versus)
    assert "MelaNet right, GAP wrong: 3; the reverse: 0" in text
    assert "MelaNet right, GAP wrong: 1; the reverse: 0" in text
    assert "Holm over the 2 tests of the family 'vs reference'" in text
