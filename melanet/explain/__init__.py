"""Explanation: what a model looked at: Grad-CAM maps, overlays, UMAP of GAP features, lesion focus, similar cases.

- ``gradcam``: pure computation of class activation maps (tf-keras-vis).
- ``overlay``: colour maps and heat-map overlays on input images.
- ``features``: global-average-pooled features of a trained classifier.
- ``embedding``: 2-D UMAP of those features and a static two-panel figure.
- ``lesion_focus``: the share of a map's mass inside the lesion.
- ``explain_stage`` / ``embed_stage``: the run-folder outputs of ``melanet explain`` / ``melanet embed``.
- ``retrieval``, ``retrieval_stage``: the similar-cases index of the training images; ``melanet similar``.
- ``similar_cases``: the similar-cases vote's AUC beside the classifier's.
"""
