"""The authors'-behaviour switches: classifier.focal_alpha_mode and classifier.class_weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.classifier import losses


def test_authors_alpha_mode_is_the_unweighted_focal_loss_halved() -> None:
    labels = np.array([0, 0, 1, 1], dtype=np.float32)
    probabilities = np.array([0.2, 0.7, 0.6, 0.1], dtype=np.float32)
    assert losses.effective_alpha(0.25, "paper") == 0.25
    authors = np.asarray(losses.focal_loss(labels, probabilities, losses.effective_alpha(0.25, "authors"), 2.0))
    p_true = np.where(labels == 1, probabilities, 1 - probabilities)
    unweighted = -((1 - p_true) ** 2) * np.log(p_true)
    np.testing.assert_allclose(authors, 0.5 * unweighted, rtol=1e-5)
    paper = np.asarray(losses.focal_loss(labels, probabilities, losses.effective_alpha(0.25, "paper"), 2.0))
    np.testing.assert_allclose(paper, np.where(labels == 1, 0.25, 0.75) * unweighted, rtol=1e-5)
    with pytest.raises(ValueError, match="focal_alpha_mode"):
        losses.effective_alpha(0.25, "keras")


def test_class_weight_choices_and_old_true_false_files() -> None:
    assert config_module.Config().classifier.class_weight == "balanced"
    assert config_module.load_config(None, ["classifier.class_weight=none"]).classifier.class_weight == "none"
    # run folders written when the key was a boolean still load
    assert config_module.from_dict({"classifier": {"class_weight": True}}).classifier.class_weight == "balanced"
    assert config_module.from_dict({"classifier": {"class_weight": False}}).classifier.class_weight == "none"
    with pytest.raises(config_module.ConfigError, match="classifier.class_weight"):
        config_module.load_config(None, ["classifier.class_weight=inverse"])
    with pytest.raises(config_module.ConfigError, match="classifier.focal_alpha_mode"):
        config_module.load_config(None, ["classifier.focal_alpha_mode=keras"])
    paper = config_module.load_config(Path(__file__).resolve().parents[1] / "configs" / "paper.yaml")
    assert paper.evaluation.prevalence == 0.198 and paper.classifier.focal_alpha_mode == "paper"
    with pytest.raises(config_module.ConfigError, match="evaluation.prevalence"):
        config_module.load_config(None, ["evaluation.prevalence=1.5"])
