"""Stage 2: the VGG-GAP classifier trained with focal loss (paper Section 2.2).

- ``backbone``: VGG16 convolution layers (full or narrow) and where their weights come from.
- ``model``: the flat VGG-GAP model and its AUC-of-malignant metric.
- ``losses``: focal loss, equation (6).
- ``augment`` / ``training_sets``: the four training sets of Table 1.
- ``train``: the training stage (run folder, checkpoints, resume); ``predict``: load and predict.
"""
