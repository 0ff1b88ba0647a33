"""Explanation: Grad-CAM maps of the malignant class and UMAP embeddings of GAP features.

- ``gradcam``: pure computation of class activation maps (tf-keras-vis).
- ``overlay``: colour maps and heat-map overlays on input images.
- ``features``: global-average-pooled features of a trained classifier.
- ``embedding``: 2-D UMAP of those features and a static two-panel figure.
- ``explain_stage`` / ``embed_stage``: the run-folder outputs of ``melanet explain`` / ``melanet embed``.
"""
