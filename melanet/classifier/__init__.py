"""Stage 2: the GAP classifier (VGG16 or EfficientNet-Lite backbone) trained with focal loss (paper Section 2.2).

- ``backbones``: the backbone registry; ``vgg16``: VGG16 convolution layers (full or narrow) and where their
  weights come from; ``efficientnet_lite``, ``torch_weights``: EfficientNet-Lite and its converted weights.
- ``model``: the flat VGG-GAP model and its AUC-of-malignant metric.
- ``losses``: focal loss, equation (6).
- ``augment`` / ``training_sets``: the four training sets of Table 1.
- ``train``: the training stage (run folder, checkpoints, resume); ``predict``: load and predict.
"""
