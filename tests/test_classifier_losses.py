"""Focal loss, equation (6), against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from melanet.classifier import losses


def _hand_focal(label: int, probability_malignant: float, alpha: float, gamma: float) -> float:
    probability_true = probability_malignant if label == 1 else 1.0 - probability_malignant
    alpha_true = alpha if label == 1 else 1.0 - alpha
    return -alpha_true * (1.0 - probability_true) ** gamma * math.log(probability_true)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
def test_focal_loss_matches_equation_6(gamma: float) -> None:
    labels = np.array([1, 1, 0, 0, 1])
    probabilities = np.array([0.9, 0.2, 0.1, 0.7, 0.5], dtype=np.float32)
    expected = [_hand_focal(int(label), float(p), 0.25, gamma) for label, p in zip(labels, probabilities)]
    computed = np.asarray(losses.focal_loss(labels, probabilities, alpha=0.25, gamma=gamma))
    np.testing.assert_allclose(computed, expected, rtol=1e-5)


def test_gamma_zero_is_alpha_weighted_cross_entropy() -> None:
    labels = np.array([1, 0, 1, 0])
    probabilities = np.array([0.8, 0.3, 0.05, 0.99], dtype=np.float32)
    cross_entropy = -(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
    weights = np.where(labels == 1, 0.25, 0.75)
    computed = np.asarray(losses.focal_loss(labels, probabilities, alpha=0.25, gamma=0.0))
    np.testing.assert_allclose(computed, weights * cross_entropy, rtol=1e-5)


def test_easy_example_weighs_less_than_hard_one() -> None:
    labels = np.array([1, 1])
    easy_and_hard = np.array([0.95, 0.3], dtype=np.float32)
    focal = np.asarray(losses.focal_loss(labels, easy_and_hard, alpha=0.25, gamma=2.0))
    plain = np.asarray(losses.focal_loss(labels, easy_and_hard, alpha=0.25, gamma=0.0))
    assert focal[0] < focal[1]
    # the focusing term shrinks the easy example's share of the loss: (1 - 0.95)^2 vs (1 - 0.3)^2
    assert focal[0] / focal[1] < plain[0] / plain[1]
    np.testing.assert_allclose(focal / plain, [(1 - 0.95) ** 2, (1 - 0.3) ** 2], rtol=1e-4)


def test_focal_loss_is_finite_at_saturated_probabilities() -> None:
    import tensorflow as tf

    labels = tf.constant([1.0, 0.0, 1.0, 0.0])
    probabilities = tf.Variable([0.0, 1.0, 1.0, 0.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.focal_loss(labels, probabilities, alpha=0.25, gamma=2.0))
    gradient = tape.gradient(loss, probabilities)
    assert np.isfinite(loss.numpy())
    assert np.all(np.isfinite(gradient.numpy()))


def test_focal_loss_class_reads_the_malignant_column_of_a_softmax() -> None:
    softmax = np.array([[0.1, 0.9], [0.6, 0.4]], dtype=np.float32)
    labels = np.array([1, 0])
    loss = losses.FocalLoss(alpha=0.25, gamma=2.0, reduction=None)(labels, softmax)
    expected = [_hand_focal(1, 0.9, 0.25, 2.0), _hand_focal(0, 0.4, 0.25, 2.0)]
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0])
def test_focal_loss_class_uses_its_own_gamma_and_alpha(gamma: float) -> None:
    softmax = np.array([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([1, 0, 1])
    loss = losses.FocalLoss(alpha=0.4, gamma=gamma, reduction=None)(labels, softmax)
    expected = [_hand_focal(1, 0.9, 0.4, gamma), _hand_focal(0, 0.4, 0.4, gamma), _hand_focal(1, 0.5, 0.4, gamma)]
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-5)
    restored = losses.FocalLoss.from_config(losses.FocalLoss(alpha=0.4, gamma=gamma).get_config())
    assert (restored.alpha, restored.gamma) == (0.4, gamma)
