"""Focal loss (Lin et al. 2017), equation (6) of the paper.

    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)

with p the predicted probability of malignant (label 1), p_t = p for malignant and 1 - p for benign,
alpha_t = alpha for malignant and 1 - alpha for benign. gamma = 0 gives alpha-weighted cross-entropy;
gamma > 0 down-weights easy (well-classified) examples.
"""

from __future__ import annotations

import keras
from keras import ops

# Probabilities are clipped to [EPSILON, 1 - EPSILON] so log() and the gradient of (1 - p_t)^gamma stay finite.
EPSILON = 1e-7


def effective_alpha(alpha: float, mode: str = "paper") -> float:
    """The malignant-class alpha that ``classifier.focal_alpha_mode`` trains with.

    ``paper``: ``alpha`` (malignant) and 1 - alpha (benign), equation (6). ``authors``: what the
    authors' code optimised: one-hot labels against a 2-column softmax multiply both classes' terms by
    the same alpha, so it cancels; that is an unweighted focal loss up to scale, here alpha = 0.5
    for both classes (an unweighted focal loss halved).
    """
    if mode == "paper":
        return float(alpha)
    if mode == "authors":
        return 0.5
    raise ValueError(f"focal_alpha_mode must be 'paper' or 'authors', got {mode!r}")


def focal_loss(labels, probabilities_malignant, alpha: float = 0.25, gamma: float = 2.0):
    """Per-example focal loss.

    Args:
        labels: (N,) or (N, 1) 0 = benign, 1 = malignant (any numeric dtype).
        probabilities_malignant: (N,) predicted probability of malignant in [0, 1].
        alpha: weight of the malignant class in (0, 1); benign gets 1 - alpha.
        gamma: focusing parameter >= 0.
    Returns:
        (N,) float32 losses >= 0.
    """
    probabilities = ops.clip(ops.cast(ops.reshape(probabilities_malignant, (-1,)), "float32"), EPSILON, 1.0 - EPSILON)
    malignant = ops.equal(ops.cast(ops.reshape(labels, (-1,)), "float32"), 1.0)
    probability_true = ops.where(malignant, probabilities, 1.0 - probabilities)
    alpha_true = ops.where(malignant, alpha, 1.0 - alpha)
    return -alpha_true * ops.power(1.0 - probability_true, gamma) * ops.log(probability_true)


@keras.saving.register_keras_serializable(package="melanet")
class FocalLoss(keras.losses.Loss):
    """Focal loss for a 2-way softmax: ``y_true`` (N,) labels 0/1, ``y_pred`` (N, 2) [benign, malignant]."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, name: str = "focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        return focal_loss(y_true, ops.cast(y_pred, "float32")[:, 1], self.alpha, self.gamma)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}
