"""The choices of the settings as ``Literal`` types, and their tuples for forms and parsers.

``melanet.config`` validates against these; the CLI parsers and the dashboard's forms offer the
tuples. The training sets have a registry of their own (``melanet.common.training_sets``).
Imports nothing from the rest of ``melanet``.
"""

from __future__ import annotations

import typing
from typing import Literal

GradCamMethod = Literal["gradcam", "gradcam++", "scorecam"]
GRADCAM_METHODS: tuple[GradCamMethod, ...] = typing.get_args(GradCamMethod)

Backbone = Literal["vgg16", "vgg16-narrow", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
BACKBONES: tuple[Backbone, ...] = typing.get_args(Backbone)
# how tables and pages print each backbone
BACKBONE_DISPLAY: dict[str, str] = {"vgg16": "VGG16", "vgg16-narrow": "VGG16 (narrow)",
                                    "efficientnet-lite0": "EfficientNet-Lite0", "efficientnet-lite1": "EfficientNet-Lite1",
                                    "efficientnet-lite2": "EfficientNet-Lite2"}

Optimizer = Literal["adadelta", "adam"]
OPTIMIZERS: tuple[Optimizer, ...] = typing.get_args(Optimizer)

Distribute = Literal["none", "mirrored", "multi_worker"]
DISTRIBUTE_CHOICES: tuple[Distribute, ...] = typing.get_args(Distribute)

# evaluation.calibration: a monotone map fitted on the validation predictions (melanet.evaluation.calibration)
Calibration = Literal["none", "temperature", "platt"]
CALIBRATIONS: tuple[Calibration, ...] = typing.get_args(Calibration)

# classifier.class_weight: 'balanced' (the paper's intent) | 'none' (what the authors' Keras 2 code ran)
ClassWeight = Literal["balanced", "none"]
CLASS_WEIGHTS: tuple[ClassWeight, ...] = typing.get_args(ClassWeight)

# classifier.focal_alpha_mode: 'paper' (alpha for malignant, 1 - alpha for benign, equation (6)) |
# 'authors' (their one-hot two-column loss: alpha cancels, an unweighted focal loss halved)
FocalAlphaMode = Literal["paper", "authors"]
FOCAL_ALPHA_MODES: tuple[FocalAlphaMode, ...] = typing.get_args(FocalAlphaMode)

# Outcomes of a thresholded prediction, in the order the explain index lists them: mistakes first.
Outcome = Literal["FN", "FP", "TP", "TN"]
OUTCOMES: tuple[Outcome, ...] = typing.get_args(Outcome)
